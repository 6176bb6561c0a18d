"""Macie sensitive-data discovery over the pipeline's buckets, and what happens to a finding.

The Macie session itself is account-level and lives in the foundation stack. Here: the custom
data identifiers (the same patterns the pipeline masks), the allow list, a scheduled
classification job over the landing and curated buckets and the access-log archive (created
through the API at deploy time: CloudFormation has no type for it), and the findings rule that
sends findings at or above ``macie.min_severity`` to lambdas/ingestion/macie.py.
"""

from __future__ import annotations

import hashlib
import json
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
    custom_resources as cr,
)
from constructs import Construct

from ingestion.contract import DIRECT_PREFIX, MACIE_QUARANTINE_PREFIX, ResponderSettings
from stacks.config import MacieSeverity
from stacks.production.context import ProductionContext
from stacks.production.ingestion import DATA_KEY_ACTIONS, IngestionPipeline
from stacks.shared.alarms import alarm
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_sdk_call_provider,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import generation, stack_instance_suffix

SEVERITIES: tuple[str, ...] = get_args(MacieSeverity)  # Low, Medium, High
SCHEDULES = {
    "DAILY": {"dailySchedule": {}},
    "WEEKLY": {"weeklySchedule": {"dayOfWeek": "MONDAY"}},
    "MONTHLY": {"monthlySchedule": {"dayOfMonth": 1}},
}


def job_digest(stack: Stack, settings: dict[str, Any], buckets: list[s3.IBucket]) -> str:
    """What a classification job's token and name carry: the stack, the job's settings and its
    buckets as the template names them (a literal name, or the Ref or import of a generated one).
    A bucket renamed, or replaced under a new logical id, is a new job: the old job's token would
    be answered with the old job, which goes on scanning the old bucket."""
    fingerprint = {"stack": stack.stack_name, **settings, "buckets": [stack.resolve(b.bucket_name) for b in buckets]}
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


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
        # The same settings give the same token, so a retried create makes no second job. The token
        # also carries this creation of the stack (its id): Macie keeps each job, and its token, for
        # good (a job is cancelled, never deleted), so a stack destroyed and deployed again, or
        # created again after a failed first create rolled back and cancelled its job, must ask
        # for a new job rather than repeat the request that made the cancelled one.
        settings_digest = job_digest(
            stack,
            {
                "macie": settings.model_dump(mode="json", exclude={"notify_emails", "min_severity"}),
                "identifiers": {n: i.model_dump(mode="json") for n, i in config.ingestion.custom_identifiers.items()},
            },
            buckets,
        )
        job: dict[str, Any] = {
            "clientToken": f"{settings_digest[:55]}-{stack_instance_suffix(self)}",
            "name": f"{name}-documents-{settings_digest[:8]}",
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
        jobs_arn = stack.format_arn(service="macie2", resource="classification-job", resource_name="*")
        self.job = cr.AwsCustomResource(
            self,
            "ClassificationJob",
            resource_type="Custom::MacieClassificationJob",
            on_create=cr.AwsSdkCall(
                service="Macie2",
                action="createClassificationJob",
                parameters=job,
                physical_resource_id=cr.PhysicalResourceId.from_response("jobId"),
            ),
            # Jobs are immutable: changed settings create a new job (a new physical id), and
            # CloudFormation then deletes the old resource, which cancels the old job.
            on_update=cr.AwsSdkCall(
                service="Macie2",
                action="createClassificationJob",
                parameters=job,
                physical_resource_id=cr.PhysicalResourceId.from_response("jobId"),
            ),
            on_delete=cr.AwsSdkCall(
                service="Macie2",
                action="updateClassificationJob",
                parameters={"jobId": cr.PhysicalResourceIdReference(), "jobStatus": "CANCELLED"},
                ignore_error_codes_matching="ResourceNotFoundException|ValidationException",
            ),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["macie2:CreateClassificationJob", "macie2:UpdateClassificationJob"],
                        resources=[jobs_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            log_group=context.log_group(
                self,
                "ClassificationJobLogs",
            ),
        )
        acknowledge_inline_policy(self.job)
        acknowledge_sdk_call_provider(stack, "the Macie API")
        acknowledge(
            self.job,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'macie2', 'classification-job/*')}]",
            "The job's id is Macie's answer to creating it: create and cancel are allowed on the account's "
            "classification jobs.",
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
