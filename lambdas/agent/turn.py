"""One agent turn on Strands: the caller's models in order, the caller's tools, bounded.

- Models: one ``BedrockModel`` per model the caller's group may use, behind a ``ModelRouter``
  whose strategy (``OrderedFallback``) moves to the next model only when another model can help
  (throttling, a server error: shared.aws_errors) and only before the deadline. A model that
  failed is not asked again in the turn. No retries inside a model: the next model is the retry.
- Tools: whatever the tools gateway lists for the caller's token (``MCPClient`` in agent.app).
- Bounds: at most ``max_iterations`` model calls (Strands' ``limits``), at most ``max_tool_calls``
  tool calls, none asked for by the last model call (no model call would read their results), and
  the turn's deadline: checked before every model and tool call on an injected clock, and enforced
  on calls in flight by answering at the deadline while the agent, cancelled, finishes on its
  worker thread. A tool call refused by a bound is never made: its result tells the model why.

Spans come from Strands (agent, cycle, model and tool spans with gen-AI attributes), carrying the
conversation id as ``session.id``; what they say about message content is
``agent.contract.span_environment``'s policy (set by the stack).
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws_errors import Kind, UpstreamError, invalid_response, raised_parsing
from shared.telemetry import CONVERSATION

if TYPE_CHECKING:  # Strands loads lazily (agent.app warms it up after the runtime is ready)
    from strands.hooks import AfterToolCallEvent, BeforeModelCallEvent, BeforeToolCallEvent, HookRegistry
    from strands.models.routing import RoutingCandidate, RoutingContext

SERVICE = "bedrock-runtime"
STOPPED_ANSWER = "I could not finish this within my limits; here is what I found so far."
# Strands' stop reasons, as the gateway and the evaluation know them.
STOPS = {"limit_turns": "max_iterations", "cancelled": "deadline"}
# The result a tool call refused for the turn's bounds carries (the model reads it), by error kind.
LAST_ITERATION_RESULT = "not run: this turn has made its last model call; none is left to read this result"
TOOL_BUDGET_RESULT = "not run: this turn may make {} tool calls and has made them all; answer with the results you have"
POLL_SECONDS = 0.05  # how often a turn waiting on its agent looks at the clock


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    ok: bool
    error_kind: str | None = None
    latency_ms: float | None = None  # None: never called (out of time)


@dataclass
class Turn:
    model: str = ""  # the model that answered last
    answer: str = ""
    stop: str = ""  # end_turn, max_iterations, deadline, or the model's own stop reason
    iterations: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


class _SharedClient:
    """What BedrockModel needs of a boto3 session: hands it the agent's one bedrock-runtime client
    (its timeouts, one attempt per call) instead of building a client per model per turn."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.region_name = client.meta.region_name

    def client(self, **_: Any) -> Any:
        return self._client


class OrderedFallback:
    """The Strands routing strategy: the caller's models in their order; after a failure the next
    model not yet failed in this turn, if another model can help and there is time for it."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock
        self.selected: RoutingCandidate | None = None

    async def select(self, context: RoutingContext, **_: Any) -> RoutingCandidate | None:
        if context.attempts:
            failure = context.attempts[-1].exception
            if failure is not None and not _another_model_can_help(failure):
                return None
            if self._deadline is not None and self._clock() >= self._deadline:
                return None
        failed = {id(attempt.candidate) for attempt in context.attempts if attempt.exception is not None}
        for candidate in context.candidates:
            if id(candidate) not in failed:
                self.selected = candidate
                return candidate
        return None


def _another_model_can_help(error: BaseException) -> bool:
    from strands.types.exceptions import ModelThrottledException

    if isinstance(error, ModelThrottledException):
        return True
    if isinstance(error, ClientError | BotoCoreError):
        return UpstreamError.from_exception(SERVICE, error).kind in (Kind.THROTTLED, Kind.UNAVAILABLE)
    return False


def model_failure(error: Exception) -> UpstreamError | None:
    """The UpstreamError for a model failure no model of the caller's could get past, else None."""
    from strands.types.exceptions import ContextWindowOverflowException, ModelThrottledException

    cause = _unwrapped(error)
    if isinstance(cause, ModelThrottledException):
        return UpstreamError(SERVICE, "ThrottlingException", 429, caller_facing=True)
    if isinstance(cause, ContextWindowOverflowException):
        # Strands' reading of Bedrock's "Input is too long for requested model" (a ValidationException):
        # the conversation itself, which no other model of the caller's is asked to take either.
        return UpstreamError(SERVICE, "ValidationException", 400, caller_facing=True)
    if isinstance(cause, ClientError | BotoCoreError):
        # Model access or region refused: the operator's set-up, a 502 as on the gateway's own path.
        return UpstreamError.from_exception(SERVICE, cause, caller_facing=True).as_platforms()
    if raised_parsing(cause):  # an answer botocore could not read (shared.aws_errors.call's rule)
        return invalid_response(SERVICE)
    return None


