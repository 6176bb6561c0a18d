"""Runtime documents (lambdas/shared/runtime_config.py): their AppConfig validators, and how a
function reads them: once per version, the last good version kept, a refusal counted.

The documents of the deployment in use, read from the synthesized templates, are checked in
tests/infra/test_runtime_config.py; here each document model and the reader on their own.
"""

from __future__ import annotations

import json
import threading
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


class Nested(RuntimeDocument):
    inner: Limits
    items: list[Limits] = Field(default_factory=list)


def test_fields_a_later_release_declares_are_read_at_every_depth_not_refused() -> None:
    """Written strictly (the validator refuses them), read tolerantly: a function of this release
    served the next release's document keeps working on the fields it knows."""
    later = {"inner": {"limits": {"a": 1}, "new": 1}, "items": [{"limits": {"b": 2}, "new": [1]}], "new": "x"}
    fetch, refusals = CountingFetch(json.dumps(later)), list[str]()
    read = DocumentReader(LOCATION, Nested, fetch=fetch, refused=lambda _, why: refusals.append(why)).get()
    assert read == Nested(inner=Limits(limits={"a": 1}), items=[Limits(limits={"b": 2})])
    assert refusals == []
    assert not jsonschema.Draft4Validator(Nested.validator_schema()).is_valid(later)
    with pytest.raises(ValueError, match="new"):
        Nested.model_validate(later)  # what synth builds a document with: nothing undeclared


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


# --- refresh_seconds: the version served at once, re-read in the background ----------------------


REFRESH_SECONDS = 30.0


class FakeMonotonic:
    """The reader's clock: a list the test advances (never slept)."""

    def __init__(self) -> None:
        self.at = [1000.0]

    def __call__(self) -> float:
        return self.at[0]

    def advance(self, seconds: float) -> None:
        self.at[0] += seconds


class Deferred:
    """The reader's ``start``: records the work instead of starting a thread; the test runs it."""

    def __init__(self) -> None:
        self.work: list[Any] = []
        self.started = 0

    def __call__(self, work: Any) -> None:
        self.started += 1
        self.work.append(work)

    def run(self) -> None:
        self.work.pop(0)()


def refreshing(
    fetch: CountingFetch, refusals: list[str], **overrides: Any
) -> tuple[DocumentReader[Limits], FakeMonotonic, Deferred]:
    clock, start = FakeMonotonic(), Deferred()
    options: dict[str, Any] = {"refresh_seconds": REFRESH_SECONDS, "monotonic": clock, "start": start, **overrides}
    read = DocumentReader(LOCATION, Limits, fetch=fetch, refused=lambda _, why: refusals.append(why), **options)
    return read, clock, start


def test_refresh_the_first_get_fetches_in_line_then_none_within_refresh_seconds() -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, clock, start = refreshing(fetch, [])
    first = read.get()
    assert first.limits == {"a": 1}
    assert (fetch.calls, start.started) == (1, 0)  # nothing to serve yet: read in line
    fetch.text = '{"limits": {"a": 2}}'
    clock.advance(REFRESH_SECONDS - 0.001)
    assert read.get() is first
    assert (fetch.calls, start.started) == (1, 0)


def test_refresh_after_refresh_seconds_serves_its_version_and_schedules_one_refresh() -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, clock, start = refreshing(fetch, [])
    first = read.get()
    fetch.text = '{"limits": {"a": 2}}'
    clock.advance(REFRESH_SECONDS)
    assert read.get() is first  # at once: no fetch in line
    assert (fetch.calls, start.started) == (1, 1)
    clock.advance(REFRESH_SECONDS / 2)
    assert read.get() is first  # the refresh is in flight: no second one
    assert (fetch.calls, start.started) == (1, 1)
    start.run()
    assert fetch.calls == 2
    second = read.get()
    assert second.limits == {"a": 2}
    assert start.started == 1  # just refreshed: nothing scheduled
    clock.advance(REFRESH_SECONDS)
    assert read.get() is second
    assert start.started == 2  # the guard was released: the next period schedules again


def test_refresh_a_store_that_fails_keeps_the_version_and_schedules_again_later() -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, clock, start = refreshing(fetch, [])
    first = read.get()
    fetch.fail = ConnectionError("down")
    clock.advance(REFRESH_SECONDS)
    read.get()
    start.run()  # does not raise
    assert fetch.calls == 2
    assert read.get() is first
    assert start.started == 1  # tried again only after refresh_seconds
    clock.advance(REFRESH_SECONDS)
    assert read.get() is first
    assert start.started == 2
    fetch.fail = None
    fetch.text = '{"limits": {"a": 2}}'
    start.run()
    assert read.get().limits == {"a": 2}


def test_refresh_work_that_raises_releases_the_guard_and_does_not_raise() -> None:
    """Whatever fails inside the background work (here the refusal counter) is logged, not raised
    into a thread nobody joins, and the next period refreshes again."""
    fetch = CountingFetch('{"limits": {"a": 1}}')

    def refused(_: ConfigLocation, why: str) -> None:
        raise RuntimeError("metrics down")

    clock, start = FakeMonotonic(), Deferred()
    read = DocumentReader(
        LOCATION, Limits, fetch=fetch, refused=refused, refresh_seconds=REFRESH_SECONDS, monotonic=clock, start=start
    )
    first = read.get()
    fetch.text = '{"limits": {}}'
    clock.advance(REFRESH_SECONDS)
    read.get()
    start.run()  # does not raise
    assert read.get() is first
    clock.advance(REFRESH_SECONDS)
    read.get()
    assert start.started == 2


