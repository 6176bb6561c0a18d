"""Production gateway keys: each group's API key, the usage plans they sit in, and the keys document
the gateway's authorizer reads, in a stack of their own (deployed after the gateway).

The gateway stack would otherwise grow by two resources per group (an API key and its usage-plan
key): at 100 groups that is 63% of CloudFormation's 500 resources. Here the gateway stays flat in
groups and this stack holds what grows with them.

The gateway does not depend on this stack: its authorizer finds the keys document by the names of
its AppConfig environment and configuration profile (:func:`keys_location`, known at synth), and
its role is granted the read here, imported by name.
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Stack, aws_apigateway as apigateway, aws_iam as iam
from constructs import Construct

from gateway_authorizer.contract import ApiKeys
from shared.runtime_config import ConfigLocation
from stacks.config import UsagePlanConfig
from stacks.production.context import ProductionContext
from stacks.shared.nag import acknowledge
from stacks.shared.naming import pascal_case
from stacks.shared.runtime_config import profile_name

# Usage-plan quota periods as API Gateway names them.
QUOTA_PERIOD = {"DAY": apigateway.Period.DAY, "WEEK": apigateway.Period.WEEK, "MONTH": apigateway.Period.MONTH}
# The keys' AppConfig environment (this stack's part of the tier) and the document's id in it.
KEYS_ENVIRONMENT: Final = "gateway-keys"
KEYS_DOCUMENT: Final = "api-keys"


def keys_location(application_id: str) -> ConfigLocation:
    """Where the authorizer reads the keys document: the tier's application by id, the environment
    and the configuration profile by name, so the gateway stack needs nothing of this one.
    AppConfig's data plane takes either: StartConfigurationSession's ApplicationIdentifier,
    EnvironmentIdentifier and ConfigurationProfileIdentifier are each "the ID or the name"
    (AppConfig Data API reference, StartConfigurationSession; e.g.
    https://docs.rs/aws-sdk-appconfigdata/0.7.0/aws_sdk_appconfigdata/client/fluent_builders/struct.StartConfigurationSession.html).
    Names are unique here: only this stack makes an environment or a profile of these names."""
    return ConfigLocation(
        application=application_id,
        environment=KEYS_ENVIRONMENT,
        profile=profile_name(KEYS_ENVIRONMENT, KEYS_DOCUMENT),
        environment_name=KEYS_ENVIRONMENT,  # the refusal metric's dimension: this environment's alarm
    )


class GatewayKeysStack(Stack):
    """What grows with the groups at the gateway's front door.

    - One API key per group, named after its usage plan's limits, in one usage plan per distinct
      set of limits (on the gateway's API and stage): the coarse, best-effort limits, applied to
      each key separately.
    - The runtime config (AppConfig, environment "gateway-keys"): the groups' API key ids, the
      document the gateway's authorizer reads (:func:`keys_location`), and its read grant on the
      authorizer's role.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        api: apigateway.RestApi,
        authorizer_role_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        config = context.config

        # One API key per group, named after its usage plan's limits: a key sits in one plan per stage,
        # so a group whose limits change gets a new key in the other plan (created before the old goes).
        self.api_keys = {
            group: apigateway.ApiKey(
                self,
                f"Key{pascal_case(group)}{plan_id(settings.usage_plan)}",
                api_key_name=f"{context.prefix}-{group}",
                enabled=True,
            )
            for group, settings in config.groups.items()
        }
        self.usage_plans = self._usage_plans(api, context)

        self.runtime_config = context.config_environment(self, KEYS_ENVIRONMENT)
        self.api_key_ids = self.runtime_config.document(
            KEYS_DOCUMENT,
            model=ApiKeys,
            content=ApiKeys(keys={g: k.key_id for g, k in self.api_keys.items()}),
            description="AI gateway authorizer: each group's API key (its usage plan)",
        )
        # The authorizer's role (the gateway stack's), granted the read here: a policy of this stack
        # attached to the role, so the gateway stack names nothing of this one. Imported by name, not
        # ARN: from an ARN known only at deploy time CDK would cut the name out with Fn::Split, which
        # cfn-lint refuses around a Fn::GetStackOutput (E1017); the name is the policy's role as is.
        authorizer_role = iam.Role.from_role_name(self, "AuthorizerRole", authorizer_role_name, mutable=True)
        self.api_key_ids.grant_read(authorizer_role)
        acknowledge(
            authorizer_role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "The read of this stack's keys document (one configuration profile, nothing else) for the gateway "
            "authorizer's role: written here, where the document lives, so that the gateway stack needs nothing "
            "of this one; it lives and dies with the document.",
        )

    def _usage_plans(self, api: apigateway.RestApi, context: ProductionContext) -> dict[str, apigateway.UsagePlan]:
        """One usage plan per distinct throttle and quota, each group's key in its plan: API Gateway
        applies a plan's limits to each of its keys separately, so groups with the same limits share
        a plan and still get their own, and the plans do not grow with the groups."""
        plans: dict[str, apigateway.UsagePlan] = {}
        for group, settings in context.config.groups.items():
            limits = settings.usage_plan
            plan = plan_id(limits)
            if plan not in plans:
                plans[plan] = apigateway.UsagePlan(
                    self,
                    f"Plan{plan}",
                    name=f"{api.rest_api_name}-{plan.lower()}",
                    description=f"Per group key: {limits.rate_limit:g} requests/s, burst {limits.burst_limit}, "
                    f"{limits.quota_limit} per {limits.quota_period.lower()} (best effort)",
                    throttle=apigateway.ThrottleSettings(rate_limit=limits.rate_limit, burst_limit=limits.burst_limit),
                    quota=apigateway.QuotaSettings(limit=limits.quota_limit, period=QUOTA_PERIOD[limits.quota_period]),
                    api_stages=[apigateway.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
                )
            plans[plan].add_api_key(self.api_keys[group])
        return plans


def plan_id(limits: UsagePlanConfig) -> str:
    """A usage plan's name from its limits (letters and digits): e.g. 50Rps100Burst10000PerDay.
    Distinct limits get distinct names, or two groups would share the plan of whichever came first:
    the rate as ``:g`` writes it (six significant digits) when that is the rate exactly, else the
    shortest text that is (``repr``), so 0.1234561 and 0.1234564 differ."""
    short = f"{limits.rate_limit:g}"
    rate = short if float(short) == limits.rate_limit else repr(limits.rate_limit)
    rate = rate.replace(".", "p").replace("-", "m").replace("+", "")  # 1e-05: letters and digits only
    return f"{rate}Rps{limits.burst_limit}Burst{limits.quota_limit}Per{limits.quota_period.title()}"
