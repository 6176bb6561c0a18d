"""The document pipeline and its real-time connectors.

landing bucket ──(EventBridge "Object Created")──▶ SQS ──▶ processor (lambdas/ingestion)
    ▲                                              │ DLQ     ├─▶ curated bucket ─▶ KB (S3 source: scheduled sync;
    │                                              ▼         │                       custom source: direct ingestion)
push API (IAM) ─▶ connector_push                 alarms      ├─▶ quarantine bucket
schedule ──────▶ connector_pull (one per source)             └─▶ registry (DynamoDB)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import (
    Aws,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_cloudwatch as cloudwatch,
    aws_events as events,
    aws_events_targets as targets,
    aws_iam as iam,
    aws_lambda_event_sources as sources,
    aws_s3 as s3,
    aws_scheduler as scheduler,
    aws_scheduler_targets as scheduler_targets,
    aws_secretsmanager as secretsmanager,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
)
from constructs import Construct

from connector_pull.contract import (
    SOURCE as PULL_SOURCE,
    Metric as PullMetric,
    PullSource,
    Settings as PullSettings,
)
from connector_push.contract import Settings as PushSettings
from ingestion.contract import (
    DIRECT_PREFIX,
    LOST_RECORDS_METRIC,
    REALTIME_PREFIX,
    REFUSED_EVENTS_METRIC,
    ClassificationReaders,
    ProcessorSettings,
    document_budget_seconds,
)
from shared.connector_state import state_partition
from shared.observability import Dimension
from stacks.config.connectors import PULL_RUN_SECONDS, push_caller_arn
from stacks.config.functions import DOCUMENT_QUEUE_CONCURRENCY, OCR_QUEUE_CONCURRENCY
from stacks.production.context import ProductionContext
from stacks.shared.alarms import alarm
from stacks.shared.buckets import SecureBucket
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import BlueprintFunction
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_function,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import pascal_case
from stacks.shared.rest_api import RegionalRestApi
from stacks.shared.table import SecureTable

REGISTRY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
# A pull connector's watermark, lease and each record id's landed change: items under its own
# partition key only.
CONNECTOR_STATE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
IDEMPOTENCY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
PII_ACTIONS = ["comprehend:DetectPiiEntities", "comprehend:DetectDominantLanguage"]
DATA_KEY_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]  # SSE-KMS objects, queues, tables
PULL_TIMEOUT = Duration.seconds(PULL_RUN_SECONDS)
# The processor's memory: half is the document reader's (a child process that cannot take more).
PROCESSOR_MEMORY_MB = 1024
# Textract's asynchronous text detection (ocr: textract): neither action has a resource type.
OCR_ACTIONS = ["textract:StartDocumentTextDetection", "textract:GetDocumentTextDetection"]
# Taking a document out of the pipeline (the Macie responder): read it, to copy it first, and delete
# it with its versions; listing its bucket makes S3 answer 404, not 403, for a document already gone.
DOCUMENT_REMOVAL_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion"]
DOCUMENT_LIST_ACTIONS = ["s3:ListBucket"]
QUARANTINE_WRITE_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload"]  # large copies go in parts (copies.py)
# The processor's quarantine copies: written (in parts when large), and undone by their own version
# when a newer version of the document won the race (a delete without one, in the versioned
# bucket, would leave the unmasked copy readable behind a delete marker).
PIPELINE_QUARANTINE_ACTIONS = [*QUARANTINE_WRITE_ACTIONS, "s3:DeleteObjectVersion"]
# The push connector's HeadObject of a key it lands a dated change in, for the change the object
# there says it is (connector_push.newest). Without s3:ListBucket, which would list every
# upload's key: a key that holds nothing answers 403, and the conditional write decides.
PUSH_LANDED_READ_ACTIONS = ["s3:GetObject"]


@dataclass(frozen=True)
class OcrChannel:
    """Textract's way back to the pipeline (ocr: textract)."""

    topic: sns.Topic
    role: iam.Role
    queue: sqs.Queue
    dlq: sqs.Queue


