"""The agents: what they share (memory, the groups document, the delivery policies) in the agents
stack, each agent's runtime in a stack of its own; their asset, auth, logs and least privilege;
and the AI gateway pointed at them."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.contract import AgentGroups, span_environment
from shared.headers import CALLER_TOKEN_HEADER, PASSAGE_HEADER
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
from stacks.production.agent import agent_stack_name
from stacks.production.agents import (
    ENTRYPOINT,
    MEMORY_ACTIONS,
    MEMORY_NAMESPACES,
    agent_groups,
    delivered_logs_prefix,
    served_groups,
)
from stacks.shared.naming import pascal_case
from stacks.shared.runtime_config import READ_ACTIONS
from tests.infra.bytecode_checks import bytecode_problems
from tests.infra.cfn import only, props, render, resolved, resources, role_permissions, runtime_document
from tests.infra.conftest import Assembly
from tools.tree_digest import tree_digest

Templates = dict[str, dict[str, Any]]


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def prefix_of(cdk_context: dict[str, Any]) -> str:
    return str(load_config(cdk_context).prefix)


def logical(agent: str) -> str:
    return "".join(part.title() for part in agent.split("_"))


def stack_of(agent_stacks: Templates, cdk_context: dict[str, Any], agent: str) -> dict[str, Any]:
    """The agent's own stack: <prefix>-production-agent-<name, with - for _>."""
    return agent_stacks[f"{prefix_of(cdk_context)}-production-agent-{agent.replace('_', '-')}"]


def runtimes(agent_stacks: Templates) -> dict[str, dict[str, Any]]:
    """Every agent runtime's properties, by runtime name, whichever agent stack holds it."""
    return {
        r["Properties"]["AgentRuntimeName"]: r["Properties"]
        for template in agent_stacks.values()
        for r in resources(template, "AWS::BedrockAgentCore::Runtime").values()
    }


def test_one_stack_per_configured_agent_with_its_runtime_and_nothing_of_another_agent(
    assembly: Assembly, agent_stacks: Templates, agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    prefix, config = prefix_of(cdk_context), production(cdk_context)
    assert sorted(agent_stacks) == sorted(
        f"{prefix}-production-agent-{name.replace('_', '-')}" for name in config.agents
    )
    manifest = json.loads((assembly.outdir / "manifest.json").read_text())["artifacts"]
    for name in config.agents:
        template = stack_of(agent_stacks, cdk_context, name)
        (runtime,) = resources(template, "AWS::BedrockAgentCore::Runtime").values()
        assert runtime["Properties"]["AgentRuntimeName"] == f"{prefix}_{name}"
        others = [logical(other) for other in config.agents if other != name]
        assert not [n for n in template["Resources"] if n.startswith(tuple(others))]
        assert len(resources(template, "AWS::BedrockAgentCore::OnlineEvaluationConfig")) == 1
        assert not resources(template, "AWS::BedrockAgentCore::Memory")
        # Deployed after the agents stack: its memory, groups document and delivery policies.
        stack = f"{prefix}-production-agent-{name.replace('_', '-')}"
        assert f"{prefix}-production-agents" in manifest[stack]["dependencies"]
    assert not resources(agents, "AWS::BedrockAgentCore::Runtime")


def test_one_runtime_per_configured_agent_from_its_code_asset(
    agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    prefix = prefix_of(cdk_context)
    config = production(cdk_context)
    found = runtimes(agent_stacks)
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
        assert (env["AGENT_NAME"], env["MAX_ITERATIONS"], env["MAX_TOOL_CALLS"], env["TURN_SECONDS"]) == (
            name,
            str(agent.max_iterations),
            str(agent.max_tool_calls),
            str(agent.turn_seconds),
        )
        assert "SYSTEM_PROMPT" not in env  # in the groups document: a prompt outgrows an environment value
        assert env["TOOLS_GATEWAY_URL"]["Fn::GetStackOutput"]["StackName"] == f"{prefix}-production-tools"
        assert env["MEMORY_ID"]["Fn::GetStackOutput"]["StackName"] == f"{prefix}-production-agents"


def test_each_runtime_is_told_where_the_groups_document_is_not_what_it_holds(
    assembly: Assembly, agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    agents_stack = f"{prefix_of(cdk_context)}-production-agents"
    foundation = f"{prefix_of(cdk_context)}-production-foundation"
    for runtime in runtimes(agent_stacks).values():
        env = runtime["EnvironmentVariables"]
        assert "GROUP_MODELS" not in env
        location = json.loads(resolved(env["GROUPS"], assembly.templates))
        assert location == {
            "application": f"<{foundation}:RuntimeConfigApplication>",
            "environment": f"<{agents_stack}:RuntimeConfigEnvironment>",
            "profile": f"<{agents_stack}:RuntimeConfiggroupsConfigurationConfigurationProfile>",
            "environment_name": "agents",
        }


def test_the_agents_stack_holds_the_memory_and_one_groups_document_of_what_each_agent_serves(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    assert len(resources(agents, "AWS::BedrockAgentCore::Memory")) == 1
    (environment,) = resources(agents, "AWS::AppConfig::Environment").values()
    assert environment["Properties"]["Name"] == "agents"
    # One document and one deployment for every agent: deployments to an environment queue.
    (version,) = resources(agents, "AWS::AppConfig::HostedConfigurationVersion").values()
    assert len(resources(agents, "AWS::AppConfig::Deployment")) == 1
    document = AgentGroups.model_validate_json(version["Properties"]["Content"])
    assert document == agent_groups(config)
    assert set(document.agents) == set(config.agents)
    for name, agent in config.agents.items():
        assert document.prompt_of(name) == agent.system_prompt
        served = {group: models.model_dump() for group, models in document.served_by(name).items()}
        assert served == {
            group: {"allowed": tuple(settings.models.allowed), "default": settings.models.default}
            for group, settings in config.groups.items()
            if set(agent.output_types) & set(settings.output_quotas)
        }
    # AppConfig checks a document against the model's schema before it deploys it.
    (profile,) = resources(agents, "AWS::AppConfig::ConfigurationProfile").values()
    (validator,) = profile["Properties"]["Validators"]
    assert json.loads(validator["Content"]) == AgentGroups.validator_schema()


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
    agent_stacks: Templates,
) -> None:
    for runtime in runtimes(agent_stacks).values():
        # IAM inbound auth (no JWT authorizer): a user's token alone cannot invoke a runtime.
        assert (
            "AuthorizerConfiguration" not in runtime or "CustomJWTAuthorizer" not in runtime["AuthorizerConfiguration"]
        )
        # The caller's token, and the AI gateway's passage for it (the tools gateway asks for it).
        assert runtime["RequestHeaderConfiguration"] == {
            "RequestHeaderAllowlist": [CALLER_TOKEN_HEADER, PASSAGE_HEADER]
        }
        env = runtime["EnvironmentVariables"]
        # The agent verifies the forwarded token against the production pool and app client.
        assert render(env["TOKEN_ISSUER"]).startswith("https://cognito-idp.us-east-1.amazonaws.com/")
        assert env["TOKEN_CLIENT_ID"]["Fn::GetStackOutput"]["StackName"] == "genai-production-identity"


# Every runtime action a resource policy takes (AgentCore's "Resource-based policies", Supported
# actions): those of a session, and the commands run in one.
SESSION_ACTIONS = [
    "InvokeAgentRuntime",
    "InvokeAgentRuntimeForUser",
    "InvokeAgentRuntimeWithWebSocketStream",
    "InvokeAgentRuntimeWithWebSocketStreamForUser",
    "StopRuntimeSession",
    "GetAgentCard",
]
COMMAND_ACTIONS = ["InvokeAgentRuntimeCommand", "InvokeAgentRuntimeCommandShell"]

# The gateway's functions that produce outputs (buffered, streamed and the jobs' worker), the only
# runtime invokers.
GENERATORS = ["GatewayFunctionRole", "GatewayStreamFunctionRole", "JobsWorkerRole"]


def test_the_gateways_roles_are_the_only_principals_allowed_to_invoke_a_runtime(
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
    named = sorted(json.loads(role)["Ref"][:-8] for role in invokers)  # the logical ids less their hash
    assert named == (GENERATORS if production(cdk_context).agents else [])
    # And whatever else the account grants: each runtime's resource policy denies every other principal.
    gateway = assembly.template("-production-gateway")
    policies = resources(gateway, "AWS::BedrockAgentCore::ResourcePolicy")
    assert len(policies) == len(production(cdk_context).agents)
    for policy in policies.values():
        document = json.loads(render(policy["Properties"]["Policy"]))
        statement, commands = document["Statement"]
        assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
            "Deny",
            "*",
            [f"bedrock-agentcore:{action}" for action in SESSION_ACTIONS],
        )
        # Nobody, the gateway included, runs a command or a shell in a session.
        assert commands == {
            "Sid": "NoCommandsInSessions",
            "Effect": "Deny",
            "Principal": "*",
            "Action": [f"bedrock-agentcore:{action}" for action in COMMAND_ACTIONS],
            "Resource": statement["Resource"],
        }
        # The runtime the policy is attached to, and no other.
        assert policy["Properties"]["ResourceArn"]["Fn::GetStackOutput"]["OutputName"] in statement["Resource"]
        assert statement["Condition"] == {
            "StringNotEquals": {"aws:PrincipalArn": [f"<{role}.Arn>" for role in GENERATORS]}
        }


def test_each_invoker_may_invoke_every_runtime_on_its_default_endpoint_and_nothing_wider(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    gateway = assembly.template("-production-gateway")
    tier = f"{prefix_of(cdk_context)}-production"
    arns = [
        f"<{agent_stack_name(tier, agent)}:{pascal_case(agent)}.AgentRuntimeArn>"
        for agent in production(cdk_context).agents
    ]
    expected = {*arns, *(f"{arn}/runtime-endpoint/DEFAULT" for arn in arns)}
    for role in GENERATORS:
        role_id, _ = only(gateway, "AWS::IAM::Role", role)
        invoked = set()
        for policy in resources(gateway, "AWS::IAM::Policy").values():
            if {"Ref": role_id} not in policy["Properties"]["Roles"]:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if "bedrock-agentcore:InvokeAgentRuntime" in json.dumps(statement["Action"]):
                    assert statement["Action"] == "bedrock-agentcore:InvokeAgentRuntime"  # not ForUser
                    targets = (
                        statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                    )
                    invoked |= {resolved(arn, assembly.templates) for arn in targets}
        assert invoked == expected, role


def test_an_agent_captures_message_text_only_when_it_serves_internal_groups_only(
    agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    for name, agent in config.agents.items():
        env = runtimes(agent_stacks)[f"{prefix_of(cdk_context)}_{name}"]["EnvironmentVariables"]
        internal_only = all(config.groups[group].kind == "internal" for group in served_groups(config, agent))
        capture = config.observability.capture_content == "internal" and internal_only
        assert (
            env["OTEL_SEMCONV_STABILITY_OPT_IN"]
            == span_environment(capture_content=capture)["OTEL_SEMCONV_STABILITY_OPT_IN"]
        )
        assert "gen_ai.tool.call.arguments" in env["OTEL_SEMCONV_STABILITY_OPT_IN"]  # the evaluators read them
        assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"


def test_tracing_and_log_delivery_are_on_for_every_runtime(
    agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    for name in config.agents:
        template = stack_of(agent_stacks, cdk_context, name)
        sources = {
            (render(s["Properties"]["ResourceArn"]), s["Properties"]["LogType"])
            for s in resources(template, "AWS::Logs::DeliverySource").values()
        }
        expected = {
            (f"<{logical(name)}.AgentRuntimeArn>", kind) for kind in ("TRACES", "APPLICATION_LOGS", "USAGE_LOGS")
        }
        assert sources == expected
        log_group = props(template, "AWS::Logs::LogGroup", f"{logical(name)}Logs")
        assert log_group["RetentionInDays"] == config.log_retention_days
        assert "Fn::GetStackOutput" in log_group["KmsKeyId"]  # the tier key
        destinations = {d["Properties"]["DeliveryDestinationType"] for d in resources(template, "AWS::Logs::DeliveryDestination").values()}  # fmt: skip
        assert destinations == {"XRAY", "CWL"}
        assert len(resources(template, "AWS::Logs::Delivery")) == len(expected)


def _policy(template: dict[str, Any], type_: str) -> dict[str, Any]:
    """A delivery resource policy's document, with the account as <AWS::AccountId>."""
    document: dict[str, Any] = json.loads(render(props(template, type_, "DeliveryPolicies")["PolicyDocument"]))
    return document


def test_one_pair_of_delivery_policies_covers_every_agents_logs_and_traces(
    agents: dict[str, Any], agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    """Log and X-Ray resource policies are account quotas (10 and 5 per region): the agents stack
    holds one of each, by pattern, and no agent stack adds its own."""
    prefix, config = prefix_of(cdk_context), production(cdk_context)
    for template in agent_stacks.values():
        assert not resources(template, "AWS::Logs::ResourcePolicy")
        assert not resources(template, "AWS::XRay::ResourcePolicy")
    (logs_statement,) = _policy(agents, "AWS::Logs::ResourcePolicy")["Statement"]
    (streams,) = logs_statement["Resource"]
    (traces_statement,) = _policy(agents, "AWS::XRay::ResourcePolicy")["Statement"]
    (runtime_arns,) = traces_statement["Condition"]["ForAllValues:ArnLike"]["logs:LogGeneratingResourceArns"]
    tier = f"{prefix}-production"
    assert (
        streams
        == f"arn:aws:logs:{config.region}:<AWS::AccountId>:log-group:{delivered_logs_prefix(tier)}*:log-stream:*"
    )
    assert runtime_arns == f"arn:aws:bedrock-agentcore:{config.region}:<AWS::AccountId>:runtime/{prefix}_*"
    for name in config.agents:
        template = stack_of(agent_stacks, cdk_context, name)
        # What the deliveries name, as the delivery service would see it once deployed.
        group = render(props(template, "AWS::Logs::LogGroup", f"{logical(name)}Logs")["LogGroupName"])
        group_arn = f"arn:aws:logs:{config.region}:<AWS::AccountId>:log-group:{group}:log-stream:s"
        assert fnmatch.fnmatchcase(group_arn, streams), group
        runtime_arn = f"arn:aws:bedrock-agentcore:{config.region}:<AWS::AccountId>:runtime/{prefix}_{name}-AbCd012345"
        assert fnmatch.fnmatchcase(runtime_arn, runtime_arns)
        # A new name for each creation of the stack: a retained group never blocks its re-creation.
        assert (
            json.dumps(props(template, "AWS::Logs::LogGroup", f"{logical(name)}Logs")["LogGroupName"]).count(
                "AWS::StackId"
            )
            == 1
        )


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
    assembly: Assembly, agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    agents_stack = f"{prefix_of(cdk_context)}-production-agents"
    for name, agent in config.agents.items():
        template = stack_of(agent_stacks, cdk_context, name)
        permissions = role_permissions(template, f"{logical(name)}ExecutionRole")
        models = {model for group in served_groups(config, agent).values() for model in group.allowed}
        invoked = {resource for action, resource in permissions if action == "bedrock:InvokeModel"}
        assert invoked == {f"arn:aws:bedrock:{config.region}::foundation-model/{model}" for model in models}
        role_id, _ = only(template, "AWS::IAM::Role", f"{logical(name)}ExecutionRole")
        statements = [
            statement
            for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        memory = [
            resolved(s["Resource"], assembly.templates) for s in statements if s["Action"] == list(MEMORY_ACTIONS)
        ]
        assert memory == [f"<{agents_stack}:Memory.MemoryArn>"]
        assert not [a for a, _ in permissions if a.startswith(("bedrock:Retrieve", "s3:Put", "dynamodb:"))]
        (key,) = [s for s in statements if s["Action"] == "kms:Decrypt"]  # the memory's key, only through AgentCore
        assert key["Condition"] == {
            "StringEquals": {"kms:ViaService": f"bedrock-agentcore.{config.region}.amazonaws.com"}
        }


def test_each_runtime_role_reads_the_groups_document_and_nothing_else_in_appconfig(
    assembly: Assembly, agent_stacks: Templates, cdk_context: dict[str, Any]
) -> None:
    config, prefix = production(cdk_context), prefix_of(cdk_context)
    agents_stack, foundation = f"{prefix}-production-agents", f"{prefix}-production-foundation"
    profile = (
        f"arn:aws:appconfig:{config.region}:<AWS::AccountId>:application/<{foundation}:RuntimeConfigApplication>"
        f"/environment/<{agents_stack}:RuntimeConfigEnvironment>"
        f"/configuration/<{agents_stack}:RuntimeConfiggroupsConfigurationConfigurationProfile>"
    )
    for name in config.agents:
        template = stack_of(agent_stacks, cdk_context, name)
        role_id, _ = only(template, "AWS::IAM::Role", f"{logical(name)}ExecutionRole")
        granted = {
            (action, resolved(statement["Resource"], assembly.templates))
            for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
            if action.startswith("appconfig")
        }
        assert granted == {(action, profile) for action in READ_ACTIONS}


def test_the_code_asset_holds_the_agent_its_shared_code_and_arm64_dependencies(
    assembly: Assembly, agent_stacks: Templates
) -> None:
    prefixes = {r["AgentRuntimeArtifact"]["CodeConfiguration"]["Code"]["S3"]["Prefix"] for r in runtimes(agent_stacks).values()}  # fmt: skip
    assert len(prefixes) == 1  # one bundle, one hash, for every runtime: published once
    sources = set()
    for stack in agent_stacks:
        assets = json.loads((assembly.outdir / f"{stack}.assets.json").read_text())["files"]
        sources |= {a["source"]["path"] for h, a in assets.items() if f"{h}.zip" in prefixes}
    (source,) = sources
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
    # Every module ships the runtime's bytecode (the dependencies' from make agent-deps, the
    # project's own from stacks/shared/bytecode.py); this machine's never ships.
    # (main.py is run as a script, never imported: the runtime never reads bytecode for it.)
    assert bytecode_problems(root, "cpython-314") == [f"{ENTRYPOINT[-1]}: no main.cpython-314.pyc"]
    assert all(path.name.endswith(".cpython-314.pyc") for path in root.rglob("*.pyc"))
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
    # Where each agent runs: the policy document's (runtime config), each its own stack's runtime.
    document, _ = runtime_document(gateway, "gateway-policy")
    assert set(document["agents"]) == set(config.agents)
    for name, arn in document["agents"].items():
        assert "AgentRuntimeArn" in arn, arn
        assert f"-production-agent-{name.replace('_', '-')}'" in arn, arn
    assert "AGENT_RUNTIMES" not in function["Environment"]["Variables"]
    timeout, streamed = config.api.integration_timeout_seconds, config.api.stream_timeout_seconds
    assert function["Timeout"] == timeout
    assert props(gateway, "AWS::Lambda::Function", "GatewayStreamFunction")["Timeout"] == streamed
    methods = [m["Properties"] for m in resources(gateway, "AWS::ApiGateway::Method").values()]
    timeouts = {
        (m["Integration"].get("ResponseTransferMode", "BUFFERED"), m["Integration"]["TimeoutInMillis"])
        for m in methods
        if "Integration" in m
    }
    assert timeouts == {("BUFFERED", timeout * 1000), ("STREAM", streamed * 1000)}
    # A turn fits in either function (the streaming one also serves buffered completions).
    assert max(a.turn_seconds for a in config.agents.values()) <= min(timeout, streamed) - GATEWAY_MARGIN_SECONDS


def test_the_gateway_policy_routes_output_types_to_their_agents(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    # The gateway's policy document (AppConfig, environment "gateway").
    document, _ = runtime_document(gateway, "gateway-policy")
    routes = {name: output.get("agent") for name, output in document["outputs"].items()}  # (null left out)
    # Each output type goes to the agent that lists it; one no agent lists goes to a model (None).
    assert routes == {
        output: next((name for name, agent in config.agents.items() if output in agent.output_types), None)
        for output in config.output_types
    }


def test_the_bundle_hash_follows_the_code_and_the_dependencies_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas, deps = tmp_path / "lambdas", tmp_path / "deps"
    for package in ("agent", "shared"):
        shutil.copytree(Path("lambdas") / package, lambdas / package, ignore=shutil.ignore_patterns("__pycache__"))
    (deps / "boto3").mkdir(parents=True)
    (deps / "boto3" / "__init__.py").write_text("version = 1\n")
    digest = tmp_path / "deps.sha256"  # what `make agent-deps` writes beside the tree
    monkeypatch.setattr(agents_module, "LAMBDAS_DIR", lambdas)
    monkeypatch.setattr(agents_module, "AGENT_DEPS_DIR", deps)
    with pytest.raises(FileNotFoundError, match="make setup"):
        agents_module.bundle_hash()
    digest.write_text(tree_digest(deps) + "\n")
    first = agents_module.bundle_hash()
    (lambdas / "agent" / "__pycache__").mkdir()
    (lambdas / "agent" / "__pycache__" / "loop.cpython-314.pyc").write_bytes(b"compiled")
    assert agents_module.bundle_hash() == first  # this machine's bytecode is not shipped
    # The same versions, compiled: the dependencies' content changed, and so does the bundle's hash.
    (deps / "boto3" / "__pycache__").mkdir()
    (deps / "boto3" / "__pycache__" / "__init__.cpython-314.pyc").write_bytes(b"compiled for 3.14")
    digest.write_text(tree_digest(deps) + "\n")
    upgraded = agents_module.bundle_hash()
    assert upgraded != first
    (lambdas / "shared" / "tokens.py").write_text("# changed\n", encoding="utf-8")
    assert agents_module.bundle_hash() not in (first, upgraded)
