"""A monthly AWS Budgets cost budget that emails when the sandbox spends too much."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_budgets as budgets
from constructs import Construct

from stacks.shared.naming import generation


class CostGuard(Construct):
    """A monthly cost budget with two email alerts.

    Alerts: actual spend past ``threshold_percent`` of ``monthly_limit_usd``, and forecast spend
    past 100%. With ``cost_filter_tag`` ("key$value") the budget counts only resources with that
    cost-allocation tag, which must be activated in the Billing console first; without it the
    budget covers the whole account (right for a dedicated sandbox account).

    A budget's name and notifications are fixed at creation: new recipients or a new threshold
    make a new budget, which CloudFormation creates before deleting the old one, and budget names
    are unique in an account. So the name is ``budget_name`` and the notifications' generation.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        budget_name: str,
        monthly_limit_usd: float,
        threshold_percent: int,
        emails: Sequence[str],
        cost_filter_tag: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        subscribers = [
            budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=email) for email in emails
        ]

        def alert(notification_type: str, threshold: float) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
            return budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=notification_type,
                    comparison_operator="GREATER_THAN",
                    threshold=threshold,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=subscribers,
            )

        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{budget_name}-{generation(sorted(emails), threshold_percent)}",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=monthly_limit_usd, unit="USD"),
                cost_filters={"TagKeyValue": [f"user:{cost_filter_tag}"]} if cost_filter_tag else None,
            ),
            notifications_with_subscribers=[alert("ACTUAL", threshold_percent), alert("FORECASTED", 100)],
        )
