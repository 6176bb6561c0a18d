"""No output leaves the gateway without its units charged (issue 15, the sweeper: "without ever
letting a delivered output be released"), against moto's DynamoDB and the real ledger.

A buffered output is handed over only once the ledger has it delivered: when its record fails,
the units are released and the caller gets the 502 (or the output, when the write landed and only
its answer was lost). A stream is marked delivering before its first text leaves, so a stream whose
record fails, or whose function dies, is settled as delivered by the sweeper, never released.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError
from moto import mock_aws

from ai_gateway import sweeper
from ai_gateway.agents import AgentClient
from ai_gateway.contract import SERVICE
from ai_gateway.flow import Clock
from ai_gateway.guardrail import Guard
from ai_gateway.ledger import Ledger
from ai_gateway.router import ModelRouter
from ai_gateway.streaming import Finish, StreamEvent, StreamingFlow, TextDelta
from ai_gateway.telemetry import Telemetry
from shared.aws_errors import UpstreamError
from tests.lambdas.bedrock_fakes import answer
from tests.lambdas.gateway_fixtures import PRO, TABLE, AnsweringBedrock, ledger_table
from tests.lambdas.test_ai_gateway import a_request
from tests.lambdas.test_streaming import Bedrock, a_flow as streaming_flow, a_request as streamed_request

NOW = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)  # past any sweeper bound
GROUP, USER, REQUEST = "customer-gold", "u", "r-1"
COUNTER = {"pk": {"S": "QUOTA#customer-gold#chat#2026-12"}}


def server_error(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "InternalServerError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, operation
    )


class FaultyLedger(Ledger):
    """The real ledger, whose named calls fail: ``lost`` ones after their write landed (the
    answer lost on the way back), ``failed`` ones before it."""

    def __init__(self, client: Any, *, failed: frozenset[str] = frozenset(), lost: frozenset[str] = frozenset()):
        super().__init__(client, TABLE)
        self.failed, self.lost = failed, lost

    def _call(self, name: str, write: Any, *args: Any, **kwargs: Any) -> Any:
        if name in self.failed:
            raise server_error(name)
        result = write(*args, **kwargs)
        if name in self.lost:
            raise server_error(name)
        return result

    def deliver(self, *args: Any, **kwargs: Any) -> None:
        self._call("deliver", super().deliver, *args, **kwargs)

    def release(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("release", super().release, *args, **kwargs))

    def record(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        return self._call("record", super().record, *args, **kwargs)  # type: ignore[no-any-return]

    def begin_delivery(self, *args: Any, **kwargs: Any) -> None:
        self._call("begin_delivery", super().begin_delivery, *args, **kwargs)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield ledger_table()


def flow(ledger: Ledger, bedrock: Any = None) -> StreamingFlow:
    bedrock = bedrock or AnsweringBedrock()
    return StreamingFlow(
        ledger=ledger,
        guard=Guard(bedrock, guardrail_id="g", version="1"),
        models=ModelRouter(bedrock, attempt_seconds=20, clock=lambda: 0.0),
        agents=AgentClient("http://127.0.0.1:9", {}),
        telemetry=Telemetry(Metrics(service=SERVICE), Logger()),
        clock=Clock(now=lambda: NOW, monotonic=lambda: 0.0),
    )


def status(dynamodb: Any) -> str:
    record = Ledger(dynamodb, TABLE).record(REQUEST, group=GROUP, user=USER)
    assert record is not None
    return str(record["status"]["S"])


def used(dynamodb: Any) -> int:
    return int(dynamodb.get_item(TableName=TABLE, Key=COUNTER)["Item"]["used"]["N"])


def sweep(dynamodb: Any) -> sweeper.Sweep:
    return sweeper.sweep(Ledger(dynamodb, TABLE), now=LATER, bound_seconds=1200, page_limit=10)


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


# --- a buffered output --------------------------------------------------------------------------


def test_an_output_whose_delivery_is_not_recorded_is_withheld_and_its_units_released(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UpstreamError) as raised:
        flow(FaultyLedger(dynamodb, failed=frozenset({"deliver"}))).generate(a_request())
    assert (raised.value.service, raised.value.http_status) == ("dynamodb", 502)
    assert (status(dynamodb), used(dynamodb)) == ("released", 0)
    assert sweep(dynamodb) == sweeper.Sweep(candidates=0, released=0, failed=0)
    lines = logged(capsys)
    (behind,) = [line for line in lines if line.get("message") == "delivery not recorded"]
    assert (behind["request_id"], behind["code"]) == (REQUEST, "InternalServerError")
    (withheld,) = [line for line in lines if line.get("message", "").startswith("output withheld")]
    assert (withheld["request_id"], withheld["units"]) == (REQUEST, "released")
    # One metric line by service alone, which the MeteringErrors alarm reads across groups.
    (metric,) = [line for line in lines if "MeteringErrors" in line]
    assert metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert (metric["service"], metric["MeteringErrors"]) == ("ai_gateway", [1.0])


def test_a_delivery_recorded_though_its_answer_was_lost_hands_the_output_over(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    delivery = flow(FaultyLedger(dynamodb, lost=frozenset({"deliver"}))).generate(a_request())
    assert (delivery.body()["output"], delivery.body()["units"]) == ("Hi.", 1)
    assert (status(dynamodb), used(dynamodb)) == ("delivered", 1)
    # Counted as delivered (Outputs, Units, tokens), as the ledger has it.
    (delivered,) = [line for line in logged(capsys) if line.get("message") == "output delivered"]
    assert delivered["request_id"] == REQUEST


@pytest.mark.parametrize(
    ("failed", "after"),
    [
        (frozenset({"deliver", "release"}), "admitted"),  # the units are the sweeper's to release
        (frozenset({"deliver", "record"}), "released"),  # released, but not known to be: withheld
    ],
    ids=["the release fails", "the record cannot be read"],
)
def test_an_output_not_known_to_be_delivered_is_withheld(
    dynamodb: Any, failed: frozenset[str], after: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = FaultyLedger(dynamodb, failed=failed)
    if "record" in failed:  # the release happened, and its answer said it did not
        ledger.lost = frozenset({"release"})
    with pytest.raises(UpstreamError):
        flow(ledger).generate(a_request())
    assert status(dynamodb) == after
    (withheld,) = [line for line in logged(capsys) if line.get("message", "").startswith("output withheld")]
    assert withheld["units"] == "left to the sweeper"
    sweep(dynamodb)
    assert (status(dynamodb), used(dynamodb)) == ("released", 0)  # nothing handed over, nothing charged


def test_a_release_that_loses_a_race_to_a_delivery_hands_the_output_over(dynamodb: Any) -> None:
    """The deliver that seemed to fail had landed: release finds the request settled, and the
    ledger's record says delivered."""
    ledger = FaultyLedger(dynamodb, lost=frozenset({"deliver"}))
    assert flow(ledger).generate(a_request()).body()["output"] == "Hi."
    assert status(dynamodb) == "delivered"
    assert sweep(dynamodb).released == 0


