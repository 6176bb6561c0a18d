"""One generation streamed to the caller: admitted first, generated with ConverseStream, every
piece through the output guardrail before the caller sees it, metered once at the end.

    admit    StreamingFlow.stream admits the output's units and opens the model's stream (with the
             group's fallbacks, only before the first token) before anything is sent, so a quota
             refusal is still an HTTP 429 and a model that never answered a 429/502
    guard    the streamed text is cut into pieces (below); each piece goes through ApplyGuardrail
             (the OUTPUT check, as the buffered route does) and is emitted only when it comes
             back: as it was, masked where the guardrail anonymized it; a blocked piece ends the
             stream (finish_reason "content_filter") and nothing after it is emitted
    meter    before its first text leaves, the ledger marks the request delivering (a failure of
             that write ends the stream before any text, its units released); at the end it
             records the stream's usage (its metadata event). A stream blocked or failed before
             any text was emitted releases the units, one blocked or failed after is delivered
             (the caller has part of the output), and one whose function dies after its first
             text, or whose record fails, is settled as delivered by the sweeper

**Pieces.** Text is cut at sentence ends (., !, ? followed by a space, CJK full stops) and
newlines, never inside a word, at most PIECE_MAX characters (one guardrail text unit, what one
ApplyGuardrail call is billed by). The first piece goes as soon as one sentence is complete; the
next ones may not be shorter than PIECE_FLOORS (250, then 500 characters, then a full unit), so
the stream starts fast and later pieces approach the unit each call is billed for anyway.

**What it costs.** The first byte waits for the model's first sentence plus one ApplyGuardrail
call (tens of milliseconds to a few hundred); every later piece waits for its own call while the
model's stream is not read (Bedrock keeps generating into the connection's buffer). One
ApplyGuardrail call per piece: a 2,000-character answer is about five calls (five text units)
where the buffered route makes one call of two units. The guardrail judges each piece alone: a
finding spread over two pieces is judged piece by piece (cuts fall between sentences; a sentence
longer than a unit, such as a line of JSON, is cut after a clause mark, else at a space that is
not inside a number written in groups, so a word, an e-mail address or a card or phone number is
not split while the text offers any other cut).

**Why not ConverseStream's own guardrail** (``guardrailConfig`` with ``streamProcessingMode``):
in ``async`` mode Bedrock sends chunks before they are scanned and does not mask sensitive
information at all, so unsafe or personal text could reach the caller, which the gateway's
output policy forbids. ``sync`` mode buffers and scans as we do, but its chunking is Bedrock's,
it would evaluate the conversation's input again (already screened by the gateway, so paid
twice) unless every message were wrapped in guard content, its intervention arrives as a stop
reason rather than the gateway's Verdict (reasons, metrics, the same Guard code the buffered
route uses), and a guardrail attached to the model call would follow each fallback model's
call. ApplyGuardrail per piece keeps one guardrail path for both routes, with cuts we choose.

**A failure after text was emitted** (the model's stream breaks, the deadline passes, the
guardrail service fails, the caller goes away) still delivers: the caller has part of the
output, the model's tokens were spent, and releasing would make a cut-off stream a way to get
outputs free. The ledger records the tokens the stream reported (none if its metadata never
came); the failure is then raised to the reader (openai_sse turns it into an error event).

Nothing here logs text: only counts, models, reasons and ids (ai_gateway.telemetry).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from ai_gateway.contract import LENGTH_STOP_REASONS, OUTPUT, STREAM_GUARD_GRACE_SECONDS
from ai_gateway.flow import Flow, GenerationRequest
from ai_gateway.guardrail import SERVICE as GUARDRAIL_SERVICE, Verdict, mask, unguarded
from ai_gateway.ledger import Admission
from ai_gateway.openai_api import FinishReason, finish_reason, from_upstream
from ai_gateway.router import Generation, inference_config
from shared.aws_errors import Kind, UpstreamError, reported_count
from shared.converse import DEADLINE_CODE, SERVICE, Streamed, converse_stream
from shared.display import utf8_encodable
from shared.lockstep import LateError, Lockstep
from shared.telemetry import StageRecord

PIECE_MAX = 1000  # characters: one guardrail text unit
PIECE_FLOORS = (0, 250, 500)  # the shortest first, second, third piece; later ones PIECE_MAX
# A sentence ends at ., ! or ? (closing quotes or brackets after it) followed by whitespace, at a
# CJK full stop, or at a newline; the cut falls after the whitespace.
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？]\s*|\n\s*")
# A dot that ends a title, an address word, an initial or a dotted abbreviation (Dr., St., J., e.g.)
# rather than a sentence: no cut there, so a name or an address is checked in one piece.
ABBREVIATION = re.compile(
    r"(?:^|[\s(\[\"'“‘])(?:Mr|Mrs|Ms|Mx|Dr|Prof|Sr|Jr|St|Ave|Rd|Blvd|Ln|Mt|Ft|No|Apt|Co|Inc|Ltd|Corp|[A-Z]"
    r"|[A-Za-z](?:\.[A-Za-z])+)$"
)
WHITESPACE = re.compile(r"\s+")
# Where a clause ends inside an overlong sentence (a list, a line of JSON): the cut falls after the whitespace.
CLAUSE_END = re.compile(r"[,;:)\]}\"'”’]\s+")
DONE = b"data: [DONE]\n\n"


class StreamingUnsupportedError(Exception):
    """The output type is produced by an agent: only a model's output streams."""