class IngestionPipeline(Construct):
    """Landing and quarantine buckets, the queue and its DLQ (alarmed, redrivable), the processor,
    the document registry, the scheduled Knowledge Base sync, and the push and pull connectors."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        access_logs: s3.IBucket,
        curated: s3.IBucket,
        knowledge_base: VectorKnowledgeBase,
    ) -> None:
        super().__init__(scope, id)
        self._context = context
        config, key = context.config, context.key
        self._config, self._key = config, key
        self.curated = curated
        # Where the pipeline writes curated copies: the Knowledge Base's S3 source, and direct ingestion.
        self.curated_prefixes = (config.knowledge_base.documents_prefix, DIRECT_PREFIX)
        settings = config.ingestion
        # What depends on the processor's time (its queue's visibility, its per-document budget)
        # is derived from it here.
        self._processor_timeout = Duration.seconds(settings.processor_timeout_seconds)

        self.landing = SecureBucket(
            self,
            "Landing",
            encryption_key=key,
            access_logs=access_logs,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            event_bridge_enabled=True,
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))],
        )
        # Large copies arrive in parts (copies.py): a copy cut short (a crash) leaves parts only for a day.
        self.quarantine = SecureBucket(
            self,
            "Quarantine",
            encryption_key=key,
            access_logs=access_logs,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))],
        )
        for bucket, what in ((self.landing, "Landing objects"), (self.quarantine, "Quarantined objects")):
            acknowledge(
                bucket,
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                f"{what} are transient (the pipeline empties landing) or held for review in this region; "
                "cross-region copies would spread unreviewed personal data.",
            )

        # Where every document went and why: kept. Idempotency records expire (TTL) and can go.
        self.registry = SecureTable(
            self, "Registry", key=key, partition_key="pk", sort_key="sk", removal_policy=RemovalPolicy.RETAIN
        )
        self.idempotency = SecureTable(
            self,
            "Idempotency",
            key=key,
            partition_key="id",
            time_to_live_attribute="expiration",
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.queue, self.dlq = self._queue_with_dead_letters("Documents", "DeadLetters")
        # Redrive: `aws sqs start-message-move-task --source-arn <DeadLetterQueueArn>` moves messages
        # back to the queue they came from (docs/operations.md).
        # An event EventBridge cannot deliver to the queue (SQS or KMS refusing it, past its retries
        # for a day) would be dropped and its object never processed: it goes to the DLQ instead, as
        # the S3 event it is (redriven to the queue with the others), and one it cannot put there
        # either alarms (ObjectEventsLost).
        self._object_events = events.Rule(
            self,
            "ObjectCreated",
            description="Every new landing object (and version) goes to the pipeline's queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [self.landing.bucket_name]}},
            ),
            targets=[targets.SqsQueue(self.queue, dead_letter_queue=self.dlq)],
        )
        self.processor = self._processor(curated, knowledge_base)
        self._bulk_sync(knowledge_base)
        self.alarm_topic = self._alarms()
        self.push_api = self._push_connector()
        for source_name in config.connectors.pull:
            self._pull_connector(source_name)

        # At stack level, so their names do not carry a construct hash (make smoke reads them).
        stack = Stack.of(self)
        CfnOutput(stack, "LandingBucketName", value=self.landing.bucket_name)
        CfnOutput(stack, "QuarantineBucketName", value=self.quarantine.bucket_name)
        CfnOutput(stack, "RegistryTableName", value=self.registry.table_name)
        CfnOutput(stack, "DeadLetterQueueArn", value=self.dlq.queue_arn)
        CfnOutput(stack, "PushApiUrl", value=self.push_api.url)

    # --- pieces ----------------------------------------------------------------------------------

    def grant_registry(self, grantee: iam.IGrantable) -> None:
        """Read and write document records in the registry (the processor, the Macie responder)."""
        self.registry.grant_items(grantee, REGISTRY_ACTIONS)

    def grant_connector_state(
        self, grantee: iam.IGrantable, *sources: str, actions: Sequence[str] = CONNECTOR_STATE_ACTIONS
    ) -> None:
        """A connector's own items of its sources (a pull source's watermark and lease; the change
        landed last of each record id), and nothing else in the registry."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.registry.table_arn],
            conditions={
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [state_partition(s) for s in sorted(sources)]}
            },
        )

    def grant_remove_documents(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and delete, every version too, any document the pipeline holds: each landing object
        and the curated copies (under :attr:`curated_prefixes`); list both buckets."""
        objects = [
            self.landing.arn_for_objects("*"),
            *(self.curated.arn_for_objects(f"{prefix}*") for prefix in self.curated_prefixes),
        ]
        removal = iam.Grant.add_to_principal(grantee=grantee, actions=DOCUMENT_REMOVAL_ACTIONS, resource_arns=objects)
        listing = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=DOCUMENT_LIST_ACTIONS,
            resource_arns=[self.landing.bucket_arn, self.curated.bucket_arn],
        )
        return removal.combine(listing)

    def grant_quarantine_write(self, grantee: iam.IGrantable, *, prefix: str) -> iam.Grant:
        """Write objects into the quarantine bucket under ``prefix``, and nowhere else in it."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=QUARANTINE_WRITE_ACTIONS,
            resource_arns=[self.quarantine.arn_for_objects(f"{prefix}*")],
        )

    def _function(self, id: str, package: str, description: str, **options: Any) -> BlueprintFunction:
        return self._context.function(
            self,
            id,
            package=package,
            description=description,
            **options,
        )

    def _processor(self, curated: s3.IBucket, kb: VectorKnowledgeBase) -> BlueprintFunction:
        settings = self._config.ingestion
        groups = self._config.groups
        # Who may retrieve each classification: a runtime document (AppConfig, environment "ingestion").
        readers = self._context.config_environment(self, "ingestion").document(
            "classification-readers",
            model=ClassificationReaders,
            content=ClassificationReaders(
                classification_readers={
                    c: [g for g, group in groups.items() if c in group.data_classifications]
                    for c in settings.classifications
                }
            ),
            description="Ingestion: the groups that may retrieve each document classification",
        )
        ocr = self._ocr_channel() if settings.ocr == "textract" else None
        ocr_settings: dict[str, Any] = (
            {"ocr": "textract", "ocr_topic_arn": ocr.topic.topic_arn, "ocr_role_arn": ocr.role.role_arn} if ocr else {}
        )
        function = self._function(
            "Processor",
            "ingestion",
            "Ingestion: validate, scan for PII, curate or quarantine, register",
            memory_size=PROCESSOR_MEMORY_MB,
            timeout=self._processor_timeout,
            settings=ProcessorSettings(
                landing_bucket=self.landing.bucket_name,
                curated_bucket=curated.bucket_name,
                quarantine_bucket=self.quarantine.bucket_name,
                curated_prefix=self._config.knowledge_base.documents_prefix,
                classification_policies={c: p.on_pii for c, p in settings.classifications.items()},
                classification_readers=readers.location,
                default_classification=settings.default_classification,
                max_document_bytes=settings.max_document_bytes,
                document_formats=tuple(settings.formats),
                max_pages=settings.max_pages,
                max_extracted_chars=settings.max_extracted_chars,
                read_seconds=settings.read_seconds,
                max_expanded_bytes=settings.max_expanded_bytes,
                max_page_bytes=settings.max_page_bytes,
                max_compression_ratio=settings.max_compression_ratio,
                read_memory_bytes=PROCESSOR_MEMORY_MB * 2**20 // 2,
                unsupported_language=settings.unsupported_language,
                custom_identifiers={n: i.regex for n, i in settings.custom_identifiers.items()},
                pii_min_score=settings.pii_min_score,
                knowledge_base_id=kb.knowledge_base_id,
                s3_data_source_id=kb.data_source_id,
                custom_data_source_id=kb.direct_source_id,
                registry_table=self.registry.table_name,
                idempotency_table=self.idempotency.table_name,
                dlq_url=self.dlq.queue_url,
                queue_url=self.queue.queue_url,
                max_receive_count=settings.max_receive_count,
                # Stop taking documents with less than this left of the invocation (a quarter of it).
                document_budget_seconds=document_budget_seconds(int(self._processor_timeout.to_seconds())),
                **ocr_settings,
            ),
        )
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=settings.batch_size,
                report_batch_item_failures=True,
                max_concurrency=DOCUMENT_QUEUE_CONCURRENCY,
            )
        )
        role = function.execution_role
        readers.grant_read(role)
        # Without ListBucket, S3 answers 403 instead of 404 for a missing landing key or version, and
        # for a key whose current version is a delete marker (an upload withdrawn: pipeline._withdrawn).
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=DOCUMENT_LIST_ACTIONS, resources=[self.landing.bucket_arn])
        )
        landing_objects = self.landing.arn_for_objects("*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObjectVersion"], resources=[landing_objects]
            )
        )
        # A quarantine copy is undone (its version deleted) when a newer version of the document won
        # the race; one over 128 MiB is copied in parts, its upload aborted if a part fails or it is
        # stopped for time.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=PIPELINE_QUARANTINE_ACTIONS, resources=[self.quarantine.arn_for_objects("*")])
        )
        curated_objects = [curated.arn_for_objects(f"{p}*") for p in self.curated_prefixes]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"], resources=curated_objects
            )
        )
        # Undoing a directly ingested copy re-ingests the winner, read back from the curated bucket.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[curated.arn_for_objects(f"{DIRECT_PREFIX}*")])
        )
        self._key.grant(role, *DATA_KEY_ACTIONS)
        role.add_to_principal_policy(iam.PolicyStatement(actions=PII_ACTIONS, resources=["*"]))
        no_resource_type = (
            "Comprehend's DetectPiiEntities and DetectDominantLanguage have no resource type; X-Ray tracing neither."
        )
        if ocr:
            # Textract reads the landing object with the processor's credentials: its GetObject,
            # GetObjectVersion and kms:Decrypt above cover it.
            role.add_to_principal_policy(iam.PolicyStatement(actions=OCR_ACTIONS, resources=["*"]))
            no_resource_type += (
                " Textract's StartDocumentTextDetection and GetDocumentTextDetection have no resource-level "
                "permissions."
            )
            ocr.role.grant_pass_role(role)
            function.add_event_source(
                sources.SqsEventSource(
                    ocr.queue, batch_size=1, report_batch_item_failures=True, max_concurrency=OCR_QUEUE_CONCURRENCY
                )
            )
        kb.grant_documents(role)
        self.grant_registry(role)
        self.idempotency.grant_items(role, IDEMPOTENCY_ACTIONS)
        # Dead letters with their reason; a document deferred on its message's last receive, sent again.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dlq.queue_arn, self.queue.queue_arn])
        )
        self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/*", "landing objects it processes")
        self._acknowledge_objects(role, f"{nag_attribute(self.quarantine, 'Arn')}/*", "quarantine copies it writes")
        for prefix in self.curated_prefixes:
            self._acknowledge_objects(role, f"{nag_attribute(curated, 'Arn')}/{prefix}*", "curated copies it writes")
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", no_resource_type)
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaDLQ",
            "Invoked by an SQS event source mapping: failed messages go to the queue's own DLQ after "
            "maxReceiveCount attempts; a function DLQ applies to asynchronous invocations only.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS service APIs (S3, Comprehend, Bedrock, DynamoDB, SQS) over TLS; no private "
            "network resource.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaConcurrency",
            f"The event source mappings' maximum concurrency ({DOCUMENT_QUEUE_CONCURRENCY}, and "
            f"{OCR_QUEUE_CONCURRENCY} for OCR results) bounds it; the queues absorb the rest.",
        )
        return function

    def _ocr_channel(self) -> OcrChannel:
        """Where Textract says a text detection finished: a topic (tier key) it publishes to with
        its own role, delivered to a queue (with a DLQ) the processor consumes."""
        topic = sns.Topic(self, "OcrTopic", master_key=self._key, enforce_ssl=True)
        role = iam.Role(
            self,
            "OcrPublisher",
            assumed_by=iam.ServicePrincipal(
                "textract.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}
            ),
            description="Textract: publish the ingestion pipeline's text detection results",
        )
        topic.grant_publish(role)  # sns:Publish on the topic; GenerateDataKey and Decrypt on the key
        acknowledge_inline_policy(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "SNS's grant for publishing to a KMS-encrypted topic, on the tier key only.",
        )
        # SQS-managed encryption: a subscription adds a statement naming the topic to the queue key's
        # policy, and the tier key's policy (foundation stack) cannot name a later stack's topic.
        # The message holds a job id, its status and the object's name.
        queue, dlq = self._queue_with_dead_letters("OcrResults", "OcrDeadLetters", tier_key=False)
        topic.add_subscription(subscriptions.SqsSubscription(queue, raw_message_delivery=True))
        return OcrChannel(topic=topic, role=role, queue=queue, dlq=dlq)

    def _queue_with_dead_letters(
        self, id: str, dead_letters_id: str, *, tier_key: bool = True
    ) -> tuple[sqs.Queue, sqs.Queue]:
        """A queue the processor consumes (TLS only; the tier key, or SQS-managed encryption) and
        its dead-letter queue: a message stays hidden while the processor works on it (six times
        its timeout) and moves to the dead letters after ingestion.max_receive_count receives."""
        encryption: dict[str, Any] = (
            {"encryption": sqs.QueueEncryption.KMS, "encryption_master_key": self._key}
            if tier_key
            else {"encryption": sqs.QueueEncryption.SQS_MANAGED}
        )
        dlq = sqs.Queue(self, dead_letters_id, enforce_ssl=True, retention_period=Duration.days(14), **encryption)
        queue = sqs.Queue(
            self,
            id,
            enforce_ssl=True,
            **encryption,
            visibility_timeout=Duration.seconds(6 * self._processor_timeout.to_seconds()),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=self._config.ingestion.max_receive_count
            ),
        )
        return queue, dlq

    def _acknowledge_objects(self, role: iam.IRole, resource: str, what: str) -> None:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{resource}]",
            f"Object keys are the uploaders' and the pipeline's document ids: the {what} cannot be named in advance.",
        )

    def _bulk_sync(self, kb: VectorKnowledgeBase) -> None:
        """An ingestion job for the S3 data source every bulk_sync_minutes (Scheduler's universal target)."""
        role = iam.Role(
            self,
            "BulkSyncRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}
            ),
            description="EventBridge Scheduler: start the Knowledge Base's ingestion jobs",
        )
        acknowledge_inline_policy(role)
        target = scheduler_targets.Universal(
            service="bedrockagent",
            action="startIngestionJob",
            input=scheduler.ScheduleTargetInput.from_object(
                {"KnowledgeBaseId": kb.knowledge_base_id, "DataSourceId": kb.data_source_id}
            ),
            policy_statements=[kb.sync_statement()],
            retry_attempts=0,  # a job already running is a conflict; the next run catches up
            role=role,
        )
        schedule = scheduler.Schedule(
            self,
            "BulkSync",
            description="Sync the curated prefix into the Knowledge Base",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(self._config.ingestion.bulk_sync_minutes)),
            target=target,
        )
        schedule.node.add_dependency(role)  # the role and the policy the target adds to it

    def _alarms(self) -> sns.Topic:
        settings = self._config.ingestion
        topic = sns.Topic(self, "Alarms", master_key=self._key, enforce_ssl=True)
        for address in settings.alarm_emails:
            topic.add_subscription(subscriptions.EmailSubscription(address))
        alarm(
            self,
            "DeadLettersWaiting",
            self.dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum"),
            description="Documents or records are in the ingestion DLQ: look at their reason, fix, redrive",
            topic=topic,
        )
        alarm(
            self,
            "DeadLettersAgeing",
            self.dlq.metric_approximate_age_of_oldest_message(period=Duration.minutes(5), statistic="Maximum"),
            description=f"A DLQ message has waited over {settings.dlq_age_alarm_minutes} minutes",
            topic=topic,
            threshold=settings.dlq_age_alarm_minutes * 60,
        )
        # What SQS never causes, so one is worth a look: a record the processor could neither
        # process nor dead-letter (no message id to hand back to SQS, and the DLQ refused it), and an
        # invocation that was no SQS batch (someone or something else invoked the processor).
        for alarm_id, metric_name, description in (
            (
                "RecordsLost",
                LOST_RECORDS_METRIC,
                "The ingestion processor got a record it could neither process nor dead-letter (its log line says why)",
            ),
            (
                "EventsRefused",
                REFUSED_EVENTS_METRIC,
                "The ingestion processor was invoked with an event that is no SQS batch (its log line names the "
                "event's type)",
            ),
        ):
            metric = cloudwatch.Metric(
                namespace=self._context.metrics_namespace,
                metric_name=metric_name,
                dimensions_map={Dimension.SERVICE: "ingestion"},
                statistic="Sum",
                period=Duration.minutes(5),
            )
            alarm(self, alarm_id, metric, description=description, topic=topic)
        lost = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="InvocationsFailedToBeSentToDlq",
            dimensions_map={"RuleName": self._object_events.rule_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )
        description = (
            "EventBridge could deliver an object's event neither to the documents queue nor to the DLQ: the object "
            "sits in landing unprocessed. Upload it again (or copy it onto itself) once the queue takes events."
        )
        alarm(self, "ObjectEventsLost", lost, description=description, topic=topic)
        return topic

    def _falling_behind_alarm(self, source_name: str) -> None:
        """A source whose every run stops early (at the page cap, or for time) for three hours on end
        produces more than its runs can pull: the lag grows until someone runs it more often (or
        for longer). (A run
        capped now and then is a backfill the next runs finish; a source that runs less than hourly
        has hours without runs, missing data that never breaches.)"""
        alarm(
            self,
            f"Pull{pascal_case(source_name)}FallingBehind",
            cloudwatch.MathExpression(
                # Every finished run writes one RecordsPulled value: its sample count is the runs.
                expression="IF(runs > 0, capped / runs, 0)",
                using_metrics={
                    "capped": self._pull_metric(source_name, PullMetric.RUNS_CAPPED, "Sum", Duration.hours(1)),
                    "runs": self._pull_metric(source_name, PullMetric.RECORDS_PULLED, "SampleCount", Duration.hours(1)),
                },
                period=Duration.hours(1),
                label=f"{source_name} share of runs capped",
            ),
            description=f"Every run of pull source {source_name} stopped early (page cap or time) for 3 hours: "
            "it falls behind its source",
            topic=self.alarm_topic,
            periods=3,
        )

    def _pull_metric(self, source_name: str, name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
        """One of a pull source's own metrics, as its function's Powertools metrics write them."""
        return cloudwatch.Metric(
            namespace=self._context.metrics_namespace,
            metric_name=name,
            dimensions_map={Dimension.SERVICE: "connector_pull", PULL_SOURCE: source_name},
            statistic=statistic,
            period=period,
        )

    def _failing_alarm(self, function: BlueprintFunction, source_name: str) -> None:
        """A source whose runs failed in three hours and none finished (its API down, its secret
        wrong): the checkpoint does not move, and nothing reaches the pipeline until someone looks.
        The same for any schedule: a daily source's one failed run (every retry of it) alarms; one
        failed run among finished ones, or a retry that succeeds in the same window, does not."""
        window = Duration.hours(3)
        alarm(
            self,
            f"Pull{pascal_case(source_name)}Failing",
            cloudwatch.MathExpression(
                # Every finished run writes one RecordsPulled value: its sample count is the runs.
                expression="IF(FILL(runs, 0) == 0, FILL(errors, 0), 0)",  # failed attempts, when none finished
                using_metrics={
                    "errors": function.metric_errors(period=window, statistic="Sum"),
                    "runs": self._pull_metric(source_name, PullMetric.RECORDS_PULLED, "SampleCount", window),
                },
                period=window,
                label=f"{source_name} failed with no run finished",
            ),
            description=f"Runs of pull source {source_name} failed and none finished in 3 hours: "
            "its records are not being pulled (the function's log line 'pull failed' says where)",
            topic=self.alarm_topic,
        )

    def _answers_unusable_alarm(self, source_name: str) -> None:
        """A source that answered a page not in the shape its config describes (no list at
        items_field, a cursor of another type): its API or the config changed, and retrying will
        not help. One such run alarms at once, not after the three hours PullFailing waits for an
        outage to pass: someone must fix the config or ask the source's owner."""
        alarm(
            self,
            f"Pull{pascal_case(source_name)}AnswersUnusable",
            self._pull_metric(source_name, PullMetric.ANSWERS_UNUSABLE, "Sum", Duration.hours(1)),
            description=f"Pull source {source_name} answered in a shape its config does not describe: "
            "fix connectors.pull in the config or the source (the function's log line 'pull failed' "
            "names the field and the JSON type it found)",
            topic=self.alarm_topic,
        )

    def _push_connector(self) -> apigateway.RestApi:
        push = self._config.connectors.push
        function = self._function(
            "PushConnector",
            "connector_push",
            "Push connector: upstream records into the landing bucket",
            settings=PushSettings(
                landing_bucket=self.landing.bucket_name,
                push_sources=push.sources,
                registry_table=self.registry.table_name,
                max_records=push.max_records,
                max_document_bytes=self._config.ingestion.max_document_bytes,
            ),
        )
        role = function.execution_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.landing.arn_for_objects(f"{REALTIME_PREFIX}*")]
            )
        )
        self._key.grant(role, *DATA_KEY_ACTIONS)
        if push.sources:  # each record id's change landed last (its updated_at), written under a condition only
            self.grant_connector_state(role, *push.sources, actions=["dynamodb:PutItem"])
            prefixes = [f"{REALTIME_PREFIX}{source}/" for source in sorted(push.sources)]
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=PUSH_LANDED_READ_ACTIONS,
                    resources=[self.landing.arn_for_objects(f"{prefix}*") for prefix in prefixes],
                )
            )
            for prefix in prefixes:
                self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/{prefix}*", "records it lands")
        self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/{REALTIME_PREFIX}*", "records it lands")
        acknowledge_synchronous_function(
            function,
            invoker="API Gateway",
            network="Writes only to S3 over TLS; no private network resource to reach.",
            concurrency="The API stage's throttle (50 requests per second) bounds it.",
        )
        api = RegionalRestApi(
            self,
            "PushApi",
            rest_api_name=f"{self._context.name}-ingestion",
            description="Push connector: upstream systems send records (IAM-signed)",
            key=self._key,
            retention_days=self._config.log_retention_days,
            tls_policy=self._config.api.tls_policy,
            throttling_rate_limit=50,
            throttling_burst_limit=100,
            access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                resource_path=True, response_length=True, status=True, user=True,
            ),
            cache_reason="Every request writes records; a response cache would drop writes.",
            access_logs_id="PushApiAccessLogs",
            execution_logs_id="PushApiExecutionLogs",
        )  # fmt: skip
        validator = api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        model = api.add_model(
            "Records",
            content_type="application/json",
            schema=apigateway.JsonSchema(
                schema=apigateway.JsonSchemaVersion.DRAFT4,
                type=apigateway.JsonSchemaType.OBJECT,
                required=["records"],
                properties={"records": apigateway.JsonSchema(type=apigateway.JsonSchemaType.ARRAY, min_items=1)},
            ),
        )
        api.root.add_resource("v1").add_resource("records").add_resource("{source}").add_method(
            "POST",
            apigateway.LambdaIntegration(function.invoke_target, proxy=True),  # its alias live with SnapStart
            authorization_type=apigateway.AuthorizationType.IAM,
            request_validator=validator,
            request_models={"application/json": model},
            request_parameters={"method.request.path.source": True},
        )
        for source, roles in push.callers.items():
            self._push_callers(api, source, roles)
        for rule, reason in {
            "AwsSolutions-COG4": "Callers are upstream systems with AWS credentials: the method is IAM-authorized "
            "(SigV4), which identifies each system's role without a user pool.",
            "AwsSolutions-APIG3": "IAM authorization rejects unsigned requests before any work; the stage throttle "
            "bounds signed ones. A WAF web ACL would add cost without a threat IAM does not already stop.",
            "NIST.800.53.R5-APIGWAssociatedWithWAF": "IAM authorization rejects unsigned requests before any work; "
            "the stage throttle bounds signed ones.",
        }.items():
            acknowledge(api, rule, reason)
        return api

    @staticmethod
    def _push_callers(api: apigateway.RestApi, source: str, roles: list[str]) -> None:
        """A source's path is its callers' alone: allowed to them (from another account too) and
        denied to every other principal, whatever its own IAM policies allow. The source chooses
        the records' classification, so a system that could call every path could push
        confidential text as another source's public records, or replace its documents."""
        arns = [push_caller_arn(role, partition=Aws.PARTITION, account=Aws.ACCOUNT_ID) for role in roles]
        path = f"execute-api:/*/POST/v1/records/{source}"  # API Gateway's form for its own API's methods
        for effect, operator in ((iam.Effect.ALLOW, "ArnEquals"), (iam.Effect.DENY, "ArnNotEquals")):
            api.add_to_resource_policy(
                iam.PolicyStatement(
                    effect=effect,
                    principals=[iam.AnyPrincipal()],
                    actions=["execute-api:Invoke"],
                    resources=[path],
                    conditions={operator: {"aws:PrincipalArn": arns}},
                )
            )

    def _pull_connector(self, source_name: str) -> None:
        source = self._config.connectors.pull[source_name]
        timeout = self._context.timeout("connector_pull", PULL_TIMEOUT)
        function = self._function(
            f"Pull{pascal_case(source_name)}",
            "connector_pull",
            f"Pull connector {source_name}: changed records into the landing bucket",
            timeout=timeout,
            settings=PullSettings(
                pull_source=PullSource(name=source_name, **source.model_dump(mode="json")),
                landing_bucket=self.landing.bucket_name,
                registry_table=self.registry.table_name,
                dlq_url=self.dlq.queue_url,
                # One run at a time: a lease that outlasts any run (a killed run's lease expires).
                lease_seconds=int(timeout.to_seconds()) + 60,
            ),
        )
        role = function.execution_role
        prefix = f"{REALTIME_PREFIX}{source_name}/"
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.landing.arn_for_objects(f"{prefix}*")])
        )
        self._key.grant(role, *DATA_KEY_ACTIONS)
        self.grant_connector_state(role, source_name)
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dlq.queue_arn]))
        secret = secretsmanager.Secret.from_secret_name_v2(
            self, f"{pascal_case(source_name)}Secret", source.secret_name
        )
        secret.grant_read(role)
        self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/{prefix}*", "records it lands")
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'secretsmanager', f'secret:{source.secret_name}-??????')}]",
            "Secrets Manager appends six random characters to a secret's ARN; the name is fixed by config.",
        )
        rule = events.Rule(
            self,
            f"Pull{pascal_case(source_name)}Schedule",
            description=f"Pull changed records from {source_name}",
            schedule=events.Schedule.expression(source.schedule),
        )
        rule.add_target(targets.LambdaFunction(function, dead_letter_queue=self.dlq, retry_attempts=2))
        self._falling_behind_alarm(source_name)
        self._failing_alarm(function, source_name)
        self._answers_unusable_alarm(source_name)
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaDLQ",
            "A run carries no data, only its schedule's tick: failed runs with none finished are alarmed "
            "(PullFailing) and the next run resumes from the saved checkpoint; a run EventBridge cannot "
            "start goes to the ingestion DLQ (alarmed).",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls the source's public HTTPS API and AWS service APIs only; no private network resource.",
        )
        if self._context.reserved_concurrency("connector_pull") is None:
            acknowledge(
                function,
                "NIST.800.53.R5-LambdaConcurrency",
                "One run at a time is a lease in the registry table (lambdas/connector_pull), not reserved "
                "concurrency, which a new account's concurrency quota of 10 refuses; its schedule starts one run.",
            )
