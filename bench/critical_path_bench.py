"""The gateway's critical path with AWS answering at typical in-region latencies (stubbed).

Every AWS call the gateway makes is answered by a stand-in that sleeps its latency (milliseconds,
from the environment; defaults below): the ledger's admission, delivery and release, each
ApplyGuardrail call, the model (Converse; ConverseStream's first token, then its deltas) and the
session transcript's read and write (the real ai_gateway.transcript code over an in-memory table).
Through the deployed handlers (lambda_handler, stream_handler), it reports:

- POST /v1/chat end to end (p50), and what the gateway adds over the model call alone: a first
  turn without a session, and the 10th turn of a session that resends its history;
- POST /v1/chat/completions with ``stream: true``: time to the first content chunk and to the end,
  and the model stream's own first token;
- characters sent to the input guardrail on the last turn of a 1-, 10- and 50-turn conversation
  (each turn ~500 characters of question and ~500 of answer, resent whole every turn, with a
  session id, and again without one, as the openai SDKs send them), counted from the
  ApplyGuardrail calls themselves.

    python bench/critical_path_bench.py                      this tree
    BASELINE=a38222f python bench/critical_path_bench.py     and a git revision, side by side

With BASELINE the revision is checked out in a temporary git worktree and measured by the same
harness in its own process (its own handler, fixtures and models); a baseline that caps a turn at
fewer messages than a 50-turn conversation has gets its cap lifted for the measurement.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.rest_events import Context, rest_event  # noqa: E402 - this tree's, whichever tree is measured

CODE = Path(os.environ.get("CRITICAL_PATH_CODE", ROOT))
LATENCY_MS = {
    "admit": float(os.environ.get("ADMIT_MS", "10")),
    "deliver": float(os.environ.get("DELIVER_MS", "6")),
    "release": float(os.environ.get("RELEASE_MS", "6")),
    "guardrail": float(os.environ.get("GUARDRAIL_MS", "150")),
    "model": float(os.environ.get("MODEL_MS", "1200")),
    "first_token": float(os.environ.get("FIRST_TOKEN_MS", "300")),
    "transcript": float(os.environ.get("TRANSCRIPT_MS", "5")),
}
REQUESTS = int(os.environ.get("REQUESTS", "9"))
TURNS = (1, 10, 50)
QUESTION = ("Could you tell me more about how the refund policy applies to orders shipped abroad? " * 6)[:500]
ANSWER = ("Refunds for orders shipped abroad follow the same thirty day rule as domestic orders do. " * 6)[:500]
DELTAS = [ANSWER[i : i + 100] for i in range(0, len(ANSWER), 100)]


def sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000)


class Latencies:
    """What each call sleeps; ``off`` answers at once (the character counts need no waiting)."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = dict(values)
        self.on = True

    def __getitem__(self, name: str) -> float:
        return self.values[name] if self.on else 0.0


class Bedrock:
    """ApplyGuardrail (passes, counting the INPUT characters it is sent), Converse and ConverseStream."""

    def __init__(self, latency: Latencies) -> None:
        self.latency = latency
        self.input_chars = 0

    def apply_guardrail(self, *, source: str, content: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        sleep_ms(self.latency["guardrail"])
        if source == "INPUT":
            self.input_chars += sum(len(block["text"]["text"]) for block in content)
        return {"action": "NONE", "outputs": [], "assessments": []}

    def converse(self, **_: Any) -> dict[str, Any]:
        sleep_ms(self.latency["model"])
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": ANSWER}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 120, "outputTokens": 110, "totalTokens": 230},
            "metrics": {"latencyMs": int(self.latency["model"])},
        }

    def converse_stream(self, **_: Any) -> dict[str, Any]:
        return {"stream": Stream(self.latency)}


class Stream:
    """ConverseStream's events: the first token after FIRST_TOKEN_MS, the rest spread to MODEL_MS."""

    def __init__(self, latency: Latencies) -> None:
        self.latency = latency

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield {"messageStart": {"role": "assistant"}}
        rest = (self.latency["model"] - self.latency["first_token"]) / max(len(DELTAS) - 1, 1)
        for number, text in enumerate(DELTAS):
            sleep_ms(self.latency["first_token"] if number == 0 else rest)
            yield {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}
        yield {"contentBlockStop": {"contentBlockIndex": 0}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 120, "outputTokens": 110, "totalTokens": 230}, "metrics": {}}}

    def close(self) -> None: ...


def ledger(latency: Latencies) -> Any:
    from tests.lambdas.gateway_fixtures import AnsweringLedger

    class Ledger(AnsweringLedger):
        def admit(self, **kwargs: Any) -> Any:
            sleep_ms(latency["admit"])
            return super().admit(**kwargs)

        def begin_delivery(self, *args: Any, **kwargs: Any) -> None:  # a stream's, before its first text
            sleep_ms(latency["deliver"])  # one UpdateItem, as deliver

        def deliver(self, *args: Any, **kwargs: Any) -> None:
            sleep_ms(latency["deliver"])

        def release(self, *args: Any, **kwargs: Any) -> None:
            sleep_ms(latency["release"])

    return Ledger()