# --- a stream -----------------------------------------------------------------------------------

TEXT = "Hello there."


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    """ConverseStream answering one sentence, which the output guardrail passes."""
    fake = Bedrock()
    with fake.stubber:
        fake.streams_answer(PRO, answer([TEXT]))
        fake.guards(TEXT)
        yield fake


def streaming(ledger: Ledger, bedrock: Bedrock) -> Iterator[StreamEvent]:
    flow, models = streaming_flow(bedrock, ledger)  # type: ignore[arg-type]
    return iter(flow.stream(streamed_request(), models))


def test_a_stream_is_delivering_once_its_first_text_has_left(dynamodb: Any, bedrock: Bedrock) -> None:
    events = streaming(Ledger(dynamodb, TABLE), bedrock)
    assert status(dynamodb) == "admitted"
    assert next(events) == TextDelta(TEXT)
    assert status(dynamodb) == "delivering"
    # The function dies here (its timeout): the sweeper settles the delivery, and keeps the units.
    assert sweep(dynamodb) == sweeper.Sweep(candidates=1, released=0, failed=0, settled=1)
    assert (status(dynamodb), used(dynamodb)) == ("delivered", 1)
    record = Ledger(dynamodb, TABLE).record(REQUEST, group=GROUP, user=USER) or {}
    assert record["settled_by"] == {"S": "sweeper"}
    assert sweep(dynamodb).candidates == 0  # settled once


