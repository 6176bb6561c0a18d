"""The tools gateway template: auth, interceptors, ENFORCE policies from the one map, targets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from knowledge_search.contract import TOOL as KNOWLEDGE_SEARCH_TOOL
from legacy_tools import handler
from legacy_tools.adapters import CHAINED
from legacy_tools.contract import SingleCallTool, SingleCallTools
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.passage import CHECK_ACTIONS, ISSUE_ACTIONS
from shared.runtime_config import DocumentReader
from shared.tools import WEB_TARGET
from stacks.config import all_tools, load_config
from stacks.production.tool_binding import bindings, cedar_permits, qualified
from tests.infra.cfn import only, props, render, resources, role_permissions, runtime_document
from tests.infra.conftest import STACK_SUFFIXES, Assembly
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, serve
from web_mcp.contract import WEB_BROWSE, WEB_FETCH


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def test_gateway_takes_only_the_production_pools_tokens(tools: dict[str, Any]) -> None:
    gateway = props(tools, "AWS::BedrockAgentCore::Gateway")
    assert gateway["AuthorizerType"] == "CUSTOM_JWT"
    jwt = gateway["AuthorizerConfiguration"]["CustomJWTAuthorizer"]
    assert jwt["DiscoveryUrl"]["Fn::Join"][1][-1] == "/.well-known/openid-configuration"
    assert jwt["AllowedClients"][0]["Fn::GetStackOutput"]["StackName"] == "genai-production-identity"


def test_both_interceptors_see_the_callers_headers(tools: dict[str, Any]) -> None:
    gateway = props(tools, "AWS::BedrockAgentCore::Gateway")
    interceptors = {
        point: (render(i["Interceptor"]["Lambda"]["Arn"]), i["InputConfiguration"]["PassRequestHeaders"])
        for i in gateway["InterceptorConfigurations"]
        for point in i["InterceptionPoints"]
    }
    assert interceptors == {"REQUEST": ("<ToolGuardFunction.Arn>", True), "RESPONSE": ("<ToolGuardFunction.Arn>", True)}


def test_policy_engine_enforces_one_permit_per_group_and_tool(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    gateway = props(tools, "AWS::BedrockAgentCore::Gateway")
    assert gateway["PolicyEngineConfiguration"]["Mode"] == "ENFORCE"
    expected = cedar_permits(bindings(production(cdk_context)), "<Gateway.GatewayArn>")
    policies = resources(tools, "AWS::BedrockAgentCore::Policy")
    statements = {
        p["Properties"]["Name"]: render(p["Properties"]["Definition"]["Cedar"]["Statement"]) for p in policies.values()
    }
    assert statements == expected
    targets = set(resources(tools, "AWS::BedrockAgentCore::GatewayTarget"))
    for policy in policies.values():  # validated against the tools the targets define
        assert targets <= set(policy["DependsOn"])
        assert policy["Properties"]["ValidationMode"] == "FAIL_ON_ANY_FINDINGS"


def test_one_target_per_legacy_api_plus_knowledge_with_the_configured_tools(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    targets = [t["Properties"] for t in resources(tools, "AWS::BedrockAgentCore::GatewayTarget").values()]
    listed = {
        t["Name"]: [tool["Name"] for tool in t["TargetConfiguration"]["Mcp"]["Lambda"]["ToolSchema"]["InlinePayload"]]
        for t in targets
        if "Lambda" in t["TargetConfiguration"]["Mcp"]
    }
    expected: dict[str, list[str]] = {}
    for tool, target in all_tools(production(cdk_context).legacy_apis).items():
        expected.setdefault(target, []).append(tool)
    # The web tools' target is an MCP server, which publishes its own tools (tests/infra/test_web_tools.py).
    assert [t["Name"] for t in targets if "McpServer" in t["TargetConfiguration"]["Mcp"]] == [WEB_TARGET]
    assert expected.pop(WEB_TARGET) == [WEB_FETCH.name, WEB_BROWSE.name]
    assert listed == expected


def cfn_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A reduced JSON Schema as CloudFormation spells AgentCore's SchemaDefinition."""
    out: dict[str, Any] = {"Type": schema["type"]}
    for key in ("description", "required"):
        if schema.get(key):
            out[key.title()] = schema[key]
    if "properties" in schema:
        out["Properties"] = {name: cfn_schema(value) for name, value in schema["properties"].items()}
    if "items" in schema:
        out["Items"] = cfn_schema(schema["items"])
    return out


