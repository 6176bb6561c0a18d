"""The web tools' MCP server (lambdas/web_mcp) on AgentCore Runtime, a target of the tools gateway.

The tools gateway reaches it with OAuth2 client credentials: a Cognito app client of the tier's
user pool that only the gateway's credential provider holds, with the one scope of this server's
resource server. The runtime's inbound JWT auth accepts exactly that client and scope, so neither a
user's token nor any other client can call it. Its tools are synchronised by the gateway when the
target is created (tools/list), so the target waits for the runtime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import (
    Annotations,
    Duration,
    SecretValue,
    Stack,
    Token,
    aws_bedrock as bedrock,
    aws_bedrockagentcore as agentcore,
    aws_cognito as cognito,
    aws_iam as iam,
)
from constructs import Construct

from agent.contract import span_environment
from shared.claims import cognito_issuer
from shared.tools import WEB_TARGET
from stacks.config import GuardrailConfig, ProductionConfig
from stacks.production.agent import acknowledge_runtime_role, no_commands_statement
from stacks.production.agents import agent_artifact, count_config_refusals, runtime_log_group_name, runtime_name
from stacks.production.context import ProductionContext
from stacks.shared.bedrock import pii_policy
from stacks.shared.expect import default_child
from stacks.shared.lambda_function import environment_of
from stacks.shared.nag import acknowledge, nag_arn
from stacks.shared.naming import generation
from stacks.shared.runtime_config import ConfigEnvironment
from web_mcp.contract import WEB_TOOLS, GroupWeb, Settings as WebSettings, WebPolicy

WEB_PACKAGE = "web_mcp"
WEB_RUNTIME = "web_tools"  # the runtime's name after the tier's prefix
INVOKE_SCOPE = "invoke"
GUARDRAIL_ACTIONS = ["bedrock:ApplyGuardrail"]
# What lambdas/web_mcp/browse.py does with its browser through BrowserClient: start() a session,
# generate_ws_headers() for its automation stream, stop() it (tests/infra/iam_coverage.py reads
# these calls from the library's source; the client's get_session() is not on that path).
BROWSER_ACTIONS = [
    "bedrock-agentcore:StartBrowserSession",
    "bedrock-agentcore:ConnectBrowserAutomationStream",
    "bedrock-agentcore:StopBrowserSession",
]


def tools_digest() -> str:
    """What the server publishes (names, descriptions, schemas), as a short digest."""
    published = [(spec.name, spec.description, spec.input_schema()) for spec in WEB_TOOLS]
    return hashlib.sha256(json.dumps(published, sort_keys=True).encode()).hexdigest()[:12]


def web_policy(config: ProductionConfig) -> WebPolicy:
    """Each group's domains, for the groups that have a web tool (the others reach nothing)."""
    return WebPolicy(
        groups={
            name: GroupWeb(allow=group.web.allow, deny=group.web.deny)
            for name, group in sorted(config.groups.items())
            if any(tool.startswith("web_") for tool in group.tools)
        }
    )


