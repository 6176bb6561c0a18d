"""Runtime documents (lambdas/shared/runtime_config.py): their AppConfig validators, and how a
function reads them: once per version, the last good version kept, a refusal counted.

The documents of the deployment in use, read from the synthesized templates, are checked in
tests/infra/test_runtime_config.py; here each document model and the reader on their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.stub import Stubber
from pydantic import Field

from ai_gateway.contract import GatewayPolicy
from gateway_authorizer.contract import ApiKeys
from ingestion.contract import ClassificationReaders
from legacy_tools.contract import SingleCallTools
from pre_token.contract import GatewayGroups
from shared.runtime_config import (
    DRAFT_04,
    ConfigLocation,
    DocumentReader,
    RuntimeConfigError,
    RuntimeDocument,
    appconfig_fetch,
)
from tests.aws_stubs import appconfig_configuration
from tool_guard.contract import ToolBindings

DOCUMENTS: list[type[RuntimeDocument]] = [
    GatewayPolicy,
    ApiKeys,
    GatewayGroups,
    ToolBindings,
    SingleCallTools,
    ClassificationReaders,
]
LOCATION = ConfigLocation(application="app1", environment="env1", profile="prof1", environment_name="tools")


class Limits(RuntimeDocument):
    limits: dict[str, int] = Field(min_length=1)
    ratio: float = Field(gt=0, lt=1, default=0.5)
    mode: str = Field(default="on", pattern="^(on|off)$")


@pytest.mark.parametrize("model", DOCUMENTS, ids=lambda m: m.__name__)
def test_every_documents_validator_is_a_draft_4_schema(model: type[RuntimeDocument]) -> None:
    schema = model.validator_schema()
    assert schema["$schema"] == DRAFT_04
    jsonschema.Draft4Validator.check_schema(schema)
    assert "$defs" not in json.dumps(schema)  # draft 4 names them definitions


def test_the_draft_4_schema_refuses_what_the_model_refuses() -> None:
    validator = jsonschema.Draft4Validator(Limits.validator_schema())
    assert validator.is_valid({"limits": {"a": 1}})
    bad: dict[str, Any]
    for bad in (
        {},  # required
        {"limits": {}},  # min_length
        {"limits": {"a": "1"}},  # type
        {"limits": {"a": 1}, "ratio": 0},  # exclusive minimum, in draft 4's form
        {"limits": {"a": 1}, "ratio": 1},
        {"limits": {"a": 1}, "mode": "maybe"},  # pattern
        {"limits": {"a": 1}, "extra": True},  # nothing undeclared
    ):
        assert not validator.is_valid(bad), bad


class CountingFetch:
    """AppConfig as the reader sees it: the same object while cached, a new one per version."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self, location: ConfigLocation) -> str:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self.text


def reader(fetch: CountingFetch, refusals: list[str]) -> DocumentReader[Limits]:
    return DocumentReader(LOCATION, Limits, fetch=fetch, refused=lambda _, why: refusals.append(why))


def test_a_version_is_parsed_once_and_a_new_one_replaces_it() -> None:
    fetch, refusals = CountingFetch('{"limits": {"a": 1}}'), list[str]()
    read = reader(fetch, refusals)
    first = read.get()
    assert read.get() is first  # the same version: not parsed again
    fetch.text = '{"limits": {"a": 2}}'
    assert read.get().limits == {"a": 2}
    assert refusals == []


def test_a_refused_version_keeps_the_last_good_one_and_is_counted_once() -> None:
    fetch, refusals = CountingFetch('{"limits": {"a": 1}}'), list[str]()
    read = reader(fetch, refusals)
    good = read.get()
    fetch.text = '{"limits": {"a": "lots"}}'
    assert read.get() is good
    assert read.get() is good
    assert len(refusals) == 1
    assert "limits.a" in refusals[0]


