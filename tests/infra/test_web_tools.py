"""The web tools' MCP server (stacks/production/web_tools.py): a target of the tools gateway behind
OAuth2 client credentials only the gateway holds, its runtime refusing every other caller, and its
browser and guardrail its own."""

from __future__ import annotations

import json
from typing import Any

from shared.tools import WEB_TARGET
from stacks.config import load_config
from stacks.production.web_tools import BROWSER_ACTIONS, web_policy
from stacks.shared.naming import generation
from tests.infra.cfn import only, props, render, resources, role_permissions, runtime_document
from web_mcp.contract import WebPolicy

SCOPE = "genai-production-web-mcp/invoke"
RUNTIME = "<WebToolsServer.AgentRuntimeId>"


def web_target(tools: dict[str, Any]) -> dict[str, Any]:
    (target,) = [
        r
        for r in resources(tools, "AWS::BedrockAgentCore::GatewayTarget").values()
        if r["Properties"]["Name"] == WEB_TARGET
    ]
    return target


def test_the_web_target_is_the_servers_runtime_reached_with_the_gateways_oauth_credentials(
    tools: dict[str, Any],
) -> None:
    target = web_target(tools)
    endpoint = render(target["Properties"]["TargetConfiguration"]["Mcp"]["McpServer"]["Endpoint"])
    assert endpoint == (
        "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/"
        f"arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A<AWS::AccountId>%3Aruntime%2F{RUNTIME}"
        "/invocations?qualifier=DEFAULT"
    )
    (credentials,) = render(target["Properties"]["CredentialProviderConfigurations"])
    assert credentials == {
        "CredentialProviderType": "OAUTH",
        "CredentialProvider": {
            "OauthCredentialProvider": {
                "ProviderArn": "<WebToolsGatewayCredentials.CredentialProviderArn>",
                "Scopes": [SCOPE],
            }
        },
    }
    # The gateway lists the server's tools when the target is created, which runs the server: the
    # runtime and the log group AgentCore would otherwise make for it come first.
    (runtime, server) = only(tools, "AWS::BedrockAgentCore::Runtime", "WebToolsServer")
    (logs, _) = only(tools, "AWS::Logs::LogGroup", "WebToolsRuntimeLogs")
    assert {runtime, logs} <= set(target["DependsOn"])
    # ... and a token from the pool's domain, made before the runtime so that its creation stands
    # between the domain's and the first token request.
    (domain, _) = only(tools, "AWS::Cognito::UserPoolDomain", "WebToolsTokenDomain")
    assert domain in server["DependsOn"]


def test_the_credential_provider_holds_the_gateways_own_client_by_reference(tools: dict[str, Any]) -> None:
    provider = render(props(tools, "AWS::BedrockAgentCore::OAuth2CredentialProvider", "WebToolsGatewayCredentials"))
    config = provider["Oauth2ProviderConfigInput"]["IncludedOauth2ProviderConfig"]
    assert provider["CredentialProviderVendor"] == "CognitoOauth2"
    assert (config["ClientId"], config["ClientSecret"]) == (
        "<WebToolsGatewayClient>",
        "<WebToolsGatewayClient.ClientSecret>",  # a reference: no secret in the template
    )
    assert (
        config["TokenEndpoint"]
        == "https://genai-production-tools-<AWS::AccountId>.auth.us-east-1.amazoncognito.com/oauth2/token"
    )


def test_the_gateways_client_has_client_credentials_and_the_servers_scope_only(tools: dict[str, Any]) -> None:
    client = render(props(tools, "AWS::Cognito::UserPoolClient", "WebToolsGatewayClient"))
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["GenerateSecret"] is True
    assert client["AllowedOAuthScopes"] == ["<WebToolsResourceServer>/invoke"]
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]  # no user sign-in flow
    server = props(tools, "AWS::Cognito::UserPoolResourceServer", "WebToolsResourceServer")
    assert server["Identifier"] == SCOPE.removesuffix("/invoke")
    assert [s["ScopeName"] for s in server["Scopes"]] == ["invoke"]


def test_the_server_accepts_only_the_gateways_client_with_its_scope(tools: dict[str, Any]) -> None:
    runtime = render(props(tools, "AWS::BedrockAgentCore::Runtime", "WebToolsServer"))
    assert runtime["ProtocolConfiguration"] == "MCP"
    jwt = runtime["AuthorizerConfiguration"]["CustomJWTAuthorizer"]
    assert jwt["AllowedClients"] == ["<WebToolsGatewayClient>"]  # not the agents' or users' client
    assert jwt["AllowedScopes"] == [SCOPE]
    assert jwt["DiscoveryUrl"].endswith("/.well-known/openid-configuration")
    assert jwt["DiscoveryUrl"].startswith("https://cognito-idp.us-east-1.amazonaws.com/")
    code = runtime["AgentRuntimeArtifact"]["CodeConfiguration"]
    assert (code["Runtime"], code["EntryPoint"]) == ("PYTHON_3_14", ["opentelemetry-instrument", "main.py"])


def test_nobody_runs_commands_in_the_servers_sessions(tools: dict[str, Any]) -> None:
    policy = render(props(tools, "AWS::BedrockAgentCore::ResourcePolicy", "WebToolsServerPolicy"))
    arn = "<WebToolsServer.AgentRuntimeArn>"
    assert policy["ResourceArn"] == arn
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            # The gateway's token callers, as a token-authorized runtime's policy names them; the
            # runtime's JWT authorizer (the gateway's client and scope only) still decides.
            {
                "Sid": "GatewayTokenCallers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "bedrock-agentcore:InvokeAgentRuntime",
                "Resource": arn,
            },
            {
                "Sid": "NoCommandsInSessions",
                "Effect": "Deny",
                "Principal": "*",
                "Action": [
                    "bedrock-agentcore:InvokeAgentRuntimeCommand",
                    "bedrock-agentcore:InvokeAgentRuntimeCommandShell",
                ],
                "Resource": arn,
            },
        ],
    }


def test_the_servers_browser_and_guardrail_are_its_own(tools: dict[str, Any]) -> None:
    permissions = role_permissions(tools, "WebToolsServerExecutionRole")
    browser = {(a, r) for a, r in permissions if "Browser" in a}
    assert browser == {(action, "<WebToolsBrowser.BrowserArn>") for action in BROWSER_ACTIONS}
    assert {(a, r) for a, r in permissions if a.startswith("bedrock:")} == {
        ("bedrock:ApplyGuardrail", "<WebToolsContentGuardrail.GuardrailArn>")
    }
    browser_props = props(tools, "AWS::BedrockAgentCore::BrowserCustom", "WebToolsBrowser")
    # Every browser property is create-only: the name carries them, so a replacement is made beside
    # the old browser under a new name instead of colliding with it.
    assert browser_props["Name"] == (
        f"genai_web_tools_{generation(browser_props['Description'], browser_props['NetworkConfiguration']['NetworkMode'])}"
    )
    assert browser_props["NetworkConfiguration"] == {"NetworkMode": "PUBLIC"}
    env = render(props(tools, "AWS::BedrockAgentCore::Runtime", "WebToolsServer")["EnvironmentVariables"])
    assert (env["BROWSER_ID"], env["GUARDRAIL_ID"], env["GUARDRAIL_VERSION"]) == (
        "<WebToolsBrowser.BrowserId>",
        "<WebToolsContentGuardrail.GuardrailId>",
        "<WebToolsContentGuardrailVersion.Version>",
    )


def test_fetched_text_goes_through_prompt_attack_and_pii_filters(
    tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = load_config({**cdk_context, "tier": "production"}).production
    guardrail = props(tools, "AWS::Bedrock::Guardrail", "WebToolsContentGuardrail")
    (attack,) = guardrail["ContentPolicyConfig"]["FiltersConfig"]
    assert attack == {
        "Type": "PROMPT_ATTACK",
        "InputStrength": config.guardrail.prompt_attack_strength,
        "OutputStrength": "NONE",
    }
    pii = {e["Type"]: e["Action"] for e in guardrail["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]}
    assert pii == dict(config.guardrail.pii_entities)


def test_each_web_groups_domains_are_a_runtime_document(tools: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    config = load_config({**cdk_context, "tier": "production"}).production
    content, schema = runtime_document(tools, "tools-web-policy")
    assert WebPolicy.model_validate(content) == web_policy(config)
    assert schema == WebPolicy.validator_schema()
    # Only groups with a web tool get an entry: a group without one reaches nothing.
    assert set(content["groups"]) == {
        name for name, group in config.groups.items() if {"web_fetch", "web_browse"} & set(group.tools)
    }
    env = render(props(tools, "AWS::BedrockAgentCore::Runtime", "WebToolsServer")["EnvironmentVariables"])
    assert '"profile":"<RuntimeConfigwebpolicyConfigurationConfigurationProfile>"' in env["POLICY"]
    reads = {(a, r) for a, r in role_permissions(tools, "WebToolsServerExecutionRole") if a.startswith("appconfig:")}
    assert reads
    assert all("RuntimeConfigwebpolicy" in r or "RuntimeConfigEnvironment" in r for _, r in reads)


def test_the_servers_spans_carry_no_fetched_url(tools: dict[str, Any]) -> None:
    """urllib3's and urllib's spans would record each fetched URL's path and query."""
    env = props(tools, "AWS::BedrockAgentCore::Runtime", "WebToolsServer")["EnvironmentVariables"]
    disabled = env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"].split(",")
    assert {"urllib3", "urllib", "requests", "boto3"} <= set(disabled)
    assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"


def test_a_change_of_the_servers_tools_updates_the_target(tools: dict[str, Any]) -> None:
    """The gateway resyncs an MCP target's tools only when the target is updated: the tools' digest
    is in its description, and the digest follows the published schemas."""
    from stacks.production import web_tools
    from web_mcp.contract import WEB_FETCH

    assert web_target(tools)["Properties"]["Description"].endswith(f"tools {web_tools.tools_digest()}")
    original = WEB_FETCH.description
    try:
        object.__setattr__(WEB_FETCH, "description", original + " Changed.")
        assert web_tools.tools_digest() not in web_target(tools)["Properties"]["Description"]
    finally:
        object.__setattr__(WEB_FETCH, "description", original)
