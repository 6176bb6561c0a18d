"""One generation, from the caller's admitted units to the delivered output.

    screen   the caller's texts through the input guardrail (blocked: InputBlockedError), only the
             texts a session's transcript does not hold already (ai_gateway.transcript)
    admit    the output's units against the group's exact quota, once per request id; at the same
             time as the screen (screen_and_admit): a refusal by either wins, and units admitted
             for an input the guardrail blocked (or could not check) are released
    produce  the output: a model (with fallbacks) or the output type's agent, for the caller
    guard    the output through the output guardrail (grounded on the material, where given)
    deliver  the output and record its tokens, or release the units when none is delivered; the
             session's transcript (the turn's screened texts and the answer) written meanwhile
    remember an agent's delivered turn in the agents' memory: only guarded text (best effort)

Every dependency is an argument (ledger, guard, model router, agent client, telemetry, clock),
so the flow runs in tests without AWS; refusals are typed errors the handler maps to HTTP.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ai_gateway.agents import MEMORY_SERVICE, MEMORY_WORST_SECONDS, AgentClient
from ai_gateway.contract import GENERATION_MARGIN_SECONDS, INPUT, OUTPUT, Metric
from ai_gateway.guardrail import Guard, Verdict, unguarded
from ai_gateway.ledger import DELIVERED, Admission, Ledger, QuotaExceededError
from ai_gateway.models import Caller, OutputPolicy, Quota
from ai_gateway.router import Generation, ModelRouter
from ai_gateway.telemetry import Telemetry
from ai_gateway.transcript import ASSISTANT, Draft, Known, Transcripts, Turn
from shared.aws_errors import UpstreamError, call

# Work a request overlaps with its own (admission beside the input guardrail, the transcript's
# read and write beside a check and the delivery): threads start on first use, never at import.
POOL: Executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="flow")
T = TypeVar("T")


def _run_start(turns: Sequence[Turn], index: int) -> int:
    """Where the run of same-role texts holding ``turns[index]`` starts (Converse joins such a run
    into one message, so it is checked whole)."""
    while index > 0 and turns[index - 1][0] == turns[index][0]:
        index -= 1
    return index


def _newest(turns: Sequence[Turn]) -> int:
    """Where a turn's newest texts start: the caller's last run of texts, and the assistant's run
    before it (the answer being replied to, which only the output guardrail has seen)."""
    start = _run_start(turns, len(turns) - 1)
    if start > 0 and turns[start - 1][0] == ASSISTANT:
        start = _run_start(turns, start - 1)
    return start


class InputBlockedError(Exception):
    """The input guardrail blocked the caller's text; nothing was admitted."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.text())
        self.verdict = verdict


class QuotaRefusedError(Exception):
    """The output's units do not fit in what is left of the group's quota window."""

    def __init__(self, caller: Caller, output_type: str, refused: QuotaExceededError, retry_after: int) -> None:
        super().__init__(
            f"the {output_type} quota of group {caller.group} is used up until {refused.resets_at.isoformat()}"
        )
        self.refused = refused
        self.retry_after = retry_after


class DuplicateRequestError(Exception):
    """The request id was admitted before; nothing was counted again. ``final``: that request's
    output was delivered, so the answer stays the same (one still running may yet be released,
    and the id admitted again; a stream whose text had started to leave never is: the sweeper
    settles it as delivered)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


class TokenRequiredError(Exception):
    """An agent acts as the caller, and the caller sent no bearer token to act with."""


@dataclass(frozen=True)
class Clock:
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class GenerationRequest:
    caller: Caller
    output_type: str
    output: OutputPolicy
    quota: Quota
    models: list[str]  # the requested or default model first, then the group's fallbacks
    request_id: str
    conversation: str  # the runtime session id: one per caller's session
    session: str  # the caller's session id (or the request id)
    messages: list[dict[str, Any]]  # Converse messages, already through the input guardrail
    deadline: float  # Clock.monotonic() by which generation must end
    grounding: tuple[str, str] | None = None  # (source, query) the output is grounded on
    token: str | None = None  # the caller's bearer token, for an agent
    evaluation_case: str | None = None  # an internal caller's golden case
    system: str | None = None  # the caller's own system text (screened), after the output type's instructions
    max_tokens: int | None = None  # the caller's token limit, at most the output type's (None: the output type's)
    temperature: float | None = None  # None: the model's default
    top_p: float | None = None  # None: the model's default
    stop_sequences: tuple[str, ...] = ()  # where the model stops (Converse's stopSequences)
    transcript: Draft | None = None  # the session's transcript to write once the answer is delivered

    @property
    def instructions(self) -> str:
        """The system prompt: the output type's instructions, then any the caller sent."""
        return f"{self.output.instructions}\n\n{self.system}" if self.system else self.output.instructions

    @property
    def token_limit(self) -> int:
        return min(self.max_tokens, self.output.max_tokens) if self.max_tokens else self.output.max_tokens


