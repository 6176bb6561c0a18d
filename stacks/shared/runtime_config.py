"""Runtime configuration in AWS AppConfig: the store, one environment per stack, one document per reader.

- :class:`ConfigStore` (the foundation stack): the tier's AppConfig application and its deployment
  strategy (linear rollout, then a bake time during which an alarm rolls the deployment back).
- :class:`ConfigEnvironment` (each stack whose functions read documents): an environment named
  after the stack's part of the tier, watched by an alarm on the functions' refusals
  (lambdas/shared/runtime_config.py REFUSED_METRIC), so a document they cannot use is rolled back.
  Deployments to one environment run one at a time (CDK chains them in declaration order).
- :meth:`ConfigEnvironment.document`: a hosted configuration validated by AppConfig against the
  document model's JSON schema before it is deployed, and a grant to read exactly that profile.

Documents hold config (groups, tools, prices, quotas, models): nothing secret, no personal data.
AppConfig encrypts hosted configurations at rest with a key it owns; the tier's key is not used,
so a reader needs no KMS permission.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import (
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    aws_appconfig as appconfig,
    aws_cloudwatch as cloudwatch,
    aws_iam as iam,
)
from constructs import Construct

from shared.runtime_config import ENVIRONMENT_DIMENSION, REFUSED_METRIC, ConfigLocation, RuntimeDocument
from stacks.config import ConfigError, RuntimeConfigSettings
from stacks.shared.alarms import alarm
from stacks.shared.nag import acknowledge, acknowledge_inline_policy

# What a reader does (Powertools' AppConfig provider): open a session, then poll the latest version.
READ_ACTIONS: Final = ["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"]
# AppConfig's limits: a hosted configuration's content, a validator's content (CloudFormation schema).
HOSTED_CONTENT_LIMIT: Final = 1_000_000  # bytes ("1 MB or smaller")
VALIDATOR_CONTENT_LIMIT: Final = 32_768  # characters


class ConfigStore(Construct):
    """The tier's AppConfig application and the deployment strategy every document rolls out with."""

    def __init__(self, scope: Construct, id: str, *, name: str, settings: RuntimeConfigSettings) -> None:
        super().__init__(scope, id)
        self.application = appconfig.Application(
            self,
            "Application",
            application_name=name,
            description="Runtime configuration of the tier's functions and agents (generated from the CDK config)",
        )
        self.strategy = appconfig.DeploymentStrategy(
            self,
            "Strategy",
            deployment_strategy_name=f"{name}-rollout",
            description="Linear rollout, then a bake time in which a reader's refusal alarm rolls back",
            rollout_strategy=appconfig.RolloutStrategy.linear(
                growth_factor=settings.growth_percent,
                deployment_duration=Duration.minutes(settings.deployment_minutes),
                final_bake_time=Duration.minutes(settings.bake_minutes),
            ),
        )


