"""A WAF web ACL in front of an API stage: a rate limit per client address, AWS's managed rule
groups, and logs that never hold the caller's token."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_kms as kms,
    aws_logs as logs,
    aws_wafv2 as wafv2,
)

from stacks.shared.lambda_function import log_retention
from stacks.shared.naming import stack_instance_suffix

# AWS's managed rule groups every protected API gets, in priority order after the rate rule.
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


def protect_with_waf(
    stack: Stack,
    *,
    name: str,
    metric_name: str,
    stage: apigateway.Stage,
    key: kms.IKey,
    retention_days: int,
    rate_limit_per_5_minutes: int,
    count_only: Sequence[str] = (),
) -> wafv2.CfnWebACL:
    """A regional web ACL named ``name`` (CloudWatch metric ``metric_name``) on ``stage``: requests
    over the rate per IP (per 5 minutes) are blocked; the managed rule groups block, except the rules in ``count_only``,
    which only count. Logs go to a KMS-encrypted, retained ``aws-waf-logs-…`` group with the
    Authorization header redacted. Resources are the stack's own children (WebAcl,
    WebAclAssociation, WafLogs, WafLogging): ids of shipped resources never change."""

    def managed(priority: int, group: str) -> wafv2.CfnWebACL.RuleProperty:
        return wafv2.CfnWebACL.RuleProperty(
            name=group,
            priority=priority,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS",
                    name=group,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                        )
                        for rule in count_only
                    ]
                    if group == MANAGED_RULE_GROUPS[0] and count_only
                    else None,
                )
            ),
            visibility_config=_visibility(group),
        )

    acl = wafv2.CfnWebACL(
        stack,
        "WebAcl",
        name=name,
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(metric_name),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerIp",
                priority=0,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=rate_limit_per_5_minutes, aggregate_key_type="IP"
                    )
                ),
                visibility_config=_visibility("RatePerIp"),
            ),
            *(managed(priority, group) for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1)),
        ],
    )
    wafv2.CfnWebACLAssociation(stack, "WebAclAssociation", resource_arn=stage.stage_arn, web_acl_arn=acl.attr_arn)
    # WAF delivers to log groups whose name starts with aws-waf-logs-. Retained and so named,
    # the name carries this stack's instance: a redeploy after a destroy gets a new one.
    waf_logs = logs.LogGroup(
        stack,
        "WafLogs",
        log_group_name=f"aws-waf-logs-{name}-{stack_instance_suffix(stack)}",
        retention=log_retention(retention_days),
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    )
    wafv2.CfnLoggingConfiguration(
        stack,
        "WafLogging",
        resource_arn=acl.attr_arn,
        log_destination_configs=[waf_logs.log_group_arn],
        # The Authorization header carries the caller's token: never log it.
        redacted_fields=[wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "authorization"})],
    )
    return acl


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )
