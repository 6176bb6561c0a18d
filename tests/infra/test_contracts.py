"""Every deployed runtime can read the environment its stack writes, through its own contract.

A function's environment is written from its settings model and read back by the same model at
cold start; this checks the round trip on the synthesized templates themselves (deploy-time
values stand in as placeholders), so a stack and a handler cannot drift apart unnoticed.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from agent.contract import span_environment
from ai_gateway.jobs_contract import GatewayJobsSettings, SweeperSettings, WorkerSettings
from shared.contract import FunctionSettings
from stacks.production.web_tools import runtime_package
from stacks.shared import lambda_function
from tests.infra.cfn import render, resources
from tests.infra.conftest import Assembly
from tests.infra.test_house_rules import project_functions

# Handler modules that read another settings model than their package's ``contract.Settings``.
SETTINGS_OF_MODULE = {
    ("ingestion", "handler"): "ProcessorSettings",
    ("ingestion", "macie"): "ResponderSettings",
}
# Handler modules whose settings model lives outside their package's contract module.
SETTINGS_ELSEWHERE: dict[tuple[str, str], type[FunctionSettings]] = {
    ("ai_gateway", "worker"): WorkerSettings,
    ("ai_gateway", "sweeper"): SweeperSettings,
}
# Handlers whose environment holds a second model's variables beside their Settings' (written
# next to them by another construct: the gateway's jobs).
SECOND_SETTINGS: dict[str, type[FunctionSettings]] = {"ai_gateway.handler.lambda_handler": GatewayJobsSettings}
# Variables the Lambda service or the house construct sets, outside any contract.
# Powertools' variables, and Lambda's own wrapper variable (the streaming gateway function's runtime).
HOUSE_VARIABLES = {*lambda_function.HOUSE_VARIABLES, "AWS_LAMBDA_EXEC_WRAPPER"}
# What an agent runtime's OpenTelemetry reads (agent.contract.span_environment), outside its Settings.
AGENT_OTEL_VARIABLES = set(span_environment(capture_content=False))


def _environment(variables: dict[str, Any]) -> dict[str, str]:
    """The variables as the runtime sees them, deploy-time values as placeholder text."""
    rendered = {name: render(value) for name, value in variables.items()}
    return {name: value if isinstance(value, str) else f"<{name.lower()}>" for name, value in rendered.items()}


def _value(text: str) -> Any:
    """A variable's value: its JSON when it is JSON (key order and spacing aside), else its text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _settings_class(handler: str) -> type[FunctionSettings] | None:
    package, module, _ = handler.split(".")
    if (package, module) in SETTINGS_ELSEWHERE:
        return SETTINGS_ELSEWHERE[package, module]
    try:
        contract = importlib.import_module(f"{package}.contract")
    except ModuleNotFoundError:
        return None
    cls: type[FunctionSettings] = getattr(contract, SETTINGS_OF_MODULE.get((package, module), "Settings"))
    return cls


def _runtimes(assembly: Assembly) -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for template in assembly.templates.values():
        for logical_id, function in project_functions(template).items():
            props = function["Properties"]
            found.append((logical_id, props["Handler"], _environment(props["Environment"]["Variables"])))
        for logical_id, runtime in resources(template, "AWS::BedrockAgentCore::Runtime").items():
            variables = runtime["Properties"]["EnvironmentVariables"]
            assert set(AGENT_OTEL_VARIABLES) <= set(variables), logical_id
            variables = {k: v for k, v in variables.items() if k not in AGENT_OTEL_VARIABLES}
            package, _ = runtime_package(runtime["Properties"])
            handler = "agent.app.main" if package == "agent" else f"{package}.server.main"
            found.append((logical_id, handler, _environment(variables)))
    return found


def _variables(settings_class: type[FunctionSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def _round_trips(settings_class: type[FunctionSettings], own: dict[str, str], logical_id: str) -> None:
    """The model reads ``own`` and writes back what the stack wrote: nothing lost or retyped."""
    settings = settings_class.from_environ(own)
    written = settings.environment()
    assert {k: _value(v) for k, v in written.items() if k in own} == {k: _value(v) for k, v in own.items()}, (
        logical_id,
        settings_class.__name__,
    )


def test_every_runtime_reads_its_environment_through_its_contract(assembly: Assembly) -> None:
    runtimes = _runtimes(assembly)
    assert any(handler.startswith("agent.") for _, handler, _ in runtimes)
    seconds: list[str] = []
    for logical_id, handler, environment in runtimes:
        settings_class = _settings_class(handler)
        own = {name: value for name, value in environment.items() if name not in HOUSE_VARIABLES}
        if settings_class is None:
            assert own == {}, f"{logical_id} ({handler}) has variables but no contract: {sorted(own)}"
            continue
        if handler in SECOND_SETTINGS:
            second = SECOND_SETTINGS[handler]
            given = {k: v for k, v in own.items() if k in _variables(second)}
            if given:  # (a function of the same handler that never runs those routes has none)
                _round_trips(second, given, logical_id)
                seconds.append(logical_id)
            own = {k: v for k, v in own.items() if k not in _variables(second) - _variables(settings_class)}
        assert set(own) <= _variables(settings_class), (logical_id, sorted(set(own) - _variables(settings_class)))
        _round_trips(settings_class, own, logical_id)
    # The buffered gateway function carries the jobs' settings; the streaming one, which serves no
    # job route, none of them.
    assert [logical_id[:-8] for logical_id in seconds] == ["GatewayFunction"]


@pytest.mark.parametrize("broken", ["not json", '{"unclosed": ['])
def test_a_malformed_variable_fails_at_start_naming_it(broken: str) -> None:
    from shared.contract import SettingsError
    from tool_guard.contract import Settings

    with pytest.raises(SettingsError, match="BINDINGS: not JSON"):
        Settings.from_environ({"BINDINGS": broken, "USER_POOL_ID": "p", "CLIENT_ID": "c"})
