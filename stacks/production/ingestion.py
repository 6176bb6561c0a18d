"""The document pipeline and its real-time connectors.

landing bucket ──(EventBridge "Object Created")──▶ SQS ──▶ processor (lambdas/ingestion)
    ▲                                              │ DLQ     ├─▶ curated bucket ─▶ KB (S3 source: scheduled sync;
    │                                              ▼         │                       custom source: direct ingestion)
push API (IAM) ─▶ connector_push                 alarms      ├─▶ quarantine bucket
schedule ──────▶ connector_pull (one per source)             └─▶ registry (DynamoDB)
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import (
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_cloudwatch as cloudwatch,
    aws_cloudwatch_actions as cloudwatch_actions,
    aws_dynamodb as dynamodb,
    aws_events as events,
    aws_events_targets as targets,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda_event_sources as sources,
    aws_logs as logs,
    aws_s3 as s3,
    aws_scheduler as scheduler,
    aws_scheduler_targets as scheduler_targets,
    aws_secretsmanager as secretsmanager,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
)
from constructs import Construct

from stacks.config import ProductionConfig, Tier
from stacks.production.functions import production_function
from stacks.shared.api_logs import STAGE, execution_logs
from stacks.shared.buckets import SecureBucket
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import BlueprintFunction, log_retention
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_function,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import pascal_case

REALTIME_PREFIX = "realtime/"  # landing keys the connectors write (lambdas/shared/landing.py)
DIRECT_PREFIX = "direct/"  # curated copies of directly ingested items (lambdas/ingestion/pipeline.py)
REGISTRY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"]
IDEMPOTENCY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
KB_DOCUMENT_ACTIONS = ["bedrock:IngestKnowledgeBaseDocuments", "bedrock:DeleteKnowledgeBaseDocuments"]
PII_ACTIONS = ["comprehend:DetectPiiEntities", "comprehend:DetectDominantLanguage"]
DATA_KEY_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]  # SSE-KMS objects, queues, tables
PULL_TIMEOUT = Duration.minutes(5)


class IngestionPipeline(Construct):
    """Landing and quarantine buckets, the queue and its DLQ (alarmed, redrivable), the processor,
    the document registry, the scheduled Knowledge Base sync, and the push and pull connectors."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        config: ProductionConfig,
        key: kms.IKey,
        access_logs: s3.IBucket,
        curated: s3.IBucket,
        knowledge_base: VectorKnowledgeBase,
    ) -> None:
        super().__init__(scope, id)
        self._prefix, self._config, self._key = prefix, config, key
        settings = config.ingestion

        self.landing = SecureBucket(
            self,
            "Landing",
            encryption_key=key,
            access_logs=access_logs,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            event_bridge_enabled=True,
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))],
        )
        self.quarantine = SecureBucket(
            self,
            "Quarantine",
            encryption_key=key,
            access_logs=access_logs,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        for bucket, what in ((self.landing, "Landing objects"), (self.quarantine, "Quarantined objects")):
            acknowledge(
                bucket,
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                f"{what} are transient (the pipeline empties landing) or held for review in this region; "
                "cross-region copies would spread unreviewed personal data.",
            )

        # Where every document went and why: kept. Idempotency records expire (TTL) and can go.
        self.registry = self._table("Registry", pk="pk", sort_key="sk", removal_policy=RemovalPolicy.RETAIN)
        self.idempotency = self._table("Idempotency", pk="id", ttl="expiration", removal_policy=RemovalPolicy.DESTROY)

        self.dlq = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Documents",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            # A message stays hidden while the processor works on it: six times its timeout.
            visibility_timeout=Duration.seconds(6 * settings.processor_timeout_seconds),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=settings.max_receive_count),
        )
        # Redrive: `aws sqs start-message-move-task --source-arn <DeadLetterQueueArn>` moves messages
        # back to the queue they came from (see the README).
        events.Rule(
            self,
            "ObjectCreated",
            description="Every new landing object (and version) goes to the pipeline's queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [self.landing.bucket_name]}},
            ),
            targets=[targets.SqsQueue(self.queue)],
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

    def _table(
        self,
        id: str,
        *,
        pk: str,
        removal_policy: RemovalPolicy,
        sort_key: str | None = None,
        ttl: str | None = None,
    ) -> dynamodb.TableV2:
        string = dynamodb.AttributeType.STRING
        table = dynamodb.TableV2(
            self,
            id,
            partition_key=dynamodb.Attribute(name=pk, type=string),
            sort_key=dynamodb.Attribute(name=sort_key, type=string) if sort_key else None,
            time_to_live_attribute=ttl,
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self._key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        acknowledge(
            table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "Point-in-time recovery keeps 35 days of continuous backups; an AWS Backup plan is an "
            "account-level decision outside this app.",
        )
        return table

    def _function(self, id: str, package: str, description: str, **options: Any) -> BlueprintFunction:
        return production_function(
            self,
            id,
            prefix=self._prefix,
            config=self._config,
            key=self._key,
            package=package,
            description=description,
            **options,
        )

    def _processor(self, curated: s3.IBucket, kb: VectorKnowledgeBase) -> BlueprintFunction:
        settings = self._config.ingestion
        groups = self._config.groups
        readers = {
            c: [g for g, group in groups.items() if c in group.data_classifications] for c in settings.classifications
        }
        function = self._function(
            "Processor",
            "ingestion",
            "Ingestion: validate, scan for PII, curate or quarantine, register",
            memory_size=1024,
            timeout=Duration.seconds(settings.processor_timeout_seconds),
            environment={
                "CURATED_BUCKET": curated.bucket_name,
                "QUARANTINE_BUCKET": self.quarantine.bucket_name,
                "CURATED_PREFIX": self._config.knowledge_base.documents_prefix,
                "CLASSIFICATION_POLICIES": json.dumps({c: p.on_pii for c, p in settings.classifications.items()}),
                "CLASSIFICATION_READERS": json.dumps(readers, sort_keys=True),
                "DEFAULT_CLASSIFICATION": settings.default_classification,
                "MAX_DOCUMENT_BYTES": str(settings.max_document_bytes),
                "DOCUMENT_FORMATS": json.dumps(list(settings.formats)),
                "UNSUPPORTED_LANGUAGE": settings.unsupported_language,
                "CUSTOM_IDENTIFIERS": json.dumps({n: i.regex for n, i in settings.custom_identifiers.items()}),
                "PII_MIN_SCORE": str(settings.pii_min_score),
                "KNOWLEDGE_BASE_ID": kb.knowledge_base_id,
                "S3_DATA_SOURCE_ID": kb.data_source_id,
                "CUSTOM_DATA_SOURCE_ID": kb.direct_source_id,
                "REGISTRY_TABLE": self.registry.table_name,
                "IDEMPOTENCY_TABLE": self.idempotency.table_name,
                "DLQ_URL": self.dlq.queue_url,
                "MAX_RECEIVE_COUNT": str(settings.max_receive_count),
                # Stop taking documents with less than this left of the invocation (a quarter of it).
                "DOCUMENT_BUDGET_SECONDS": str(max(settings.processor_timeout_seconds // 4, 5)),
            },
        )
        function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=settings.batch_size, report_batch_item_failures=True, max_concurrency=10
            )
        )
        role = function.execution_role
        # Without ListBucket, S3 answers 403 instead of 404 for a missing key or version.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[self.landing.bucket_arn, curated.bucket_arn],
            )
        )
        landing_objects = self.landing.arn_for_objects("*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObjectVersion"], resources=[landing_objects]
            )
        )
        # A quarantine copy is undone (deleted) when a newer version of the document won the race.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:DeleteObject"], resources=[self.quarantine.arn_for_objects("*")]
            )
        )
        curated_objects = [
            curated.arn_for_objects(f"{p}*") for p in (self._config.knowledge_base.documents_prefix, DIRECT_PREFIX)
        ]
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
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=KB_DOCUMENT_ACTIONS, resources=[kb.knowledge_base_arn])
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=REGISTRY_ACTIONS, resources=[self.registry.table_arn]))
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=IDEMPOTENCY_ACTIONS, resources=[self.idempotency.table_arn])
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dlq.queue_arn]))
        self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/*", "landing objects it processes")
        self._acknowledge_objects(role, f"{nag_attribute(self.quarantine, 'Arn')}/*", "quarantine copies it writes")
        for prefix in (self._config.knowledge_base.documents_prefix, DIRECT_PREFIX):
            self._acknowledge_objects(role, f"{nag_attribute(curated, 'Arn')}/{prefix}*", "curated copies it writes")
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Comprehend's DetectPiiEntities and DetectDominantLanguage have no resource type; X-Ray tracing neither.",
        )
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
            "The event source mapping's maximum concurrency (10) bounds it; the queue absorbs the rest.",
        )
        return function

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
            policy_statements=[
                iam.PolicyStatement(actions=["bedrock:StartIngestionJob"], resources=[kb.knowledge_base_arn])
            ],
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
        depth = cloudwatch.Alarm(
            self,
            "DeadLettersWaiting",
            alarm_description="Documents or records are in the ingestion DLQ: look at their reason, fix, redrive",
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        age = cloudwatch.Alarm(
            self,
            "DeadLettersAgeing",
            alarm_description=f"A DLQ message has waited over {settings.dlq_age_alarm_minutes} minutes",
            metric=self.dlq.metric_approximate_age_of_oldest_message(period=Duration.minutes(5), statistic="Maximum"),
            threshold=settings.dlq_age_alarm_minutes * 60,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (depth, age):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return topic

    def _push_connector(self) -> apigateway.RestApi:
        push = self._config.connectors.push
        function = self._function(
            "PushConnector",
            "connector_push",
            "Push connector: upstream records into the landing bucket",
            environment={
                "LANDING_BUCKET": self.landing.bucket_name,
                "PUSH_SOURCES": json.dumps(push.sources, sort_keys=True),
                "MAX_RECORDS": str(push.max_records),
            },
        )
        role = function.execution_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.landing.arn_for_objects(f"{REALTIME_PREFIX}*")]
            )
        )
        self._key.grant(role, *DATA_KEY_ACTIONS)
        self._acknowledge_objects(role, f"{nag_attribute(self.landing, 'Arn')}/{REALTIME_PREFIX}*", "records it lands")
        acknowledge_synchronous_function(
            function,
            invoker="API Gateway",
            network="Writes only to S3 over TLS; no private network resource to reach.",
            concurrency="The API stage's throttle (50 requests per second) bounds it.",
        )
        access_logs = logs.LogGroup(
            self,
            "PushApiAccessLogs",
            retention=log_retention(self._config.log_retention_days),
            encryption_key=self._key,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        api = apigateway.RestApi(
            self,
            "PushApi",
            rest_api_name=f"{self._prefix}-{Tier.PRODUCTION}-ingestion",
            description="Push connector: upstream systems send records (IAM-signed)",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=False,  # the account's logging role comes with the AI gateway stack
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                logging_level=apigateway.MethodLoggingLevel.INFO,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=50,
                throttling_burst_limit=100,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
            ),
        )  # fmt: skip
        execution_logs(
            self,
            "PushApiExecutionLogs",
            api=api,
            stage_name=STAGE,
            key=self._key,
            retention_days=self._config.log_retention_days,
        )
        cfn_api = api.node.default_child
        assert isinstance(cfn_api, apigateway.CfnRestApi)
        cfn_api.security_policy = self._config.api.tls_policy
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
            apigateway.LambdaIntegration(function, proxy=True),
            authorization_type=apigateway.AuthorizationType.IAM,
            request_validator=validator,
            request_models={"application/json": model},
            request_parameters={"method.request.path.source": True},
        )
        for rule, reason in {
            "AwsSolutions-COG4": "Callers are upstream systems with AWS credentials: the method is IAM-authorized "
            "(SigV4), which identifies each system's role without a user pool.",
            "AwsSolutions-APIG3": "IAM authorization rejects unsigned requests before any work; the stage throttle "
            "bounds signed ones. A WAF web ACL would add cost without a threat IAM does not already stop.",
            "NIST.800.53.R5-APIGWAssociatedWithWAF": "IAM authorization rejects unsigned requests before any work; "
            "the stage throttle bounds signed ones.",
            "NIST.800.53.R5-APIGWSSLEnabled": "The backend is a Lambda proxy integration reached over AWS's signed "
            "invoke path; client certificates are for HTTP backends, of which there are none.",
            "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted": "Every request writes records; a response cache "
            "would drop writes.",
        }.items():
            acknowledge(api, rule, reason)
        return api

    def _pull_connector(self, source_name: str) -> None:
        source = self._config.connectors.pull[source_name]
        function = self._function(
            f"Pull{pascal_case(source_name)}",
            "connector_pull",
            f"Pull connector {source_name}: changed records into the landing bucket",
            timeout=PULL_TIMEOUT,
            environment={
                "PULL_SOURCE": json.dumps({"name": source_name, **source.model_dump(mode="json")}, sort_keys=True),
                "LANDING_BUCKET": self.landing.bucket_name,
                "REGISTRY_TABLE": self.registry.table_name,
                "DLQ_URL": self.dlq.queue_url,
                # One run at a time: a lease that outlasts any run (a killed run's lease expires).
                "LEASE_SECONDS": str(int(PULL_TIMEOUT.to_seconds()) + 60),
            },
        )
        role = function.execution_role
        prefix = f"{REALTIME_PREFIX}{source_name}/"
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.landing.arn_for_objects(f"{prefix}*")])
        )
        self._key.grant(role, *DATA_KEY_ACTIONS)
        # Its watermark and its lease, and nothing else in the registry.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                resources=[self.registry.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"connector#{source_name}"]}},
            )
        )
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
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaDLQ",
            "Its schedule's target has the ingestion DLQ as dead-letter queue (alarmed), after two retries.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls the source's public HTTPS API and AWS service APIs only; no private network resource.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaConcurrency",
            "One run at a time is a lease in the registry table (lambdas/connector_pull), not reserved "
            "concurrency, which a new account's concurrency quota of 10 refuses; its schedule starts one run.",
        )
