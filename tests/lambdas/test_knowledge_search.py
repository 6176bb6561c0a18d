"""knowledge_search against botocore's Stubber: the classification filter is always sent."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from knowledge_search.handler import search

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


def test_bad_arguments_are_invalid_argument(stubbed: Any) -> None:
    client, _ = stubbed
    result = search(client, KB, {"query": "", "data_classifications": ["public"], "top": 3})
    assert result["error"]["kind"] == "invalid_argument"


def test_a_retrieve_failure_is_upstream_unavailable(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_client_error("retrieve", service_error_code="ThrottlingException", http_status_code=429)
    result = search(client, KB, {"query": "q", "data_classifications": ["public"]})
    assert result["error"] == {
        "kind": "upstream_unavailable",
        "message": "knowledge base failed with ThrottlingException",
        "advice": "The system behind this tool is unavailable; retry after retry_after seconds.",
        "retry_after": 5,
    }
