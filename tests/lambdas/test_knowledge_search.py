"""knowledge_search against botocore's Stubber: the classification filter is always sent."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from knowledge_search.handler import search
from shared.telemetry import CONVERSATION, STAGES_MESSAGE

KB = "KBPROD1234"


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("bedrock-agent-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expected(query: str, classifications: list[str], results: int = 5) -> dict[str, Any]:
    return {
        "knowledgeBaseId": KB,
        "retrievalQuery": {"text": query},
        "retrievalConfiguration": {
            "vectorSearchConfiguration": {
                "numberOfResults": results,
                "filter": {"in": {"key": "classification", "value": classifications}},
            }
        },
    }


def test_every_search_carries_the_callers_classification_filter(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "retrieve",
        {
            "retrievalResults": [
                {
                    "content": {"text": "Refunds   within\\n30 days."},
                    "location": {"type": "S3", "s3Location": {"uri": "s3://curated/policy.pdf"}},
                    "score": 0.82,
                    "metadata": {"classification": "public"},
                }
            ]
        },
        expected("refund policy", ["public", "customer"], 3),
    )
    result = search(
        client, KB, {"query": "refund policy", "max_results": 3, "data_classifications": ["public", "customer"]}
    )
    assert result == {
        "passages": [
            {
                "excerpt": "Refunds within\\n30 days.",
                "source": "s3://curated/policy.pdf",
                "score": 0.82,
                "classification": "public",
            }
        ],
        "returned": 1,
    }


@pytest.mark.parametrize("arguments", [{"query": "x"}, {"query": "x", "data_classifications": []}])
def test_a_search_without_classifications_is_refused_not_run_unfiltered(
    arguments: dict[str, Any], stubbed: Any
) -> None:
    client, _ = stubbed  # no response queued: any AWS call would fail the test
    result = search(client, KB, arguments)
    assert result["error"]["kind"] == "forbidden"
    assert result["error"]["message"].startswith("data_classifications:")


def test_bad_arguments_are_invalid_argument_naming_each(stubbed: Any) -> None:
    client, _ = stubbed
    result = search(client, KB, {"query": "", "data_classifications": ["public"], "path": "/", "body": "x"})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"] == (  # an unknown key is named even where a request's envelope has one
        "query: String should have at least 1 character; path: Extra inputs are not permitted; "
        "body: Extra inputs are not permitted"
    )


def test_a_search_is_one_retrieval_stage_of_its_conversation(stubbed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed
    stubber.add_response("retrieve", {"retrievalResults": []}, expected("q", ["public"]))
    capsys.readouterr()
    search(client, KB, {"query": "q", "data_classifications": ["public"], "conversation_id": "conv-1"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (record,) = [line for line in lines if line.get("message") == STAGES_MESSAGE]
    assert record[CONVERSATION] == "conv-1"
    (stage,) = record["stages"]
    assert {key: stage[key] for key in ("stage", "gen_ai.operation.name", "gen_ai.data_source.id", "outcome")} == {
        "stage": "retrieval",
        "gen_ai.operation.name": "retrieve",
        "gen_ai.data_source.id": KB,
        "outcome": "ok",
    }
    (metrics,) = [line for line in lines if line.get("Stage") == "retrieval"]
    assert (metrics["StageRequests"], metrics["StageErrors"]) == ([1.0], [0.0])


class Unreachable:
    """A Bedrock runtime client that cannot connect."""

    def retrieve(self, **_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://bedrock-agent-runtime.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 429), ("InternalFailure", 500), ("EndpointConnectionError", None)],
    ids=["modelled error", "unmodelled error", "no connection"],
)
def test_a_retrieve_failure_is_upstream_unavailable_and_an_error_stage(
    stubbed: Any, capsys: pytest.CaptureFixture[str], code: str, status: int | None
) -> None:
    client, stubber = stubbed
    if status is None:
        client = Unreachable()
    else:
        stubber.add_client_error("retrieve", service_error_code=code, http_status_code=status)
    capsys.readouterr()
    result = search(client, KB, {"query": "q", "data_classifications": ["public"]})
    assert result["error"] == {
        "kind": "upstream_unavailable",
        "message": f"knowledge base failed with {code}",
        "advice": "The system behind this tool is unavailable; retry after retry_after seconds.",
        "retry_after": 5,
    }
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (warning,) = [line for line in lines if line.get("level") == "WARNING"]
    assert (warning["message"], warning["code"]) == ("retrieve failed", code)
    (record,) = [line for line in lines if line.get("message") == STAGES_MESSAGE]
    (stage,) = record["stages"]
    assert (stage["outcome"], stage["outcome.reason"]) == ("error", code)
    (metrics,) = [line for line in lines if line.get("Stage") == "retrieval"]
    assert metrics["StageErrors"] == [1.0]
