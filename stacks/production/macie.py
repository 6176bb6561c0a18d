"""Macie sensitive-data discovery over the pipeline's buckets, and what happens to a finding.

The Macie session itself is account-level and lives in the foundation stack. Here: the custom
data identifiers (the same patterns the pipeline masks), the allow list, a scheduled
classification job over the landing and curated buckets and the access-log archive (created
through the API at deploy time by a house function, lambdas/account_settings/classification_job.py:
CloudFormation has no type for it), and the findings rule that
sends findings at or above ``macie.min_severity`` to lambdas/ingestion/macie.py.
"""

from __future__ import annotations

from typing import Any, get_args

from aws_cdk import (
    Duration,
    Stack,
    aws_events as events,
    aws_events_targets as targets,
    aws_iam as iam,
    aws_lambda_destinations as destinations,
    aws_macie as macie,
    aws_s3 as s3,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
)
from constructs import Construct

from ingestion.contract import DIRECT_PREFIX, MACIE_QUARANTINE_PREFIX, ResponderSettings
from stacks.config import MacieSeverity
from stacks.production.account_settings import DeployTimeProvider, ProviderReasons
from stacks.production.context import ProductionContext
from stacks.production.ingestion import DATA_KEY_ACTIONS, IngestionPipeline
from stacks.shared.alarms import alarm
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.nag import acknowledge, nag_arn, nag_attribute
from stacks.shared.naming import generation

SEVERITIES: tuple[str, ...] = get_args(MacieSeverity)  # Low, Medium, High
# What the classification job's function calls (lambdas/account_settings/classification_job.py):
# on the account's jobs (a job's id is Macie's answer to creating it), and on no resource (the
# session's status; the jobs a rolled-back update may return to, found by name).
CLASSIFICATION_JOB_ACTIONS = [
    "macie2:CreateClassificationJob",
    "macie2:DescribeClassificationJob",
    "macie2:UpdateClassificationJob",
]
MACIE_ACCOUNT_ACTIONS = ["macie2:GetMacieSession", "macie2:ListClassificationJobs"]
# Its calls take seconds; denials are asked again for two minutes while IAM propagates its policy.
JOB_TIMEOUT = Duration.minutes(5)
JOB_PROVIDER_REASONS = ProviderReasons(
    function="the classification-job function",
    wildcard="Macie's session status and its list of classification jobs have no resource ARN: GetMacieSession "
    "and ListClassificationJobs (read-only) are granted on * only.",
    network="It calls Macie's API only (its session and classification jobs), over its public endpoint; no private "
    "network resource.",
    runs="It runs once per deploy that creates, changes or deletes the Macie classification job; nothing else.",
)
SCHEDULES = {
    "DAILY": {"dailySchedule": {}},
    "WEEKLY": {"weeklySchedule": {"dayOfWeek": "MONDAY"}},
    "MONTHLY": {"monthlySchedule": {"dayOfMonth": 1}},
}


def severities_from(minimum: str) -> list[str]:
    return list(SEVERITIES[SEVERITIES.index(minimum) :])