def _unwrapped(error: BaseException) -> BaseException:
    """A failure in a later cycle of the turn (after a tool call) reaches the turn wrapped by the
    cycle that recursed into it; the first cycle's arrives as it was raised."""
    from strands.types.exceptions import EventLoopException

    while isinstance(error, EventLoopException) and error.original_exception is not None:
        error = error.original_exception
    return error


class TurnBounds:
    """Strands hooks: the deadline before each model and tool call; before each tool call, the
    turn's budget of tool calls and its last iteration (None: no such bound); and the record of
    tool calls (each one's latency on the same clock).

    One model answer may ask for any number of tool calls, each made through the tools gateway as
    the caller: a text the model read (a retrieved document) could ask for hundreds, and those
    asked for by the last model call have no model call left to read their results."""

    def __init__(
        self,
        deadline: float | None,
        clock: Callable[[], float],
        *,
        max_iterations: int | None = None,
        max_tool_calls: int | None = None,
    ) -> None:
        self._deadline = deadline
        self._clock = clock
        self._max_iterations = max_iterations
        self._max_tool_calls = max_tool_calls
        self._made = 0  # tool calls let through (Strands calls the hooks on its event loop's thread)
        self.out_of_time = False
        self.calls: list[ToolCall] = []
        self._started: dict[str, tuple[float, str, dict[str, Any]]] = {}  # tool use id -> (when, name, arguments)

    def register_hooks(self, registry: HookRegistry, **_: Any) -> None:
        from strands.hooks import AfterToolCallEvent, BeforeModelCallEvent, BeforeToolCallEvent

        registry.add_callback(BeforeModelCallEvent, self._before_model)
        registry.add_callback(BeforeToolCallEvent, self._before_tool)
        registry.add_callback(AfterToolCallEvent, self._after_tool)

    def _expired(self) -> bool:
        self.out_of_time = self.out_of_time or (self._deadline is not None and self._clock() >= self._deadline)
        return self.out_of_time

    def _before_model(self, event: BeforeModelCallEvent) -> None:
        if self._expired():  # the call is never sent: its answer is this text, and the loop ends
            event.cancel = STOPPED_ANSWER

    def _before_tool(self, event: BeforeToolCallEvent) -> None:
        use = event.tool_use
        refused = self._refused(event)
        if refused is not None:  # never called: the result the model gets says why
            kind, result = refused
            event.cancel_tool = result
            self.calls.append(ToolCall(use["name"], _arguments(use), ok=False, error_kind=kind))
            return
        self._made += 1
        self._started[use["toolUseId"]] = (self._clock(), use["name"], _arguments(use))

    def _refused(self, event: BeforeToolCallEvent) -> tuple[str, str] | None:
        """(error kind, the result the model gets) when a bound of the turn refuses the call."""
        if self._expired():
            return "deadline", "out of time"
        if self._max_iterations is not None and _iterations(event.agent) >= self._max_iterations:
            return "max_iterations", LAST_ITERATION_RESULT
        if self._max_tool_calls is not None and self._made >= self._max_tool_calls:
            return "max_tool_calls", TOOL_BUDGET_RESULT.format(self._max_tool_calls)
        return None

    def _after_tool(self, event: AfterToolCallEvent) -> None:
        use = event.tool_use
        started = self._started.pop(use["toolUseId"], None)
        if started is None:  # cancelled before it ran (recorded then)
            return
        if event.selected_tool is None:  # not one of the tools the gateway listed for the caller
            kind: str | None = "forbidden"
        else:
            kind = _error_kind(event.result) if event.exception is None else "tool_error"
        when, name, arguments = started
        self.calls.append(ToolCall(name, arguments, ok=kind is None, error_kind=kind, latency_ms=self._since(when)))

    def abandoned(self) -> list[ToolCall]:
        """The calls made and still running when the turn ran out of time (the tools gateway took
        them: they are the turn's too), failed with the deadline."""
        return [
            ToolCall(name, arguments, ok=False, error_kind="deadline", latency_ms=self._since(when))
            for when, name, arguments in self._started.values()
        ]

    def _since(self, when: float) -> float:
        return round((self._clock() - when) * 1000, 1)


