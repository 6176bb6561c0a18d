"""One agent turn (agent.turn), exactly: which model is asked after a failure and when none is,
what a model failure no model got past is reported as, what each tool call is recorded as (its
error kind, its latency on the turn's clock), and the turn stopped at its deadline.

Turns run through ``run_turn`` with Bedrock stubbed (Stubber) and the caller's tool a plain Python
Strands tool; the routing strategy and the tool hooks are also driven with Strands' own context and
event types where a case cannot be set up through a turn. Every clock is a fake that moves only
when the test moves it: no outcome depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from strands.hooks import AfterToolCallEvent, BeforeToolCallEvent, HookRegistry
from strands.models import BedrockModel
from strands.models.routing import RoutingAttempt, RoutingCandidate, RoutingContext
from strands.tools.tools import PythonAgentTool
from strands.types.exceptions import ContextWindowOverflowException, ModelThrottledException
from strands.types.tools import ToolResult, ToolUse

from agent.turn import (
    STOPPED_ANSWER,
    OrderedFallback,
    ToolCall,
    Turn,
    TurnBounds,
    _partial_answer,
    _SharedClient,
    run_turn,
)
from shared.aws_errors import Kind, UpstreamError
from tests.lambdas.bedrock_fakes import agent_reply, tool_use
from tests.lambdas.test_agent import Captured, Clock

MODEL = "amazon.nova-pro-v1:0"
FALLBACK = "amazon.nova-lite-v1:0"
SESSION = "session-0123456789abcdef0123456789abcdef"
FIND_ORDERS = "orders___find_orders"
ASKED = {"customer_email": "a@example.com"}
DEADLINE = 30.0
PAST = 100.0  # a reading past DEADLINE
WAIT_SECONDS = 30.0  # a bound on waiting for another thread: only reached when the code under test is wrong


def reply(
    stubber: Stubber, content: list[dict[str, Any]], stop: str, *, model: str = MODEL, inference: Any = ANY
) -> None:
    """Queue Bedrock's answer to the next Converse request, which must be for ``model``."""
    agent_reply(stubber, content, stop, model=model, session=SESSION, inference=inference)


def orders_tool(run: Callable[[ToolUse], ToolResult]) -> PythonAgentTool:
    """The caller's one tool, as the agent is given it: a Strands tool that answers with ``run``."""
    spec: Any = {
        "name": FIND_ORDERS,
        "description": "Finds a customer's orders.",
        "inputSchema": {"json": {"type": "object", "properties": {"customer_email": {"type": "string"}}}},
    }

    def call(use: ToolUse, **_: Any) -> ToolResult:
        return run(use)

    return PythonAgentTool(FIND_ORDERS, spec, call)


def answering(status: str, content: list[dict[str, Any]]) -> PythonAgentTool:
    """The caller's tool answering every call with this status and content."""
    return orders_tool(
        lambda use: cast(ToolResult, {"toolUseId": use["toolUseId"], "status": status, "content": content})
    )


RECORDS = {"records": [{"order_id": "O-1", "status": "shipped"}]}


def found() -> PythonAgentTool:
    """The caller's tool finding the customer's order."""
    return answering("success", [{"text": json.dumps(RECORDS)}])


def turn(
    client: Any, tools: list[Any], *, clock: Callable[[], float], models: tuple[str, ...] = (MODEL,), **extra: Any
) -> Turn:
    """One turn of the agent for the caller's question."""
    return run_turn(
        client,
        tools,
        agent_name="support",
        models=list(models),
        system="You help customers.",
        messages=[{"role": "user", "content": [{"text": "Where is my order?"}]}],
        session_id=SESSION,
        max_iterations=4,
        clock=clock,
        **extra,
    )


def models_asked(client: Any) -> list[str]:
    """The model ids the agent sends Converse requests for, in order (failed requests included)."""
    asked: list[str] = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: asked.append(params["modelId"])
    )
    return asked