class MacieDiscovery(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        pipeline: IngestionPipeline,
        curated: s3.IBucket,
        knowledge_base: VectorKnowledgeBase,
        log_archive: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        config, key = context.config, context.key
        settings = config.macie
        stack = Stack.of(self)
        name = context.name
        # Every property of an identifier is fixed at creation: a changed one is a new identifier,
        # under a new name beside the old (its generation), which the job below then uses.
        identifiers = [
            macie.CfnCustomDataIdentifier(
                self,
                f"Identifier{ident}",
                name=f"{name}-{ident}-{generation(identifier.model_dump(mode='json'))}",
                description=f"ingestion.custom_identifiers.{ident}",
                regex=identifier.regex,
                keywords=list(identifier.keywords) or None,
                maximum_match_distance=50 if identifier.keywords else None,
            )
            for ident, identifier in config.ingestion.custom_identifiers.items()
        ]
        allow_list = (
            macie.CfnAllowList(
                self,
                "AllowList",
                name=f"{name}-allowed",
                description="Matches Macie should not report (test and example data)",
                criteria=macie.CfnAllowList.CriteriaProperty(regex=settings.allow_list_regex),
            )
            if settings.allow_list_regex
            else None
        )
        buckets = [pipeline.landing, curated, log_archive]
        job: dict[str, Any] = {
            # A stem: the function names the job after it and the job's fingerprint (this resource
            # and what it asks for), by which a rolled-back update finds the job it returns to.
            "name": f"{name}-documents",
            "description": "Sensitive data in the ingestion pipeline's buckets and the access-log archive",
            "jobType": "SCHEDULED",
            "scheduleFrequency": SCHEDULES[settings.schedule],
            "initialRun": True,
            "samplingPercentage": settings.sampling_percentage,
            "managedDataIdentifierSelector": "RECOMMENDED",
            "s3JobDefinition": {
                "bucketDefinitions": [{"accountId": stack.account, "buckets": [b.bucket_name for b in buckets]}]
            },
        }
        if identifiers:
            job["customDataIdentifierIds"] = [i.attr_id for i in identifiers]
        if allow_list is not None:
            job["allowListIds"] = [allow_list.attr_id]
        # The house function behind CDK's Provider framework (lambdas/account_settings/
        # classification_job.py): a token per CloudFormation request, a changed job made anew and the
        # old one cancelled, nothing left to cancel once Macie is off, and denials asked again while
        # IAM propagates its policy. (CDK's AwsCustomResource, which served here before, replayed one
        # token across operations and so could adopt a job CloudFormation had cancelled.)
        self.jobs = DeployTimeProvider(
            self,
            "Jobs",
            context=context,
            module="classification_job",
            description="Deploy time: the Macie classification job (create; cancel on delete or replacement)",
            timeout=JOB_TIMEOUT,
            reasons=JOB_PROVIDER_REASONS,
        )
        jobs_arn = stack.format_arn(service="macie2", resource="classification-job", resource_name="*")
        # A new id, not the AwsCustomResource's: a custom resource's service token cannot change in
        # an update, so the tier's next deploy makes this one and deletes the old (which cancels its job).
        self.job = self.jobs.resource(
            "ClassificationJob",
            type_name="MacieClassificationJob",
            properties={"Job": stack.to_json_string(job)},
            statements=[
                iam.PolicyStatement(actions=CLASSIFICATION_JOB_ACTIONS, resources=[jobs_arn]),
                iam.PolicyStatement(actions=MACIE_ACCOUNT_ACTIONS, resources=["*"]),
            ],
        )
        acknowledge(
            self.jobs.policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'macie2', 'classification-job/*')}]",
            "A job's id is Macie's answer to creating it: the deploy-time function creates, reads and cancels "
            "the account's classification jobs.",
        )

        self.topic = sns.Topic(self, "Findings", master_key=key, enforce_ssl=True)
        for address in settings.notify_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
        self.function = self._responder(context, pipeline, curated, knowledge_base)
        rule = events.Rule(
            self,
            "FindingsRule",
            description=f"Macie findings of severity {settings.min_severity} or above in the pipeline's buckets",
            event_pattern=events.EventPattern(
                source=["aws.macie"],
                detail_type=["Macie Finding"],
                detail={
                    "severity": {"description": severities_from(settings.min_severity)},
                    "resourcesAffected": {"s3Bucket": {"name": [b.bucket_name for b in buckets]}},
                },
            ),
        )
        # Its own DLQ: a finding is not a document event, so it must not be redriven into the pipeline.
        self.dead_letters = sqs.Queue(
            self,
            "FindingsDeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself a dead-letter queue: EventBridge sends the findings it cannot deliver to the "
            "responder here (target DLQ), and Lambda the findings the responder failed on (on-failure "
            "destination); cdk-nag recognizes neither as one.",
        )
        # EventBridge invokes the responder asynchronously: its target DLQ takes only what EventBridge
        # could not deliver. A finding the responder fails on is Lambda's to retry and then to send
        # on, or it would be dropped after the retries with nothing left to alarm on.
        self.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letters),
            retry_attempts=2,
            max_event_age=Duration.hours(6),
        )
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                self.function.execution_role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's grant for sending to the KMS-encrypted findings dead-letter queue (the on-failure "
                "destination), on the tier key only.",
            )
        rule.add_target(targets.LambdaFunction(self.function, dead_letter_queue=self.dead_letters, retry_attempts=2))
        alarm(
            self,
            "FindingsWaiting",
            self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            description="Macie findings the responder could not handle: handle them by hand",
            topic=pipeline.alarm_topic,
        )

    def _responder(
        self,
        context: ProductionContext,
        pipeline: IngestionPipeline,
        curated: s3.IBucket,
        kb: VectorKnowledgeBase,
    ) -> Any:
        config, key = context.config, context.key
        function = context.function(
            self,
            "Responder",
            package="ingestion",
            module="macie",
            sizing="macie_findings",
            description="Macie findings: quarantine, take out of the Knowledge Base, register, notify",
            settings=ResponderSettings(
                landing_bucket=pipeline.landing.bucket_name,
                curated_bucket=curated.bucket_name,
                quarantine_bucket=pipeline.quarantine.bucket_name,
                registry_table=pipeline.registry.table_name,
                knowledge_base_id=kb.knowledge_base_id,
                s3_data_source_id=kb.data_source_id,
                custom_data_source_id=kb.direct_source_id,
                findings_topic=self.topic.topic_arn,
            ),
        )
        role = function.execution_role
        # A finding may name any document the pipeline holds: the responder copies it to quarantine
        # and deletes it.
        pipeline.grant_remove_documents(role)
        pipeline.grant_quarantine_write(role, prefix=MACIE_QUARANTINE_PREFIX)
        key.grant(role, *DATA_KEY_ACTIONS)
        kb.grant_documents(role, delete_only=True)
        pipeline.grant_registry(role)
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        documents = config.knowledge_base.documents_prefix
        for resource, what in (
            (f"{nag_attribute(pipeline.landing, 'Arn')}/*", "landing"),
            (f"{nag_attribute(curated, 'Arn')}/{documents}*", "curated"),
            (f"{nag_attribute(curated, 'Arn')}/{DIRECT_PREFIX}*", "directly ingested"),
            (f"{nag_attribute(pipeline.quarantine, 'Arn')}/{MACIE_QUARANTINE_PREFIX}*", "quarantined"),
        ):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                f"A finding may name any {what} object; their keys are the uploaders' or the pipeline's document ids.",
            )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaDLQ",
            "A finding it fails on goes, after Lambda's two retries, to its on-failure destination: the "
            "findings' own dead-letter queue (alarmed), which cdk-nag does not read as a DLQ.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS service APIs over TLS; no private network resource.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Findings arrive at Macie's publishing rate (every 15 minutes, filtered by severity), a handful at a time.",
        )
        return function