def _iterations(agent: Any) -> int:
    """The model calls of the agent's invocation so far, the one whose answer asked for the tool
    call included: Strands' own count for ``limits["turns"]`` (its cycles), which a fallback to
    another model within a cycle does not add to."""
    invocation = agent.event_loop_metrics.latest_agent_invocation
    return len(invocation.cycles) if invocation is not None else 0


def _arguments(use: Any) -> dict[str, Any]:
    """A tool use's arguments as the turn records them: the model's input when it is an object (a
    model can write any JSON there; the tool refuses it, the record shows none)."""
    given = use.get("input")
    return dict(given) if isinstance(given, dict) else {}


def _error_kind(result: Any) -> str | None:
    """The tool error taxonomy's kind of a tool result (None: it succeeded). The result is the
    tool's, as it answered: text that is not JSON, or JSON nested past what Python's decoder
    recurses into, is a result like any other (it reaches the model as it came)."""
    payloads: list[Any] = []
    for block in result.get("content") or []:
        if not isinstance(block, dict):
            continue
        if "json" in block:
            payloads.append(block["json"])
        elif isinstance(block.get("text"), str):
            try:
                payloads.append(json.loads(block["text"]))
            except (ValueError, RecursionError):
                continue
    for payload in payloads:
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            return str(error.get("kind") or "tool_error")
    return "tool_error" if result.get("status") == "error" else None


