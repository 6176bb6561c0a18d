"""Amazon Macie sensitive-data discovery over the production pipeline's buckets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stacks.config.base import ConfigModel
from stacks.config.fields import Emails, Regex

MacieSeverity = Literal["Low", "Medium", "High"]


class MacieConfig(ConfigModel):
    """Sensitive-data discovery over the pipeline's buckets (needs account_settings.macie other than off).

    Its custom data identifiers are ingestion.custom_identifiers, shared with the pipeline's own scan.
    """

    allow_list_regex: Regex | None = Field(
        default=None,
        description="A regular expression (1 to 512 characters) for matches Macie should not report (test and "
        "example data); null: none.",
    )
    schedule: Literal["DAILY", "WEEKLY", "MONTHLY"] = Field(
        default="DAILY",
        description="How often the classification job scans the buckets: daily, weekly (Mondays) or monthly (the 1st).",
    )
    sampling_percentage: int = Field(
        default=100, ge=1, le=100, description="Share of the buckets' objects each run scans (percent)."
    )
    min_severity: MacieSeverity = Field(
        default="Medium", description="Findings at or above this severity quarantine their object and notify."
    )
    notify_emails: Emails = Field(default=(), description="Who the findings e-mail.")
