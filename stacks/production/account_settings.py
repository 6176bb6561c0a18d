"""Settings there is one of per account and region, adopted rather than clobbered.

``account_settings.<setting>`` chooses, per setting:

- ``manage``: a resource of this stack (Transaction Search and the Macie session fail to create
  when already on; invocation logging and API Gateway's role are overwritten). It is kept when the
  stack is deleted or the mode changes (a Macie session deleted by CloudFormation would take every
  finding with it); only the rollback of the deploy that created it removes it. Invocation logging
  has no CloudFormation type: the adopting function puts it (``Mode`` manage), waiting for its role
  as adopting does, and nothing ever switches it off, a rollback included. A managed Transaction
  Search is waited for (read-only, by the adopting function) until it takes effect.
- ``adopt`` (the default): a custom resource (lambdas/account_settings) that turns the setting on
  if it is off, leaves it as it is if it is on, and never switches it off, stack deletion included.
  What the setting writes to (roles, log groups) is retained, so it keeps working after a destroy.
- ``off``: the tier leaves the account alone (docs/operations.md says what each feature then lacks).

All four live in the foundation stack, which every other production stack deploys after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import (
    CfnOutput,
    CfnResource,
    CustomResource,
    Duration,
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_iam as iam,
    aws_logs as logs,
    aws_macie as macie,
    aws_xray as xray,
    custom_resources as cr,
)
from constructs import Construct

from account_settings.settings import MACIE_JOBS_LOG_GROUP, SPANS_LOG_GROUP
from stacks.config import AccountSettingMode
from stacks.production.context import ProductionContext
from stacks.shared.lambda_function import log_group_arn, log_retention
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import pascal_case

MANAGE: AccountSettingMode = "manage"
ADOPT: AccountSettingMode = "adopt"
OFF: AccountSettingMode = "off"

MACIE_ROLE = "role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie"
# What lambdas/account_settings/settings.py needs, per setting (account-level actions: no ARN).
# Transaction Search: AWS's documented permissions for enabling it ("Enable transaction search"),
# with the Application Signals ones below.
TRANSACTION_SEARCH_ACTIONS = [
    "xray:GetTraceSegmentDestination",
    "xray:UpdateTraceSegmentDestination",
    "xray:GetIndexingRules",
    "xray:UpdateIndexingRule",
    "application-signals:StartDiscovery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:PutResourcePolicy",
]
# Waiting for a managed Transaction Search to take effect (settings.py transaction_search_ready):
# it reads, and may change nothing.
TRANSACTION_SEARCH_READY_ACTIONS = ["xray:GetTraceSegmentDestination", "logs:DescribeLogGroups"]
APPLICATION_SIGNALS_LOG_GROUP = "/aws/application-signals/data"
SERVICE_LOG_GROUP_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutRetentionPolicy"]
# Enabling Transaction Search with the tier's key for aws/spans (UpdateTraceSegmentDestination's
# SpansLogGroupKmsKeyId: "You need kms:DescribeKey permission on the key").
SPANS_KEY_ACTIONS = ["kms:DescribeKey"]
# An account-wide log group a service would make on first use, made first with a retention.
LOG_GROUP_ACTIONS = ["logs:CreateLogGroup", "logs:PutRetentionPolicy"]
MODEL_INVOCATION_LOGGING_ACTIONS = [
    "bedrock:GetModelInvocationLoggingConfiguration",
    "bedrock:PutModelInvocationLoggingConfiguration",
]
MACIE_ACTIONS = ["macie2:GetMacieSession", "macie2:EnableMacie"]
API_GATEWAY_ACCOUNT_ACTIONS = ["apigateway:GET", "apigateway:PATCH"]
# Enabling Macie and Application Signals creates their service-linked roles.
APPLICATION_SIGNALS = "application-signals.cloudwatch.amazonaws.com"
SERVICE_LINKED_ROLES = {
    "macie.amazonaws.com": "AWSServiceRoleForAmazonMacie",
    APPLICATION_SIGNALS: "AWSServiceRoleForCloudWatchApplicationSignals",
}
# Application Signals discovery (StartDiscovery), as AWS's "Enable transaction search" prerequisites
# list it: read its service-linked role, and create its CloudTrail service-linked channel (named by
# CloudTrail, under this prefix), in this account and region.
APPLICATION_SIGNALS_ROLE_ACTIONS = ["iam:GetRole"]
APPLICATION_SIGNALS_CHANNEL_ACTIONS = ["cloudtrail:CreateServiceLinkedChannel"]
APPLICATION_SIGNALS_CHANNEL = "channel/aws-service-channel/application-signals/*"
# The adopting function looks again every 10 s while a setting switches on, for up to this long.
ADOPTION_TIMEOUT = Duration.minutes(14)
MACIE_PUBLISHING = "FIFTEEN_MINUTES"


class AccountSettings(Construct):
    """Transaction Search, model invocation logging, the Macie session and API Gateway's
    CloudWatch role, each managed, adopted or left alone per ``account_settings``."""

    def __init__(self, scope: Construct, id: str, *, context: ProductionContext) -> None:
        super().__init__(scope, id)
        self._context = context
        config = self._config = context.config
        self._key = context.key
        self._adopter: _Adopter | None = None
        self._waiter: _Adopter | None = None
        settings = config.account_settings
        self._transaction_search(settings.transaction_search)
        self._model_invocation_logging(settings.model_invocation_logging)
        self._macie(settings.macie)
        self._api_gateway_logging(settings.api_gateway_logging)

    @property
    def adopter(self) -> _Adopter:
        if self._adopter is None:
            self._adopter = _Adopter(self, "Adopter", context=self._context)
        return self._adopter

    @property
    def waiter(self) -> _Adopter:
        """The adopting function again, with a role of its own that only reads: what waits for a
        setting the stack manages can change nothing, whatever the adopter's role may write."""
        if self._waiter is None:
            self._waiter = _Adopter(self, "Waiter", context=self._context)
        return self._waiter

    # --- X-Ray Transaction Search ------------------------------------------------------------------

    def _transaction_search(self, mode: AccountSettingMode) -> None:
        """Spans into CloudWatch Logs (aws/spans), searchable, a share of them indexed."""
        if mode == OFF:
            return
        stack = Stack.of(self)
        service_groups = [log_group_arn(self, g) for g in (SPANS_LOG_GROUP, APPLICATION_SIGNALS_LOG_GROUP)]
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TransactionSearchXRayAccess",
                    "Effect": "Allow",
                    "Principal": {"Service": "xray.amazonaws.com"},
                    "Action": "logs:PutLogEvents",
                    "Resource": [f"{arn}:*" for arn in service_groups],
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:xray:{stack.region}:{stack.account}:*"},
                        "StringEquals": {"aws:SourceAccount": stack.account},
                    },
                }
            ],
        }
        percentage = self._config.observability.trace_indexing_percentage
        if mode == MANAGE:
            policy = logs.CfnResourcePolicy(
                self,
                "TransactionSearchLogs",
                policy_name=f"{stack.stack_name}-transaction-search",
                policy_document=stack.to_json_string(document),
            )
            search = xray.CfnTransactionSearchConfig(self, "TransactionSearch", indexing_percentage=percentage)
            search.node.add_dependency(policy)
            _keep(policy, search)
            # The agents' online evaluation (stacks deployed after this one) needs aws/spans when it
            # is created, and X-Ray makes it only once its CloudWatchLogs destination is ACTIVE, which
            # CloudFormation's resource is not documented to wait for: this stack completes only then.
            ready = self.waiter.wait_for(
                "TransactionSearchReady",
                setting="transaction_search_ready",
                statements=[iam.PolicyStatement(actions=TRANSACTION_SEARCH_READY_ACTIONS, resources=["*"])],
            )
            ready.node.add_dependency(search)
            return
        # Adopted: the custom resource puts the resource policy itself, and only when it switches
        # Transaction Search on, so the policy outlives the stack as the setting does. X-Ray makes
        # aws/spans and Application Signals' log group with the enabling caller's permissions.
        adopter = self.adopter
        adopter.adopt(
            "TransactionSearch",
            setting="transaction_search",
            properties={
                "IndexingPercentage": str(percentage),
                "ResourcePolicy": stack.to_json_string(document),
                # aws/spans encrypted with the tier's key when X-Ray makes it for this tier: X-Ray
                # needs the enabling caller to be able to describe the key.
                "SpansKmsKeyArn": self._key.key_arn,
            },
            statements=[
                iam.PolicyStatement(actions=TRANSACTION_SEARCH_ACTIONS, resources=["*"]),
                iam.PolicyStatement(actions=SPANS_KEY_ACTIONS, resources=[self._key.key_arn]),
                iam.PolicyStatement(
                    actions=SERVICE_LOG_GROUP_ACTIONS, resources=[arn for g in service_groups for arn in (g, f"{g}:*")]
                ),
                adopter.service_linked_role(APPLICATION_SIGNALS),
                iam.PolicyStatement(
                    actions=APPLICATION_SIGNALS_ROLE_ACTIONS,
                    resources=[adopter.service_linked_role_arn(APPLICATION_SIGNALS)],
                ),
                iam.PolicyStatement(
                    actions=APPLICATION_SIGNALS_CHANNEL_ACTIONS,
                    resources=[stack.format_arn(service="cloudtrail", resource=APPLICATION_SIGNALS_CHANNEL)],
                ),
            ],
        )
        acknowledge(
            adopter.policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'cloudtrail', APPLICATION_SIGNALS_CHANNEL)}]",
            "Application Signals discovery creates its CloudTrail service-linked channel, whose id CloudTrail "
            "picks; AWS documents this prefix for enabling Transaction Search.",
        )
        for group in (SPANS_LOG_GROUP, APPLICATION_SIGNALS_LOG_GROUP):
            acknowledge(
                adopter.policy,
                f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'logs', f'log-group:{group}:*')}]",
                "Enabling Transaction Search: X-Ray creates this log group and its streams with the caller's "
                "permissions (AWS's documented set for enabling it).",
            )

    # --- Bedrock model invocation logging ----------------------------------------------------------

    def _model_invocation_logging(self, mode: AccountSettingMode) -> None:
        """Prompts and answers into a KMS-encrypted log group (no CloudFormation type: the API)."""
        if mode == OFF:
            return
        stack = Stack.of(self)
        # The setting outlives the stack (both modes), so the group and the role it writes with are
        # retained too. Not named: a retained name would block a redeploy after a destroy.
        group = logs.LogGroup(
            self,
            "ModelInvocations",
            retention=log_retention(self._config.observability.invocation_log_days),
            encryption_key=self._key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Its permission is part of the role resource (an inline policy), so that what is retained
        # with the setting can still write: a separate policy resource would go with the stack.
        role = iam.Role(
            self,
            "ModelInvocationLogging",
            assumed_by=iam.ServicePrincipal(
                "bedrock.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="Bedrock writes model invocation logs to the tier's encrypted log group",
            inline_policies={
                "WriteInvocationLogs": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[group.log_group_arn],
                        )
                    ]
                )
            },
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge_inline_policy(role)
        # Both modes run through the adopting function, which asks again while Bedrock refuses a
        # role IAM has not propagated yet ("Failed to validate permissions for log group"), and
        # whose delete does nothing: neither a destroy, a change of mode nor a rolled-back deploy
        # switches the account's logging off (there is no CloudFormation type for it).
        properties = {
            "LogGroupName": group.log_group_name,
            "RoleArn": role.role_arn,
            # A destination whose log group this stack named (a destroyed or rolled-back deploy's)
            # is the tier's own: a new deploy moves it to its own group.
            "OwnedLogGroupPrefix": f"{stack.stack_name}-",
        }
        statements = [
            iam.PolicyStatement(actions=MODEL_INVOCATION_LOGGING_ACTIONS, resources=["*"]),
            self.adopter.pass_role(role, "bedrock.amazonaws.com"),
        ]
        if mode == MANAGE:
            # Overwritten whatever the account had (Mode manage), and kept as the other managed
            # settings are.
            managed = self.adopter.manage(
                "ManagedModelInvocationLogging",
                setting="model_invocation_logging",
                type_name="BedrockModelInvocationLogging",
                properties=properties,
                statements=statements,
            )
            managed.node.add_dependency(role)
            _keep(managed)
            return
        setting = self.adopter.adopt(
            "ModelInvocationLoggingSetting",
            setting="model_invocation_logging",
            properties=properties,
            statements=statements,
        )
        setting.node.add_dependency(role)
        CfnOutput(
            stack,
            "ModelInvocationLogGroup",
            value=setting.get_att_string("LogGroupName"),
            description="Where Bedrock logs model invocations (the account's own destination if it had one)",
        )

    # --- Macie ------------------------------------------------------------------------------------

    def _macie(self, mode: AccountSettingMode) -> None:
        if mode == OFF:
            return
        jobs_logs = log_group_arn(self, MACIE_JOBS_LOG_GROUP)
        retention = {"JobsLogRetentionDays": str(self._config.log_retention_days), "KmsKeyArn": self._key.key_arn}
        jobs_log_group = iam.PolicyStatement(actions=LOG_GROUP_ACTIONS, resources=[jobs_logs, f"{jobs_logs}:*"])
        if mode == MANAGE:
            _keep(macie.CfnSession(self, "Macie", status="ENABLED", finding_publishing_frequency=MACIE_PUBLISHING))
            # Macie makes its jobs' log group on the first job, kept forever: made first here, as
            # for an adopted session (never touched when it exists).
            self.adopter.adopt(
                "MacieJobsLogGroup",
                setting="macie_jobs_log_group",
                properties=retention,
                statements=[
                    iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=["*"]),
                    jobs_log_group,
                ],
            )
        else:
            self.adopter.adopt(
                "MacieSession",
                setting="macie",
                properties={"FindingPublishingFrequency": MACIE_PUBLISHING, **retention},
                statements=[
                    iam.PolicyStatement(actions=[*MACIE_ACTIONS, "logs:DescribeLogGroups"], resources=["*"]),
                    jobs_log_group,
                    self.adopter.service_linked_role("macie.amazonaws.com"),
                ],
            )
        acknowledge(
            self.adopter.policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'logs', f'log-group:{MACIE_JOBS_LOG_GROUP}:*')}]",
            "Creating Macie's classification-job log group with a retention, if Macie has not made it yet.",
        )
        stack = Stack.of(self)
        # Macie reads the SSE-KMS objects it classifies, as its service-linked role. The role is
        # named in a condition, not as the principal: in a fresh account it exists only once Macie
        # is on, later in this very deploy, and a key policy naming a missing role is refused.
        self._key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="MacieClassification",
                principals=[iam.AnyPrincipal()],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "aws:PrincipalArn": f"arn:{stack.partition}:iam::{stack.account}:{MACIE_ROLE}",
                        "kms:CallerAccount": stack.account,
                        "kms:ViaService": f"s3.{stack.region}.amazonaws.com",
                    }
                },
            )
        )

    # --- API Gateway's CloudWatch role ---------------------------------------------------------------

    def _api_gateway_logging(self, mode: AccountSettingMode) -> None:
        """API Gateway writes the tier's APIs' execution logs through one CloudWatch role per
        account and region. Off: the account must have one already (the APIs' stages log)."""
        if mode == OFF:
            return
        # Retained and not named: an adopted setting outlives the stack and must not name a deleted role.
        role = iam.Role(
            self,
            "ApiGatewayLogging",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-wide logging role; AWS's managed policy is the documented way to let "
            "execution logs reach CloudWatch.",
        )
        if mode == MANAGE:
            _keep(apigateway.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn))
            return
        account = Stack.of(self).format_arn(service="apigateway", account="", resource="/account")
        self.adopter.adopt(
            "ApiGatewayAccount",
            setting="api_gateway_logging",
            properties={"RoleArn": role.role_arn},
            statements=[
                iam.PolicyStatement(actions=API_GATEWAY_ACCOUNT_ACTIONS, resources=[account]),
                self.adopter.pass_role(role, "apigateway.amazonaws.com"),
            ],
        )