class Segmenter:
    """Streamed text in, guardable pieces out (see the module's docstring)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._pieces = 0

    def feed(self, text: str) -> list[str]:
        """The pieces the text completes (often none)."""
        self._buffer += text
        pieces = []
        while (cut := self._cut()) is not None:
            pieces.append(self._take(cut))
        return pieces

    def flush(self) -> list[str]:
        """What is left once the stream ended, in pieces of at most PIECE_MAX (no blank piece)."""
        pieces = []
        while self._buffer.strip():
            cut = self._overflow_cut() if len(self._buffer) > PIECE_MAX else len(self._buffer)
            pieces.append(self._take(cut))
        self._buffer = ""
        return pieces

    def _cut(self) -> int | None:
        """Where the next piece ends, or None while the buffer should grow."""
        if len(self._buffer) > PIECE_MAX:
            return self._overflow_cut()
        floor = PIECE_FLOORS[self._pieces] if self._pieces < len(PIECE_FLOORS) else PIECE_MAX
        if floor >= PIECE_MAX:
            return None  # wait for a whole unit
        ends = [m.end() for m in _sentence_ends(self._buffer)]
        return ends[-1] if ends and ends[-1] >= floor else None

    def _overflow_cut(self) -> int:
        """Where to cut a buffer longer than PIECE_MAX: the last sentence end within it, else the
        last clause mark (a comma, a colon, a closing bracket or quote, then whitespace), else the
        last whitespace not between two digits (a card or phone number written in groups stays
        whole), else its last whitespace, else (one word longer than a unit) at PIECE_MAX itself."""
        text = self._buffer
        for cuts in (SENTENCE_END, CLAUSE_END, WHITESPACE):
            matches = _sentence_ends(text) if cuts is SENTENCE_END else cuts.finditer(text)
            found = [m for m in matches if m.end() <= PIECE_MAX]
            if cuts is WHITESPACE:  # a space with a digit either side is inside a number, if others are left
                apart = [
                    m
                    for m in found
                    if not (text[m.start() - 1 : m.start()].isdigit() and text[m.end() : m.end() + 1].isdigit())
                ]
                found = apart or found
            if found:
                return found[-1].end()
        return PIECE_MAX

    def _take(self, cut: int) -> str:
        piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
        self._pieces += 1
        return piece


def _sentence_ends(text: str) -> Iterator[re.Match[str]]:
    """SENTENCE_END's matches in ``text`` but those at an abbreviation's dot."""
    for match in SENTENCE_END.finditer(text):
        if text[match.start()] == "." and ABBREVIATION.search(text, max(match.start() - 16, 0), match.start()):
            continue
        yield match


@dataclass(frozen=True)
class TextDelta:
    """Guarded text, as the caller may see it (masked where the guardrail anonymized it)."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The stream's last event."""

    finish_reason: FinishReason
    model: str
    input_tokens: int
    output_tokens: int
    admission: Admission
    units: int  # charged: 0 when the guardrail blocked the output before any text was emitted
    guardrail: Literal["none", "anonymized", "blocked"]
    reasons: tuple[str, ...]


StreamEvent = TextDelta | Finish