def test_with_no_good_version_a_refusal_or_an_unreachable_store_is_an_error() -> None:
    fetch, refusals = CountingFetch("not json"), list[str]()
    with pytest.raises(RuntimeConfigError, match="prof1: refused"):
        reader(fetch, refusals).get()
    fetch = CountingFetch('{"limits": {"a": 1}}')
    fetch.fail = ConnectionError("down")
    with pytest.raises(RuntimeConfigError, match=r"prof1: not readable \(ConnectionError\)"):
        reader(fetch, refusals).get()


def test_an_unreachable_store_keeps_the_last_good_version_uncounted() -> None:
    fetch, refusals = CountingFetch('{"limits": {"a": 1}}'), list[str]()
    read = reader(fetch, refusals)
    good = read.get()
    fetch.fail = ConnectionError("down")
    assert read.get() is good
    assert refusals == []  # the store being down is not the document's fault: no rollback


def test_a_derived_view_is_rebuilt_only_for_a_new_version() -> None:
    fetch, builds = CountingFetch('{"limits": {"a": 1}}'), list[int]()
    read = reader(fetch, [])

    def build(document: Limits) -> list[str]:
        builds.append(1)
        return sorted(document.limits)

    view = read.derive(build)
    assert view() == ["a"]
    assert view() == ["a"]
    fetch.text = '{"limits": {"a": 1, "b": 2}}'
    assert view() == ["a", "b"]
    assert len(builds) == 2


def test_a_refusal_is_counted_as_the_rollback_alarm_reads_it(capsys: pytest.CaptureFixture[str]) -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read = DocumentReader(LOCATION, Limits, fetch=fetch)  # the production refusal counter
    read.get()
    fetch.text = '{"limits": {}}'
    read.get()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (emf,) = [line for line in lines if "_aws" in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Environment"]]
    assert [m["Name"] for m in directive["Metrics"]] == ["RuntimeConfigRefused"]
    assert emf["Environment"] == "tools"


# --- Powertools' AppConfig provider, against the service model --------------------------------


SESSION = {"ApplicationIdentifier": "app1", "EnvironmentIdentifier": "env1", "ConfigurationProfileIdentifier": "prof1"}


@pytest.fixture
def appconfigdata() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("appconfigdata", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_the_provider_opens_a_session_then_polls_with_the_token_it_was_given(
    appconfigdata: tuple[Any, Stubber],
) -> None:
    client, stubber = appconfigdata
    stubber.add_response("start_configuration_session", {"InitialConfigurationToken": "t0"}, SESSION)
    stubber.add_response(
        "get_latest_configuration", appconfig_configuration('{"limits": {"a": 1}}', "t1"), {"ConfigurationToken": "t0"}
    )
    # Unchanged since the last poll: AppConfig answers an empty body, the provider keeps what it has.
    stubber.add_response("get_latest_configuration", appconfig_configuration("", "t2"), {"ConfigurationToken": "t1"})
    read = DocumentReader(LOCATION, Limits, fetch=appconfig_fetch(max_age=0, client=lambda: client))
    first = read.get()
    assert first.limits == {"a": 1}
    assert read.get() is first


def test_a_failed_poll_starts_a_new_session_next_time(appconfigdata: tuple[Any, Stubber]) -> None:
    client, stubber = appconfigdata
    stubber.add_response("start_configuration_session", {"InitialConfigurationToken": "t0"}, SESSION)
    stubber.add_response(
        "get_latest_configuration", appconfig_configuration('{"limits": {"a": 1}}', "t1"), {"ConfigurationToken": "t0"}
    )
    stubber.add_client_error("get_latest_configuration", "BadRequestException", "token expired", 400)
    stubber.add_response("start_configuration_session", {"InitialConfigurationToken": "n0"}, SESSION)
    stubber.add_response(
        "get_latest_configuration", appconfig_configuration('{"limits": {"a": 3}}', "n1"), {"ConfigurationToken": "n0"}
    )
    read = DocumentReader(LOCATION, Limits, fetch=appconfig_fetch(max_age=0, client=lambda: client))
    assert read.get().limits == {"a": 1}
    assert read.get().limits == {"a": 1}  # the expired session: the last good version
    assert read.get().limits == {"a": 3}  # a new session
