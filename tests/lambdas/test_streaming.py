"""The guarded, metered stream (ai_gateway.streaming) against stubbed Bedrock (ConverseStream and
ApplyGuardrail through botocore's Stubber, which checks each request and each stream event
against the service's model) and a recording ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.stub import ANY

from ai_gateway.agents import AgentClient
from ai_gateway.contract import STREAM_GUARD_GRACE_SECONDS
from ai_gateway.flow import Clock, DuplicateRequestError, GenerationRequest, QuotaRefusedError
from ai_gateway.guardrail import Guard
from ai_gateway.ledger import Admission, QuotaExceededError
from ai_gateway.models import Caller
from ai_gateway.router import ModelRouter
from ai_gateway.streaming import (
    PIECE_MAX,
    Finish,
    ModelStreamer,
    Segmenter,
    StreamEvent,
    StreamingFlow,
    StreamingUnsupportedError,
    TextDelta,
    openai_sse,
)
from ai_gateway.telemetry import Telemetry
from shared.aws_errors import UpstreamError
from shared.converse import converse_stream
from tests.lambdas.bedrock_fakes import FakeEventStream, StreamStubber, answer, delta, stream_error
from tests.lambdas.gateway_fixtures import AGENT_POLICY, BLOCKED_TOPIC, LITE, PASS, POLICY, PRO, anonymized

NOW = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)
RESETS = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


# --- stubbed Bedrock -----------------------------------------------------------------------------


class Bedrock:
    """A bedrock-runtime client under StreamStubber, with a log of the stream's reads, guard calls
    and what the test saw emitted, in order."""

    def __init__(self) -> None:
        self.client = boto3.client("bedrock-runtime", region_name="us-east-1")
        self.log: list[tuple[str, str]] = []
        self.streams: list[FakeEventStream] = []
        self.client.meta.events.register("before-parameter-build.bedrock-runtime.ApplyGuardrail", self._guarded)
        self.stubber = StreamStubber(self.client)

    def _guarded(self, params: dict[str, Any], **_: Any) -> None:
        self.log.append(("guard", params["content"][-1]["text"]["text"]))

    def streams_answer(self, model: str, items: list[dict[str, Any] | Exception]) -> FakeEventStream:
        stream = FakeEventStream(items, self.log)
        self.streams.append(stream)
        expected = {"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
        self.stubber.add_response("converse_stream", {"stream": stream}, expected)
        return stream

    def throttles(self) -> None:
        self.stubber.add_client_error("converse_stream", "ThrottlingException", http_status_code=429)

    def guards(self, text: str, response: dict[str, Any] = PASS) -> None:
        content = [{"text": {"text": text, "qualifiers": ["guard_content"]}}]
        expected = {"guardrailIdentifier": "g", "guardrailVersion": "1", "source": "OUTPUT", "content": content}
        self.stubber.add_response("apply_guardrail", response, expected)


class Ledger:
    """Admits (or refuses with ``refuse``), recording every call with its arguments."""

    def __init__(self, refuse: bool = False, replayed: bool = False, log: list[tuple[str, str]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse
        self.replayed = replayed
        self.log = log  # where begin_delivery is written too, among the stream's reads and guards

    def admit(self, **kwargs: Any) -> Admission:
        self.calls.append(("admit", kwargs))
        if self.refuse:
            raise QuotaExceededError(used=20_000, limit=20_000, resets_at=RESETS)
        return Admission(kwargs["request_id"], kwargs["units"], 7, 20_000, RESETS, self.replayed, "2026-12")

    def begin_delivery(self, request_id: str, **kwargs: Any) -> None:
        self.calls.append(("begin", {"request_id": request_id, **kwargs}))
        if self.log is not None:
            self.log.append(("begin", request_id))

    def deliver(self, request_id: str, **kwargs: Any) -> None:
        self.calls.append(("deliver", {"request_id": request_id, **kwargs}))

    def release(self, request_id: str, **kwargs: Any) -> None:
        self.calls.append(("release", {"request_id": request_id, **kwargs}))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def a_flow(
    bedrock: Bedrock, ledger: Ledger, monotonic: ManualClock | None = None
) -> tuple[StreamingFlow, ModelStreamer]:
    clock = monotonic or ManualClock()
    flow = StreamingFlow(
        ledger=ledger,  # type: ignore[arg-type]
        guard=Guard(bedrock.client, guardrail_id="g", version="1"),
        models=ModelRouter(bedrock.client, attempt_seconds=5, clock=clock),
        agents=AgentClient("http://127.0.0.1:9", {}),
        telemetry=Telemetry(Metrics(), Logger()),
        clock=Clock(now=lambda: NOW, monotonic=clock),
    )
    return flow, ModelStreamer(bedrock.client, attempt_seconds=5, clock=clock)


def a_request(**changes: Any) -> GenerationRequest:
    request = GenerationRequest(
        caller=Caller(user="u", group="customer-gold"),
        output_type="chat",
        output=POLICY.outputs["chat"],
        quota=POLICY.groups["customer-gold"].quotas["chat"],
        models=[PRO, LITE],
        request_id="r-1",
        conversation="s" * 65,
        session="r-1",
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        deadline=30.0,
    )
    return dataclasses.replace(request, **changes)


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    fake = Bedrock()
    with fake.stubber:
        yield fake
        fake.stubber.assert_no_pending_responses()


def drain(events: Any, into: list[Any]) -> None:
    """Every event into ``into`` as it comes (what a reader had when the stream failed)."""
    for event in events:
        into.append(event)


def read(events: Any, log: list[tuple[str, str]]) -> list[Any]:
    """Every event, each text delta logged as emitted when the reader gets it."""
    out = []
    for event in events:
        if isinstance(event, TextDelta):
            log.append(("emit", event.text))
        out.append(event)
    return out


# --- pieces ---------------------------------------------------------------------------------------


def test_the_first_piece_goes_as_soon_as_a_sentence_is_complete() -> None:
    segmenter = Segmenter()
    assert segmenter.feed("Hello there") == []
    assert segmenter.feed(".") == []  # "3." may be "3.14": a sentence ends at the space after it
    assert segmenter.feed(" How") == ["Hello there. "]
    assert segmenter.flush() == ["How"]


def test_later_pieces_grow_to_a_guardrail_unit_and_are_cut_between_sentences() -> None:
    segmenter = Segmenter()
    sentence = "The quick brown fox jumps over the lazy dog. "  # 45 characters
    pieces: list[str] = []
    for _ in range(60):
        pieces += segmenter.feed(sentence)
    pieces += segmenter.flush()
    assert "".join(pieces) == sentence * 60  # nothing lost, nothing added
    assert all(piece.endswith(". ") for piece in pieces)  # every cut after a sentence
    assert [len(p) for p in pieces[:3]] == [45, 270, 540]  # the floors: a sentence, 250, 500
    assert all(len(p) <= PIECE_MAX for p in pieces)
    assert max(len(p) for p in pieces) > 900  # later pieces near a whole unit


@pytest.mark.parametrize(
    "text",
    [
        "Ship it to 12 Main St. Springfield by Friday. ",
        "Ask Dr. Ada Lovelace about it. ",
        "Ask Ada L. Lovelace about it. ",
        "Bring a document, e.g. a passport, with you. ",
        "Write to Mrs. Smith at Acme Ltd. in London. ",
    ],
)
def test_a_title_an_initial_or_an_address_word_does_not_end_a_piece(text: str) -> None:
    """A name or an address cut in two would be judged in halves by the guardrail."""
    segmenter = Segmenter()
    pieces: list[str] = []
    for word in text.split(" "):
        pieces += segmenter.feed(word + " ")
    assert pieces == [text]  # one piece, cut only at the sentence's own end


def test_a_newline_ends_a_piece_and_a_long_run_is_cut_at_a_space_never_inside_a_word() -> None:
    assert Segmenter().feed("# Title\nBody") == ["# Title\n"]
    segmenter = Segmenter()
    words = "word " * 300  # 1,500 characters, no sentence end
    pieces = segmenter.feed(words) + segmenter.flush()
    assert "".join(pieces) == words
    assert [len(p) for p in pieces] == [1000, 500]
    assert all(p.endswith(" ") for p in pieces)
    giant = "x" * 2500  # one "word" longer than a unit: cut at the unit, memory stays bounded
    assert Segmenter().feed(giant) == ["x" * 1000, "x" * 1000]


@pytest.mark.parametrize(
    "secret",
    ["4111 1111 1111 1111", "+1 206 555 0143", "Ada Lovelace"],
)
def test_a_sentence_longer_than_a_unit_is_cut_after_a_clause_not_inside_a_number(secret: str) -> None:
    """A line of JSON (or a list) has no sentence end for a whole unit: its last whitespace could
    fall inside a card or phone number written in groups, and each half, guarded alone, holds no
    number to mask. The cut falls after a clause mark instead."""
    for shift in range(0, 40, 3):  # wherever the value falls against the unit's edge
        line = (
            "["
            + '{"name": "Jane Roe", "note": "ok"}, ' * 26
            + "x" * shift
            + f' {{"name": "Grace", "card": "{secret}"}}]'
        )
        segmenter = Segmenter()
        pieces = segmenter.feed(line + ". Done. ") + segmenter.flush()
        assert "".join(pieces) == line + ". Done. "
        assert any(secret in piece for piece in pieces), (shift, [p[-30:] for p in pieces])
    digits = "1234 " * 300  # groups of digits and nothing else: the last space is all there is
    segmenter = Segmenter()
    assert [len(p) for p in segmenter.feed(digits) + segmenter.flush()] == [1000, 500]


def test_a_blank_rest_is_not_a_piece() -> None:
    segmenter = Segmenter()
    assert segmenter.feed("Done. \n ") == ["Done. \n "]
    assert segmenter.flush() == []


# --- the guarded stream ----------------------------------------------------------------------------


def test_each_piece_is_guarded_before_it_is_emitted_and_the_stream_is_read_as_it_goes(bedrock: Bedrock) -> None:
    bedrock.streams_answer(PRO, answer(["Hello there. How", " are you today", "? Bye."]))
    bedrock.guards("Hello there. ")
    bedrock.guards("How are you today? Bye.")
    ledger = Ledger(log=bedrock.log)
    flow, models = a_flow(bedrock, ledger)
    stream = flow.stream(a_request(), models)
    assert ledger.names == ["admit"]  # admitted before anything is read past the first token
    events = read(stream, bedrock.log)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello there. ", "How are you today? Bye."]
    assert bedrock.log == [
        ("read", "messageStart"),
        ("read", "Hello there. How"),
        ("guard", "Hello there. "),
        ("begin", "r-1"),  # delivering before the first text leaves: never released from here
        ("emit", "Hello there. "),
        ("read", " are you today"),
        ("read", "? Bye."),
        ("read", "contentBlockStop"),
        ("read", "messageStop"),
        ("read", "metadata"),
        ("guard", "How are you today? Bye."),
        ("emit", "How are you today? Bye."),
    ]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.model, finish.guardrail, finish.units) == ("stop", PRO, "none", 1)
    assert (finish.input_tokens, finish.output_tokens, finish.admission.remaining) == (50, 400, 19_993)
    assert ledger.calls[1] == ("begin", {"request_id": "r-1", "group": "customer-gold", "user": "u"})
    assert ledger.calls[2] == (
        "deliver",
        {
            "request_id": "r-1",
            "group": "customer-gold",
            "user": "u",
            "model": PRO,
            "input_tokens": 50,
            "output_tokens": 400,
        },
    )
    assert ledger.names == ["admit", "begin", "deliver"]


def test_anonymized_text_is_emitted_masked(bedrock: Bedrock) -> None:
    bedrock.streams_answer(PRO, answer(["Write to ann@example.com today. Thanks."]))
    bedrock.guards("Write to ann@example.com today. ", anonymized("Write to {EMAIL} today. "))
    bedrock.guards("Thanks.")
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Write to {EMAIL} today. ", "Thanks."]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.guardrail, finish.reasons) == ("anonymized", ("pii:EMAIL",))
    assert ledger.names == ["admit", "begin", "deliver"]


def test_what_an_earlier_piece_masked_stays_masked_in_later_pieces(bedrock: Bedrock) -> None:
    """The guardrail judges a name by its context: passed in a later piece, it is still masked
    there, as the buffered route (one check of the whole answer) would have it."""
    first, second = "Your contact is Ada Lovelace in London. ", "Please ask Ada Lovelace about it."
    bedrock.streams_answer(PRO, answer([first + second]))
    bedrock.guards(first, anonymized("Your contact is {NAME} in London. ", found={"Ada Lovelace": "NAME"}))
    bedrock.guards(second)  # passed: nothing in it alone looks like a name to the guardrail
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Your contact is {NAME} in London. ",
        "Please ask {NAME} about it.",
    ]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.guardrail == "anonymized"


def test_what_an_earlier_piece_masked_is_masked_only_where_it_stands_whole(bedrock: Bedrock) -> None:
    """Carried over a whole answer, a short match must not garble the words and numbers it is part of."""
    first, second = "Li is 30 years old. ", "Li lives in Lima, 300 km away; Li."
    bedrock.streams_answer(PRO, answer([first + second]))
    bedrock.guards(first, anonymized("{NAME} is {AGE} years old. ", found={"Li": "NAME", "30": "AGE"}))
    bedrock.guards(second)
    flow, models = a_flow(bedrock, Ledger())
    events = list(flow.stream(a_request(), models))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "{NAME} is {AGE} years old. ",
        "{NAME} lives in Lima, 300 km away; {NAME}.",
    ]


def test_a_blocked_piece_ends_the_stream_charges_what_was_sent_and_nothing_later_is_emitted(
    bedrock: Bedrock,
) -> None:
    """The caller has the pieces before the blocked one: released, a denied last sentence would get
    the rest of an output free."""
    first = "Here is some general information about savings accounts and how they work. "
    model_stream = bedrock.streams_answer(
        PRO, answer([first, "You should buy stock X now. " * 10, "More advice follows. " * 30])
    )
    bedrock.guards(first)
    bedrock.guards("You should buy stock X now. " * 10, BLOCKED_TOPIC)
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = read(flow.stream(a_request(), models), bedrock.log)
    assert [e.text for e in events if isinstance(e, TextDelta)] == [first]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.guardrail, finish.units, finish.reasons) == (
        "content_filter",
        "blocked",
        a_request().output.units,
        ("topic",),
    )
    assert ledger.names == ["admit", "begin", "deliver"]
    assert model_stream.closed  # the model's stream is not read any further
    assert ("read", "More advice follows. " * 30) not in bedrock.log


def test_a_stream_blocked_at_its_first_piece_releases_the_units(bedrock: Bedrock) -> None:
    bedrock.streams_answer(PRO, answer(["You should buy stock X now. " * 10]))
    bedrock.guards("You should buy stock X now. " * 10, BLOCKED_TOPIC)
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    assert [e for e in events if isinstance(e, TextDelta)] == []
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.guardrail, finish.units) == ("content_filter", "blocked", 0)
    assert ledger.names == ["admit", "release"]


def test_the_model_is_asked_as_the_buffered_route_asks_it(bedrock: Bedrock) -> None:
    request = a_request(system="Answer in French.", max_tokens=300, temperature=0.2)
    stream = FakeEventStream(answer(["Bonjour."]), bedrock.log)
    expected = {
        "modelId": PRO,
        "system": [{"text": f"{POLICY.outputs['chat'].instructions}\n\nAnswer in French."}],
        "messages": request.messages,
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2},
    }
    bedrock.stubber.add_response("converse_stream", {"stream": stream}, expected)
    bedrock.guards("Bonjour.")
    flow, models = a_flow(bedrock, Ledger())
    assert [e for e in flow.stream(request, models) if isinstance(e, TextDelta)] == [TextDelta("Bonjour.")]


@pytest.mark.parametrize("stop", ["max_tokens", "model_context_window_exceeded"])
def test_max_tokens_is_finish_reason_length(bedrock: Bedrock, stop: str) -> None:
    bedrock.streams_answer(PRO, answer(["Cut off here."], stop=stop))
    bedrock.guards("Cut off here.")
    flow, models = a_flow(bedrock, Ledger())
    finish = list(flow.stream(a_request(), models))[-1]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "length"


def test_a_throttled_first_model_falls_back_before_any_token(bedrock: Bedrock) -> None:
    bedrock.throttles()
    bedrock.streams_answer(LITE, answer(["From the lite model."]))
    bedrock.guards("From the lite model.")
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.model, ledger.names, ledger.calls[2][1]["model"]) == (LITE, ["admit", "begin", "deliver"], LITE)


def test_a_throttling_event_before_the_first_token_falls_back_too(bedrock: Bedrock) -> None:
    first = bedrock.streams_answer(PRO, [{"messageStart": {"role": "assistant"}}, stream_error("throttlingException")])
    bedrock.streams_answer(LITE, answer(["Fine."]))
    bedrock.guards("Fine.")
    flow, models = a_flow(bedrock, Ledger())
    stream = flow.stream(a_request(), models)
    assert (stream.model, first.closed) == (LITE, True)
    assert [e for e in stream if isinstance(e, TextDelta)] == [TextDelta("Fine.")]


def test_every_model_failing_before_the_first_token_raises_before_any_byte_and_releases(bedrock: Bedrock) -> None:
    bedrock.throttles()
    bedrock.throttles()
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    with pytest.raises(UpstreamError) as raised:
        flow.stream(a_request(), models)
    assert (raised.value.http_status, ledger.names) == (429, ["admit", "release"])


def test_a_quota_refusal_is_raised_before_the_model_is_called(bedrock: Bedrock) -> None:
    flow, models = a_flow(bedrock, Ledger(refuse=True))
    with pytest.raises(QuotaRefusedError) as raised:
        flow.stream(a_request(), models)
    assert raised.value.retry_after > 0  # the stubber has nothing queued: no model was called
    with pytest.raises(DuplicateRequestError):
        a_flow(bedrock, Ledger(replayed=True))[0].stream(a_request(), models)


def test_an_agents_output_does_not_stream(bedrock: Bedrock) -> None:
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    with pytest.raises(StreamingUnsupportedError):
        flow.stream(a_request(output=AGENT_POLICY.outputs["chat"]), models)
    assert ledger.calls == []  # refused before admission


def test_a_failure_after_text_was_emitted_delivers_what_was_emitted_then_raises(bedrock: Bedrock) -> None:
    model_stream = bedrock.streams_answer(
        PRO, [delta("First sentence. Second"), stream_error("modelStreamErrorException")]
    )
    bedrock.guards("First sentence. ")
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    emitted: list[Any] = []
    with pytest.raises(UpstreamError) as raised:
        drain(flow.stream(a_request(), models), emitted)
    assert emitted == [TextDelta("First sentence. ")]
    assert (raised.value.code, raised.value.http_status) == ("ModelStreamErrorException", 502)
    # Charged: the caller has part of the output. No usage came, so none is recorded.
    assert ledger.names == ["admit", "begin", "deliver"]
    assert (ledger.calls[2][1]["input_tokens"], ledger.calls[2][1]["output_tokens"]) == (0, 0)
    assert model_stream.closed


def test_a_failure_before_any_text_was_emitted_releases(bedrock: Bedrock) -> None:
    bedrock.streams_answer(PRO, answer(["Only sentence."]))
    bedrock.stubber.add_client_error("apply_guardrail", "InternalServerException", http_status_code=500)
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    with pytest.raises(UpstreamError) as raised:
        list(flow.stream(a_request(), models))
    assert (raised.value.service, ledger.names) == ("bedrock-guardrails", ["admit", "release"])


@pytest.mark.parametrize("blank", ["\n\n", "   \n", " "])
def test_an_answer_of_whitespace_alone_is_a_502_and_releases_as_the_buffered_route(
    bedrock: Bedrock, blank: str
) -> None:
    """No text reaches the caller, so nothing is marked, emitted or charged (the buffered route:
    an InvalidResponse 502, its units released)."""
    bedrock.streams_answer(PRO, answer([blank]))
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    emitted: list[Any] = []
    with pytest.raises(UpstreamError) as raised:
        drain(flow.stream(a_request(), models), emitted)
    assert (raised.value.service, raised.value.code) == ("bedrock-runtime", "InvalidResponse")
    assert (emitted, ledger.names) == ([], ["admit", "release"])


def test_whitespace_before_the_first_text_goes_with_it(bedrock: Bedrock) -> None:
    """Guarded with it, marked and emitted with it: never a piece of its own that the caller is
    charged for before any text came."""
    bedrock.streams_answer(PRO, answer(["\n\n", "Hello there."]))
    bedrock.guards("\n\nHello there.")
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("\n\nHello there.")]
    assert ledger.names == ["admit", "begin", "deliver"]


def test_whitespace_alone_cut_at_the_token_limit_is_delivered_as_it_came(bedrock: Bedrock) -> None:
    """As the buffered route: max_tokens 1 may well be one newline, charged and delivered."""
    bedrock.streams_answer(PRO, answer(["\n"], stop="max_tokens"))
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    events = list(flow.stream(a_request(), models))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("\n")]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.units, ledger.names) == ("length", 1, ["admit", "begin", "deliver"])


def test_a_reader_that_stops_early_settles_the_stream_once(bedrock: Bedrock) -> None:
    model_stream = bedrock.streams_answer(PRO, answer(["One. ", "Two " * 100 + "end. ", "Three. " * 200]))
    bedrock.guards("One. ")
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    stream = flow.stream(a_request(), models)
    events = iter(stream)
    assert next(events) == TextDelta("One. ")
    events.close()  # type: ignore[attr-defined]  # the caller went away
    stream.close()
    assert (ledger.names, model_stream.closed) == (["admit", "begin", "deliver"], True)


def test_the_stream_stops_at_its_deadline(bedrock: Bedrock) -> None:
    clock = ManualClock()

    class Slow(FakeEventStream):
        def __iter__(self) -> Iterator[dict[str, Any]]:
            for item in super().__iter__():
                clock.now += 10  # ten seconds per event
                yield item

    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger, clock)
    stream = Slow([delta("One. "), delta("B " * 300), delta("C")], bedrock.log)
    bedrock.stubber.add_response(
        "converse_stream", {"stream": stream}, {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    )
    bedrock.guards("One. ")
    emitted: list[Any] = []
    with pytest.raises(UpstreamError) as raised:
        drain(flow.stream(a_request(deadline=25.0), models), emitted)
    assert (raised.value.code, emitted) == ("StreamDeadlineExceeded", [TextDelta("One. ")])
    assert ledger.names == ["admit", "begin", "deliver"]


class Silent(FakeEventStream):
    """A model that goes quiet after its items: its next read returns only once the stream is
    closed (or the test ends), as a socket read waits for the client's read timeout."""

    def __init__(self, items: list[dict[str, Any] | Exception], log: list[tuple[str, str]]) -> None:
        super().__init__(items, log)
        self.reading = threading.Event()
        self.released = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from super().__iter__()
        self.reading.set()
        self.released.wait(60)

    def close(self) -> None:
        super().close()
        self.released.set()


