"""The production AI gateway: model routing, guardrails, output metering and exact quotas."""