class ConfigEnvironment(Construct):
    """One stack's AppConfig environment, its rollback alarm, and the documents deployed to it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store: ConfigStore,
        environment_name: str,
        metrics_namespace: str,
    ) -> None:
        super().__init__(scope, id)
        self.store = store
        self.environment_name = environment_name
        self.refusals = alarm(
            self,
            "RefusalAlarm",
            cloudwatch.Metric(
                namespace=metrics_namespace,
                metric_name=REFUSED_METRIC,
                dimensions_map={ENVIRONMENT_DIMENSION: environment_name},
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            description=f"A function refused the runtime config deployed to {environment_name}: "
            "AppConfig rolls the deployment back while it is in progress or baking",
            topic=None,  # AppConfig watches it
        )
        self.environment = appconfig.Environment(
            self,
            "Environment",
            application=store.application,
            environment_name=environment_name,
            description=f"Runtime configuration read by the tier's {environment_name}",
            monitors=[appconfig.Monitor.from_cloud_watch_alarm(self.refusals)],
            # The stack owns its environment: deleting it on destroy must not wait out AppConfig's
            # deletion protection for recently read configuration.
            deletion_protection_check=appconfig.DeletionProtectionCheck.BYPASS,
        )
        acknowledge(
            self.refusals,
            "NIST.800.53.R5-CloudWatchAlarmAction",
            "AppConfig acts on this alarm: it rolls a deployment back while the alarm is raised; each refusal is "
            "also logged as an error by the function that refused.",
        )
        for role in (c for c in self.environment.node.find_all() if isinstance(c, iam.CfnRole)):
            acknowledge_inline_policy(role)
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "AppConfig's monitor role (CDK's): cloudwatch:DescribeAlarms has no resource-level permissions.",
            )

    def document(
        self,
        id: str,
        *,
        model: type[RuntimeDocument],
        content: RuntimeDocument | Mapping[str, Any],
        description: str,
    ) -> RuntimeConfigDocument:
        """A hosted document of ``model``, deployed to this environment. ``content`` is the document,
        or its JSON form where it holds deploy-time values (validated here with placeholders)."""
        data = content.model_dump(mode="json") if isinstance(content, RuntimeDocument) else dict(content)
        model.model_validate(data)  # a synth-time refusal names the field, before AppConfig's check
        stack = Stack.of(self)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        if Token.is_unresolved(text):
            text = stack.to_json_string(data)
        schema = json.dumps(model.validator_schema(), sort_keys=True, separators=(",", ":"))
        for what, size, limit in (
            ("document", len(text.encode()), HOSTED_CONTENT_LIMIT),
            ("its JSON schema", len(schema), VALIDATOR_CONTENT_LIMIT),
        ):
            if size > limit:
                raise ConfigError(
                    f"runtime config {self.environment_name}/{id}: {what} would take {size:,} bytes; AppConfig "
                    f"holds {limit:,}"
                )
        return RuntimeConfigDocument(self, id, environment=self, text=text, schema=schema, description=description)


def profile_name(environment_name: str, document: str) -> str:
    """A document's configuration profile name: its environment's name and its id (unique in the
    tier's application, so a reader may address the profile by name)."""
    return f"{environment_name}-{document}"


class RuntimeConfigDocument(Construct):
    """A hosted configuration profile, its validator, and its deployment to one environment."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        environment: ConfigEnvironment,
        text: str,
        schema: str,
        description: str,
    ) -> None:
        super().__init__(scope, id)
        store = environment.store
        self.configuration = appconfig.HostedConfiguration(
            self,
            "Configuration",
            application=store.application,
            name=profile_name(environment.environment_name, id),
            description=description,
            content=appconfig.ConfigurationContent.from_inline_json(text),
            validators=[appconfig.JsonSchemaValidator.from_inline(schema)],
            deployment_strategy=store.strategy,
            deploy_to=[environment.environment],
            deletion_protection_check=appconfig.DeletionProtectionCheck.BYPASS,
        )
        # CDK keeps every replaced version (Retain), but AppConfig refuses to delete a profile that
        # still has versions: the stack could never be destroyed. One version lives at a time; the
        # one a change replaces is deleted once the new one is deployed (CloudFormation's cleanup).
        for version in self.configuration.node.find_all():
            if isinstance(version, appconfig.CfnHostedConfigurationVersion):
                version.apply_removal_policy(RemovalPolicy.DESTROY)
        self.location = ConfigLocation(
            application=store.application.application_id,
            environment=environment.environment.environment_id,
            profile=self.configuration.configuration_profile_id,
            environment_name=environment.environment_name,
        )
        self._arn = Stack.of(self).format_arn(
            service="appconfig",
            resource="application",
            resource_name=f"{self.location.application}/environment/{self.location.environment}"
            f"/configuration/{self.location.profile}",
        )

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read this document (and no other) through AppConfig's data plane."""
        return iam.Grant.add_to_principal(grantee=grantee, actions=READ_ACTIONS, resource_arns=[self._arn])