def _type_name(setting: str) -> str:
    return pascal_case(setting.replace("_", "-"))


def _keep(*resources: CfnResource | CustomResource) -> None:
    """A managed setting (and what it needs) outlives the stack and a change of mode; a rolled-back
    create still removes a CloudFormation resource, so that the retry finds the account as it was
    (the adopting function's delete, for invocation logging, does nothing)."""
    for resource in resources:
        resource.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)


@dataclass(frozen=True)
class ProviderReasons:
    """Why a deploy-time provider's findings are acceptable, in the words of what its function does."""

    function: str  # how the framework's reasons name the house function ("the adopting function")
    wildcard: str  # why its policy grants on "*" (AwsSolutions-IAM5[Resource::*])
    network: str  # which public APIs it calls (NIST LambdaInsideVPC)
    runs: str  # when it runs (NIST LambdaConcurrency)


class DeployTimeProvider(Construct):
    """A deploy-time provider: one house function (a module of lambdas/account_settings) behind
    CDK's Provider framework. Each ``resource`` adds a custom resource and grants the function what
    that resource needs, in a policy the custom resource depends on, so that CloudFormation never
    calls the function before IAM holds its permissions (and the function still asks again while a
    call is denied: IAM propagates a new policy in a while). ``reasons`` are the findings' reasons,
    next to the function, its policy and the framework."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        description: str,
        timeout: Duration,
        reasons: ProviderReasons,
        module: str = "handler",
    ) -> None:
        super().__init__(scope, id)
        self.function = context.function(
            self, "Function", package="account_settings", module=module, description=description, timeout=timeout
        )
        self.policy = iam.Policy(self, "Permissions", roles=[self.function.execution_role])
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=context.log_group(
                self,
                "ProviderLogs",
            ),
        )
        self._service_token = provider.service_token
        acknowledge_inline_policy(self.policy)
        acknowledge(self.policy, "AwsSolutions-IAM5[Resource::*]", reasons.wildcard)
        for rule, reason in (
            ("NIST.800.53.R5-LambdaDLQ", "CloudFormation's custom-resource provider invokes it synchronously."),
            ("NIST.800.53.R5-LambdaInsideVPC", reasons.network),
            ("NIST.800.53.R5-LambdaConcurrency", reasons.runs),
        ):
            acknowledge(self.function, rule, reason)
        framework = provider.node.find_child("framework-onEvent")
        for rule, reason in (
            ("AwsSolutions-L1", "CDK pins the provider framework's Node.js runtime in its own release."),
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's provider framework writes its own deploy-time logs with the basic execution role.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::{nag_attribute(self.function, 'Arn')}:*]",
                f"CDK's grant for the provider framework to invoke {reasons.function} (and its versions).",
            ),
            ("NIST.800.53.R5-LambdaDLQ", "CloudFormation invokes the provider framework synchronously per event."),
            (
                "NIST.800.53.R5-LambdaInsideVPC",
                f"The provider framework invokes {reasons.function} and answers CloudFormation's pre-signed URL.",
            ),
            (
                "NIST.800.53.R5-LambdaConcurrency",
                "It runs once per custom-resource event during a deploy; CloudFormation is its only caller.",
            ),
            ("NIST.800.53.R5-IAMNoInlinePolicy", f"CDK's own grant for the framework to invoke {reasons.function}."),
        ):
            acknowledge(framework, rule, reason)

    def resource(
        self, id: str, *, type_name: str, properties: dict[str, Any], statements: list[iam.PolicyStatement]
    ) -> CustomResource:
        """A custom resource ``Custom::<type_name>`` with ``properties``, run by the function once
        its policy holds ``statements``."""
        self.policy.add_statements(*statements)
        resource = CustomResource(
            self,
            id,
            service_token=self._service_token,
            resource_type=f"Custom::{type_name}",
            properties=properties,
        )
        resource.node.add_dependency(self.policy)
        return resource


ADOPTER_REASONS = ProviderReasons(
    function="the adopting function",
    wildcard="Account settings (X-Ray's trace destination and indexing rule, Bedrock's invocation logging, the "
    "Macie session, CloudWatch Logs resource policies) are one per account and region: no resource ARN.",
    network="It calls the account-settings APIs of X-Ray, CloudWatch Logs, Bedrock, Macie and API Gateway "
    "only, over their public endpoints; no private network resource.",
    runs="It runs once per deploy of each adopted setting; nothing else.",
)


class _Adopter(DeployTimeProvider):
    """The adopting function (lambdas/account_settings/handler.py) as a deploy-time provider. Each
    ``adopt`` (or ``wait_for``, which only reads) adds a custom resource for one setting and grants
    the function what that setting needs."""

    def __init__(self, scope: Construct, id: str, *, context: ProductionContext) -> None:
        super().__init__(
            scope,
            id,
            context=context,
            description="Deploy time: adopt an account-wide setting (on if off, never off)",
            timeout=ADOPTION_TIMEOUT,
            reasons=ADOPTER_REASONS,
        )

    def adopt(
        self, id: str, *, setting: str, properties: dict[str, Any], statements: list[iam.PolicyStatement]
    ) -> CustomResource:
        """A custom resource adopting ``setting`` with ``properties``; ``statements`` are what the
        function needs for it."""
        return self.resource(
            id,
            type_name=f"Adopted{_type_name(setting)}",
            properties={"Setting": setting, **properties},
            statements=statements,
        )

    def manage(
        self,
        id: str,
        *,
        setting: str,
        type_name: str,
        properties: dict[str, Any],
        statements: list[iam.PolicyStatement],
    ) -> CustomResource:
        """A custom resource (``Custom::<type_name>``) that puts ``setting`` as the stack manages it
        (``Mode`` manage: the tier's, whatever the account had), waiting as adopting does; its
        delete does nothing."""
        properties = {"Setting": setting, "Mode": MANAGE, **properties}
        return self.resource(id, type_name=type_name, properties=properties, statements=statements)

    def wait_for(self, id: str, *, setting: str, statements: list[iam.PolicyStatement]) -> CustomResource:
        """A custom resource that completes once ``setting``, a resource of the stack's, has taken
        effect (add the dependency on it); ``statements`` are the reads that show it. It changes
        nothing, and its delete does nothing."""
        return self.resource(id, type_name=_type_name(setting), properties={"Setting": setting}, statements=statements)

    def pass_role(self, role: iam.IRole, service: str) -> iam.PolicyStatement:
        """What handing ``role`` to ``service`` needs (Bedrock's and API Gateway's logging roles)."""
        return iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": service}},
        )

    def service_linked_role(self, service: str) -> iam.PolicyStatement:
        """What enabling ``service`` needs to create its service-linked role."""
        return iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[self.service_linked_role_arn(service)],
            conditions={"StringLike": {"iam:AWSServiceName": service}},
        )

    def service_linked_role_arn(self, service: str) -> str:
        """The ARN of ``service``'s service-linked role in this account."""
        return Stack.of(self).format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"aws-service-role/{service}/{SERVICE_LINKED_ROLES[service]}",
        )
