"""Production identity: the Cognito user pool, its groups, app client and the group claim."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, aws_cognito as cognito, aws_kms as kms
from constructs import Construct

from pre_token.contract import GatewayGroups, Settings as PreTokenSettings
from stacks.production.context import Identity, ProductionContext
from stacks.production.policy import pre_token_groups
from stacks.shared.nag import acknowledge_synchronous_function
from stacks.shared.naming import pascal_case

THREAT_PROTECTION = {
    "off": cognito.StandardThreatProtectionMode.NO_ENFORCEMENT,
    "audit": cognito.StandardThreatProtectionMode.AUDIT_ONLY,
    "enforced": cognito.StandardThreatProtectionMode.FULL_FUNCTION,
}


class IdentityStack(Stack):
    """User pool (strong passwords, MFA and threat protection from config, no self sign-up),
    one group per configured gateway group with its precedence, an app client for SRP sign-in,
    and a V2 pre-token-generation trigger that adds ``gateway_group``/``gateway_tier``/
    ``gateway_kind`` claims to ID and access tokens (``cognito:groups`` cannot key a rate limit).
    """

    def __init__(self, scope: Construct, id: str, *, context: ProductionContext, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        config, name = context.config, context.name
        identity = config.identity
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=name,
            # Access-token customization needs Essentials; threat protection needs Plus.
            feature_plan=cognito.FeaturePlan.PLUS
            if identity.threat_protection != "off"
            else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=THREAT_PROTECTION[identity.threat_protection],
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            mfa=cognito.Mfa[identity.mfa],
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=identity.password_min_length,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for group, settings in config.groups.items():
            cognito.CfnUserPoolGroup(
                self,
                f"Group{pascal_case(group)}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group,
                precedence=settings.precedence,
                description=f"{settings.kind} tier {settings.tier}",
            )
        self.client = self.user_pool.add_client(
            "AppClient",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(identity.access_token_hours),
            id_token_validity=Duration.hours(identity.access_token_hours),
            refresh_token_validity=Duration.days(30),
            disable_o_auth=True,
        )
        # The groups' claims: a runtime document (AppConfig, environment "identity").
        self.gateway_groups = context.config_environment(self, "identity").document(
            "gateway-groups",
            model=GatewayGroups,
            content=pre_token_groups(config),
            description="The gateway's groups with their precedence, tier and kind (token claims)",
        )
        self.pre_token_function = trigger = context.function(
            self,
            "PreTokenFunction",
            package="pre_token",
            description="Adds the caller's gateway group, tier and kind to Cognito tokens",
            memory_size=128,
            timeout=Duration.seconds(5),
            settings=PreTokenSettings(gateway_groups=self.gateway_groups.location),
        )
        self.gateway_groups.grant_read(trigger)
        acknowledge_synchronous_function(
            trigger,
            invoker="Cognito, while it issues a token,",
            network="The trigger reads its event and one AppConfig document over AWS's public endpoints; it has "
            "no VPC resource to reach.",
            concurrency="Bounded by Cognito's own sign-in rate limits; reserving concurrency would only cap sign-ins.",
        )
        self.user_pool.add_trigger(
            cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG, trigger, cognito.LambdaVersion.V2_0
        )
        # The AI gateway's passages to the tools gateway (lambdas/shared/passage.py): its roles make
        # MACs with it, the tools gateway's interceptor verifies them, nothing else uses it. It
        # encrypts nothing, so destroying it loses nothing but the passages made under it.
        self.passage_key = kms.Key(
            self,
            "PassageKey",
            description=f"{name}: the AI gateway's passages to the tools gateway (HMAC)",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.identity = Identity(self.user_pool, self.client, self.passage_key)
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "PassageKeyArn", value=self.passage_key.key_arn)
        CfnOutput(self, "AppClientId", value=self.client.user_pool_client_id)