@pytest.fixture
def finished_workers(bedrock: tuple[Any, Stubber]) -> Iterator[None]:
    """Every agent worker a test's turn started has finished before its Stubber is checked and
    switched off: a turn that answered at its deadline leaves its agent to finish in the background."""
    before = set(threading.enumerate())
    yield
    for worker in set(threading.enumerate()) - before:
        if worker.name == "agent-turn":
            worker.join(WAIT_SECONDS)
            assert not worker.is_alive()


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Converse"
    )


# -- The routing strategy: the next model after a failure ------------------------------------------


def candidates(client: Any) -> tuple[RoutingCandidate, ...]:
    """The caller's two models as run_turn hands them to the router."""
    session = cast(Any, _SharedClient(client))
    return tuple(
        RoutingCandidate(BedrockModel(boto_session=session, model_id=model, streaming=False), name=model)
        for model in (MODEL, FALLBACK)
    )


def ask(strategy: OrderedFallback, models: tuple[RoutingCandidate, ...], *failures: Exception) -> str | None:
    """The model the strategy picks after the first models failed with ``failures`` (None: none)."""
    attempts = tuple(RoutingAttempt(candidate=c, exception=e) for c, e in zip(models, failures, strict=False))
    context = RoutingContext(
        messages=[], system_prompt=None, tool_specs=[], candidates=models, invocation_state={}, attempts=attempts
    )
    chosen = asyncio.run(strategy.select(context))
    return None if chosen is None else chosen.name


def test_the_strategy_has_chosen_nothing_until_asked_then_the_callers_first_model(
    bedrock: tuple[Any, Stubber],
) -> None:
    """``selected`` is what the turn reports as the model that answered: nothing before the first ask."""
    strategy = OrderedFallback(DEADLINE, Clock(0.0))
    assert strategy.selected is None
    models = candidates(bedrock[0])
    assert ask(strategy, models) == MODEL
    assert strategy.selected is models[0]


HELPABLE = [
    pytest.param(ModelThrottledException("slow down"), id="strands-throttled"),
    pytest.param(client_error("ThrottlingException", 429), id="throttled"),
    pytest.param(client_error("ServiceUnavailableException", 503), id="unavailable"),
    pytest.param(client_error("InternalFailure", 500), id="5xx"),
    pytest.param(client_error("ModelErrorException", 424), id="model-error"),
    pytest.param(EndpointConnectionError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"), id="no-connection"),
    pytest.param(ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"), id="read-timeout"),
]  # fmt: skip


@pytest.mark.parametrize("failure", HELPABLE)
@pytest.mark.parametrize("deadline", [None, DEADLINE])
def test_a_failure_another_model_can_get_past_moves_to_the_next_model_in_time(
    failure: Exception, deadline: float | None, bedrock: tuple[Any, Stubber]
) -> None:
    """Throttling, a server error or no answer at all: the next of the caller's models, when there is
    time (just before the deadline, or no deadline at all); the one that failed is not asked again."""
    strategy = OrderedFallback(deadline, Clock(DEADLINE - 0.001))
    models = candidates(bedrock[0])
    assert ask(strategy, models, failure) == FALLBACK
    assert strategy.selected is models[1]
    assert ask(strategy, models, failure, failure) is None  # every model failed


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(client_error("ValidationException", 400), id="request-rejected"),
        pytest.param(client_error("AccessDeniedException", 403), id="access-denied"),
        pytest.param(ParamValidationError(report="maxTokens below 1"), id="sdk-refused"),
        pytest.param(ContextWindowOverflowException("too long"), id="context-overflow"),
        pytest.param(RuntimeError("unexpected"), id="any-other-exception"),
    ],
)
def test_a_failure_no_other_model_can_get_past_ends_the_routing(
    failure: Exception, bedrock: tuple[Any, Stubber]
) -> None:
    """The request itself refused, or a failure that is not Bedrock's answer at all: another model would
    fail the same way (or worse, answer a request that should not be answered), so none is asked."""
    strategy = OrderedFallback(None, Clock(0.0))
    models = candidates(bedrock[0])
    assert ask(strategy, models, failure) is None
    assert strategy.selected is None


