"""The pull connector's contract: one source (as configured under connectors.pull.<name>), where
its records land, and the lease that keeps its runs one at a time."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.contract import FunctionSettings

SOURCE = "Source"  # the dimension of every run metric, beside Powertools' service ("connector_pull")


class Metric(StrEnum):
    """What each run reports, by Source (the stack alarms on RUNS_CAPPED against RECORDS_PULLED's
    sample count: every finished run writes one RECORDS_PULLED value; and on ANSWERS_UNUSABLE)."""

    RECORDS_PULLED = "RecordsPulled"
    POISON_RECORDS = "PoisonRecords"
    RUNS_SKIPPED = "RunsSkipped"
    RUNS_FAILED = "RunsFailed"
    RUNS_CAPPED = "RunsCapped"  # stopped at the page cap, to resume
    # Failed runs (also in RUNS_FAILED) whose source answered a page not in the shape the config
    # describes: no list of records at items_field, or a cursor neither text nor an integer.
    ANSWERS_UNUSABLE = "AnswersUnusable"


class PullSource(BaseModel):
    # Validated only inside Settings, whose schema holds its own: no validator of its own is built.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    base_url: str
    token_path: str
    secret_name: str
    records_path: str  # GET, paged with ?cursor=
    schedule: str  # when EventBridge starts a run (the function does not read it)
    classification: str
    owner: str
    # Where each record keeps its id, title, body and last change; the list and the next cursor.
    id_field: str
    title_field: str
    body_field: str
    updated_field: str
    items_field: str
    next_cursor_field: str
    since_param: str
    timeout_seconds: float
    max_attempts: int
    max_response_bytes: int  # a larger page is refused as it streams


class Settings(FunctionSettings):
    pull_source: PullSource
    landing_bucket: str
    registry_table: str
    dlq_url: str
    lease_seconds: int  # longer than any run: a killed run's lease expires
