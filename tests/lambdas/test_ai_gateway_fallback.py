"""The one AWS error classification (shared.aws_errors) and the one converse-with-fallback
(shared.converse) every model call goes through, and the gateway's answers built on them.

The agent's turn (test_agent.py) and the prototype query API (test_prototype_query.py) prove
the same codes on their own paths.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from botocore.eventstream import ParserError
from botocore.exceptions import ClientError, ParamValidationError, ReadTimeoutError
from botocore.stub import ANY, Stubber

from ai_gateway import handler
from shared.aws_errors import INVALID_RESPONSE, Kind, UpstreamError, call, classify
from shared.converse import converse
from tests.lambdas.bedrock_fakes import answering_raw, converse_answer
from tests.lambdas.conftest import FakeContext, http_result
from tests.lambdas.gateway_fixtures import Gateway, converse_ok, guard_input, guard_output, rest_event

PRO, LITE, MICRO = "amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"
# (error code, HTTP status) AWS answers with when another model may still answer.
THROTTLING = [
    ("ThrottlingException", 429),
    ("TooManyRequestsException", 429),
    ("ServiceQuotaExceededException", 400),  # Bedrock's status for it: the code decides
]
PLAIN_5XX = [("InternalFailure", 500), ("ServiceUnavailable", 503)]  # codes no list names: the status decides
SERVER_ERRORS = [
    ("ServiceUnavailableException", 503),
    ("InternalServerException", 500),
    ("ModelNotReadyException", 429),
    ("ModelTimeoutException", 408),
    ("ModelErrorException", 424),  # the model failed processing the request: often once
]
FALLS_BACK = THROTTLING + PLAIN_5XX + SERVER_ERRORS
REJECTED = [("ValidationException", 400), ("AccessDeniedException", 403), ("ResourceNotFoundException", 404)]


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        *[(code, status, Kind.THROTTLED) for code, status in THROTTLING],
        *[(code, status, Kind.UNAVAILABLE) for code, status in PLAIN_5XX + SERVER_ERRORS],
        *[(code, status, Kind.REJECTED) for code, status in REJECTED],
        ("SomethingNew", 429, Kind.THROTTLED),
        ("Unknown", 0, Kind.FAILED),
    ],
)
def test_a_failure_is_classified_by_its_code_then_its_status(code: str, status: int, kind: Kind) -> None:
    assert classify(code, status) is kind


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (UpstreamError("s", "ThrottlingException", 400), 429, ("throttled", "s is throttling requests; retry later")),
        (UpstreamError("s", "InternalFailure", 500), 502, ("upstream_error", "s failed with InternalFailure")),
        (
            UpstreamError("s", "AccessDeniedException", 403, caller_facing=True),
            403,
            ("upstream_rejected", "s rejected the request with AccessDeniedException"),
        ),
        # A model call refused for the platform's set-up (shared.aws_errors.PLATFORM_REJECTIONS).
        (
            UpstreamError("bedrock-runtime", "AccessDeniedException", 403, caller_facing=True).as_platforms(),
            502,
            ("upstream_error", "bedrock-runtime failed with AccessDeniedException"),
        ),
        (
            UpstreamError("bedrock-runtime", "ValidationException", 400, caller_facing=True).as_platforms(),
            400,
            ("upstream_rejected", "bedrock-runtime rejected the request with ValidationException"),
        ),
        (
            UpstreamError("s", "AccessDeniedException", 403, caller_facing=True).as_platforms(),
            403,  # a service without a rule: as it was
            ("upstream_rejected", "s rejected the request with AccessDeniedException"),
        ),
        (
            UpstreamError("s", "ValidationException", 400, caller_facing=True),
            400,
            ("upstream_rejected", "s rejected the request with ValidationException"),
        ),
        (
            UpstreamError("s", "Odd", 0, Kind.REJECTED, caller_facing=True),
            400,
            ("upstream_rejected", "s rejected the request with Odd"),
        ),
        (UpstreamError("s", "ParamValidationError", 0), 502, ("upstream_error", "s failed with ParamValidationError")),
        # The platform's own services: their rejection is the platform's fault, not the caller's.
        (
            UpstreamError("s", "AccessDeniedException", 403),
            502,
            ("upstream_error", "s failed with AccessDeniedException"),
        ),
        (UpstreamError("s", "ValidationException", 400), 502, ("upstream_error", "s failed with ValidationException")),
    ],
)
def test_what_a_caller_is_answered_for_each_kind(error: UpstreamError, status: int, body: tuple[str, str]) -> None:
    assert (error.http_status, (error.error_code, error.public_message)) == (status, body)
    assert error.retryable == (error.kind in (Kind.THROTTLED, Kind.UNAVAILABLE))


@pytest.mark.parametrize(
    ("reasons", "kind"),
    [
        (["None", "ThrottlingError"], Kind.THROTTLED),
        (["TransactionConflict", "None"], Kind.UNAVAILABLE),
        (["ProvisionedThroughputExceeded"], Kind.THROTTLED),
        (["ConditionalCheckFailed", "None"], Kind.REJECTED),
    ],
)
def test_a_transaction_cancelled_for_a_transient_reason_is_retryable(reasons: list[str], kind: Kind) -> None:
    error = ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
            "CancellationReasons": [{"Code": reason} for reason in reasons],
        },
        "TransactWriteItems",
    )
    upstream = UpstreamError.from_exception("dynamodb", error)
    assert upstream.kind is kind
    assert upstream.http_status == (429 if kind is Kind.THROTTLED else 502)


def answers(stubber: Stubber, model: str, text: str = "Hi.") -> None:
    stubber.add_response(
        "converse",
        converse_answer([{"text": text}], input_tokens=3, output_tokens=1, latency_ms=1),
        {"modelId": model, "messages": ANY},
    )


def fails(stubber: Stubber, model: str, code: str, status: int) -> None:
    stubber.add_client_error(
        "converse",
        service_error_code=code,
        http_status_code=status,
        expected_params={"modelId": model, "messages": ANY},
    )


MESSAGES = [{"role": "user", "content": [{"text": "Hello?"}]}]


def test_the_status_comes_from_the_errors_response_metadata(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    fails(stubber, PRO, "NeverSeenBefore", 503)
    with pytest.raises(UpstreamError) as raised, call("bedrock-runtime"):
        client.converse(modelId=PRO, messages=MESSAGES)
    assert (raised.value.service, raised.value.code, raised.value.status) == ("bedrock-runtime", "NeverSeenBefore", 503)
    assert raised.value.kind is Kind.UNAVAILABLE


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ReadTimeoutError(endpoint_url="https://bedrock-runtime"), Kind.UNAVAILABLE),
        (ParamValidationError(report="bad"), Kind.FAILED),
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "Converse"), Kind.THROTTLED),
    ],
)
def test_sdk_failures_are_classified_too(error: Exception, kind: Kind) -> None:
    with pytest.raises(UpstreamError) as raised, call("bedrock-runtime"):
        raise error
    assert raised.value.kind is kind


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (
            urllib3.exceptions.ReadTimeoutError(
                urllib3.HTTPSConnectionPool("bedrock-runtime.us-east-1.amazonaws.com"),
                "/model/m/converse-stream",
                "Read timed out.",
            ),
            "ReadTimeoutError",
            Kind.UNAVAILABLE,
        ),
        (
            urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError(104, "reset")),
            "ConnectionClosedError",
            Kind.UNAVAILABLE,
        ),
        (ParserError("corrupt frame"), INVALID_RESPONSE, Kind.FAILED),
    ],
)
def test_what_fails_while_an_event_stream_is_read_is_the_upstreams_failure(
    error: Exception, code: str, kind: Kind
) -> None:
    """botocore does not wrap a failure while an event stream's events are read from urllib3's
    response (ConverseStream): timed out, broken, corrupt. Each is the upstream's, as when calling."""
    with pytest.raises(UpstreamError) as raised, call("bedrock-runtime"):
        raise error
    assert (raised.value.code, raised.value.kind) == (code, kind)


