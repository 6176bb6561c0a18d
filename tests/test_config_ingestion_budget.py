"""ingestion.read_seconds fits in the time the processor gives one document (a quarter of
processor_timeout_seconds: ingestion.contract.document_budget_seconds, what the stack writes into
the function's settings): a read allowed longer outlived the invocation, and its batch timed out
with no reason recorded, on every retry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ingestion.contract import document_budget_seconds
from ingestion.documents import READ_GRACE_SECONDS
from stacks.config import ConfigError, load_config
from tests.test_config import SMALL

KEY = "blueprint.production.ingestion.read_seconds: "


def loaded(**ingestion: Any) -> Any:
    raw = copy.deepcopy(SMALL)
    raw["production"].setdefault("ingestion", {}).update(ingestion)
    return load_config({"blueprint": raw}).production.ingestion


def refusal(**ingestion: Any) -> str:
    with pytest.raises(ConfigError) as error:
        loaded(**ingestion)
    (line,) = [line for line in str(error.value).splitlines() if line.startswith(KEY)]
    return line.removeprefix(KEY)


def test_a_read_longer_than_a_documents_budget_is_refused_naming_both_keys_and_the_bound() -> None:
    assert refusal(read_seconds=300, processor_timeout_seconds=60) == (
        "300 s and the reader's 5 s of grace do not fit in the 15 s each document is given of "
        "processor_timeout_seconds (60); allowed: at most 10 with processor_timeout_seconds 60"
    )


def test_the_refusal_names_the_timeout_that_would_fit_the_read() -> None:
    assert refusal(read_seconds=30, processor_timeout_seconds=60).endswith(
        "allowed: at most 10 with processor_timeout_seconds 60, or processor_timeout_seconds of at least 140"
    )
    assert refusal(read_seconds=20, processor_timeout_seconds=20).endswith(
        "allowed: processor_timeout_seconds of at least 100"
    )


@pytest.mark.parametrize("timeout", [24, 60, 120, 900])
def test_a_read_of_exactly_the_budget_less_the_grace_loads(timeout: int) -> None:
    most = document_budget_seconds(timeout) - READ_GRACE_SECONDS
    assert loaded(read_seconds=most, processor_timeout_seconds=timeout).read_seconds == most
    assert refusal(read_seconds=most + 1, processor_timeout_seconds=timeout)


def test_the_defaults_fit() -> None:
    settings = loaded()
    assert settings.read_seconds + READ_GRACE_SECONDS <= document_budget_seconds(settings.processor_timeout_seconds)
