"""Property: the AI gateway's jobs worker and the ledger's sweeper answer any event.

The worker runs the job whose id the event names (exactly that id, read nowhere else), or, for
any other event (not an object, no job id, an id of another form: a path, a lone surrogate, a
number), logs that it is not a job event (never the event's content) and ignores it. The sweeper
reads nothing from its event: whatever EventBridge sends, it sweeps with its own settings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ai_gateway import sweeper, worker
from ai_gateway.jobs_contract import SweeperSettings
from tests.lambdas.conftest import FakeContext
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=100,
    deadline=None,
    # capsys is read (and so emptied) at the start of each example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
JOB = "0123456789abcdef0123456789abcdef"
SECRET = "ada-secret@example.com"


class Store:
    """A job table where no job is queued: every claim is a repeated event's."""

    def __init__(self) -> None:
        self.claimed: list[str] = []

    def claim(self, job_id: str, **_: Any) -> None:
        self.claimed.append(job_id)


@pytest.fixture(scope="module")
def store() -> Any:
    patch = pytest.MonkeyPatch()
    jobs = Store()
    runtime = worker.Runtime(store=jobs, ledger=None, flow=lambda agents: None)  # type: ignore[arg-type,return-value]
    patch.setattr(worker, "runtime", lambda: runtime)
    yield jobs
    patch.undo()


job_ids = st.one_of(
    st.just(JOB),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.sampled_from([JOB.upper(), JOB + "\n", JOB[:-1], "../" + JOB, JOB + "\ud800", SECRET]),
    hostile_text(40),
    json_values,
)
worker_events = st.one_of(
    st.fixed_dictionaries({}, optional={"job_id": job_ids, "other": json_values, SECRET: st.just(SECRET)}),
    json_values,
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=worker_events)
@example(event={"job_id": "\ud800"})
@example(event={"job_id": [JOB]})
@example(event=[{"job_id": JOB}])
def test_the_worker_runs_the_job_an_event_names_and_ignores_any_other(
    store: Store, capsys: pytest.CaptureFixture[str], event: Any
) -> None:
    capsys.readouterr()
    store.claimed.clear()
    answer = worker.lambda_handler(event, FakeContext())
    named = event.get("job_id") if isinstance(event, dict) else None
    if isinstance(named, str) and len(named) == 32 and all(c in "0123456789abcdef" for c in named):
        assert store.claimed == [named]
        assert answer == {"job_id": named, "outcome": "skipped"}
    else:
        assert not store.claimed
        assert answer == {"outcome": "ignored"}
    assert SECRET not in capsys.readouterr().out


class Ledger:
    def __init__(self) -> None:
        self.asked: list[tuple[dt.datetime, int]] = []

    def pending(self, *, admitted_before: dt.datetime, limit: int, **_: Any) -> list[Any]:
        self.asked.append((admitted_before, limit))
        return []


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=json_values | st.fixed_dictionaries({"detail": json_values, "time": hostile_text(20)}))
def test_the_sweeper_sweeps_with_its_own_settings_whatever_the_event(
    monkeypatch: pytest.MonkeyPatch, event: Any
) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    current = SweeperSettings(ledger_table="t", lifetimes_seconds=(600,), slack_seconds=100, page_limit=5)
    ledger = Ledger()
    monkeypatch.setattr(sweeper, "settings", lambda: current)
    monkeypatch.setattr(sweeper, "ledger", lambda: ledger)
    monkeypatch.setattr(sweeper, "now", lambda: now)
    assert sweeper.lambda_handler(event, FakeContext()) == {"candidates": 0, "released": 0, "settled": 0, "failed": 0}
    assert ledger.asked == [(now - dt.timedelta(seconds=current.bound_seconds), 5)]
