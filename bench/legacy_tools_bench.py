"""How much smaller the agent-ready tool's answer is than what the legacy API sends.

Runs find_orders against the loopback stand-in for the product API (150 deep, verbose orders)
and compares the raw upstream bytes the tool had to fetch with the bytes of its own answer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from legacy_tools.adapters import TOOLS, Shape  # noqa: E402
from shared.legacy_client import ClientSettings, Credentials, LegacyClient  # noqa: E402
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, CUSTOMER_EMAIL, FIELDS, serve  # noqa: E402

SHAPE = Shape(top_k=20, byte_budget=4000, fields=FIELDS)


class Counting(LegacyClient):
    upstream_bytes = 0

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
        body, size = super().get(path, params)
        self.upstream_bytes += size
        return body, size


def main() -> None:
    with serve() as api:
        settings = ClientSettings(base_url=api.url)
        client = Counting(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET))
        answer = TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL})
        # Paging aside: every order projected, as if one page held them all.
        unpaged = Shape(top_k=10_000, byte_budget=10**9, fields=FIELDS)
        everything = TOOLS["find_orders"](client, unpaged, {"customer_email": CUSTOMER_EMAIL})
    upstream = client.upstream_bytes // 2  # both answers fetched the same upstream responses
    answer_bytes, all_bytes = _size(answer), _size(everything)
    declared = set(FIELDS["find_orders"])
    complete = all(set(r) == declared and None not in r.values() for r in answer["records"])
    reduction = 1 - answer_bytes / upstream
    page_note = f"{answer['returned']} of {answer['total']} orders"
    print(f"{'upstream bytes (lookup + listing)':<36} {upstream:>9,}")
    print(f"{'tool answer bytes (first page)':<36} {answer_bytes:>9,}   {page_note}")
    print(f"{'reduction':<36} {reduction:>9.1%}   every declared field present: {complete}")
    print(f"{'all orders projected, unpaged':<36} {all_bytes:>9,}   {1 - all_bytes / upstream:.1%} smaller")
    if reduction < 0.9 or not complete:
        sys.exit("target missed: at least 90% smaller with every declared field present")


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


if __name__ == "__main__":
    main()