@dataclass(frozen=True)
class Screened:
    """A request's texts after the input screen, in the order they were given."""

    texts: tuple[str, ...]  # as the model may see them: masked where the guardrail masked them
    transcript: Draft | None = None  # what to write to the session's transcript after delivery


@dataclass(frozen=True)
class Delivery:
    request: GenerationRequest
    generation: Generation
    verdict: Verdict
    admission: Admission
    produced_by: dict[str, Any] = field(default_factory=dict)  # agent, session id, tool calls

    @property
    def guardrail(self) -> str:
        return "blocked" if self.verdict.blocked else "anonymized" if self.verdict.intervened else "none"

    def body(self) -> dict[str, Any]:
        result = {
            "request_id": self.request.request_id,
            "output_type": self.request.output_type,
            "model": self.generation.model,
            **self.produced_by,
            "output": self.verdict.text(),
            "guardrail": self.guardrail,
        }
        if self.verdict.blocked:  # the caller is not charged for an output the guardrail withheld
            return {**result, "units": 0}
        return {
            **result,
            "units": self.request.output.units,
            "remaining": self.admission.remaining,
            "resets_at": self.admission.resets_at.isoformat(),
        }


class Flow:
    def __init__(
        self,
        *,
        ledger: Ledger,
        guard: Guard,
        models: ModelRouter,
        agents: AgentClient,
        telemetry: Telemetry,
        clock: Clock | None = None,
        pool: Executor | None = None,
    ) -> None:
        self._ledger = ledger
        self._guard = guard
        self._models = models
        self._agents = agents
        self._telemetry = telemetry
        self._clock = clock or Clock()
        self._pool = POOL if pool is None else pool  # (the module's, read here: a bench swaps it)

    def screen(self, texts: list[str], conversation: str) -> Verdict:
        """The caller's texts through the input guardrail, masked where it anonymized them."""
        self._telemetry.input_characters(sum(map(len, texts)))
        verdict = self._telemetry.guarded(INPUT, conversation, lambda: self._guard.check_input(texts))
        if verdict.blocked:
            raise InputBlockedError(verdict)
        return verdict

    def screen_and_admit(
        self,
        request: GenerationRequest,
        turns: Sequence[Turn],
        transcripts: Transcripts | None = None,
        *,
        kept_as: str | None = None,
    ) -> tuple[Admission, Screened]:
        """The request's units admitted while its texts (``turns``, as (role, text)) go through the
        input screen, against the transcript ``transcripts`` keeps under ``kept_as`` (by default the
        request's conversation) when it is given. The screen's refusal or failure wins
        (InputBlockedError, UpstreamError), and then whatever was admitted is released; otherwise
        the admission's refusal (QuotaRefusedError, DuplicateRequestError)."""
        admitting = self._concurrently(self._admit, request)
        try:
            screened = self._screen_turns(request, turns, transcripts, kept_as or request.conversation)
        except BaseException:
            self._abandon(request, admitting)
            raise
        return admitting.result(), screened

    def _screen_turns(
        self, request: GenerationRequest, turns: Sequence[Turn], transcripts: Transcripts | None, kept_as: str
    ) -> Screened:
        texts = [text for _, text in turns]
        if transcripts is None:
            return Screened(self.screen(texts, request.conversation).texts)
        # The newest texts (the caller's turn, and the answer it replies to) are checked while the
        # transcript is read; then whatever of the history before them it does not hold.
        start = _newest(turns)
        reading = self._concurrently(self._known, transcripts, kept_as, request.caller)
        try:
            newest = self.screen(texts[start:], request.conversation).texts
        finally:  # awaited even when the check refuses: nothing of this request outlives it
            known = reading.result()
        stored = known.prefix(turns[:start])
        matched = len(stored) if len(stored) == start else _run_start(turns, len(stored))
        checked = self.screen(texts[matched:start], request.conversation).texts if matched < start else ()
        final = (*stored[:matched], *checked, *newest)
        draft = Draft(
            transcripts,
            kept_as,
            request.caller,
            known,
            tuple((role, sent, text) for (role, sent), text in zip(turns, final, strict=True)),
        )
        return Screened(final, draft)

    def _known(self, transcripts: Transcripts, kept_as: str, caller: Caller) -> Known:
        """The transcript kept as ``kept_as``, or an empty one when it cannot be read (everything is
        checked): whatever goes wrong here, the screen's own answer stands."""
        try:
            return transcripts.read(kept_as, caller)
        except Exception as error:
            self._telemetry.transcript_failed("read", error)
            return Known.empty()

    def _abandon(self, request: GenerationRequest, admitting: Future[Admission]) -> None:
        """The screen refused or failed: give back what the admission beside it admitted."""
        try:
            admission = admitting.result()
        except Exception:  # a refusal or a failure: nothing admitted by this request (a failed
            return  # call's units, if any, are the sweeper's); the screen's error is the one raised
        self._release_quietly(request, admission)

    def _concurrently(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """``work`` on the pool, in this request's context (its correlation, its caller's token)."""
        return self._pool.submit(contextvars.copy_context().run, work, *args)

    def generate(self, request: GenerationRequest) -> Delivery:
        """Admit, then complete: one request from its units to its output, in one invocation."""
        return self.complete(request, self.admit(request))

    def admit(self, request: GenerationRequest) -> Admission:
        """The output's units against the group's quota, once per request id (QuotaRefusedError,
        DuplicateRequestError); what complete() then delivers or releases."""
        return self._admit(request)

    def complete(
        self, request: GenerationRequest, admission: Admission, *, keep: Callable[[Delivery], None] | None = None
    ) -> Delivery:
        """Produce, guard, and deliver an admitted request's output, or release its units. ``keep``
        (an asynchronous job's store) sees a passed output before it is metered: what it raises
        releases the units, as an output the caller is never given is never charged."""
        try:
            generation, produced_by = self._produce(request)
            source, query = request.grounding or (None, None)
            verdict = (
                self._telemetry.guarded(
                    OUTPUT,
                    request.conversation,
                    lambda: self._guard.check_output(generation.text, source=source, query=query),
                )
                if generation.text.strip()
                else unguarded(generation.text)
            )
        except BaseException:
            self._release_quietly(request, admission)
            raise
        delivery = Delivery(request, generation, verdict, admission, produced_by)
        if verdict.blocked:
            self._release(request, admission)
            return delivery
        if keep is not None:
            try:
                keep(delivery)
            except BaseException:
                self._release_quietly(request, admission)
                raise
        saving = self._concurrently(self._save_transcript, request) if request.transcript else None
        try:
            failure = self._deliver(request, generation)
            if failure is not None:
                self._withhold(request, admission, failure)
            self._telemetry.delivered(request.request_id, request.output, generation, delivery.guardrail)
        finally:
            if saving is not None:
                saving.result()
        # After metering: memory must not hold up the record. An evaluation case's turn is not the
        # caller's conversation: it is kept out of memory, as memory was kept out of it (_from_agent).
        if request.output.agent is not None and request.evaluation_case is None:
            self._remember(request, verdict)
        return delivery

    def _admit(self, request: GenerationRequest) -> Admission:
        caller, now = request.caller, self._clock.now()
        try:
            with (
                call("dynamodb"),
                self._telemetry.stage("usage", request.conversation, {"gen_ai.operation.name": "admit"}) as record,
            ):
                try:
                    with self._telemetry.timed(Metric.LEDGER_LATENCY):
                        admission = self._ledger.admit(
                            request_id=request.request_id,
                            group=caller.group,
                            user=caller.user,
                            output_type=request.output_type,
                            units=request.output.units,
                            limit=request.quota.limit,
                            period=request.quota.period,
                            unit_price_usd=request.output.unit_price_usd,
                            now=now,
                        )
                except QuotaExceededError:
                    record.end("refused", "quota_exceeded")
                    raise
        except QuotaExceededError as refused:
            self._telemetry.quota_refused(caller.group)
            retry_after = max(int((refused.resets_at - now).total_seconds()), 1)
            raise QuotaRefusedError(caller, request.output_type, refused, retry_after) from None
        if admission.replayed:
            raise DuplicateRequestError(
                f"request {request.request_id} was already processed; nothing was counted again",
                final=admission.delivered,
            )
        return admission

    def _deliver(self, request: GenerationRequest, generation: Generation) -> UpstreamError | None:
        """The delivered output's record (its model and tokens); the ledger's failure, logged and
        counted, is returned for the caller to decide on (complete withholds the output; a stream,
        whose text has left, leaves its delivering record to the sweeper)."""
        try:
            with call("dynamodb"):
                self._ledger.deliver(
                    request.request_id,
                    group=request.caller.group,
                    user=request.caller.user,
                    model=generation.model,
                    input_tokens=generation.input_tokens,
                    output_tokens=generation.output_tokens,
                )
        except UpstreamError as error:
            self._telemetry.metering_failed(request.request_id, error)
            return error
        return None

    def _withhold(self, request: GenerationRequest, admission: Admission, failure: UpstreamError) -> None:
        """A buffered output whose delivery the ledger did not record is handed over only if the
        ledger has it delivered after all (the write landed, its answer was lost). Otherwise the
        caller gets the ledger's error (a 502), and the output is not handed over: its units are
        released here, or, if that fails too, by the sweeper, which may release an admitted
        request (never one delivered). No output leaves without its units charged."""
        record: dict[str, Any] | None = None
        try:
            released = self._release(request, admission)
            if not released:  # settled already: delivered by the write that seemed to fail, or released
                with call("dynamodb"):
                    record = self._ledger.record(
                        request.request_id, group=request.caller.group, user=request.caller.user
                    )
        except UpstreamError:
            released = False
        if released or (record or {}).get("status") != {"S": DELIVERED}:
            self._telemetry.output_withheld(request.request_id, released=released)
            raise failure

    def _save_transcript(self, request: GenerationRequest) -> None:
        """The session's transcript with this turn's texts; one that is not written only costs the
        next turn a longer check, so it is counted and logged, never the caller's."""
        if request.transcript is None:
            return
        try:
            written = request.transcript.save()
        except Exception as error:
            self._telemetry.transcript_failed("write", error)
            return
        if not written:
            self._telemetry.transcript_skipped()

    def _begin_delivery(self, request: GenerationRequest) -> None:
        """The ledger's mark that the request's output is on its way (ai_gateway.ledger)."""
        with call("dynamodb"):
            self._ledger.begin_delivery(request.request_id, group=request.caller.group, user=request.caller.user)

    def _release(self, request: GenerationRequest, admission: Admission, *, marked: bool = False) -> bool:
        """No output delivered: give the units back (the ledger does it once); whether this call did.
        ``marked``: this function marked the request delivering and knows nothing of it left."""
        with call("dynamodb"):
            return self._ledger.release(
                request.request_id,
                group=request.caller.group,
                user=request.caller.user,
                output_type=request.output_type,
                units=request.output.units,
                window=admission.window,
                marked=marked,
            )

    def _release_quietly(self, request: GenerationRequest, admission: Admission, *, marked: bool = False) -> None:
        """The units back where an error is already on its way to the caller: a release that
        fails is logged (the units stay admitted for the sweeper), never raised over that error."""
        try:
            self._release(request, admission, marked=marked)
        except UpstreamError as error:
            self._telemetry.release_failed(request.request_id, error)

    def _remember(self, request: GenerationRequest, verdict: Verdict) -> None:
        """The turn as the agent and the caller saw it: the caller's last message as it went to
        the agent (masked by the input guardrail), the answer as the caller gets it (through the
        output guardrail). A turn memory lacks only thins the session's later context, so a
        failure is logged, never the caller's."""
        question = request.messages[-1]["content"][0]["text"]  # a request always ends with the caller's turn
        # The function ends GENERATION_MARGIN_SECONDS after the generation's deadline; the caller's
        # answer must not wait on a write that could outlast it.
        left = request.deadline + GENERATION_MARGIN_SECONDS - self._clock.monotonic()
        if left < MEMORY_WORST_SECONDS + 1:
            self._telemetry.memory_failed(UpstreamError(MEMORY_SERVICE, "NoTimeLeft"))
            return
        try:
            self._agents.remember(
                group=request.caller.group,
                user=request.caller.user,
                session_id=request.conversation,
                question=question,
                answer=verdict.text(),
                at=self._clock.now(),
            )
        except UpstreamError as error:
            self._telemetry.memory_failed(error)

    def _produce(self, request: GenerationRequest) -> tuple[Generation, dict[str, Any]]:
        """The generation, from a model or the output type's agent, and what names its producer."""
        agent = request.output.agent
        attributes = {
            "gen_ai.operation.name": "invoke_agent" if agent else "chat",
            "gen_ai.system": "aws.bedrock",
            "gen_ai.request.model": request.models[0],
        }
        with self._telemetry.stage("generation", request.conversation, attributes) as record:
            if agent is None:
                generation = self._models.generate(
                    request.models,
                    system=request.instructions,
                    messages=request.messages,
                    max_tokens=request.token_limit,
                    deadline=request.deadline,
                    temperature=request.temperature,
                    top_p=request.top_p,
                    stop_sequences=request.stop_sequences,
                )
                produced_by: dict[str, Any] = {}
            else:
                generation, produced_by = self._from_agent(agent, request)
            record.update(
                {
                    "gen_ai.response.model": generation.model,
                    "gen_ai.usage.input_tokens": generation.input_tokens,
                    "gen_ai.usage.output_tokens": generation.output_tokens,
                    **({"gen_ai.agent.name": agent} if agent else {}),
                }
            )
        self._telemetry.generated(generation)
        return generation, produced_by

    def _from_agent(self, agent: str, request: GenerationRequest) -> tuple[Generation, dict[str, Any]]:
        if request.token is None:
            raise TokenRequiredError("Authorization: Bearer <access token> is required")
        seconds = request.deadline - self._clock.monotonic()
        turn = self._agents.invoke(
            agent,
            token=request.token,
            session_id=request.conversation,
            payload={
                "messages": [{"role": m["role"], "content": m["content"][0]["text"]} for m in request.messages],
                "instructions": request.instructions,
                "models": request.models,
                "max_tokens": request.token_limit,
                # The request's deadline, as the agent keeps it: a second early, so its answer
                # still reaches the gateway (the client's read timeout is only a backstop).
                "turn_seconds": max(seconds - 1, 1),
                **_sampling(request),
                # An evaluation case's tool arguments are logged: the turn reads no memory (the
                # session's history, what is remembered of the caller), only its golden prompt.
                **({"memory": False} if request.evaluation_case else {}),
            },
        )
        # Tool names and outcomes always; arguments only for an internal group's evaluation case
        # (golden prompts carry no personal data; a customer's arguments may).
        case = request.evaluation_case
        calls = [
            {"name": c.get("name"), "ok": bool(c.get("ok")), **({"arguments": c.get("arguments")} if case else {})}
            for c in turn.calls
        ]
        self._telemetry.agent_turn(agent, turn, calls, case, request.conversation)
        produced: dict[str, Any] = {"agent": agent, "session_id": request.session}
        if case:
            produced["tool_calls"] = calls
        return turn.generation, produced


def _sampling(request: GenerationRequest) -> dict[str, Any]:
    """The sampling settings the caller chose (an OpenAI client's temperature, top_p and stop), for
    the agent's model calls as for a model's: only those chosen, the rest the model's defaults."""
    chosen = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop_sequences": list(request.stop_sequences) or None,
    }
    return {name: value for name, value in chosen.items() if value is not None}