def web_span_environment() -> dict[str, str]:
    """The agents' span settings, with the HTTP client instrumentations the fetches use turned off."""
    spans = span_environment(capture_content=False)
    disabled = spans["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"]
    return {**spans, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": f"{disabled},urllib3,urllib"}


def runtime_package(runtime: Mapping[str, Any]) -> tuple[str, str]:
    """The (package, module) an AgentCore Runtime of this tier runs, from its template properties:
    the web tools' server, or an agent."""
    if str(runtime.get("AgentRuntimeName", "")).endswith(f"_{WEB_RUNTIME}"):
        return WEB_PACKAGE, "server"
    return "agent", "__main__"


def runtime_endpoint(stack: Stack, runtime: agentcore.Runtime) -> str:
    """The runtime's MCP endpoint as a gateway target calls it: the invocations URL with the runtime's
    ARN URL-encoded (composed from its parts: CloudFormation cannot encode a deployed value)."""
    encoded = f"arn%3A{stack.partition}%3Abedrock-agentcore%3A{stack.region}%3A{stack.account}%3Aruntime%2F"
    return (
        f"https://bedrock-agentcore.{stack.region}.amazonaws.com/runtimes/{encoded}{runtime.agent_runtime_id}"
        "/invocations?qualifier=DEFAULT"
    )


class WebTools(Construct):
    """- a guardrail for fetched text (prompt attacks blocked, PII as the platform's policy says);
    - a browser of its own (AgentCore Browser, public network), which only this server may drive;
    - the OAuth pieces: a resource server with the scope ``invoke``, the gateway's app client
      (client credentials, with a secret), the pool's domain for the token endpoint, and the
      gateway's credential provider over that client;
    - the runtime (MCP protocol, JWT inbound auth for that client and scope only);
    - the MCP-server target ``web`` on the tools gateway, authenticating with the provider."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        gateway: agentcore.Gateway,
        runtime_config: ConfigEnvironment,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        config, name, user_pool = context.config, context.name, context.identity.user_pool
        web = config.web
        self.guardrail, self.guardrail_version = _web_guardrail(self, name, config.guardrail)
        # Every property of a browser is fixed at creation: a changed one is a new browser, which
        # CloudFormation creates before deleting the old, so its name carries their generation.
        browser_description = "The web tools' browser (web_browse): public pages only, driven by the web MCP server"
        self.browser = agentcore.BrowserCustom(
            self,
            "Browser",
            browser_custom_name=runtime_name(context.prefix, f"web_tools_{generation(browser_description, 'PUBLIC')}"),
            description=browser_description,
            network_configuration=agentcore.BrowserNetworkConfiguration.using_public_network(),
        )

        resource_server = cognito.UserPoolResourceServer(
            self,
            "ResourceServer",
            user_pool=user_pool,
            identifier=f"{name}-web-mcp",
            user_pool_resource_server_name=f"{name}-web-mcp",
            scopes=[cognito.ResourceServerScope(scope_name=INVOKE_SCOPE, scope_description="Call the web tools")],
        )
        self.scope = f"{name}-web-mcp/{INVOKE_SCOPE}"
        self.client = cognito.UserPoolClient(
            self,
            "GatewayClient",
            user_pool=user_pool,
            user_pool_client_name=f"{name}-tools-gateway-to-web",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(),  # no user sign-in: client credentials only
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[
                    cognito.OAuthScope.resource_server(
                        resource_server, cognito.ResourceServerScope(scope_name=INVOKE_SCOPE, scope_description="")
                    )
                ],
            ),
            access_token_validity=Duration.minutes(60),
            prevent_user_existence_errors=True,
        )
        self.client.node.add_dependency(resource_server)
        # No user sign-in flow at all (left unset, Cognito would allow SRP and custom auth).
        client = default_child(self.client, cognito.CfnUserPoolClient)
        client.explicit_auth_flows = ["ALLOW_REFRESH_TOKEN_AUTH"]
        # The token endpoint lives on the pool's domain: a Cognito prefix domain, unique in the region
        # across accounts, so named with the account id (the L1: the L2 cannot check a deployed value).
        domain = cognito.CfnUserPoolDomain(
            self, "TokenDomain", domain=f"{name}-tools-{stack.account}", user_pool_id=user_pool.user_pool_id
        )
        base_url = f"https://{domain.domain}.auth.{stack.region}.amazoncognito.com"
        issuer = cognito_issuer(stack.region, user_pool.user_pool_id)
        self.credentials = agentcore.OAuth2CredentialProvider.using_cognito(
            self,
            "GatewayCredentials",
            o_auth2_credential_provider_name=f"{name}-tools-gateway-to-web",
            client_id=self.client.user_pool_client_id,
            # CloudFormation's own ClientSecret attribute (the L2's user_pool_client_secret would add a
            # deploy-time Lambda to describe the client); the template holds a reference, not the value.
            client_secret=SecretValue.resource_attribute(Token.as_string(client.get_att("ClientSecret"))),
            issuer=issuer,
            authorization_endpoint=f"{base_url}/oauth2/authorize",
            token_endpoint=f"{base_url}/oauth2/token",
        )
        self.credentials.node.add_dependency(domain)

        # Each group's domains grow with the groups: a runtime document, not an environment variable.
        self.policy = runtime_config.document(
            "web-policy",
            model=WebPolicy,
            content=web_policy(config),
            description="Web tools: the domains each group's agents may reach",
        )
        settings = WebSettings(
            guardrail_id=self.guardrail.attr_guardrail_id,
            guardrail_version=self.guardrail_version.attr_version,
            policy=self.policy.location,
            max_bytes=web.max_bytes,
            max_redirects=web.max_redirects,
            timeout_seconds=web.timeout_seconds,
            max_chars=web.max_chars,
            content_types=web.content_types,
            https_only=web.https_only,
            browser_id=self.browser.browser_id,
            browse_timeout_seconds=web.browse_timeout_seconds,
        )
        self.runtime = agentcore.Runtime(
            self,
            "Server",
            runtime_name=runtime_name(context.prefix, WEB_RUNTIME),
            description="The web tools' MCP server (web_fetch, web_browse), called by the tools gateway only",
            agent_runtime_artifact=agent_artifact(WEB_PACKAGE),
            protocol_configuration=agentcore.ProtocolType.MCP,
            # Only the gateway's client, with this server's scope: no user token, no other client.
            authorizer_configuration=agentcore.RuntimeAuthorizerConfiguration.using_jwt(
                f"{issuer}/.well-known/openid-configuration",
                allowed_clients=[self.client.user_pool_client_id],
                allowed_scopes=[self.scope],
            ),
            environment_variables={
                "POWERTOOLS_SERVICE_NAME": WEB_PACKAGE,
                "POWERTOOLS_METRICS_NAMESPACE": context.metrics_namespace,
                # Started under ADOT as the agents are: its spans never carry page text, nor the URLs
                # it fetches (urllib3's and urllib's spans would record their paths and queries).
                **web_span_environment(),
                **environment_of(self, settings),
            },
        )
        # Its callers come with the gateway's token, which the runtime's JWT authorizer checks (no
        # IAM principal invokes it): a token-authorized runtime's policy names them as "*", as
        # AgentCore's own examples do, so the policy leaves them exactly where the authorizer does.
        # Nobody runs commands in its sessions, which hold the guardrail's and the browser's permissions.
        arn = self.runtime.agent_runtime_arn
        token_callers = {
            "Sid": "GatewayTokenCallers",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "bedrock-agentcore:InvokeAgentRuntime",
            "Resource": arn,
        }
        agentcore.CfnResourcePolicy(
            self,
            "ServerPolicy",
            resource_arn=arn,
            policy=stack.to_json_string(
                {"Version": "2012-10-17", "Statement": [token_callers, no_commands_statement(arn)]}
            ),
        )
        role = self.runtime.role
        self.policy.grant_read(self.runtime)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=GUARDRAIL_ACTIONS, resources=[self.guardrail.attr_guardrail_arn])
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=BROWSER_ACTIONS, resources=[self.browser.browser_arn]))
        # AgentCore writes the server's stdout to a log group named after the runtime: made first,
        # encrypted, with retention (as for the agents).
        runtime_logs = context.log_group(self, "RuntimeLogs", log_group_name=runtime_log_group_name(self.runtime))
        # Its refusals of the web policy, the one document of the tools environment only it reads:
        # that environment's rollback alarm sees them only through its log group.
        count_config_refusals(
            self,
            "ConfigRefusals",
            log_group=runtime_logs,
            environment_name=self.policy.location.environment_name,
            namespace=context.metrics_namespace,
        )

        self.target = gateway.add_mcp_server_target(
            "WebTarget",
            gateway_target_name=WEB_TARGET,
            # The gateway lists the server's tools when the target is created or updated: the tools'
            # digest in the description makes a change of their schemas update (and resync) it.
            description=f"web_fetch and web_browse (lambdas/web_mcp on AgentCore Runtime), tools {tools_digest()}",
            endpoint=runtime_endpoint(stack, self.runtime),
            credential_provider_configurations=[
                agentcore.GatewayCredentialProvider.from_oauth_identity_arn(
                    provider_arn=self.credentials.credential_provider_arn,
                    secret_arn=self.credentials.client_secret_arn or "",
                    scopes=[self.scope],
                )
            ],
        )
        # The gateway lists the server's tools when the target is created or updated, which runs the
        # server: it must be up, and its log group made, or AgentCore would make one (unencrypted,
        # kept forever) that CloudFormation then fails to create. The gateway first fetches a token
        # from the pool's domain, which may take a minute to answer once created: the runtime is
        # created after the domain, so its own creation stands between them.
        self.target.node.add_dependency(self.runtime, runtime_logs)
        default_child(self.runtime, Construct).node.add_dependency(domain)
        acknowledge_runtime_role(self.runtime)
        # What the gateway's role gets for an OAuth target (the Gateway L2 writes it): its workload
        # identity's token and the credential provider's client secret.
        gateway_role = gateway.role
        for finding, reason in (
            (
                nag_arn(
                    stack,
                    "bedrock-agentcore",
                    f"workload-identity-directory/default/workload-identity/{stack.stack_name}-*",
                ),
                "The gateway's workload identity is created by AgentCore with the gateway and named after it; the "
                "gateway exchanges it for the web server's OAuth token.",
            ),
            (
                nag_arn(stack, "secretsmanager", "secret:bedrock-agentcore-identity!*"),
                "AgentCore Identity keeps each credential provider's client secret in a secret it names itself "
                "(bedrock-agentcore-identity!...); the gateway reads the web server's to fetch its token.",
            ),
        ):
            acknowledge(gateway_role, f"AwsSolutions-IAM5[Resource::{finding}]", reason)
        Annotations.of(gateway).acknowledge_warning(
            "aws-cdk-lib.aws-bedrockagentcore:wildcardSecretArnGrant",
            "The credential provider's secret is created by AgentCore Identity at deploy time, so its ARN is "
            "known only then; the grant is held to the secrets AgentCore Identity names (acknowledged above).",
        )


def _web_guardrail(
    scope: Construct, name: str, config: GuardrailConfig
) -> tuple[bedrock.CfnGuardrail, bedrock.CfnGuardrailVersion]:
    """Fetched text through the input filters that matter for untrusted material: prompt attacks
    (the platform's strength) and PII (the platform's actions). Topics and content filters are for
    what callers ask and models answer, not for the pages an agent reads."""
    G = bedrock.CfnGuardrail  # noqa: N806 - the L1 class, for its nested property types
    guardrail = G(
        scope,
        "ContentGuardrail",
        name=f"{name}-web-content",
        description="Applied by the web tools to every fetched page before an agent reads it",
        blocked_input_messaging="This page was withheld: it looks like an attempt to instruct the agent.",
        blocked_outputs_messaging="This page was withheld.",
        content_policy_config=G.ContentPolicyConfigProperty(
            filters_config=[
                G.ContentFilterConfigProperty(
                    type="PROMPT_ATTACK", input_strength=config.prompt_attack_strength, output_strength="NONE"
                )
            ]
        ),
        sensitive_information_policy_config=pii_policy(config.pii_entities),
    )
    digest = hashlib.sha256(
        f"{config.prompt_attack_strength}{sorted(config.pii_entities.items())}".encode()
    ).hexdigest()[:12]
    version = bedrock.CfnGuardrailVersion(
        scope,
        "ContentGuardrailVersion",
        guardrail_identifier=guardrail.attr_guardrail_id,
        description=f"config {digest}",
    )
    return guardrail, version
