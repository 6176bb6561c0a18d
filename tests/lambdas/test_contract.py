"""The settings contract every function shares with its stack (lambdas/shared/contract.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import pytest
from pydantic import Field

from shared.contract import FunctionSettings, SettingsError


class Mode(StrEnum):
    ON = "on"
    OFF = "off"


class Example(FunctionSettings):
    table: str
    mode: Mode = Mode.ON
    policy: Literal["mask", "quarantine"] = "quarantine"
    note: str | None = None
    limit: int = 3
    ratio: float = 0.5
    groups: dict[str, list[str]] = Field(default_factory=dict)


def test_text_is_written_as_it_is_and_everything_else_as_json() -> None:
    settings = Example(table="t", mode=Mode.OFF, policy="mask", note="n", limit=7, ratio=0.25, groups={"b": ["x"]})
    assert settings.environment() == {
        "TABLE": "t",
        "MODE": "off",
        "POLICY": "mask",
        "NOTE": "n",
        "LIMIT": "7",
        "RATIO": "0.25",
        "GROUPS": '{"b": ["x"]}',
    }
    assert Example.from_environ(settings.environment()) == settings


def test_only_what_the_construct_sets_is_written_and_defaults_live_in_the_model() -> None:
    settings = Example(table="t", note=None)
    assert settings.environment() == {"TABLE": "t"}
    read = Example.from_environ({"TABLE": "t"})
    assert (read.mode, read.policy, read.limit, read.groups) == (Mode.ON, "quarantine", 3, {})


def test_a_deploy_time_value_goes_through_the_given_serializer() -> None:
    settings = Example(table="t", groups={"a": ["${Token[TOKEN.1]}"]})
    assert settings.environment(dumps=lambda value: "<joined>")["GROUPS"] == "<joined>"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "TABLE: Field required"),
        ({"TABLE": "t", "LIMIT": "many"}, "LIMIT: not JSON"),
        ({"TABLE": "t", "LIMIT": '"7x"'}, "LIMIT: Input should be a valid integer"),
        ({"TABLE": "t", "POLICY": "delete"}, "POLICY: Input should be 'mask' or 'quarantine'"),
        ({"TABLE": "t", "GROUPS": "[]"}, "GROUPS: Input should be a valid dictionary"),
    ],
)
def test_a_bad_environment_fails_at_start_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Example.from_environ(environ)


def test_settings_are_frozen_and_unknown_fields_refused() -> None:
    settings = Example(table="t")
    with pytest.raises(ValueError, match="frozen"):
        settings.table = "other"
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Example(table="t", other=1)  # type: ignore[call-arg]