class ModelStreamer:
    """ConverseStream for a request's models (shared.converse decides the fallbacks); like
    ModelRouter, another model is tried only while one whole attempt still fits."""

    def __init__(self, client: Any, *, attempt_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._attempt_seconds = attempt_seconds
        self._clock = clock

    def open(self, request: GenerationRequest) -> Streamed:
        """The request's model stream, asked as the buffered route asks (ModelRouter): the output
        type's instructions and the caller's system text, the token limit, the temperature, top_p
        and stop sequences."""
        inference = inference_config(request.token_limit, request.temperature, request.top_p, request.stop_sequences)
        try:
            return converse_stream(
                self._client,
                request.models,
                deadline=request.deadline,
                attempt_seconds=self._attempt_seconds,
                clock=self._clock,
                system=[{"text": request.instructions}],
                messages=request.messages,
                inferenceConfig=inference,
            )
        except UpstreamError as error:
            raise error.as_platforms() from None  # model access or region: the operator's, a 502


class StreamingFlow(Flow):
    """The generation flow with a streamed route: the same ledger, guard, telemetry and clock
    (and the same admission and release) as Flow.generate."""

    def stream(
        self, request: GenerationRequest, models: ModelStreamer, admission: Admission | None = None
    ) -> GuardedStream:
        """Admit the request (unless ``admission`` is the one screen_and_admit made) and open its
        model's stream, before anything is sent. Raises what generate raises before producing
        (QuotaRefusedError, DuplicateRequestError), and the models' failure before their first
        token (UpstreamError; the units are released)."""
        if request.output.agent is not None:
            raise StreamingUnsupportedError(f"output type {request.output_type} is produced by an agent")
        admission = admission or self.admit(request)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "aws.bedrock",
            "gen_ai.request.model": request.models[0],
        }
        started = self._clock.monotonic()
        stage = self._telemetry.stage("generation", request.conversation, attributes)
        record = stage.__enter__()
        try:
            streamed = models.open(request)
        except BaseException as error:
            stage.__exit__(type(error), error, error.__traceback__)
            self._release_quietly(request, admission)
            raise
        source, query = request.grounding or (None, None)
        checks = Lockstep("stream-guard")  # each piece's check waited for until the deadline's grace

        def check(piece: str) -> Verdict:
            left = request.deadline + STREAM_GUARD_GRACE_SECONDS - self._clock.monotonic()
            try:
                return checks.run(lambda: self._guard.check_output(piece, source=source, query=query), left)
            except LateError:
                raise UpstreamError(GUARDRAIL_SERVICE, DEADLINE_CODE, 504, Kind.UNAVAILABLE) from None

        return GuardedStream(
            admission=admission,
            request=request,
            streamed=streamed,
            stage=stage,
            record=record,
            guard=lambda piece: self._telemetry.guarded(OUTPUT, request.conversation, lambda: check(piece)),
            begin=lambda: self._begin_delivery(request),
            deliver=lambda generation, guardrail: self._meter(request, generation, guardrail),
            # Called only while none of the stream's text has left: a request it marked is its own to release.
            release=lambda: self._release_quietly(request, admission, marked=True),
            monotonic=self._clock.monotonic,
            started=started,
            stop_checks=checks.stop,
        )

    def _meter(self, request: GenerationRequest, generation: Generation, guardrail: str) -> None:
        """The delivered stream's record and telemetry (as generate records a delivery), then the
        session's transcript with the answer as the caller received it."""
        self._telemetry.generated(generation)
        self._deliver(request, generation)  # a record that fails stays delivering: the sweeper settles it
        self._telemetry.delivered(request.request_id, request.output, generation, guardrail)
        self._save_transcript(request)