def run_turn(
    bedrock: Any,
    tools: Sequence[Any],
    *,
    agent_name: str,
    models: Sequence[str],
    system: str,
    messages: list[dict[str, Any]],
    session_id: str,
    max_iterations: int,
    max_tool_calls: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop_sequences: Sequence[str] = (),
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Turn:
    """One turn: ``messages`` end with the caller's; ``tools`` are Strands tools (the caller's);
    the caller's sampling settings, where chosen, are every model call's (None: the model's own);
    ``max_tool_calls`` bounds the turn's tool calls (None: only the iterations do). Raises
    UpstreamError when no model of the caller's could answer."""
    from strands import Agent
    from strands.models import BedrockModel
    from strands.models.routing import ModelRouter, RoutingCandidate

    if not models:
        raise ValueError("models: at least one model id")
    session = cast(Any, _SharedClient(bedrock))
    config: dict[str, Any] = {
        "streaming": False,
        "additional_args": {"requestMetadata": {"session_id": session_id}},
        **({"max_tokens": max_tokens} if max_tokens else {}),
        **({"temperature": temperature} if temperature is not None else {}),
        **({"top_p": top_p} if top_p is not None else {}),
        **({"stop_sequences": list(stop_sequences)} if stop_sequences else {}),
    }
    candidates = [
        RoutingCandidate(BedrockModel(boto_session=session, model_id=model, **config), name=model) for model in models
    ]
    strategy = OrderedFallback(deadline, clock)
    bounds = TurnBounds(deadline, clock, max_iterations=max_iterations, max_tool_calls=max_tool_calls)
    agent = Agent(
        model=ModelRouter(candidates, strategy=strategy),
        messages=cast(Any, messages[:-1]),
        tools=list(tools),
        system_prompt=system,
        name=agent_name,
        callback_handler=None,
        retry_strategy=None,
        hooks=[bounds],
        trace_attributes={"session.id": session_id, CONVERSATION: session_id},
    )
    try:
        result = _invoke_by(agent, messages[-1]["content"], max_iterations, deadline, clock)
    except MaxTokensReachedError:
        # The answer was cut at max_tokens: Strands keeps the partial message in the conversation
        # and raises (a tool call cut there could not be made): the turn answers with its text.
        return Turn(
            model=_model(strategy, models),
            answer=_partial_answer(agent.messages),
            stop="max_tokens",
            iterations=agent.event_loop_metrics.cycle_count,
            tool_calls=bounds.calls,
            input_tokens=int(agent.event_loop_metrics.accumulated_usage.get("inputTokens", 0)),
            output_tokens=int(agent.event_loop_metrics.accumulated_usage.get("outputTokens", 0)),
        )
    if result is None:  # out of time with a call in flight: answer now, the call is abandoned
        return Turn(model=_model(strategy, models), answer=STOPPED_ANSWER, stop="deadline",
                    tool_calls=[*bounds.calls, *bounds.abandoned()])  # fmt: skip
    usage = result.metrics.accumulated_usage
    stop = STOPS.get(str(result.stop_reason), str(result.stop_reason))
    if bounds.out_of_time:
        stop = "deadline"
    answer = "".join(block.get("text", "") for block in result.message.get("content", []))
    if stop in ("max_iterations", "deadline"):
        answer = STOPPED_ANSWER
    turn = Turn(
        model=_model(strategy, models),
        answer=answer,
        stop=stop,
        iterations=result.metrics.cycle_count,
        tool_calls=bounds.calls,
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
    )
    return turn


class MaxTokensReachedError(Exception):
    """The model stopped at max_tokens (Strands' MaxTokensReachedException, however wrapped)."""


def _partial_answer(messages: Sequence[Any]) -> str:
    """The text of the conversation's last message when it is the model's (the answer it was cut in)."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return ""
    return "".join(block.get("text", "") for block in last.get("content", []) if isinstance(block, dict))


def _model(strategy: OrderedFallback, models: Sequence[str]) -> str:
    return (strategy.selected.name or "") if strategy.selected else models[0]


def _invoke_by(agent: Any, prompt: Any, max_iterations: int, deadline: float | None, clock: Callable[[], float]) -> Any:
    """The agent's result, or None when the deadline passed first. The invocation runs on a worker
    thread so that the turn answers by its deadline even while a call is in flight (a non-streaming
    Converse cannot be interrupted): the agent is cancelled, and what it was waiting for is left
    to finish in the background. Model failures no model of the caller's got past are raised."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = agent(prompt, limits={"turns": max_iterations})
        except Exception as error:  # handed to the caller's thread
            outcome["error"] = error
        finally:
            done.set()

    # With the caller's context (the request's span, so the turn's spans continue its trace).
    threading.Thread(target=contextvars.copy_context().run, args=(run,), name="agent-turn", daemon=True).start()
    while not done.wait(None if deadline is None else min(POLL_SECONDS, max(0.0, deadline - clock()))):
        if deadline is not None and clock() >= deadline:
            agent.cancel(message=STOPPED_ANSWER)
            return None
    if "error" in outcome:
        from strands.types.exceptions import MaxTokensReachedException

        if isinstance(_unwrapped(outcome["error"]), MaxTokensReachedException):
            raise MaxTokensReachedError from None
        failure = model_failure(outcome["error"])
        if failure is None:
            raise outcome["error"]
        raise failure from None
    return outcome["result"]
