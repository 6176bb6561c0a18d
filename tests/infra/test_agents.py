"""The agents stack: runtimes from config, their asset, auth, memory, logs and least privilege;
and the AI gateway pointed at them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.contract import span_environment
from shared.headers import CALLER_TOKEN_HEADER
from stacks.config import (
    GATEWAY_MARGIN_SECONDS,
    AgentConfig,
    GroupConfig,
    GroupModels,
    OutputQuota,
    ProductionConfig,
    UsagePlanConfig,
    load_config,
)
from stacks.production import agents as agents_module
from stacks.production.agents import ENTRYPOINT, MEMORY_ACTIONS, MEMORY_NAMESPACES, served_groups
from tests.infra.cfn import props, render, resources, role_permissions
from tests.infra.conftest import Assembly


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def runtimes(agents: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["AgentRuntimeName"]: r["Properties"] for r in resources(agents, "AWS::BedrockAgentCore::Runtime").values()}  # fmt: skip


def test_one_runtime_per_configured_agent_from_its_code_asset(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    prefix = load_config(cdk_context).prefix
    config = production(cdk_context)
    found = runtimes(agents)
    assert sorted(found) == sorted(f"{prefix}_{name}" for name in config.agents)
    for name, agent in config.agents.items():
        runtime = found[f"{prefix}_{name}"]
        code = runtime["AgentRuntimeArtifact"]["CodeConfiguration"]
        assert (code["Runtime"], code["EntryPoint"]) == ("PYTHON_3_14", ENTRYPOINT)
        assert code["EntryPoint"][0] == "opentelemetry-instrument"  # ADOT exports the agent's spans
        assert code["Code"]["S3"]["Prefix"].endswith(".zip")
        assert runtime["ProtocolConfiguration"] == "HTTP"
        assert runtime["LifecycleConfiguration"] == {"IdleRuntimeSessionTimeout": agent.idle_session_minutes * 60}
        env = runtime["EnvironmentVariables"]
        assert (env["AGENT_NAME"], env["SYSTEM_PROMPT"], env["MAX_ITERATIONS"], env["TURN_SECONDS"]) == (
            name,
            agent.system_prompt,
            str(agent.max_iterations),
            str(agent.turn_seconds),
        )
        assert json.loads(env["GROUP_MODELS"]) == {
            group: models.model_dump(mode="json") for group, models in served_groups(config, agent).items()
        }
        assert env["TOOLS_GATEWAY_URL"]["Fn::GetStackOutput"]["StackName"] == f"{prefix}-production-tools"
        assert render(env["MEMORY_ID"]) == "<Memory.MemoryId>"


def _group(*outputs: str, models: tuple[str, ...]) -> GroupConfig:
    return GroupConfig(
        kind="customer",
        tier="t",
        precedence=1,
        usage_plan=UsagePlanConfig(rate_limit=1, burst_limit=1, quota_limit=1),
        models=GroupModels(allowed=models, default=models[-1]),
        output_quotas={output: OutputQuota(limit=1) for output in outputs},
    )


def test_an_agent_serves_only_groups_with_a_quota_for_its_outputs() -> None:
    lite, pro = "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0"
    config = ProductionConfig.model_construct(
        groups={
            "chatters": _group("chat", models=(lite,)),
            "writers": _group("chat", "brief", models=(lite, pro)),
            "briefers": _group("brief", "report", models=(pro,)),
        }
    )
    writer = AgentConfig(description="d", system_prompt="p", output_types=("report", "brief"))
    # chatters have no brief or report quota: the writer refuses them; each group keeps its models.
    assert {name: models.model_dump() for name, models in served_groups(config, writer).items()} == {
        "writers": {"allowed": (lite, pro), "default": pro},
        "briefers": {"allowed": (pro,), "default": pro},
    }
    chat = AgentConfig(description="d", system_prompt="p", output_types=("chat",))
    assert list(served_groups(config, chat)) == ["chatters", "writers"]


def test_no_runtime_accepts_user_tokens_only_the_forwarded_callers_token_reaches_the_agent(
    agents: dict[str, Any],
) -> None:
    for runtime in runtimes(agents).values():
        # IAM inbound auth (no JWT authorizer): a user's token alone cannot invoke a runtime.
        assert (
            "AuthorizerConfiguration" not in runtime or "CustomJWTAuthorizer" not in runtime["AuthorizerConfiguration"]
        )
        assert runtime["RequestHeaderConfiguration"] == {"RequestHeaderAllowlist": [CALLER_TOKEN_HEADER]}
        env = runtime["EnvironmentVariables"]
        # The agent verifies the forwarded token against the production pool and app client.
        assert render(env["TOKEN_ISSUER"]).startswith("https://cognito-idp.us-east-1.amazonaws.com/")
        assert env["TOKEN_CLIENT_ID"]["Fn::GetStackOutput"]["StackName"] == "genai-production-identity"


def test_the_gateways_role_is_the_only_principal_allowed_to_invoke_a_runtime(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    invokers = set()
    for stack in assembly.templates.values():
        for policy in resources(stack, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if any(
                    a.startswith("bedrock-agentcore:InvokeAgentRuntime") or a == "bedrock-agentcore:*" for a in actions
                ):
                    invokers |= {json.dumps(role) for role in policy["Properties"]["Roles"]}
    assert len(invokers) == (1 if production(cdk_context).agents else 0)
    assert all("GatewayFunction" in role for role in invokers)
    # And whatever else the account grants: each runtime's resource policy denies every other principal.
    gateway = assembly.template("-production-gateway")
    policies = resources(gateway, "AWS::BedrockAgentCore::ResourcePolicy")
    assert len(policies) == len(production(cdk_context).agents)
    for policy in policies.values():
        document = json.loads(render(policy["Properties"]["Policy"]))
        (statement,) = document["Statement"]
        assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
            "Deny",
            "*",
            ["bedrock-agentcore:InvokeAgentRuntime"],
        )
        # The runtime the policy is attached to, and no other.
        assert policy["Properties"]["ResourceArn"]["Fn::GetStackOutput"]["OutputName"] in statement["Resource"]
        assert statement["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": "<GatewayFunctionRole.Arn>"}}


def test_an_agent_captures_message_text_only_when_it_serves_internal_groups_only(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    for name, agent in config.agents.items():
        env = runtimes(agents)[f"{load_config(cdk_context).prefix}_{name}"]["EnvironmentVariables"]
        internal_only = all(config.groups[group].kind == "internal" for group in served_groups(config, agent))
        capture = config.observability.capture_content == "internal" and internal_only
        assert (
            env["OTEL_SEMCONV_STABILITY_OPT_IN"]
            == span_environment(capture_content=capture)["OTEL_SEMCONV_STABILITY_OPT_IN"]
        )
        assert "gen_ai.tool.call.arguments" in env["OTEL_SEMCONV_STABILITY_OPT_IN"]  # the evaluators read them
        assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"


def test_tracing_and_log_delivery_are_on_for_every_runtime(agents: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    config = production(cdk_context)
    sources = {
        (render(s["Properties"]["ResourceArn"]), s["Properties"]["LogType"])
        for s in resources(agents, "AWS::Logs::DeliverySource").values()
    }
    expected = set()
    for name in config.agents:
        logical = "".join(part.title() for part in name.split("_"))
        expected |= {(f"<{logical}.AgentRuntimeArn>", kind) for kind in ("TRACES", "APPLICATION_LOGS", "USAGE_LOGS")}
        log_group = props(agents, "AWS::Logs::LogGroup", f"{logical}Logs")
        assert log_group["RetentionInDays"] == config.log_retention_days
        assert "Fn::GetStackOutput" in log_group["KmsKeyId"]  # the tier key
    assert sources == expected
    destinations = {d["Properties"]["DeliveryDestinationType"] for d in resources(agents, "AWS::Logs::DeliveryDestination").values()}  # fmt: skip
    assert destinations == {"XRAY", "CWL"}
    assert len(resources(agents, "AWS::Logs::Delivery")) == len(expected)


def test_memory_is_encrypted_expires_and_writes_per_group_and_user(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    settings = production(cdk_context).agent_memory
    memory = props(agents, "AWS::BedrockAgentCore::Memory")
    assert memory["EventExpiryDuration"] == settings.event_expiry_days
    assert "Fn::GetStackOutput" in memory["EncryptionKeyArn"]
    namespaces = [ns for strategy in memory["MemoryStrategies"] for s in strategy.values() for ns in s["Namespaces"]]
    assert namespaces == [MEMORY_NAMESPACES[name] for name in settings.strategies]
    assert all(ns.startswith("/actors/{actorId}/") for ns in namespaces)  # actor = group/user


def test_runtime_roles_may_invoke_their_groups_models_and_use_memory_nothing_more(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    for name, agent in config.agents.items():
        logical = "".join(part.title() for part in name.split("_"))
        permissions = role_permissions(agents, f"{logical}ExecutionRole")
        models = {model for group in served_groups(config, agent).values() for model in group.allowed}
        invoked = {resource for action, resource in permissions if action == "bedrock:InvokeModel"}
        assert invoked == {f"arn:aws:bedrock:{config.region}::foundation-model/{model}" for model in models}
        memory = {(a, r) for a, r in permissions if a.startswith("bedrock-agentcore:") and "Memory" in r}
        assert memory == {(action, "<Memory.MemoryArn>") for action in MEMORY_ACTIONS}
        assert not [a for a, _ in permissions if a.startswith(("bedrock:Retrieve", "s3:Put", "dynamodb:"))]
    statements = [
        s
        for p in resources(agents, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "kms:Decrypt" and "Condition" in s
    ]
    assert len(statements) == len(config.agents)
    for statement in statements:  # the memory's key, only through AgentCore
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": f"bedrock-agentcore.{config.region}.amazonaws.com"}
        }


def test_the_code_asset_holds_the_agent_its_shared_code_and_arm64_dependencies(
    assembly: Assembly, agents: dict[str, Any]
) -> None:
    prefixes = {r["AgentRuntimeArtifact"]["CodeConfiguration"]["Code"]["S3"]["Prefix"] for r in runtimes(agents).values()}  # fmt: skip
    assert len(prefixes) == 1  # one bundle, one hash, for every runtime
    assets = json.loads((assembly.outdir / "genai-production-agents.assets.json").read_text())["files"]
    (source,) = {a["source"]["path"] for h, a in assets.items() if f"{h}.zip" in prefixes}
    root = Path(assembly.outdir) / source
    assert (root / ENTRYPOINT[-1]).read_text() == (Path("lambdas/agent/__main__.py")).read_text()
    for needed in (
        "agent/app.py",
        "agent/turn.py",
        "agent/memory.py",
        "shared/tokens.py",
        "boto3",
        "jwt",
        "strands",
        "bedrock_agentcore",
        "opentelemetry/instrumentation/auto_instrumentation",
        "bin/opentelemetry-instrument",
    ):
        assert (root / needed).exists(), needed
    assert not list(root.rglob("__pycache__"))
    # The entrypoint's script starts the runtime's Python, not the one of the machine that built it.
    assert (root / "bin" / ENTRYPOINT[0]).read_text().splitlines()[0] == "#!/usr/bin/env python3"
    assert not (root / "agent" / "requirements.txt").exists()
    # Linux arm64 wheels: nothing compiled for this machine slipped in.
    assert not [p.name for p in root.rglob("*.so") if "x86_64" in p.name]


def test_the_gateway_knows_each_agents_runtime_and_waits_long_enough_for_a_turn(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    function = props(gateway, "AWS::Lambda::Function", "GatewayFunction")
    runtimes_env = function["Environment"]["Variables"]["AGENT_RUNTIMES"]
    rendered = json.dumps(runtimes_env)
    for name in config.agents:
        logical = "".join(part.title() for part in name.split("_"))
        assert f'\\"{name}\\":\\"' in rendered
        assert f"{logical}" in rendered
    timeout = config.api.integration_timeout_seconds
    assert function["Timeout"] == timeout
    methods = [m["Properties"] for m in resources(gateway, "AWS::ApiGateway::Method").values()]
    assert {m["Integration"]["TimeoutInMillis"] for m in methods if "Integration" in m} == {timeout * 1000}
    assert max(a.turn_seconds for a in config.agents.values()) <= timeout - GATEWAY_MARGIN_SECONDS


def test_the_gateway_policy_routes_output_types_to_their_agents(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    document = json.loads(props(gateway, "AWS::SSM::Parameter", "Policy")["Value"])
    routes = {name: output["agent"] for name, output in document["outputs"].items()}
    # Each output type goes to the agent that lists it; one no agent lists goes to a model (None).
    assert routes == {
        output: next((name for name, agent in config.agents.items() if output in agent.output_types), None)
        for output in config.output_types
    }


def test_the_bundle_hash_follows_the_code_and_the_installed_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas, deps = tmp_path / "lambdas", tmp_path / "deps"
    for package in ("agent", "shared"):
        shutil.copytree(Path("lambdas") / package, lambdas / package, ignore=shutil.ignore_patterns("__pycache__"))
    (deps / "boto3-1.44.8.dist-info").mkdir(parents=True)
    monkeypatch.setattr(agents_module, "LAMBDAS_DIR", lambdas)
    monkeypatch.setattr(agents_module, "AGENT_DEPS_DIR", deps)
    first = agents_module.bundle_hash()
    (lambdas / "agent" / "__pycache__").mkdir()
    (lambdas / "agent" / "__pycache__" / "loop.cpython-314.pyc").write_bytes(b"compiled")
    assert agents_module.bundle_hash() == first  # bytecode is not shipped
    (deps / "boto3-1.44.8.dist-info").rename(deps / "boto3-1.44.9.dist-info")
    upgraded = agents_module.bundle_hash()
    assert upgraded != first
    (lambdas / "shared" / "tokens.py").write_text("# changed\n", encoding="utf-8")
    assert agents_module.bundle_hash() not in (first, upgraded)
