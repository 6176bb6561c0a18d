"""How much smaller the agent-ready tool's answer is than what the legacy API sends.

Runs find_orders against the loopback stand-in for the product API (150 deep, verbose orders)
and compares the raw upstream bytes the tool had to fetch with the bytes of its own answer.

Then two hostile upstreams against a client with the configured defaults (LegacyApiConfig's
max_response_bytes, timeout_seconds and max_attempts): one sends 50 MB in 64 KiB chunks with a
short pause between them (the client's peak traced memory and the time until it refuses), one
drips a byte every 0.5 s, of its body or of its headers (the time until the deadline ends it,
every attempt included).
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from legacy_tools.adapters import TOOLS, Shape  # noqa: E402
from shared.legacy_client import ClientSettings, Credentials, LegacyClient  # noqa: E402
from shared.tool_errors import ToolError  # noqa: E402
from stacks.config.tools import LegacyApiConfig  # noqa: E402
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, CUSTOMER_EMAIL, FIELDS, Answer, serve  # noqa: E402

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
    hostile()
    if reduction < 0.9 or not complete:
        sys.exit("target missed: at least 90% smaller with every declared field present")


def hostile() -> None:
    """The configured caps against a 50 MB slow answer and a one-byte-every-0.5-s drip, of the body
    and of the headers."""
    defaults = LegacyApiConfig.model_fields
    cap = int(defaults["max_response_bytes"].default)
    deadline = float(defaults["timeout_seconds"].default)
    attempts = int(defaults["max_attempts"].default)
    chunk = 64 * 1024
    flood = Answer(body=b" " * chunk, repeat=50_000_000 // chunk, content_length="none", pause_seconds=0.002)
    drip = Answer(body=b" " * 1000, piece_bytes=1, pause_seconds=0.5, content_length="none")
    print(f"hostile upstreams (max_response_bytes {cap:,}, timeout_seconds {deadline:g}, max_attempts {attempts})")
    head_drip = Answer(body=b"{}", head_padding=4096, piece_bytes=1, pause_seconds=0.5)
    arms = (("50 MB in 64 KiB chunks", flood), ("1 byte every 0.5 s", drip), ("headers, 1 byte every 0.5 s", head_drip))
    for name, answer in arms:
        with serve() as api:
            api.answers["/v2/customers"] = answer
            settings = ClientSettings(
                base_url=api.url, timeout_seconds=deadline, max_attempts=attempts, max_response_bytes=cap
            )
            client = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET))
            client.get("/v2/customers/C-1001")  # the token first: only the hostile call is measured
            tracemalloc.start()
            started = time.perf_counter()
            try:
                TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL})
                outcome = "answered (guard missing)"
            except ToolError as error:
                outcome = error.message
            seconds = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            sent = api.sent_bytes
        print(f"  {name:<28} gave up after {seconds:6.2f} s, peak {peak / 2**20:5.2f} MiB traced")
        print(f"  {'':<28} server sent {sent:,} bytes ({attempts} attempts allowed): {outcome}")


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


if __name__ == "__main__":
    main()