def test_a_stream_whose_record_fails_is_settled_as_delivered_not_released(dynamodb: Any, bedrock: Bedrock) -> None:
    events = list(streaming(FaultyLedger(dynamodb, failed=frozenset({"deliver"})), bedrock))
    assert [event for event in events if isinstance(event, TextDelta)] == [TextDelta(TEXT)]
    assert status(dynamodb) == "delivering"
    assert sweep(dynamodb).settled == 1
    assert (status(dynamodb), used(dynamodb)) == ("delivered", 1)


def test_a_stream_that_cannot_be_marked_sends_no_text_and_releases_its_units(dynamodb: Any, bedrock: Bedrock) -> None:
    sent: list[StreamEvent] = []
    with pytest.raises(UpstreamError) as raised:
        sent.extend(streaming(FaultyLedger(dynamodb, failed=frozenset({"begin_delivery"})), bedrock))
    assert (sent, raised.value.service) == ([], "dynamodb")
    assert (status(dynamodb), used(dynamodb)) == ("released", 0)


def test_a_finished_stream_is_delivered_with_its_tokens(dynamodb: Any, bedrock: Bedrock) -> None:
    list(streaming(Ledger(dynamodb, TABLE), bedrock))
    record = Ledger(dynamodb, TABLE).record(REQUEST, group=GROUP, user=USER) or {}
    assert (record["status"], record["output_tokens"]) == ({"S": "delivered"}, {"N": "400"})
    assert "settled_by" not in record
    assert sweep(dynamodb).candidates == 0


def admit(ledger: Ledger, request_id: str = REQUEST, now: dt.datetime = NOW) -> None:
    """One unit of the chat output type admitted for the caller, under ``request_id``."""
    ledger.admit(
        request_id=request_id,
        group=GROUP,
        user=USER,
        output_type="chat",
        units=1,
        limit=10,
        period="MONTH",
        unit_price_usd=0.01,
        now=now,
    )


def marked(dynamodb: Any) -> Ledger:
    """The ledger with the request admitted (one unit) and marked delivering."""
    ledger = Ledger(dynamodb, TABLE)
    admit(ledger)
    ledger.begin_delivery(REQUEST, group=GROUP, user=USER)
    return ledger


def test_a_mark_whose_answer_was_lost_may_be_made_again(dynamodb: Any) -> None:
    """botocore retries a write whose answer was lost: marking a delivering request again is no
    change, so the retry does not fail the stream."""
    ledger = marked(dynamodb)
    ledger.begin_delivery(REQUEST, group=GROUP, user=USER)  # the retry
    assert status(dynamodb) == "delivering"
    ledger.deliver(REQUEST, group=GROUP, user=USER, model=PRO, input_tokens=1, output_tokens=2)
    assert (status(dynamodb), used(dynamodb)) == ("delivered", 1)


def test_a_stream_whose_mark_landed_but_seemed_to_fail_sends_nothing_and_is_released(
    dynamodb: Any, bedrock: Bedrock
) -> None:
    """Its own function knows none of its text left: it releases the request it marked, which the
    sweeper would otherwise have settled as delivered (units charged for nothing)."""
    sent: list[StreamEvent] = []
    with pytest.raises(UpstreamError):
        sent.extend(streaming(FaultyLedger(dynamodb, lost=frozenset({"begin_delivery"})), bedrock))
    assert sent == []
    assert (status(dynamodb), used(dynamodb)) == ("released", 0)
    assert sweep(dynamodb).candidates == 0


