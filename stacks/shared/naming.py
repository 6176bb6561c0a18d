"""Names derived from configuration."""

from __future__ import annotations


def pascal_case(name: str) -> str:
    """A construct-id fragment for a configured name: "customer-gold" -> "CustomerGold"."""
    return "".join(part.title() for part in name.replace("_", "-").split("-"))