def test_published_tool_schemas_are_the_tools_own_argument_models(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    apis = production(cdk_context).legacy_apis.values()
    specs = {name: tool.spec for name, tool in CHAINED.items()} | {KNOWLEDGE_SEARCH_TOOL.name: KNOWLEDGE_SEARCH_TOOL}
    # A single-call tool's spec is built from its declaration in config.
    specs |= {name: declared.spec(name) for api in apis for name, declared in api.single_call_tools().items()}
    fields = {tool: api.declared_fields(tool) for api in apis for tool in api.tools}
    published = [
        tool
        for target in resources(tools, "AWS::BedrockAgentCore::GatewayTarget").values()
        if "Lambda" in target["Properties"]["TargetConfiguration"]["Mcp"]
        for tool in target["Properties"]["TargetConfiguration"]["Mcp"]["Lambda"]["ToolSchema"]["InlinePayload"]
    ]
    assert published
    for tool in published:
        spec = specs[tool["Name"]]
        assert tool["InputSchema"] == cfn_schema(spec.input_schema()), tool["Name"]
        assert tool["Description"] == spec.describe(fields.get(tool["Name"], []))
    search = next(t for t in published if t["Name"] == "knowledge_search")["InputSchema"]
    # The gateway writes the caller's classifications: declared for the policy engine, never required.
    assert "data_classifications" in search["Properties"]
    assert search["Required"] == ["query"]


def test_legacy_tool_functions_get_their_api_config_and_only_their_secret(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    for target, api in production(cdk_context).legacy_apis.items():
        prefix = "".join(part.title() for part in target.split("-"))
        env = props(tools, "AWS::Lambda::Function", f"{prefix}ToolsFunction")["Environment"]["Variables"]
        assert json.loads(env["LEGACY_API"])["fields"] == api.chained_tools()
        assert env["API_NAME"] == target
        # Its single-call tools: its entry in the tools' runtime document, not its environment.
        document, _ = runtime_document(tools, "tools-single-call-tools")
        written = TypeAdapter(dict[str, SingleCallTool]).validate_python(document["apis"][target])
        assert written == api.single_call_tools()
        assert json.loads(render(env["SINGLE_CALL_TOOLS"]))["environment_name"] == "tools"
        secrets = {
            r for a, r in role_permissions(tools, f"{prefix}ToolsFunctionRole") if a.startswith("secretsmanager:")
        }
        assert secrets == {f"arn:aws:secretsmanager:us-east-1:<AWS::AccountId>:secret:{api.secret_name}-??????"}


def test_knowledge_search_may_retrieve_from_the_production_kb_only(tools: dict[str, Any]) -> None:
    bedrock = [(a, r) for a, r in role_permissions(tools, "KnowledgeSearchFunctionRole") if a.startswith("bedrock:")]
    assert len(bedrock) == 1
    assert bedrock[0][0] == "bedrock:Retrieve"
    assert "'StackName': 'genai-production-knowledge'" in bedrock[0][1]
    assert "KnowledgeBaseArn" in bedrock[0][1]


def test_the_curated_bucket_feeds_the_production_kb(knowledge: dict[str, Any]) -> None:
    _, bucket = only(knowledge, "AWS::S3::Bucket", "Curated")
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    source = props(knowledge, "AWS::Bedrock::DataSource", "KnowledgeBaseDataSource")
    assert render(source["DataSourceConfiguration"]["S3Configuration"]) == {
        "BucketArn": "<Curated.Arn>",
        "InclusionPrefixes": ["curated/"],
    }
    assert props(knowledge, "AWS::Bedrock::KnowledgeBase")["StorageConfiguration"]["Type"] == "S3_VECTORS"


def test_rate_limits_per_tool_and_per_group_come_from_config(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    limits = {
        tuple(r["Properties"]["DimensionKeys"]): r["Properties"]
        for r in resources(tools, "AWS::BedrockAgentCore::GatewayRateLimit").values()
    }
    # AgentCore's toolName dimension is the qualified <target>___<tool> name.
    per_tool = {e["Dimensions"]["toolName"]: e["Requests"][0] for e in limits[("toolName",)]["Entries"]}
    targets = all_tools(config.legacy_apis)
    assert per_tool == {
        **{
            qualified(targets[tool], tool): {"Period": "minute", "Rate": rate}
            for tool, rate in config.tool_requests_per_minute.items()
        },
        "*": {"Period": "minute", "Rate": config.default_tool_requests_per_minute},
    }
    per_group = {
        e["Dimensions"]["$.context.jwt.gateway_group"]: e["Requests"][0]["Rate"]
        for e in limits[("$.context.jwt.gateway_group",)]["Entries"]
    }
    assert per_group == {name: group.tool_requests_per_minute for name, group in config.groups.items()}
    assert render(limits[("$.context.jwt.gateway_group",)]["GatewayIdentifier"]) == "<Gateway.GatewayIdentifier>"


def test_the_gateway_supports_the_agents_mcp_version(tools: dict[str, Any]) -> None:
    versions = props(tools, "AWS::BedrockAgentCore::Gateway")["ProtocolConfiguration"]["Mcp"]["SupportedVersions"]
    assert "2025-06-18" in versions


def test_the_gateway_delivers_its_logs_encrypted_and_its_traces_to_xray(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    sources = {s["Properties"]["LogType"]: render(s["Properties"]["ResourceArn"]) for s in resources(tools, "AWS::Logs::DeliverySource").values()}  # fmt: skip
    assert sources == {"APPLICATION_LOGS": "<Gateway.GatewayArn>", "TRACES": "<Gateway.GatewayArn>"}
    destinations = {d["Properties"]["DeliveryDestinationType"]: d["Properties"] for d in resources(tools, "AWS::Logs::DeliveryDestination").values()}  # fmt: skip
    assert render(destinations["CWL"]["DestinationResourceArn"]) == "<GatewayLogs.Arn>"
    assert "XRAY" in destinations
    assert len(resources(tools, "AWS::Logs::Delivery")) == 2
    group = props(tools, "AWS::Logs::LogGroup", "GatewayLogs")
    assert "Fn::GetStackOutput" in group["KmsKeyId"]
    assert group["RetentionInDays"] == production(cdk_context).log_retention_days


def test_a_single_call_tool_runs_from_the_environment_the_stack_writes(
    tools: dict[str, Any], cdk_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stack and handler agree through the contract alone: the template's environment and runtime
    document, applied to the handler, serve each configured single-call tool against a stand-in of
    its API."""
    declared = {
        (target, name): tool
        for target, api in production(cdk_context).legacy_apis.items()
        for name, tool in api.single_call_tools().items()
    }
    if not declared:
        pytest.skip("the config in use declares no single-call tool")
    document = SingleCallTools.model_validate(runtime_document(tools, "tools-single-call-tools")[0])
    monkeypatch.setattr(handler, "single_call_tools", lambda: DocumentReader.static(document))
    for (target, name), tool in declared.items():
        prefix = "".join(part.title() for part in target.split("-"))
        variables = props(tools, "AWS::Lambda::Function", f"{prefix}ToolsFunction")["Environment"]["Variables"]
        with serve() as api:
            for variable, value in variables.items():
                # (where to read the document holds deploy-time ids: the document is served above)
                monkeypatch.setenv(variable, value if isinstance(value, str) else str(render(value)))
            client = LegacyClient(
                ClientSettings(base_url=api.url, max_attempts=1), lambda: Credentials(CLIENT_ID, CLIENT_SECRET)
            )
            monkeypatch.setattr(handler, "client", lambda client=client: client)
            for cached in (handler.settings, handler.served):
                cached.cache_clear()
            arguments = {argument: "O-00042" for argument in tool.path_arguments()}
            answer = handler.run(name, arguments)
            assert set(answer["record"]) == set(tool.fields), answer
            assert all(value is not None for value in answer["record"].values()), answer  # paths that resolve
            assert api.requests == [tool.path.format_map(arguments)]
    for cached in (handler.settings, handler.served):
        cached.cache_clear()


def test_only_the_ai_gateways_roles_make_passages_and_only_the_interceptor_checks_them(assembly: Assembly) -> None:
    """The tools gateway takes the users' own tokens: what tells an agent's call from a user's is
    the AI gateway's passage (lambdas/shared/passage.py). Only the roles that invoke agents may
    make one, only the interceptor may check one, and both read the identity stack's key."""
    identity = assembly.template(STACK_SUFFIXES["identity"])
    key = props(identity, "AWS::KMS::Key", "PassageKey")
    assert (key["KeySpec"], key["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    granted: dict[tuple[str, str], set[str]] = {}
    for stack, template in assembly.templates.items():
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                on_key = "PassageKey" in json.dumps(statement["Resource"])
                for action in actions:
                    if on_key or action in {*ISSUE_ACTIONS, *CHECK_ACTIONS, "kms:*"}:
                        for role in policy["Properties"]["Roles"]:
                            granted.setdefault((stack.removeprefix("genai-production-"), render(role)), set()).add(
                                action
                            )
    assert granted == {
        ("gateway", "<GatewayFunctionRole>"): {"kms:GenerateMac"},
        ("gateway", "<GatewayStreamFunctionRole>"): {"kms:GenerateMac"},
        ("gateway", "<JobsWorkerRole>"): {"kms:GenerateMac"},
        ("tools", "<ToolGuardFunctionRole>"): {"kms:VerifyMac"},
    }
    # Each of them is told which key (the identity stack's), in the variable its contract reads.
    users = {
        (stack.removeprefix("genai-production-"), name)
        for stack, template in assembly.templates.items()
        for name, function in resources(template, "AWS::Lambda::Function").items()
        if "PassageKey"
        in json.dumps(function["Properties"].get("Environment", {}).get("Variables", {}).get("PASSAGE_KEY_ID"))
    }
    assert {(stack, render({"Ref": name})) for stack, name in users} == {
        ("gateway", "<GatewayFunction>"),
        ("gateway", "<GatewayStreamFunction>"),
        ("gateway", "<JobsWorker>"),
        ("tools", "<ToolGuardFunction>"),
    }