class Table:
    """DynamoDB's GetItem and PutItem on one in-memory table (the transcripts')."""

    def __init__(self, latency: Latencies) -> None:
        self.latency = latency
        self.items: dict[str, dict[str, Any]] = {}

    def get_item(self, *, Key: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        sleep_ms(self.latency["transcript"])
        (value,) = Key.values()
        item = self.items.get(value["S"])
        return {"Item": item} if item else {}

    def put_item(self, *, Item: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        sleep_ms(self.latency["transcript"])
        from ai_gateway.transcript import KEY

        self.items[Item[KEY]["S"]] = Item
        return {}


def conversation(turns: int) -> list[dict[str, str]]:
    """``turns`` questions with the answers between them, the last question new."""
    messages: list[dict[str, str]] = []
    for number in range(turns):
        messages.append({"role": "user", "content": f"{number}: {QUESTION}"})
        if number < turns - 1:
            messages.append({"role": "assistant", "content": ANSWER})
    return messages


def measure() -> dict[str, Any]:
    """This tree's figures (run in its own process: CRITICAL_PATH_CODE names the tree)."""
    sys.path[:0] = [str(CODE), str(CODE / "lambdas")]
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_SERVICE_NAME": "ai_gateway",
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
        }
    )
    import dataclasses

    from ai_gateway import handler
    from ai_gateway.agents import AgentClient
    from ai_gateway.guardrail import Guard
    from tests.lambdas.gateway_fixtures import POLICY, SETTINGS

    # Room for a 50-turn conversation (~50,000 characters); the generation's own timeout unchanged.
    os.environ.update(SETTINGS.model_copy(update={"max_message_chars": 200_000}).environment())
    lifted = _lift_message_cap()
    latency = Latencies(LATENCY_MS)
    bedrock, table = Bedrock(latency), Table(latency)
    fields = {f.name for f in dataclasses.fields(handler.Dependencies)}
    extra: dict[str, Any] = {}
    if "transcripts" in fields:
        from ai_gateway.transcript import Transcripts

        extra["transcripts"] = Transcripts(table, "transcripts", guardrail="g:1", ttl_seconds=3600)
    deps = handler.Dependencies(
        ledger=ledger(latency),
        guard=Guard(bedrock, guardrail_id="g", version="1"),
        bedrock=bedrock,
        agents=AgentClient("http://127.0.0.1:9", {}),
        **extra,
    )
    setattr(handler, "dependencies", lambda: deps)  # noqa: B010
    setattr(handler, "policy", lambda: POLICY)  # noqa: B010
    setattr(handler.logger.registered_handler, "stream", io.StringIO())  # noqa: B010
    stream_handler = getattr(handler, "stream_handler", None)
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # EMF metrics are printed
    numbers = iter(range(1_000_000))
    try:

        def chat(messages: list[dict[str, str]], session: str | None = None) -> float:
            body: dict[str, Any] = {"messages": messages, **({"session_id": session} if session else {})}
            started = time.perf_counter()
            response = handler.lambda_handler(rest_event(next(numbers), "POST", "/v1/chat", body), Context())
            elapsed = (time.perf_counter() - started) * 1000
            assert response["statusCode"] == 200, response
            return elapsed

        def session_turns(turns: int, session: str | None) -> tuple[float, int]:
            """Turns 1..turns of one session (None: a client naming none, whose thread is its
            opening); the last turn's latency and input characters."""
            elapsed = 0.0
            for turn in range(1, turns + 1):
                before = bedrock.input_chars
                elapsed = chat(conversation(turn), session)
            return elapsed, bedrock.input_chars - before

        model_alone = [_timed(bedrock.converse) for _ in range(REQUESTS)]
        first_turn = [chat(conversation(1)) for _ in range(REQUESTS)]
        tenth_turn = [session_turns(10, f"bench-session-{n:04}")[0] for n in range(max(REQUESTS // 3, 3))]
        streamed: list[tuple[float, float]] = []
        stream_first_token: list[float] = []
        if stream_handler is not None:
            for _ in range(REQUESTS):
                streamed.append(_stream(stream_handler, next(numbers)))
                stream_first_token.append(_first_token(latency))
        latency.on = False
        chars = {turns: session_turns(turns, f"chars-session-{turns:02}")[1] for turns in TURNS}
        chars_sessionless = {turns: session_turns(turns, None)[1] for turns in TURNS}
    finally:
        sys.stdout = real_stdout
    return {
        "model_alone": statistics.median(model_alone),
        "first_turn": statistics.median(first_turn),
        "tenth_turn": statistics.median(tenth_turn),
        "stream_first_content": statistics.median(s[0] for s in streamed) if streamed else None,
        "stream_end": statistics.median(s[1] for s in streamed) if streamed else None,
        "stream_model_first_token": statistics.median(stream_first_token) if stream_first_token else None,
        "chars": chars,
        "chars_sessionless": chars_sessionless,
        "message_cap_lifted": lifted,
    }


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _first_token(latency: Latencies) -> float:
    """ConverseStream alone: milliseconds to its first text."""
    started = time.perf_counter()
    events = iter(Stream(latency))
    next(events)  # messageStart
    next(events)  # the first delta
    return (time.perf_counter() - started) * 1000


def _stream(stream_handler: Any, number: int) -> tuple[float, float]:
    """A streamed completion: milliseconds to the first content chunk and to the body's end."""
    from tests.lambdas.gateway_fixtures import PRO

    body = {"model": PRO, "messages": conversation(1), "stream": True}
    started = time.perf_counter()
    response = stream_handler(rest_event(number, "POST", "/v1/chat/completions", body), Context())
    first = None
    for chunk in response.body:
        if first is None and b'"content":"' in chunk and b'"content":""' not in chunk:
            first = (time.perf_counter() - started) * 1000
    end = (time.perf_counter() - started) * 1000
    assert response.status == 200, response
    assert first is not None, "no content chunk"
    return first, end


def _lift_message_cap() -> bool:
    """A baseline whose /v1/chat takes fewer messages than a 50-turn conversation has: the cap lifted."""
    from annotated_types import MaxLen

    from ai_gateway import models

    field = models.ChatRequest.model_fields["messages"]
    need = 2 * max(TURNS)
    if all(not isinstance(m, MaxLen) or m.max_length >= need for m in field.metadata):
        return False
    field.metadata = [MaxLen(need) if isinstance(m, MaxLen) else m for m in field.metadata]
    models.ChatRequest.model_rebuild(force=True)
    return True


def run(code: Path) -> dict[str, Any]:
    env = {**os.environ, "CRITICAL_PATH_CODE": str(code), "CRITICAL_PATH_CHILD": "1"}
    out = subprocess.run([sys.executable, __file__], env=env, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def report(columns: dict[str, dict[str, Any]]) -> None:
    names = list(columns)
    print(f"AWS stubbed at (ms): {', '.join(f'{k} {v:g}' for k, v in LATENCY_MS.items())}; {REQUESTS} requests a row")
    print(f"{'':<58}" + "".join(f"{name:>16}" for name in names))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:<58}" + "".join(f"{v:>16}" for v in values))

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} ms"

    line("model call alone (Converse) p50", [ms(c["model_alone"]) for c in columns.values()])
    for key, label in (
        ("first_turn", "POST /v1/chat, a first turn"),
        ("tenth_turn", "POST /v1/chat, turn 10 of a session"),
    ):
        line(f"{label}: end to end p50", [ms(c[key]) for c in columns.values()])
        line("  added over the model call", [ms(c[key] - c["model_alone"]) for c in columns.values()])
    goal = LATENCY_MS["guardrail"] * 2 + 10
    print(f"{'  goal: one guardrail call each way + 10 ms':<58}{goal:>15,.0f} ms")
    line(
        "stream: model's first token (ConverseStream alone)",
        [ms(c["stream_model_first_token"]) for c in columns.values()],
    )
    line(
        "POST /v1/chat/completions stream: first content p50", [ms(c["stream_first_content"]) for c in columns.values()]
    )
    line("  to the end of the stream p50", [ms(c["stream_end"]) for c in columns.values()])
    for turns in TURNS:
        line(
            f"input guardrail characters, last turn of {turns} turns",
            [f"{c['chars'][str(turns)]:,}" for c in columns.values()],
        )
    for turns in TURNS:  # a revision before 2026-12-06 did not measure it
        line(
            f"  the same, no session id (the openai SDK), {turns} turns",
            [f"{c['chars_sessionless'][str(turns)]:,}" if "chars_sessionless" in c else "-" for c in columns.values()],
        )
    for name, c in columns.items():
        if c["message_cap_lifted"]:
            print(f"({name}: its /v1/chat message cap lifted to measure a 50-turn conversation)")


def main() -> None:
    if os.environ.get("CRITICAL_PATH_CHILD"):
        print(json.dumps(measure()))
        return
    columns = {"this tree": run(ROOT)}
    baseline = os.environ.get("BASELINE")
    if baseline:
        with tempfile.TemporaryDirectory() as scratch:
            tree = Path(scratch) / "baseline"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), baseline], check=True
            )
            try:
                columns = {f"baseline {baseline}": run(tree), **columns}
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    report(columns)


if __name__ == "__main__":
    main()
