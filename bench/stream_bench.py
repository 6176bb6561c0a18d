"""Time to the first streamed byte of the gateway's guarded stream, in-process, with the model
and the guardrail answering at zero latency: what the gateway itself adds before and while it
streams (admission, ConverseStream's first events, cutting pieces, the guard call per piece,
metering, OpenAI SSE encoding), not what Bedrock takes.

Each run streams a 2,000-character answer (sentences of ~60 characters, deltas of 16 characters,
about a token each) through StreamingFlow.stream and openai_sse, and times the first SSE byte
(the role chunk, sent as soon as the stream is admitted and open), the first content byte (the
first guarded piece) and the whole stream. On AWS add, to the first content byte: the model's
time to its first sentence plus one ApplyGuardrail call; to the whole stream: one
ApplyGuardrail call per piece (the number printed).

    .venv/bin/python bench/stream_bench.py          RUNS=2000 to change the number of runs
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import statistics
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "ai_gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "bench",
    }
)
RUNS = int(os.environ.get("RUNS", "500"))
WARMUP = 50
ANSWER_CHARS = 2000
DELTA_CHARS = 16

from aws_lambda_powertools import Logger, Metrics  # noqa: E402

from ai_gateway.agents import AgentClient  # noqa: E402
from ai_gateway.contract import OutputPolicy, Quota  # noqa: E402
from ai_gateway.flow import Clock, GenerationRequest  # noqa: E402
from ai_gateway.guardrail import Guard  # noqa: E402
from ai_gateway.ledger import Admission  # noqa: E402
from ai_gateway.models import Caller  # noqa: E402
from ai_gateway.router import ModelRouter  # noqa: E402
from ai_gateway.streaming import ModelStreamer, StreamingFlow, openai_sse  # noqa: E402
from ai_gateway.telemetry import Telemetry  # noqa: E402

CHAT = OutputPolicy(unit_price_usd=0.002, units=1, max_tokens=1000, instructions="Answer briefly.")
QUOTA = Quota(limit=100_000, period="MONTH")


def answer() -> str:
    sentence = "The refund policy allows returns within thirty days of purchase. "
    return (sentence * (ANSWER_CHARS // len(sentence) + 1))[: ANSWER_CHARS - 1] + "."


class Bedrock:
    """ConverseStream and ApplyGuardrail answering at once (and counting the guard calls)."""

    def __init__(self, text: str) -> None:
        self.deltas = [text[i : i + DELTA_CHARS] for i in range(0, len(text), DELTA_CHARS)]
        self.guard_calls = 0

    def converse_stream(self, **_: Any) -> dict[str, Any]:
        events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
        events += [{"contentBlockDelta": {"delta": {"text": d}, "contentBlockIndex": 0}} for d in self.deltas]
        events += [
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {"metadata": {"usage": {"inputTokens": 20, "outputTokens": 500, "totalTokens": 520}, "metrics": {}}},
        ]
        return {"stream": events}

    def apply_guardrail(self, **_: Any) -> dict[str, Any]:
        self.guard_calls += 1
        return {"action": "NONE", "outputs": [], "assessments": []}


class Ledger:
    def admit(self, **kwargs: Any) -> Admission:
        resets = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
        return Admission(kwargs["request_id"], kwargs["units"], 1, kwargs["limit"], resets, False, "2026-12")

    def begin_delivery(self, *_: Any, **__: Any) -> None: ...

    def deliver(self, *_: Any, **__: Any) -> None: ...

    def release(self, *_: Any, **__: Any) -> None: ...


def request(number: int) -> GenerationRequest:
    return GenerationRequest(
        caller=Caller(user="u", group="customer-gold"),
        output_type="chat",
        output=CHAT,
        quota=QUOTA,
        models=["amazon.nova-pro-v1:0"],
        request_id=f"bench-{number}",
        conversation="s" * 65,
        session=f"bench-{number}",
        messages=[{"role": "user", "content": [{"text": "What is our refund policy?"}]}],
        deadline=time.monotonic() + 600,
    )


# As the handler holds them: module-level, its log lines written (to a buffer, not the terminal).
TELEMETRY = Telemetry(Metrics(), Logger(logger_handler=logging.StreamHandler(io.StringIO())))


def run(bedrock: Bedrock, number: int) -> tuple[float, float, float]:
    flow = StreamingFlow(
        ledger=Ledger(),  # type: ignore[arg-type]
        guard=Guard(bedrock, guardrail_id="g", version="1"),
        models=ModelRouter(bedrock, attempt_seconds=20),
        agents=AgentClient("http://127.0.0.1:9", {}),
        telemetry=TELEMETRY,
        clock=Clock(),
    )
    started = time.perf_counter()
    stream = flow.stream(request(number), ModelStreamer(bedrock, attempt_seconds=20))
    first_byte = first_content = 0.0
    for count, chunk in enumerate(openai_sse(stream, chunk_id="c", created=1, model="m")):
        now = time.perf_counter() - started
        if count == 0:
            first_byte = now
        elif count == 1:
            first_content = now
        assert chunk.startswith(b"data: ")
    return first_byte, first_content, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    text = answer()
    bedrock = Bedrock(text)
    samples: list[tuple[float, float, float]] = []
    with redirect_stdout(io.StringIO()):  # the stages' EMF metrics
        for number in range(WARMUP + RUNS):
            sample = run(bedrock, number)
            if number >= WARMUP:
                samples.append(sample)
    pieces = bedrock.guard_calls / (WARMUP + RUNS)
    print(f"guarded stream of a {len(text)}-character answer, {RUNS} runs, model and guardrail at zero latency")
    print(f"  guard calls (pieces) per answer: {pieces:.0f}")
    for index, name in enumerate(("first SSE byte (role chunk)", "first content byte", "whole stream")):
        values = [s[index] * 1000 for s in samples]
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"  {name:<28} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")


if __name__ == "__main__":
    main()
