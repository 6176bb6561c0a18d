"""What the app expects of a construct CDK built, checked without ``assert``.

The CDK CLI runs the app under ``python -O`` (cdk.json; docs/adr/0022), which drops ``assert``
statements: a check the app relies on is a raise, here. A failed one is a fault in this code or
in a CDK upgrade, never in configuration.
"""

from __future__ import annotations

from typing import TypeVar

from constructs import IConstruct

T = TypeVar("T")


def expect(value: object, kind: type[T], what: str) -> T:
    """``value`` as a ``kind``; TypeError naming ``what`` otherwise."""
    if not isinstance(value, kind):
        raise TypeError(f"{what}: expected {kind.__name__}, found {type(value).__name__}")
    return value


def present(value: T | None, what: str) -> T:
    """``value``, which CDK documents as set here; RuntimeError naming ``what`` if it is None."""
    if value is None:
        raise RuntimeError(f"{what}: not set")
    return value


def default_child(construct: IConstruct, kind: type[T]) -> T:
    """The CloudFormation resource a construct wraps (its default child), as a ``kind``."""
    return expect(construct.node.default_child, kind, f"{construct.node.path}'s default child")
