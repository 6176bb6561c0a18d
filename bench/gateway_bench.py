"""The AI gateway function's own overhead, in-process, with AWS answered at zero latency.

Measures warm per-request latency of POST /v1/chat through lambda_handler (validation, policy,
guardrail in and out, routing, ledger, metrics, logs) beside a bare Powertools REST resolver
handler measured in the same run (and the same request with its admission not overlapped with its
input check, which shows what the overlap's thread handoff costs), with, interleaved in that run,
the OpenAI-compatible routes:
POST /v1/chat/completions buffered (lambda_handler) and streamed (stream_handler, ``"stream":
true``, the body drained; a ~500-character answer in a few deltas, each piece guarded) with its
time to the first body chunk, and GET /v1/models; and the handler module's cold import beside
`import boto3`;
then the same request with the policy document of a 3-group and of a 100-group config
(bench/scale_config.py) read through the function's own runtime-config reader, interleaved in
one run: a request's cost must not grow with the groups.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
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
from bench.rest_events import Context, rest_event  # noqa: E402 - after the path is set

REQUESTS = int(os.environ.get("REQUESTS", "3000"))
WARMUP = 300
GATEWAY = "AI gateway POST /v1/chat"
QUIET = "  the same, stage telemetry no-op"
INLINE = "  the same, not overlapped"
BARE = "bare Powertools resolver"
COMPLETIONS = "POST /v1/chat/completions"
STREAMED = "  the same, stream: true (drained)"
MODELS = "GET /v1/models"
QUESTION = [{"role": "user", "content": "What is our refund policy?"}]
# The streamed answer: ~500 characters in five deltas, so the output guardrail sees a few pieces.
ANSWER = [
    "Refunds are accepted within thirty days of purchase for any unused item in its box. ",
    "Send the receipt with the item, and we refund the price to the original card. ",
    "Opened software, gift cards and custom orders are final sale and cannot be returned. ",
    "Shipping costs are refunded only when the item arrived damaged or was not what you ordered. ",
    "Refunds take five to seven business days to appear, depending on your bank and card issuer.",
]


def event(number: int, method: str = "POST", path: str = "/v1/chat", body: Any = None) -> dict[str, Any]:
    return rest_event(number, method, path, {"messages": QUESTION} if body is None else body)


def completion(model: str, *, stream: bool) -> Callable[[int], dict[str, Any]]:
    body = {"model": model, "messages": QUESTION, **({"stream": True} if stream else {})}
    return lambda number: event(number, "POST", "/v1/chat/completions", body)


def models(number: int) -> dict[str, Any]:
    return event(number, "GET", "/v1/models")


def bench_bedrock() -> Any:
    """Bedrock answering at once (tests' AnsweringBedrock), ConverseStream included: ANSWER's
    deltas as the service's events."""
    from tests.lambdas.bedrock_fakes import answer
    from tests.lambdas.gateway_fixtures import AnsweringBedrock

    class StreamingBedrock(AnsweringBedrock):
        def converse_stream(self, **_: Any) -> dict[str, Any]:
            return {"stream": iter(answer(ANSWER))}

    return StreamingBedrock()


@dataclass(frozen=True)
class Arm:
    """A measured request: its handler, its event, and what is set up around it (not timed)."""

    handler: Any
    event: Callable[[int], dict[str, Any]] = event
    around: Callable[[], AbstractContextManager[Any]] = nullcontext


def interleaved(arms: dict[str, Arm]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each arm's warm per-request latency, the arms taking turns request by request so that all
    see the same machine (it is shared and noisy), the turn's order rotating so that no arm
    always follows the same one (which arm ran before moves a request's time by ~10 µs); and,
    for an arm that answers with a stream, the time to its body's first chunk (the request's
    latency is to its last). Set-up and tear-down around a request are not timed."""
    from ai_gateway.stream_runtime import StreamedResponse

    samples: dict[str, list[float]] = {name: [] for name in arms}
    first: dict[str, list[float]] = {}
    names = list(arms)
    for number in range(WARMUP + REQUESTS):
        turn = number % len(names)
        for name in names[turn:] + names[:turn]:
            arm = arms[name]
            request = arm.event(number)
            with arm.around():
                started = time.perf_counter()
                response = arm.handler(request, Context())
                if isinstance(response, StreamedResponse):
                    body = iter(response.body)
                    chunks = [next(body)]
                    first_chunk = (time.perf_counter() - started) * 1000
                    chunks.extend(body)
                elapsed = (time.perf_counter() - started) * 1000
            if isinstance(response, StreamedResponse):
                assert response.status == 200, response
                assert chunks[-1].startswith(b"data: [DONE]"), chunks  # a failure ends without it
                if number >= WARMUP:
                    first.setdefault(name, []).append(first_chunk)
            else:
                assert response["statusCode"] == 200, response
            if number >= WARMUP:
                samples[name].append(elapsed)
    return samples, first


def bare_handler() -> Any:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    app = APIGatewayRestResolver()

    @app.post("/v1/chat")
    def chat() -> dict[str, Any]:
        return {"output": "Hi.", "body": app.current_event.json_body}

    return app.resolve


def cold_import(statement: str, bytecode_cache: str, runs: int = 9) -> float:
    """Median import time in fresh interpreters, with bytecode cached like site-packages' is.

    The first run compiles (and is discarded): boto3 comes with .pyc files from pip, so the
    project's modules get theirs too, else the comparison would time the compiler.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}", "PYTHONPYCACHEPREFIX": bytecode_cache})
    code = f"import time; s = time.perf_counter(); {statement}; print(time.perf_counter() - s)"
    times = [float(subprocess.check_output([sys.executable, "-c", code], env=env)) * 1000 for _ in range(runs + 1)]
    return statistics.median(times[1:])


@contextmanager
def telemetry_off(handler: Any) -> Iterator[None]:
    """The handler with its stage telemetry as a no-op: the stages (records, metrics, log record,
    spans), the metrics held with them (model tokens and cost, guardrail interventions), and the
    correlation the recorder adds to every log line and metric. What is left is the request's own
    metrics (written by the same flush, in a document of their own) and log lines, in both arms
    alike."""
    from ai_gateway import telemetry
    from shared.telemetry import Recorder, StageRecord

    class NoStage:
        """What a stage costs when there is none: a context that does nothing (a generator-based
        one would cost more than some stages, and flatter the difference)."""

        __slots__ = ("record",)

        def __init__(self) -> None:
            self.record = StageRecord({})

        def __enter__(self) -> StageRecord:
            return self.record

        def __exit__(self, *_: object) -> None:
            return None

    def no_stage(*_: Any, **__: Any) -> NoStage:
        return NoStage()

    def nothing(*_: Any, **__: Any) -> None:
        return None

    stand_ins = [
        (telemetry.Telemetry, "stage", no_stage),
        (telemetry.Telemetry, "correlate", nothing),
        (telemetry, "emit", nothing),
        (Recorder, "add", nothing),
        (Recorder, "stage_metrics", nothing),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in stand_ins]
    for owner, name, stand_in in stand_ins:
        setattr(owner, name, stand_in)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


class InlineExecutor(Executor):
    """Runs the work at once, on the calling thread: the request without its overlap."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # the future carries it, as the pool's would
            future.set_exception(error)
        return future


@contextmanager
def not_overlapped() -> Iterator[None]:
    """The request with its admission run after its input check on the same thread, instead of
    beside it on the flow's pool (ADR 0019): what the overlap's thread handoff costs when AWS
    answers at once, where it saves nothing (with AWS's latencies it saves the admission's call,
    bench/critical_path_bench.py)."""
    from ai_gateway import flow

    saved, flow.POOL = flow.POOL, InlineExecutor()
    try:
        yield
    finally:
        flow.POOL = saved


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99) - 1]


def row(label: str, samples: list[float], bare: list[float] | None = None) -> str:
    p50, p99 = percentiles(samples)
    line = f"{label:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"
    if bare is None:
        return f"{line}   ({len(samples)} warm requests)"
    b50, b99 = percentiles(bare)
    return f"{line}   over bare p50 {p50 / b50:5.1f}x  p99 {p99 / b99:5.1f}x"


# Issue 15's goals for the front door's own cost, measured in the same run (a busy machine's tail
# moves: the p99 is read on an idle one).
GOAL_P50_RATIO = 10
GOAL_P99_RATIO = 25
GOAL_TELEMETRY_MS = 0.05


def main() -> None:
    from ai_gateway import handler
    from ai_gateway.agents import AgentClient
    from ai_gateway.guardrail import Guard
    from tests.lambdas.gateway_fixtures import POLICY, PRO, SETTINGS, AnsweringLedger

    os.environ.update(SETTINGS.environment())

    bedrock = bench_bedrock()  # AWS answers at zero latency
    ledger: Any = AnsweringLedger()
    agents = AgentClient("http://127.0.0.1:9", {})  # the measured route goes to a model, not an agent
    deps = handler.Dependencies(
        ledger=ledger, guard=Guard(bedrock, guardrail_id="g", version="1"), bedrock=bedrock, agents=agents
    )
    # Stand-ins, as the tests use; logs are written to memory, not printed.
    setattr(handler, "dependencies", lambda: deps)  # noqa: B010
    setattr(handler, "policy", lambda: POLICY)  # noqa: B010
    setattr(handler.logger.registered_handler, "stream", io.StringIO())  # noqa: B010
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # EMF metrics likewise
    try:
        bare = bare_handler()
        runs, first_chunk = interleaved(
            {
                GATEWAY: Arm(handler.lambda_handler),
                QUIET: Arm(handler.lambda_handler, around=lambda: telemetry_off(handler)),
                INLINE: Arm(handler.lambda_handler, around=not_overlapped),
                BARE: Arm(bare),
                COMPLETIONS: Arm(handler.lambda_handler, completion(PRO, stream=False)),
                STREAMED: Arm(handler.stream_handler, completion(PRO, stream=True)),
                MODELS: Arm(handler.lambda_handler, models),
            }
        )
    finally:
        sys.stdout = real_stdout
    gateway, quiet, bare_samples = runs[GATEWAY], runs[QUIET], runs[BARE]
    print(row(GATEWAY, gateway))
    print(row(QUIET, quiet))
    print(row(INLINE, runs[INLINE], bare_samples))
    print(row(BARE, bare_samples))
    for name in (COMPLETIONS, STREAMED, MODELS):
        print(row(name, runs[name], bare_samples))
    print(row("  stream's first body chunk", first_chunk[STREAMED], bare_samples))
    g50, g99, b50, b99 = (*percentiles(gateway), *percentiles(bare_samples))
    print(f"{'gateway over the bare resolver':<34} p50 {g50 / b50:6.1f}x   p99 {g99 / b99:6.1f}x")
    print(f"{'overhead over the bare resolver':<34} p50 {g50 - b50:7.3f} ms")
    handoff = statistics.median(gateway) - statistics.median(runs[INLINE])
    print(f"{'the overlap at zero latency':<34} p50 {handoff:+7.3f} ms   (as deployed minus not overlapped)")
    telemetry = statistics.median(gateway) - statistics.median(quiet)
    print(
        f"{'telemetry ms per request':<34} p50 {telemetry:7.3f} ms   (as deployed minus no-op stage telemetry; "
        f"{telemetry / b50:.2f}x the bare resolver's p50, which moves with the machine's speed)"
    )
    for goal, met in (
        ("POST /v1/chat p50 at most 10x the bare resolver", g50 / b50 <= GOAL_P50_RATIO),
        ("POST /v1/chat p99 at most 25x the bare resolver", g99 / b99 <= GOAL_P99_RATIO),
        ("telemetry at most 0.05 ms a request", telemetry <= GOAL_TELEMETRY_MS),
    ):
        print(f"{'goal (issue 15)':<34} {'met ' if met else 'MISSED'}  {goal}")
    with tempfile.TemporaryDirectory() as cache:
        handler_import = cold_import("import ai_gateway.handler", cache)
        boto3_import = cold_import("import boto3", cache)
    print(f"{'cold import ai_gateway.handler':<34} {handler_import:7.1f} ms")
    print(f"{'cold import boto3':<34} {boto3_import:7.1f} ms   ratio {handler_import / boto3_import:.2f}")
    by_groups = policy_size(handler)
    for groups, samples in by_groups.items():
        print(row(f"policy of {groups} groups (AppConfig reader)", samples))
    small, large = (statistics.median(samples) for samples in by_groups.values())
    print(f"{'100 groups over 3 groups':<34} p50 {large - small:+7.3f} ms   ratio {large / small:.2f}")


def policy_size(handler: Any) -> dict[int, list[float]]:
    """POST /v1/chat with the policy of 3 and of 100 groups, served by the function's reader (one
    parse per version, then the cached version), alternating request by request so both see the
    same machine; and the Python calls a request makes with each (deterministic: cProfile)."""
    import cProfile
    import pstats

    from ai_gateway.contract import GatewayPolicy
    from bench.scale_config import scaled_context
    from shared.runtime_config import DocumentReader
    from stacks.config import load_config
    from stacks.production.policy import gateway_policy

    readers = {}
    for groups in (3, 100):
        document = gateway_policy(load_config({**scaled_context(groups), "tier": "production"}).production)
        models_only = {name: o.model_copy(update={"agent": None}) for name, o in document.outputs.items()}
        readers[groups] = DocumentReader.static(GatewayPolicy(groups=document.groups, outputs=models_only))
    samples: dict[int, list[float]] = {groups: [] for groups in readers}
    calls: dict[int, float] = {}
    real_stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        for number in range(WARMUP + REQUESTS):
            for groups, reader in readers.items():
                setattr(handler, "policy", reader.get)  # noqa: B010
                started = time.perf_counter()
                response = handler.lambda_handler(event(number), Context())
                elapsed = (time.perf_counter() - started) * 1000
                assert response["statusCode"] == 200, response
                if number >= WARMUP:
                    samples[groups].append(elapsed)
        for groups, reader in readers.items():
            setattr(handler, "policy", reader.get)  # noqa: B010
            profile = cProfile.Profile()
            profile.runcall(lambda: [handler.lambda_handler(event(n), Context()) for n in range(100)])
            calls[groups] = pstats.Stats(profile).total_calls / 100  # type: ignore[attr-defined]
    finally:
        sys.stdout = real_stdout
    for groups, count in calls.items():
        print(f"{'Python calls per request':<34} {count:9,.0f}   (policy of {groups} groups)")
    return samples


if __name__ == "__main__":
    main()