@pytest.mark.parametrize(
    "changes",
    [
        {"usage": {"inputTokens": "x", "outputTokens": 1, "totalTokens": 2}},  # int(): ValueError
        {"metrics": {"latencyMs": "1e400"}},  # written as a number: int() of infinity, OverflowError
        {"usage": {"inputTokens": [1], "outputTokens": 1, "totalTokens": 2}},  # int(): TypeError
        {"usage": "abc"},  # an object's .get() on text: AttributeError
        {"metrics": 5},
    ],
    ids=["a count of text", "a count past a float", "a count of a list", "usage of text", "metrics of a number"],
)
def test_an_answer_botocore_cannot_parse_is_the_upstreams_invalid_response(changes: dict[str, Any]) -> None:
    """botocore's parser reads numbers with int() and float(), whose errors are not botocore's."""
    body = json.dumps({**converse_answer([{"text": "hi"}]), **changes}).replace('"1e400"', "1e400").encode()
    client = answering_raw("bedrock-runtime", "Converse", body)
    with pytest.raises(UpstreamError) as raised, call("bedrock-runtime"):
        client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "q"}]}])
    assert (raised.value.code, raised.value.kind, raised.value.http_status) == (INVALID_RESPONSE, Kind.FAILED, 502)


def test_the_same_errors_raised_by_the_callers_own_code_in_the_block_stay_its_own() -> None:
    """Only what botocore's parser raised is the upstream's: the caller's own bug stays a bug."""
    with pytest.raises(ValueError, match="invalid literal"), call("bedrock-runtime"):
        int("not a number")