class GuardedStream:
    """An admitted, opened stream (StreamingFlow.stream builds it): iterate it once for its events, or
    ``close`` it to stop early. Its dependencies are the flow's, as callables:

    guard(piece) -> Verdict          the OUTPUT check of one piece (a guardrail stage)
    begin()                          the ledger's mark that the output is on its way (UpstreamError)
    deliver(generation, guardrail)   the ledger's record and the delivery's telemetry
    release()                        the units back (a failed release is logged, not raised)
    stop_checks()                    no more guard calls (their thread ends)
    """

    def __init__(
        self,
        *,
        admission: Admission,
        request: GenerationRequest,
        streamed: Streamed,
        stage: AbstractContextManager[StageRecord],
        record: StageRecord,
        guard: Callable[[str], Verdict],
        begin: Callable[[], None],
        deliver: Callable[[Generation, str], None],
        release: Callable[[], None],
        monotonic: Callable[[], float],
        started: float,
        stop_checks: Callable[[], None],
    ) -> None:
        self.admission = admission
        self._request = request
        self._streamed = streamed
        self._stage = stage
        self._record = record
        self._guard = guard
        self._begin = begin
        self._deliver = deliver
        self._release = release
        self._monotonic = monotonic
        self._started = started
        self._stop_checks = stop_checks
        self._emitted: list[str] = []
        self._blank = ""  # an answer of whitespace alone (_pieces)
        self._usage: dict[str, Any] = {}
        self._stop = "end_turn"
        self._masked = False
        self._seen: dict[str, str] = {}  # what the guardrail masked in earlier pieces, with its tags
        self._settled = False
        self._iterating = False

    @property
    def model(self) -> str:
        return self._streamed.model

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterating:
            raise RuntimeError("a GuardedStream is read once")
        self._iterating = True
        return self._events()

    def close(self) -> None:
        """Stop early (the caller went away): settle as a failure would (module docstring)."""
        self._stop_checks()
        if not self._settled:
            self._fail(None)

    def _events(self) -> Iterator[StreamEvent]:
        reasons: set[str] = set()
        try:
            for piece in self._pieces():
                # Before the piece is emitted, never after; a blank piece (a newline between
                # sentences) is not sent to it: ApplyGuardrail refuses content without text.
                verdict = self._guard(piece) if piece.strip() else unguarded(piece)
                reasons.update(verdict.reasons)
                if verdict.blocked:
                    yield self._blocked(tuple(sorted(reasons)))
                    return
                if not self._emitted:
                    # Before the first text leaves: from here the units are never released, and the
                    # sweeper settles the stream as delivered if this function dies before its end.
                    self._begin()
                # What an earlier piece had masked stays masked here, where the guardrail, judging
                # a name by its context, may have passed it.
                self._seen.update(verdict.masked)
                text = mask(verdict.text(), self._seen)
                self._masked = self._masked or verdict.intervened or text != verdict.text()
                self._emitted.append(text)
                yield TextDelta(text)
            if not self._emitted:
                yield from self._no_text()
            generation = self._generation()
            self._end_stage(None)
            self._settled = True
            try:
                yield Finish(
                    finish_reason=finish_reason(self._stop, blocked=False),
                    model=generation.model,
                    input_tokens=generation.input_tokens,
                    output_tokens=generation.output_tokens,
                    admission=self.admission,
                    units=self._request.output.units,
                    guardrail=self._guardrail(),
                    reasons=tuple(sorted(reasons)),
                )
            finally:
                # Once the reader has the whole answer (or stopped reading at its end): the ledger's
                # record and the transcript are not between the answer and the caller.
                self._deliver(generation, self._guardrail())
        except GeneratorExit:
            if not self._settled:
                self._fail(None)
            raise
        except BaseException as error:
            if not self._settled:
                self._fail(error)
            raise
        finally:
            self._stop_checks()

    def _no_text(self) -> Iterator[StreamEvent]:
        """An answer without text (whitespace alone, as the buffered route reads it) is a 502,
        unless it was cut at its token limit: its Finish charges it all the same, and its
        whitespace is delivered as it came, as the buffered route delivers it."""
        if self._stop not in LENGTH_STOP_REASONS:
            raise UpstreamError(SERVICE, "InvalidResponse")
        self._begin()
        if self._blank:
            self._emitted.append(self._blank)
            yield TextDelta(self._blank)

    def _pieces(self) -> Iterator[str]:
        """The model's text in guardable pieces, the blank ones before its first text joined to it
        (whitespace alone is no answer: an answer of nothing else is ``_blank``, and none is
        yielded); its stop reason and usage on the side."""
        held: str | None = ""
        for piece in self._segments():
            if held is None:
                yield piece
            elif piece.strip():
                yield held + piece
                held = None
            else:
                held += piece
        self._blank = held or ""

    def _segments(self) -> Iterator[str]:
        segmenter = Segmenter()
        for event in self._streamed.events:
            # The model's events are upstream data: a field of the wrong type is left out, never raised on.
            if "contentBlockDelta" in event:
                text = _member(_member(event["contentBlockDelta"], "delta"), "text")
                yield from segmenter.feed(text if isinstance(text, str) else "")
            elif "messageStop" in event:
                self._stop = str(_member(event["messageStop"], "stopReason") or self._stop)
            elif "metadata" in event:
                usage = _member(event["metadata"], "usage")
                self._usage = usage if isinstance(usage, dict) else {}
        yield from segmenter.flush()

    def _blocked(self, reasons: tuple[str, ...]) -> Finish:
        """Nothing more is read or emitted. Blocked before any text, the caller is not charged (as
        the buffered route); after, it is, as for a failure after text: the caller has the pieces
        before the blocked one, and releasing would make a denied last sentence a way to get the
        rest of an output free."""
        self._streamed.close()
        try:
            generation = self._generation()
        except UpstreamError:  # usage that is not a count: record none rather than lose the record
            self._usage = {}
            generation = self._generation()
        self._end_stage(None)
        self._settled = True
        charged = bool(self._emitted)
        if charged:
            self._deliver(generation, "blocked")
        else:
            self._release()
        return Finish(
            finish_reason="content_filter",
            model=generation.model,
            input_tokens=generation.input_tokens,
            output_tokens=generation.output_tokens,
            admission=self.admission,
            units=self._request.output.units if charged else 0,
            guardrail="blocked",
            reasons=reasons,
        )

    def _fail(self, error: BaseException | None) -> None:
        """A failure (or the reader stopping): release if nothing was emitted, else deliver."""
        self._settled = True
        self._streamed.close()
        self._end_stage(error)
        if not self._emitted:
            self._release()
            return
        try:
            generation = self._generation()
        except UpstreamError:  # usage that is not a count: record none rather than lose the record
            self._usage = {}
            generation = self._generation()
        self._deliver(generation, self._guardrail())

    def _guardrail(self) -> Literal["none", "anonymized"]:
        return "anonymized" if self._masked else "none"

    def _generation(self) -> Generation:
        usage = self._usage
        return Generation(
            model=self._streamed.model,
            text="".join(self._emitted),
            input_tokens=reported_count(SERVICE, usage.get("inputTokens", 0)),
            output_tokens=reported_count(SERVICE, usage.get("outputTokens", 0)),
            latency_ms=(self._monotonic() - self._started) * 1000,
            fell_back_from=self._streamed.fell_back_from,
        )

    def _end_stage(self, error: BaseException | None) -> None:
        self._record.update(
            {
                "gen_ai.response.model": self._streamed.model,
                "gen_ai.usage.input_tokens": _count(self._usage.get("inputTokens")),
                "gen_ai.usage.output_tokens": _count(self._usage.get("outputTokens")),
            }
        )
        # The stage records an exception as its error and re-raises nothing here (contextlib
        # hands back the very exception it was given): the reader gets it from the generator.
        if isinstance(error, Exception):
            self._stage.__exit__(type(error), error, error.__traceback__)
        else:
            self._stage.__exit__(None, None, None)