@pytest.mark.parametrize("now", [DEADLINE, DEADLINE + 0.001], ids=["at-the-deadline", "past-it"])
def test_after_a_failure_at_or_past_the_deadline_no_other_model_is_chosen(
    now: float, bedrock: tuple[Any, Stubber]
) -> None:
    """A model asked at the deadline could not answer in time: the deadline reached is the deadline passed."""
    strategy = OrderedFallback(DEADLINE, Clock(now))
    models = candidates(bedrock[0])
    assert ask(strategy, models, client_error("ThrottlingException", 429)) is None


# -- Model failures no model got past ----------------------------------------------------------------


@pytest.mark.parametrize("after_a_tool_call", [False, True], ids=["first-call", "after-a-tool-call"])
def test_a_throttled_model_fails_the_turn_exactly_as_bedrocks_throttling(
    after_a_tool_call: bool, bedrock: tuple[Any, Stubber]
) -> None:
    """Strands turns Bedrock's ThrottlingException into its own exception (wrapped once more after a
    tool call): the turn's failure is still Bedrock's 429, the same as the one the gateway's own model
    path reports for that answer, so the caller is told to retry later in both."""
    client, stubber = bedrock
    if after_a_tool_call:
        reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    stubber.add_client_error("converse", "ThrottlingException", http_status_code=429)
    with pytest.raises(UpstreamError) as raised:
        turn(client, [found()], clock=Clock())
    bedrocks = UpstreamError.from_exception(
        "bedrock-runtime", client_error("ThrottlingException", 429), caller_facing=True
    )

    def described(error: UpstreamError) -> tuple[Any, ...]:
        return (
            error.service,
            error.code,
            error.status,
            error.kind,
            error.caller_facing,
            error.http_status,
            error.error_code,
            error.public_message,
            str(error),
        )

    assert described(raised.value) == described(bedrocks)
    assert (raised.value.status, raised.value.kind, raised.value.caller_facing) == (429, Kind.THROTTLED, True)


# -- What each tool call is recorded as ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content", "kind"),
    [
        pytest.param("success", [{"text": json.dumps(RECORDS)}], None, id="records-as-text"),
        pytest.param("success", [{"json": RECORDS}], None, id="records-as-json"),
        # The tool error taxonomy's kind, in a JSON block (MCP structured content) or in text.
        pytest.param("error", [{"json": {"error": {"kind": "not_found", "message": "no such order"}}}], "not_found",
                     id="kind-in-a-json-block"),
        pytest.param("error", [{"text": "The orders service answered:"},
                               {"text": json.dumps({"error": {"kind": "upstream_unavailable"}})}],
                     "upstream_unavailable", id="kind-after-text-that-is-not-json"),
        pytest.param("error", [{"text": json.dumps({"error": {"message": "failed"}})}], "tool_error",
                     id="error-without-a-kind"),
        pytest.param("error", [{"text": "Error: connection reset"}], "tool_error", id="error-status-only"),
        # JSON that is not an object carries no error: the status decides.
        pytest.param("success", [{"text": "[]"}, {"json": ["O-1", "O-2"]}, {"text": "42"}], None,
                     id="json-that-is-not-an-object"),
        # Nested past what Python's decoder recurses into: text like any other (its RecursionError
        # escaped the hook, which Strands answered the model for with the error, and the call was
        # recorded nowhere).
        pytest.param("success", [{"text": "[" * 50_000}], None, id="text-nested-past-the-decoder"),
        pytest.param("error", [{"text": "{\"a\":" * 50_000}, {"json": {"error": {"kind": "not_found"}}}],
                     "not_found", id="kind-after-text-nested-past-the-decoder"),
    ],
)  # fmt: skip
def test_a_tool_call_is_recorded_with_the_kind_its_result_carries(
    status: str, content: list[dict[str, Any]], kind: str | None, bedrock: tuple[Any, Stubber]
) -> None:
    """What the evaluation and the turn's log read of each tool call: ok, or the kind of failure."""
    client, stubber = bedrock
    reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    reply(stubber, [{"text": "Here is what I found."}], "end_turn")
    answered = turn(client, [answering(status, content)], clock=Clock())
    assert [(c.name, c.arguments, c.ok, c.error_kind) for c in answered.tool_calls] == [
        (FIND_ORDERS, ASKED, kind is None, kind)
    ]


def test_a_tool_that_raised_is_a_tool_error(bedrock: tuple[Any, Stubber]) -> None:
    """Strands answers the model for a tool that raised ("Error: ..."); the record says tool_error."""
    client, stubber = bedrock

    def broken(use: ToolUse) -> ToolResult:
        raise RuntimeError("orders database unreachable")

    reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    reply(stubber, [{"text": "The orders service failed."}], "end_turn")
    answered = turn(client, [orders_tool(broken)], clock=Clock())
    assert [(c.ok, c.error_kind) for c in answered.tool_calls] == [(False, "tool_error")]


def test_a_tool_the_caller_was_not_given_is_recorded_as_forbidden(bedrock: tuple[Any, Stubber]) -> None:
    """A model naming a tool outside the caller's list: never called, recorded as forbidden."""
    client, stubber = bedrock
    reply(stubber, [tool_use("reports___admin_report", {})], "tool_use")
    reply(stubber, [{"text": "I cannot."}], "end_turn")
    answered = turn(client, [found()], clock=Clock())
    assert [(c.name, c.ok, c.error_kind) for c in answered.tool_calls] == [
        ("reports___admin_report", False, "forbidden")
    ]


@pytest.mark.parametrize(
    "result",
    [
        pytest.param({"status": "success", "content": [{"json": RECORDS}]}, id="a-success"),
        pytest.param({"status": "error", "content": [{"json": {"error": {"kind": "upstream_unavailable"}}}]},
                     id="another-kind"),
    ],
)  # fmt: skip
def test_a_tool_that_raised_is_a_tool_error_whatever_result_a_later_hook_put_in_its_place(
    result: dict[str, Any],
) -> None:
    """AfterToolCallEvent's result is writable by the agent's other hooks, which may run before this
    one: the call still failed, and the record says so, as a tool error."""
    registry = HookRegistry()
    bounds = TurnBounds(deadline=None, clock=Clock())
    bounds.register_hooks(registry)
    tool = found()
    use: ToolUse = {"toolUseId": "t1", "name": FIND_ORDERS, "input": dict(ASKED)}
    agent = cast(Any, SimpleNamespace())
    registry.invoke_callbacks(BeforeToolCallEvent(agent=agent, selected_tool=tool, tool_use=use, invocation_state={}))
    registry.invoke_callbacks(
        AfterToolCallEvent(agent=agent, selected_tool=tool, tool_use=use, invocation_state={},
                           result=cast(ToolResult, {"toolUseId": "t1", **result}),
                           exception=RuntimeError("orders database unreachable"))
    )  # fmt: skip
    assert [(c.ok, c.error_kind) for c in bounds.calls] == [(False, "tool_error")]


def test_a_tool_calls_latency_is_its_time_on_the_turns_clock_in_milliseconds(bedrock: tuple[Any, Stubber]) -> None:
    """The tool takes 43.21 ms of the turn's clock: recorded as 43.2 (ms, to a tenth)."""
    client, stubber = bedrock
    clock = Clock(1000.0)

    def slow(use: ToolUse) -> ToolResult:
        clock.advance(0.04321)
        return {"toolUseId": use["toolUseId"], "status": "success", "content": [{"json": RECORDS}]}

    reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    reply(stubber, [{"text": "Shipped."}], "end_turn")
    answered = turn(client, [orders_tool(slow)], clock=clock, deadline=clock.now + 60)
    assert answered.tool_calls == [ToolCall(FIND_ORDERS, ASKED, ok=True, latency_ms=43.2)]


# -- The turn's arguments ---------------------------------------------------------------------------------


def test_a_turn_needs_at_least_one_model(bedrock: tuple[Any, Stubber]) -> None:
    with pytest.raises(ValueError, match=r"^models: at least one model id$"):
        turn(bedrock[0], [found()], clock=Clock(), models=())