@pytest.mark.parametrize(("code", "status"), FALLS_BACK)
def test_converse_falls_back_in_order_on_throttling_and_server_errors(
    code: str, status: int, bedrock: tuple[Any, Stubber]
) -> None:
    client, stubber = bedrock
    fails(stubber, PRO, code, status)
    fails(stubber, LITE, code, status)
    answers(stubber, MICRO, "From micro.")
    answered = converse(client, [PRO, LITE, MICRO], deadline=None, messages=MESSAGES)
    assert (answered.model, answered.fell_back_from, answered.text) == (MICRO, (PRO, LITE), "From micro.")
    assert (answered.input_tokens, answered.output_tokens) == (3, 1)


@pytest.mark.parametrize(("code", "status"), REJECTED)
def test_converse_never_retries_a_rejected_request(code: str, status: int, bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    fails(stubber, PRO, code, status)  # and nothing for LITE: asking it would fail the stubber
    with pytest.raises(UpstreamError) as raised:
        converse(client, [PRO, LITE], deadline=None, messages=MESSAGES)
    assert (raised.value.kind, raised.value.http_status) == (Kind.REJECTED, status)
    # The gateway passes on only the conversation's own refusal; access and region are the platform's.
    expected = 400 if code == "ValidationException" else 502
    assert raised.value.as_platforms().http_status == expected


def test_the_last_models_failure_is_raised_with_its_classification(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    fails(stubber, PRO, "ThrottlingException", 429)
    fails(stubber, LITE, "InternalFailure", 500)
    with pytest.raises(UpstreamError) as raised:
        converse(client, [PRO, LITE], deadline=None, messages=MESSAGES)
    assert (raised.value.code, raised.value.kind, raised.value.http_status) == (
        "InternalFailure",
        Kind.UNAVAILABLE,
        502,
    )


@pytest.mark.parametrize(("now", "falls_back"), [(70.0, True), (70.5, False)])
def test_another_model_is_tried_only_while_a_whole_attempt_fits_before_the_deadline(
    now: float, falls_back: bool, bedrock: tuple[Any, Stubber]
) -> None:
    client, stubber = bedrock
    fails(stubber, PRO, "ThrottlingException", 429)

    def ask() -> str:
        return converse(
            client, [PRO, LITE], deadline=90.0, attempt_seconds=20, clock=lambda: now, messages=MESSAGES
        ).model

    if falls_back:  # 20 s left: one whole attempt
        answers(stubber, LITE)
        assert ask() == LITE
    else:
        with pytest.raises(UpstreamError, match="ThrottlingException"):
            ask()


def test_no_models_is_a_programming_error(bedrock: tuple[Any, Stubber]) -> None:
    with pytest.raises(ValueError, match="at least one model"):
        converse(bedrock[0], [], deadline=None, messages=MESSAGES)


# --- the gateway's model path --------------------------------------------------------------------


def chat() -> dict[str, Any]:
    return rest_event("POST", "/v1/chat", {"messages": [{"role": "user", "content": "Hello?"}]})


@pytest.mark.parametrize(("code", "status"), THROTTLING + PLAIN_5XX)
def test_the_gateway_falls_back_on_each_throttling_code_and_a_plain_5xx(
    code: str, status: int, gateway: Gateway
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error(
        "converse",
        service_error_code=code,
        http_status_code=status,
        expected_params={"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY},
    )
    converse_ok(gateway.bedrock, LITE, "Hi from lite.")
    guard_output(gateway.bedrock, "Hi from lite.")
    result = http_result(handler.lambda_handler(chat(), FakeContext()))
    assert (result.status, result.body["model"], result.body["output"]) == (200, LITE, "Hi from lite.")


def test_the_gateway_answers_the_callers_rejected_model_call_with_a_400_json(gateway: Gateway) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error("converse", service_error_code="ValidationException", http_status_code=400)
    result = http_result(handler.lambda_handler(chat(), FakeContext()))
    assert (result.status, result.body) == (
        400,
        {"error": "upstream_rejected", "message": "bedrock-runtime rejected the request with ValidationException"},
    )
    assert result.headers["x-should-retry"] == "false"  # the same request is refused again


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 403),  # the account or the role has no access to the model
        ("ResourceNotFoundException", 404),  # the model is not served in the region
        ("UnrecognizedClientException", 403),  # the platform's credentials
        ("AccessDeniedException", 400),  # by its code whatever the status
        ("SomethingNew", 403),  # a status Bedrock does not refuse a conversation with
    ],
)
def test_a_model_call_refused_for_the_platforms_set_up_is_a_final_502_and_no_model_is_tried_after_it(
    code: str, status: int, gateway: Gateway
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error("converse", service_error_code=code, http_status_code=status)
    result = http_result(handler.lambda_handler(chat(), FakeContext()))
    assert (result.status, result.body) == (
        502,
        {"error": "upstream_error", "message": f"bedrock-runtime failed with {code}"},
    )
    assert result.headers["x-should-retry"] == "false"  # asking again cannot help
    assert "Retry-After" not in result.headers