# --- OpenAI chat.completion.chunk server-sent events ------------------------------------------


def openai_sse(
    events: Iterable[StreamEvent], *, chunk_id: str, created: int, model: str, include_usage: bool = False
) -> Generator[bytes]:
    """The events as OpenAI ``chat.completion.chunk`` server-sent events: the assistant's role,
    the content deltas, a chunk with the finish reason, a usage chunk when ``include_usage``
    (stream_options.include_usage), then ``data: [DONE]``. A failure while streaming becomes one
    ``data: {"error": {"message", "type", "param", "code"}}`` event (OpenAI's error object, as
    openai_api.from_upstream maps the failure; the service and its code, nothing of the request) and the
    stream ends without [DONE]. [DONE] follows the finish at once: what the events do after their
    Finish (metering) runs after the caller has it. Closing this generator closes ``events``."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None
        return sse(body)

    done = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        for event in events:
            if isinstance(event, TextDelta):
                yield chunk({"content": event.text})
                continue
            yield chunk({}, event.finish_reason)
            if include_usage:
                yield sse(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": event.input_tokens,
                            "completion_tokens": event.output_tokens,
                            "total_tokens": event.input_tokens + event.output_tokens,
                        },
                    }
                )
            # The caller's stream ends here; the events then run to their end (the delivery's record).
            done = True
            yield DONE
        if not done:
            yield DONE
    except UpstreamError as error:
        # OpenAI's error object (the SDK raises APIError with it), as the same failure before the
        # stream would have been answered: the gateway's code, never the request's text.
        refusal = from_upstream(error.code, error.http_status, error.error_code, error.public_message, None)
        yield sse(refusal.body())
    finally:
        closer = getattr(events, "close", None)
        if closer is not None:
            closer()


def _member(value: Any, key: str) -> Any:
    """``value[key]`` where ``value`` is a mapping, else None."""
    return value.get(key) if isinstance(value, dict) else None


def _count(value: Any) -> int:
    """A reported token count for telemetry: a non-negative int, else 0 (metering validates it)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def sse(body: dict[str, Any]) -> bytes:
    """One event, UTF-8: a lone surrogate is sent as U+FFFD (what a decoder shows for a byte that
    is not UTF-8) rather than ending the stream with an exception."""
    # A model's text can hold a lone surrogate (Bedrock's JSON events can escape one), UTF-8 cannot.
    text = utf8_encodable(json.dumps(body, separators=(",", ":"), ensure_ascii=False))
    return b"data: " + text.encode() + b"\n\n"
