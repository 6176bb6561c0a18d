"""The app's start-up when the CDK CLI runs it (app.py calls :func:`start` before its other imports).

Synth runs in two processes that mostly take turns: Python, and the jsii runtime's Node.js, which
runs aws-cdk-lib. Two things at the start need no turn-taking:

- Node builds the CloudFormation template validator CDK runs over every template at synth (its
  WebAssembly engine loads the resource schemas and rules: about a second). CDK builds it only when
  synth reaches validation; built here, it is the same validator (``CloudFormationValidatePlugin()``,
  the default rules, nothing added), registered at the app as CDK's documented way to configure
  it (stacks/shared/nag.py), so CDK does not build a second one.
- Meanwhile Python imports the modules that never call into Node (the config models and
  aws-cdk-lib's Python bindings, about a second), on a thread of its own: nothing else talks to
  the jsii runtime while the validator is being built.

Without :func:`start` (tests, tools) nothing changes: CDK builds its validator at synth as usual,
and ``CDK_VALIDATION=false`` turns it off as usual.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import TYPE_CHECKING

from stacks import jsii_node

if TYPE_CHECKING:
    from aws_cdk import CloudFormationValidatePlugin

# Imported while Node builds the validator: none of them may call into the jsii runtime when
# imported (tests/infra/test_startup.py checks it). aws-cdk-lib's Python bindings only define
# classes; the config package does not import aws_cdk at all.
PURE_MODULES: tuple[str, ...] = (
    "stacks.config",
    *(
        f"aws_cdk.{name}"
        for name in (
            "aws_apigateway",
            "aws_appconfig",
            "aws_bedrock",
            "aws_bedrockagentcore",
            "aws_budgets",
            "aws_cloudwatch",
            "aws_cloudwatch_actions",
            "aws_cognito",
            "aws_dynamodb",
            "aws_events",
            "aws_events_targets",
            "aws_iam",
            "aws_kendra",
            "aws_kms",
            "aws_lambda",
            "aws_lambda_event_sources",
            "aws_logs",
            "aws_logs_destinations",
            "aws_macie",
            "aws_opensearchserverless",
            "aws_s3",
            "aws_s3vectors",
            "aws_scheduler",
            "aws_scheduler_targets",
            "aws_secretsmanager",
            "aws_sns",
            "aws_sns_subscriptions",
            "aws_sqs",
            "aws_ssm",
            "aws_wafv2",
            "aws_xray",
            "custom_resources",
        )
    ),
)

_validator: CloudFormationValidatePlugin | None = None


def validation_enabled() -> bool:
    """Whether CDK validates templates at synth (its own switch, ``CDK_VALIDATION=false``, off)."""
    return os.environ.get("CDK_VALIDATION") != "false"


def start() -> None:
    """Start the jsii runtime with its Node.js options (stacks/jsii_node.py) and, when validation is
    on, build the template validator while a thread imports :data:`PURE_MODULES`."""
    global _validator
    os.environ.update(jsii_node.configure())
    import aws_cdk  # the jsii runtime starts here, with the environment above

    if not validation_enabled() or _validator is not None:
        return
    importer = threading.Thread(target=_import_pure_modules, name="startup-imports", daemon=True)
    importer.start()
    try:
        _validator = aws_cdk.CloudFormationValidatePlugin()
    finally:
        importer.join()


def template_validator() -> CloudFormationValidatePlugin | None:
    """The validator :func:`start` built, to register at the app; None without it (or with
    validation off), and CDK then builds its own at synth if validation is on."""
    return _validator if validation_enabled() else None


def _import_pure_modules() -> None:
    for name in PURE_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112  # imported again by the app, which then reports the error
            continue