def test_a_model_silent_mid_stream_ends_the_stream_at_its_deadline_not_at_the_read_timeout(bedrock: Bedrock) -> None:
    # The clock stands still: the deadline is 0.3 s of waiting away for every read, and only the
    # silent read takes it. Without the reader's thread the read would block until the stream's
    # close, which nothing would call: the test would wait the Silent's 60 s and then see no error.
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    stream = Silent([delta("One. "), delta("B")], bedrock.log)
    bedrock.stubber.add_response(
        "converse_stream", {"stream": stream}, {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    )
    bedrock.guards("One. ")
    try:
        body = b"".join(openai_sse(flow.stream(a_request(deadline=0.3), models), chunk_id="c", created=1, model="m"))
    finally:
        stream.released.set()
    sent = chunks(body)
    assert json.loads(sent[1])["choices"][0]["delta"] == {"content": "One. "}
    assert json.loads(sent[-1])["error"] == {
        "message": "bedrock-runtime failed with StreamDeadlineExceeded",
        "type": "api_error",
        "param": None,
        "code": "upstream_timeout",
    }
    assert (stream.reading.is_set(), stream.closed) == (True, True)
    assert ledger.names == ["admit", "begin", "deliver"]  # the caller has "One. ": delivered, not released


def test_a_guardrail_check_that_does_not_answer_ends_the_stream_within_the_deadlines_grace(bedrock: Bedrock) -> None:
    clock = ManualClock()
    answering = threading.Event()

    class Late(FakeEventStream):
        def __iter__(self) -> Iterator[dict[str, Any]]:
            for item in super().__iter__():
                clock.now = 10 + STREAM_GUARD_GRACE_SECONDS - 0.3  # read by the deadline (10), checked after it
                yield item

    answered = threading.Event()

    def hangs(**_: Any) -> None:
        answering.wait(60)

    bedrock.client.meta.events.register("before-parameter-build.bedrock-runtime.ApplyGuardrail", hangs)
    bedrock.client.meta.events.register("after-call.bedrock-runtime.ApplyGuardrail", lambda **_: answered.set())
    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger, clock)
    stream = Late([delta("One. "), delta("B")], bedrock.log)
    bedrock.stubber.add_response(
        "converse_stream", {"stream": stream}, {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    )
    bedrock.guards("One. ")  # its answer, once the wait is over: too late
    emitted: list[Any] = []
    try:
        with pytest.raises(UpstreamError) as raised:
            drain(flow.stream(a_request(deadline=10.0), models), emitted)
    finally:
        answering.set()
    assert answered.wait(60)  # the check given up on ends by itself, on its own thread
    assert (raised.value.service, raised.value.code, emitted) == ("bedrock-guardrails", "StreamDeadlineExceeded", [])
    assert (ledger.names, stream.closed) == (["admit", "release"], True)  # nothing was emitted


def test_a_stream_read_past_its_deadline_is_not_read() -> None:
    class Counted:
        reads = 0

        def __iter__(self) -> Iterator[dict[str, Any]]:
            return self

        def __next__(self) -> dict[str, Any]:
            Counted.reads += 1
            return delta("x")

    client = type("Client", (), {"converse_stream": lambda self, **_: {"stream": Counted()}})()
    with pytest.raises(UpstreamError) as raised:
        converse_stream(client, [PRO], deadline=5.0, clock=lambda: 5.0, messages=[])
    assert (raised.value.code, Counted.reads) == ("StreamDeadlineExceeded", 0)


# --- OpenAI server-sent events -----------------------------------------------------------------------


def chunks(body: bytes) -> list[Any]:
    assert body.endswith(b"\n\n")
    lines = body.decode().split("\n\n")[:-1]
    assert all(line.startswith("data: ") for line in lines)
    return [line.removeprefix("data: ") for line in lines]


def test_the_events_as_openai_chunks_with_usage_and_done_last() -> None:
    admission = Admission("r-1", 1, 7, 100, RESETS, False, "w")
    finish = Finish("stop", PRO, 50, 20, admission, 1, "none", ())
    events: list[StreamEvent] = [TextDelta("Hello. "), TextDelta("Bye."), finish]
    body = b"".join(
        openai_sse(
            iter(events),
            chunk_id="chatcmpl-1",
            created=1_700_000_000,
            model="gateway-model",
            include_usage=True,
        )
    )
    data = chunks(body)
    assert data[-1] == "[DONE]"
    parsed = [json.loads(d) for d in data[:-1]]
    assert {(p["id"], p["object"], p["created"], p["model"]) for p in parsed} == {
        ("chatcmpl-1", "chat.completion.chunk", 1_700_000_000, "gateway-model")
    }
    assert [p["choices"][0]["delta"] for p in parsed[:4]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello. "},
        {"content": "Bye."},
        {},
    ]
    assert [p["choices"][0]["finish_reason"] for p in parsed[:4]] == [None, None, None, "stop"]
    assert all(p["usage"] is None for p in parsed[:4])
    assert parsed[4] == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gateway-model",
        "choices": [],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }


def test_without_include_usage_there_is_no_usage_chunk_and_a_failure_is_an_error_event() -> None:
    admission = Admission("r-1", 1, 7, 100, RESETS, False, "w")
    events: list[StreamEvent] = [TextDelta("Hi."), Finish("length", PRO, 1, 2, admission, 1, "none", ())]
    plain = chunks(
        b"".join(
            openai_sse(
                iter(events),
                chunk_id="c",
                created=1,
                model="m",
            )
        )
    )
    assert len(plain) == 4
    assert "usage" not in json.loads(plain[1])
    assert json.loads(plain[2])["choices"][0]["finish_reason"] == "length"

    def failing() -> Iterator[TextDelta]:
        yield TextDelta("Part. ")
        raise UpstreamError("bedrock-runtime", "ModelStreamErrorException", 0)

    failed = chunks(b"".join(openai_sse(failing(), chunk_id="c", created=1, model="m")))
    assert failed[-1] != "[DONE]"
    # OpenAI's error object, as the same failure before the stream would have been answered.
    assert json.loads(failed[-1]) == {
        "error": {
            "message": "bedrock-runtime failed with ModelStreamErrorException",
            "type": "api_error",
            "param": None,
            "code": "upstream_error",
        }
    }

    def throttled() -> Iterator[TextDelta]:
        yield TextDelta("Part. ")
        raise UpstreamError("bedrock-runtime", "ThrottlingException", 429)

    failed = chunks(b"".join(openai_sse(throttled(), chunk_id="c", created=1, model="m")))
    assert json.loads(failed[-1])["error"] == {
        "message": "bedrock-runtime is throttling requests; retry later",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_closing_the_sse_generator_closes_the_events() -> None:
    closed: list[bool] = []

    def events() -> Iterator[TextDelta]:
        try:
            yield TextDelta("A. ")
            yield TextDelta("B. ")
        finally:
            closed.append(True)

    sse = openai_sse(events(), chunk_id="c", created=1, model="m")
    next(sse), next(sse)
    sse.close()
    assert closed == [True]


def test_malformed_fields_in_the_models_events_are_left_out_and_the_stream_still_settles(bedrock: Bedrock) -> None:
    class Malformed(FakeEventStream):
        """Events the service model would not allow, after a valid one (as a broken upstream sends)."""

        def __iter__(self) -> Iterator[dict[str, Any]]:
            yield from super().__iter__()
            yield {"contentBlockDelta": {"delta": {"text": 42}, "contentBlockIndex": 0}}
            yield {"contentBlockDelta": "not a block"}
            yield {"messageStop": ["not", "a", "stop"]}
            yield {"metadata": {"usage": "lots"}}

    ledger = Ledger()
    flow, models = a_flow(bedrock, ledger)
    stream = Malformed([delta("Fine. ")], bedrock.log)
    bedrock.stubber.add_response(
        "converse_stream", {"stream": stream}, {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    )
    bedrock.guards("Fine. ")
    events = list(flow.stream(a_request(), models))
    assert events[0] == TextDelta("Fine. ")
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.input_tokens, finish.output_tokens) == ("stop", 0, 0)
    assert ledger.names == ["admit", "begin", "deliver"]  # metered once, no usage reported


def test_done_reaches_the_reader_before_the_ledgers_record(bedrock: Bedrock) -> None:
    """Metering is not between the answer and the caller: [DONE] is sent, then the stream is
    delivered; a reader that stops right after [DONE] (closes the body) still gets it delivered."""
    for stops_at_done in (False, True):
        bedrock.streams_answer(PRO, answer(["All done."]))
        bedrock.guards("All done.")
        ledger = Ledger()
        flow, models = a_flow(bedrock, ledger)
        stream = flow.stream(a_request(), models)
        body = openai_sse(stream, chunk_id="c", created=1, model=PRO)
        seen: list[tuple[bytes, list[str]]] = []
        for chunk in body:
            seen.append((chunk, list(ledger.names)))
            if chunk == b"data: [DONE]\n\n" and stops_at_done:
                body.close()
                break
        done, at_done = seen[-1]
        assert done == b"data: [DONE]\n\n"
        assert at_done == ["admit", "begin"]  # no record yet when the caller has the whole answer
        assert ledger.names == ["admit", "begin", "deliver"]  # and delivered once after it