@pytest.mark.parametrize(
    ("max_tokens", "inference"),
    [(None, {}), (0, {}), (512, {"maxTokens": 512})],
    ids=["not-given", "zero-no-cap", "given"],
)
def test_the_models_answer_is_capped_only_when_the_caller_gives_a_cap(
    max_tokens: int | None, inference: dict[str, Any], bedrock: tuple[Any, Stubber]
) -> None:
    """No cap (None, or 0 as none): Bedrock's own per-model default, never a maxTokens of 0 that
    Bedrock would refuse."""
    client, stubber = bedrock
    sent = Captured()
    reply(stubber, [{"text": "Shipped."}], "end_turn", inference=sent)
    assert turn(client, [found()], clock=Clock(), max_tokens=max_tokens).answer == "Shipped."
    assert sent.values == [inference]


def test_the_models_are_given_the_agents_client_and_its_region(
    bedrock: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BedrockModel takes its region from the session it is given, else from the environment: the
    agent's one client stands in for that session, with the client's region, not the environment's."""
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    client = boto3.client("bedrock-runtime", region_name="eu-central-1")
    session = _SharedClient(client)
    assert session.region_name == "eu-central-1"
    assert BedrockModel(boto_session=cast(Any, session), model_id=MODEL).client is client


# -- The deadline ---------------------------------------------------------------------------------------------


@dataclass
class TwoSidedClock:
    """The turn's clock, stopped, as its two sides read it: ``turn`` on the thread that runs the turn
    (which polls the clock while its agent works), ``agent`` on the agent's worker threads (its hooks
    and its routing strategy). A reading on the agent's side first waits until ``running`` is set:
    cleared, the agent is held before its first model call. Each side reads one time at a time, so
    which thread reads first never decides an outcome."""

    turn: float
    agent: float
    running: threading.Event = field(default_factory=threading.Event)
    caller: threading.Thread = field(default_factory=threading.current_thread)

    def __call__(self) -> float:
        if threading.current_thread() is self.caller:
            return self.turn
        assert self.running.wait(WAIT_SECONDS)
        return self.agent


@pytest.mark.usefixtures("finished_workers")
def test_after_a_model_failure_past_the_deadline_no_other_model_is_asked(bedrock: tuple[Any, Stubber]) -> None:
    """The first model's throttled answer comes back past the turn's deadline: asking the next model
    could only cost, as the turn is out of time. The turn's own poll of the clock is left out (it
    reads a time before the deadline), so the turn's outcome is its agent's: the model's failure."""
    client, stubber = bedrock
    clock = TwoSidedClock(turn=0.0, agent=0.0)
    clock.running.set()
    asked = models_asked(client)

    def past_the_deadline(**_: Any) -> None:
        clock.agent = PAST

    client.meta.events.register("after-call.bedrock-runtime.Converse", past_the_deadline)
    stubber.add_client_error("converse", "ThrottlingException", http_status_code=429)
    with pytest.raises(UpstreamError) as raised:
        turn(client, [found()], clock=clock, models=(MODEL, FALLBACK), deadline=DEADLINE)
    assert (raised.value.code, raised.value.http_status) == ("ThrottlingException", 429)
    assert asked == [MODEL]


@pytest.mark.usefixtures("finished_workers")
@pytest.mark.parametrize("waiting_on", [MODEL, FALLBACK])
def test_a_turn_stopped_at_its_deadline_names_its_session_and_the_model_it_was_waiting_on(
    waiting_on: str, bedrock: tuple[Any, Stubber]
) -> None:
    """A model call in flight at the deadline: the turn answers then, for its session, naming the model
    it was waiting on (the next one when the first was throttled)."""
    client, stubber = bedrock
    clock = Clock(0.0)
    release = threading.Event()

    def hang(params: dict[str, Any], **_: Any) -> None:  # Bedrock not answering while the time runs out
        if params["modelId"] == waiting_on:
            clock.advance(PAST)
            release.wait(WAIT_SECONDS)

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", hang)
    if waiting_on == FALLBACK:
        stubber.add_client_error("converse", "ThrottlingException", http_status_code=429)
    reply(stubber, [{"text": "Too late."}], "end_turn", model=waiting_on)
    try:
        answered = turn(client, [found()], clock=clock, models=(MODEL, FALLBACK), deadline=DEADLINE)
    finally:
        release.set()
    assert answered == Turn(model=waiting_on, answer=STOPPED_ANSWER, stop="deadline")


@pytest.mark.usefixtures("finished_workers")
def test_a_turn_out_of_time_before_its_agent_chose_a_model_names_the_callers_first_model(
    bedrock: tuple[Any, Stubber],
) -> None:
    """The deadline has passed as the turn starts (the request's other work took the time) and the
    agent has not chosen a model yet when the turn answers: the turn names the caller's first model."""
    client, _ = bedrock
    clock = TwoSidedClock(turn=PAST, agent=PAST)  # the agent held until the turn has answered
    try:
        answered = turn(client, [found()], clock=clock, models=(MODEL, FALLBACK), deadline=DEADLINE)
    finally:
        clock.running.set()
    assert answered == Turn(model=MODEL, answer=STOPPED_ANSWER, stop="deadline")


def held_past_the_deadline(client: Any, clock: Clock, *, call: int = 1) -> threading.Event:
    """Bedrock not answering the turn's ``call``-th Converse request while the time runs out past
    the deadline, until the event returned is set."""
    release = threading.Event()
    calls: list[str] = []

    def hang(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["modelId"])
        if len(calls) == call:
            clock.advance(PAST)
            release.wait(WAIT_SECONDS)

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", hang)
    return release


class PolledClock:
    """The turn's clock, stopped until the test moves it, counting how often the thread that runs the
    turn reads it: that thread polls its clock while its agent works (the agent's threads read the
    same time, uncounted). ``held_for`` holds a model call in flight for a number of those polls."""

    def __init__(self, now: float) -> None:
        self._now = now
        self._turn = threading.current_thread()
        self._polls = 0
        self._released = False
        self._read = threading.Condition()

    def __call__(self) -> float:
        with self._read:
            if threading.current_thread() is self._turn:
                self._polls += 1
                self._read.notify_all()
            return self._now

    def held_for(self, polls: int, *, now: float | None = None) -> bool:
        """Hold the calling thread (a model call in flight) until the turn has read its clock ``polls``
        more times (True) or the test releases it (False); with ``now``, the time moves to it first."""
        with self._read:
            if now is not None:
                self._now = now
            enough = self._polls + polls
            self._read.wait_for(lambda: self._polls >= enough or self._released, WAIT_SECONDS)
            return self._polls >= enough

    def release(self) -> None:
        with self._read:
            self._released = True
            self._read.notify_all()


@pytest.mark.usefixtures("finished_workers")
def test_a_turn_in_time_waits_for_a_model_call_in_flight_however_often_it_looks_at_the_clock(
    bedrock: tuple[Any, Stubber],
) -> None:
    """Bedrock answers only after the turn has looked at its clock several times, all before the
    deadline: the turn waits for the answer rather than giving up at its first look."""
    client, stubber = bedrock
    clock = PolledClock(0.0)
    waited: list[bool] = []

    def slow(**_: Any) -> None:
        waited.append(clock.held_for(6))

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", slow)
    reply(stubber, [{"text": "Your order has shipped."}], "end_turn")
    try:
        answered = turn(client, [found()], clock=clock, deadline=DEADLINE)
    finally:
        clock.release()
    assert (answered.answer, answered.stop) == ("Your order has shipped.", "end_turn")
    assert waited == [True]


@pytest.mark.usefixtures("finished_workers")
def test_a_model_call_in_flight_when_the_clock_reads_exactly_the_deadline_stops_the_turn(
    bedrock: tuple[Any, Stubber],
) -> None:
    """The deadline reached is the deadline passed: the turn answers then instead of going on waiting
    for the model (which here would answer once the turn has looked at the deadline ten times)."""
    client, stubber = bedrock
    clock = PolledClock(0.0)

    def until_the_deadline(**_: Any) -> None:
        clock.held_for(10, now=DEADLINE)

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", until_the_deadline)
    reply(stubber, [{"text": "Too late."}], "end_turn")
    try:
        answered = turn(client, [found()], clock=clock, deadline=DEADLINE)
    finally:
        clock.release()
    assert answered == Turn(model=MODEL, answer=STOPPED_ANSWER, stop="deadline")


@pytest.mark.usefixtures("finished_workers")
def test_a_model_call_abandoned_at_the_deadline_does_not_keep_the_process_alive(
    bedrock: tuple[Any, Stubber],
) -> None:
    """The turn has answered and its agent still waits on Bedrock: the thread it waits on is a daemon,
    so an abandoned call never keeps the runtime's process from exiting."""
    client, stubber = bedrock
    clock = Clock(0.0)
    release = held_past_the_deadline(client, clock)
    reply(stubber, [{"text": "Too late."}], "end_turn")
    before = set(threading.enumerate())
    try:
        answered = turn(client, [found()], clock=clock, deadline=DEADLINE)
        abandoned = [w.daemon for w in set(threading.enumerate()) - before if w.name == "agent-turn"]
    finally:
        release.set()
    assert answered.stop == "deadline"
    assert abandoned == [True]


@pytest.mark.usefixtures("finished_workers")
def test_a_turn_stopped_at_its_deadline_still_reports_the_tool_calls_made_before(
    bedrock: tuple[Any, Stubber],
) -> None:
    """The tool answered (no such order), then the model's next call is in flight at the deadline:
    the turn's record still holds the tool call, with the kind of its result."""
    client, stubber = bedrock
    clock = Clock(0.0)
    release = held_past_the_deadline(client, clock, call=2)
    reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    reply(stubber, [{"text": "Too late."}], "end_turn")
    not_found = answering("error", [{"json": {"error": {"kind": "not_found", "message": "no such order"}}}])
    try:
        answered = turn(client, [not_found], clock=clock, deadline=DEADLINE)
    finally:
        release.set()
    assert answered == Turn(
        model=MODEL,
        answer=STOPPED_ANSWER,
        stop="deadline",
        tool_calls=[ToolCall(FIND_ORDERS, ASKED, ok=False, error_kind="not_found", latency_ms=0.0)],
    )


def test_a_failure_that_is_not_a_models_fails_the_turn_as_itself(bedrock: tuple[Any, Stubber]) -> None:
    """The client failing before any request leaves (not Bedrock's answer, so no UpstreamError):
    the turn raises the very failure, for the runtime to log as the bug it is."""
    client, _ = bedrock

    def broken(**_: Any) -> None:
        raise RuntimeError("the HTTP connection pool is closed")

    client.meta.events.register("provide-client-params.bedrock-runtime.Converse", broken)
    with pytest.raises(RuntimeError) as raised:
        turn(client, [found()], clock=Clock(0.0), deadline=DEADLINE)
    assert (type(raised.value), str(raised.value)) == (RuntimeError, "the HTTP connection pool is closed")


def test_a_conversation_too_long_for_the_model_is_the_models_rejection_not_strands_overflow(
    bedrock: tuple[Any, Stubber],
) -> None:
    """Bedrock refuses the input as too long and Strands has nothing it could trim (the caller's
    message alone): its overflow is the model's ValidationException, a 400 the caller can act on
    (it was a 500: not a ClientError, so no model failure)."""
    client, stubber = bedrock
    stubber.add_client_error(
        "converse", "ValidationException", "Input is too long for requested model.", http_status_code=400
    )
    with pytest.raises(UpstreamError) as raised:
        turn(client, [found()], clock=Clock())
    error = raised.value
    assert (error.code, error.http_status, error.kind, error.passed_on) == (
        "ValidationException",
        400,
        Kind.REJECTED,
        True,
    )


def test_the_answer_is_the_models_text_blocks_joined_with_nothing_else(bedrock: tuple[Any, Stubber]) -> None:
    """The model's reasoning between two text blocks (a reasoning model's answer) is not part of the
    answer, and the text blocks run on as the model wrote them."""
    client, stubber = bedrock
    reasoning = {"reasoningContent": {"reasoningText": {"text": "The records say shipped.", "signature": "sig"}}}
    reply(stubber, [{"text": "Your order "}, reasoning, {"text": "has shipped."}], "end_turn")
    answered = turn(client, [found()], clock=Clock())
    assert (answered.answer, answered.stop) == ("Your order has shipped.", "end_turn")


@pytest.mark.usefixtures("finished_workers")
def test_an_agent_out_of_time_before_its_first_model_call_names_the_callers_first_model(
    bedrock: tuple[Any, Stubber],
) -> None:
    """The turn reads a time before its deadline, its agent one past it: the agent stops itself
    before it sends any model a request, and the turn reports that, naming the caller's first model."""
    client, _ = bedrock
    clock = TwoSidedClock(turn=0.0, agent=PAST)
    clock.running.set()
    asked = models_asked(client)
    answered = turn(client, [found()], clock=clock, models=(MODEL, FALLBACK), deadline=DEADLINE)
    assert answered == Turn(model=MODEL, answer=STOPPED_ANSWER, stop="deadline", iterations=1)
    assert asked == []  # no model call past the deadline, not even one cancelled as it streams


USER = {"role": "user", "content": [{"text": "Where is my order?"}]}


@pytest.mark.parametrize(
    ("messages", "answer"),
    [
        ([], ""),
        ([USER], ""),  # the last message is the caller's: nothing was cut
        (["not a message"], ""),
        ([USER, {"role": "assistant"}], ""),  # no content
        (
            [
                USER,
                {"role": "assistant", "content": [{"text": "early"}]},
                {"role": "assistant", "content": [{"text": "late"}]},
            ],
            "late",
        ),
        (
            [
                USER,
                {"role": "assistant", "content": [{"text": "Your order "}, {"toolUse": {}}, "x", {"text": "shipped"}]},
            ],
            "Your order shipped",
        ),
    ],
    ids=["none", "the callers", "not a message", "no content", "the last of two", "its text blocks joined"],
)
def test_the_partial_answer_is_the_text_of_the_last_message_when_it_is_the_models(
    messages: list[Any], answer: str
) -> None:
    """A turn cut at max_tokens answers with what the model wrote in its last message, only its
    text blocks, joined as written; a conversation that does not end with the model's answers none."""
    assert _partial_answer(messages) == answer


def test_a_turn_cut_at_max_tokens_reports_its_model_cycles_calls_and_usage(bedrock: tuple[Any, Stubber]) -> None:
    """What metering and the evaluation read of a turn cut at max_tokens: the model that answered,
    both cycles, the tool call made before the cut, and the tokens of both model calls."""
    client, stubber = bedrock
    reply(stubber, [tool_use(FIND_ORDERS, ASKED)], "tool_use")
    reply(stubber, [{"text": "Your order"}], "max_tokens")
    answered = turn(client, [found()], clock=Clock())
    assert (answered.model, answered.answer, answered.stop, answered.iterations) == (
        MODEL,
        "Your order",
        "max_tokens",
        2,
    )
    assert [(c.name, c.ok) for c in answered.tool_calls] == [(FIND_ORDERS, True)]
    assert (answered.input_tokens, answered.output_tokens) == (200, 40)


def test_a_tool_result_for_a_call_never_started_records_nothing() -> None:
    """The after-tool hook of a call the before-tool hook cancelled (recorded then): no second record,
    no error out of the hook."""
    bounds = TurnBounds(deadline=None, clock=Clock())
    event = SimpleNamespace(
        tool_use={"toolUseId": "tooluse-never-started", "name": FIND_ORDERS, "input": ASKED},
        selected_tool=None,
        result={"toolUseId": "tooluse-never-started", "status": "error", "content": []},
        exception=None,
    )
    bounds._after_tool(cast(AfterToolCallEvent, event))
    assert bounds.calls == []