def test_refresh_a_refused_document_keeps_the_version_and_is_counted_once() -> None:
    fetch, refusals = CountingFetch('{"limits": {"a": 1}}'), list[str]()
    read, clock, start = refreshing(fetch, refusals)
    first = read.get()
    fetch.text = '{"limits": {"a": "lots"}}'
    for _ in range(2):
        clock.advance(REFRESH_SECONDS)
        read.get()
        start.run()
        assert read.get() is first
    assert fetch.calls == 3
    assert len(refusals) == 1
    assert "limits.a" in refusals[0]


def test_without_refresh_seconds_every_get_fetches_in_line() -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, _, start = refreshing(fetch, [], refresh_seconds=None)
    first = read.get()
    read.get()
    fetch.text = '{"limits": {"a": 2}}'
    assert read.get().limits == {"a": 2}
    assert read.get() is not first
    assert (fetch.calls, start.started) == (4, 0)


def test_refresh_by_default_runs_on_a_background_thread() -> None:
    entered, release = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []

    def fetch(_: ConfigLocation) -> str:
        threads.append(threading.current_thread())
        if len(threads) == 1:
            return '{"limits": {"a": 1}}'
        entered.set()
        release.wait(30)  # held until the test has seen get() answer without it
        return '{"limits": {"a": 2}}'

    clock = FakeMonotonic()
    read = DocumentReader(LOCATION, Limits, fetch=fetch, refresh_seconds=REFRESH_SECONDS, monotonic=clock)
    first = read.get()
    assert threads[0] is threading.current_thread()  # the first read: in line
    clock.advance(REFRESH_SECONDS)
    assert read.get() is first  # answered while the refresh's fetch is still held
    assert entered.wait(30)
    assert not release.is_set()
    refresher = threads[1]
    assert refresher is not threading.current_thread()
    assert refresher.daemon  # never keeps the process alive
    release.set()
    refresher.join(30)
    assert not refresher.is_alive()
    assert read.get().limits == {"a": 2}


def test_refresh_an_idle_reader_serves_its_version_and_refreshes_in_the_background() -> None:
    """No request waits for the store after the first read, however long the environment was idle:
    the first request after an idle spell is served the version it had and starts the refresh; the
    ones after it are served what the refresh read."""
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, clock, start = refreshing(fetch, [])
    read.get()
    fetch.text = '{"limits": {"a": 2}}'
    clock.advance(1_000 * REFRESH_SECONDS)
    assert read.get().limits == {"a": 1}
    assert (fetch.calls, start.started) == (1, 1)
    start.run()
    assert read.get().limits == {"a": 2}
    assert (fetch.calls, start.started) == (2, 1)


def test_refresh_frozen_in_flight_serves_the_version_until_it_ends_and_starts_no_other() -> None:
    """A refresh frozen with the environment between invocations still holds its guard when the
    environment thaws: requests are served the version they had, no second refresh is started, and
    the frozen one, resumed, brings the next request the new version and releases its guard."""
    fetch = CountingFetch('{"limits": {"a": 1}}')
    read, clock, start = refreshing(fetch, [])
    read.get()
    fetch.text = '{"limits": {"a": 2}}'
    clock.advance(REFRESH_SECONDS)
    read.get()  # starts the refresh, which the freeze holds
    clock.advance(1_000 * REFRESH_SECONDS)
    assert all(read.get().limits == {"a": 1} for _ in range(3))
    assert (fetch.calls, start.started) == (1, 1)
    start.run()
    assert read.get().limits == {"a": 2}
    clock.advance(REFRESH_SECONDS)
    read.get()
    assert start.started == 2


def test_refresh_a_start_that_fails_releases_the_guard() -> None:
    fetch = CountingFetch('{"limits": {"a": 1}}')

    def failing(_: Any) -> None:
        raise RuntimeError("can't start new thread")

    read, clock, _ = refreshing(fetch, [], start=failing)
    first = read.get()
    clock.advance(REFRESH_SECONDS)
    assert read.get() is first  # served as it is, not a failed request
    read._start = Deferred()
    assert read.get().limits == {"a": 1}  # the guard was released: scheduled again
    assert read._start.started == 1


@pytest.mark.parametrize("front_door", ["gateway policy", "authorizer keys"])
def test_the_front_doors_readers_never_make_a_request_wait_after_the_first_read(
    front_door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's policy and the authorizer's API keys are read on every request: each reader
    is built with a refresh period (its document's max age), so only the first read goes to
    AppConfig in line; the next ones are served from the version it has."""
    from ai_gateway import handler as gateway
    from gateway_authorizer import handler as authorizer
    from gateway_authorizer.contract import Settings as AuthorizerSettings
    from tests.lambdas.gateway_fixtures import environment, policy_document

    ages: list[int] = []
    if front_door == "gateway policy":
        environment(monkeypatch)
        fetch = CountingFetch(json.dumps(policy_document()))
        module: Any = gateway
        build: Any = gateway.policy_reader
    else:
        location = ConfigLocation(application="a", environment="e", profile="p", environment_name="gateway")
        keys = AuthorizerSettings(user_pool_id="us-east-1_pool", client_id="client", api_keys=location)
        for name, value in keys.environment().items():
            monkeypatch.setenv(name, value)
        authorizer.settings.cache_clear()
        fetch = CountingFetch('{"keys": {"internal-analysts": "key-1"}}')
        module, build = authorizer, authorizer.api_keys

    def appconfig_fetch(age: int) -> CountingFetch:
        ages.append(age)
        return fetch

    monkeypatch.setattr(module, "appconfig_fetch", appconfig_fetch)
    build.cache_clear()
    try:
        read = build()
        first = read.get()
        assert all(read.get() is first for _ in range(2))
        assert fetch.calls == 1  # without a refresh period every get would go to AppConfig
        assert ages == [60]  # the provider's cache and the refresh period are the document's max age
    finally:
        build.cache_clear()