def test_only_the_function_that_marked_a_request_releases_it_from_delivering(dynamodb: Any) -> None:
    ledger = marked(dynamodb)
    release = functools.partial(
        ledger.release, REQUEST, group=GROUP, user=USER, output_type="chat", units=1, window="2026-12"
    )
    assert not release()  # the sweeper's, the worker's, any other's
    assert release(marked=True)
    assert (status(dynamodb), used(dynamodb)) == ("released", 0)
    with pytest.raises(ClientError):  # settled: not marked again
        ledger.begin_delivery(REQUEST, group=GROUP, user=USER)


@pytest.fixture
def cut_at_its_limit() -> Iterator[Bedrock]:
    """ConverseStream stopping at its token limit before any text: nothing to guard."""
    fake = Bedrock()
    with fake.stubber:
        fake.streams_answer(PRO, answer([], stop="max_tokens"))
        yield fake


def test_a_stream_cut_at_its_limit_before_any_text_is_charged_as_marked_even_if_unrecorded(
    dynamodb: Any, cut_at_its_limit: Bedrock
) -> None:
    """Its Finish tells the caller it was charged: it is marked first, so a record that fails
    leaves it for the sweeper to settle, never to release."""
    events = list(streaming(FaultyLedger(dynamodb, failed=frozenset({"deliver"})), cut_at_its_limit))
    (finish,) = events
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.units) == ("length", 1)
    assert status(dynamodb) == "delivering"
    assert sweep(dynamodb).settled == 1
    assert (status(dynamodb), used(dynamodb)) == ("delivered", 1)


# --- what DynamoDB refuses and moto does not -------------------------------------------------------

EXPRESSIONS = ("UpdateExpression", "ConditionExpression", "KeyConditionExpression", "ProjectionExpression")


def unused_placeholders(params: dict[str, Any]) -> list[str]:
    """The ExpressionAttributeNames and Values one request (or transaction item) names that no
    expression of it uses: DynamoDB refuses such a request (ValidationException), moto does not."""
    used = " ".join(str(params.get(name, "")) for name in EXPRESSIONS)
    named = [*params.get("ExpressionAttributeNames", {}), *params.get("ExpressionAttributeValues", {})]
    return [key for key in named if not re.search(rf"{re.escape(key)}(?![\w])", used)]


def test_every_ledger_write_names_only_the_placeholders_its_expressions_use(dynamodb: Any) -> None:
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        items = params.get("TransactItems")
        sent.extend(next(iter(item.values())) for item in items) if items else sent.append(params)

    dynamodb.meta.events.register("provide-client-params.dynamodb.*", record)
    ledger = Ledger(dynamodb, TABLE)
    release = functools.partial(ledger.release, group=GROUP, user=USER, output_type="chat", units=1, window="2026-12")
    for request_id, marked in (("plain", False), ("marked", True)):
        admit(ledger, request_id)
        if marked:
            ledger.begin_delivery(request_id, group=GROUP, user=USER)
        assert release(request_id, marked=marked)
    admit(ledger, "delivered")
    ledger.deliver("delivered", group=GROUP, user=USER, model=PRO, input_tokens=1, output_tokens=2)
    admit(ledger, "settled", NOW - dt.timedelta(hours=1))
    ledger.begin_delivery("settled", group=GROUP, user=USER)
    assert sweep(dynamodb).settled == 1
    assert ledger.usage(GROUP, {"chat": (10, "MONTH")}, NOW)[0].used == 2
    kinds = {tuple(sorted(k for k in params if k in EXPRESSIONS)) for params in sent}
    assert len(kinds) >= 4  # updates, conditions, key conditions and projections were all seen
    assert {
        json.dumps(params, default=str)[:80]: unused_placeholders(params)
        for params in sent
        if unused_placeholders(params)
    } == {}
