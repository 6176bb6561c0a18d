"""Set-up for the ingestion tests: moto S3/DynamoDB/SQS, a Comprehend stand-in that keeps
Comprehend's limits, a Bedrock Agent stand-in that checks every request against the real
service model, and a fixture corpus of the documents production sees."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters
from moto import mock_aws

from connector_push import handler as push
from connector_push.contract import Settings as PushSettings
from ingestion import handler
from ingestion.contract import PipelineSettings as Settings, ProcessorSettings
from ingestion.events import ObjectRef
from ingestion.knowledge import KnowledgeBase
from ingestion.pii import PiiScanner
from ingestion.pipeline import Pipeline, document_id
from ingestion.registry import Registry
from shared.runtime_config import ConfigLocation
from tests.lambdas.ingestion_corpus import CUSTOM, LANDING, MAX_BYTES, FakeComprehend

REGION = "us-east-1"
CURATED, QUARANTINE = "curated-bucket", "quarantine-bucket"
MAX_RECEIVE = 3
# Who may retrieve each classification (the processor reads it from AppConfig).
READERS = {"public": ["customer-basic", "customer-gold"], "internal": ["platform-admins"], "customer": []}
SETTINGS = Settings(
    curated_bucket=CURATED,
    quarantine_bucket=QUARANTINE,
    curated_prefix="curated/",
    classification_policies={"public": "quarantine", "internal": "mask", "customer": "mask"},
    default_classification="internal",
    max_document_bytes=MAX_BYTES,
    document_formats=("txt", "md", "csv", "json", "html", "pdf", "docx", "xlsx", "pptx"),
    # Small limits, so test documents under MAX_BYTES can cross them.
    max_pages=3,
    max_extracted_chars=2_000,
    max_expanded_bytes=1_000_000,
)


class ModelChecked:
    """A client whose every call is checked against the real service model (as Stubber checks
    requests) and recorded; it answers ``responses[operation]`` (a list: its answers in turn, the
    last one from then on) or fails with ``fail_with``."""

    def __init__(self, service: str, responses: dict[str, Any] | None = None) -> None:
        client = boto3.client(service, region_name=REGION)
        self._model = client.meta.service_model
        self._operations = dict(client.meta.method_to_api_mapping)  # snake_case -> operation
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses = responses or {}
        self.fail_with: str | None = None

    def __getattr__(self, name: str) -> Any:
        operation = self.__dict__["_operations"].get(name)
        if operation is None:
            raise AttributeError(name)

        def call(**params: Any) -> dict[str, Any]:
            validate_parameters(params, self._model.operation_model(operation).input_shape)
            if self.fail_with:
                raise ClientError({"Error": {"Code": self.fail_with, "Message": "x"}}, operation)
            self.calls.append((operation, params))
            response = self.responses.get(operation, {})
            if isinstance(response, list):
                response = response.pop(0) if len(response) > 1 else response[0]
            return dict(response)

        return call


@dataclass
class Aws:
    s3: Any
    dynamodb: Any
    sqs: Any
    comprehend: FakeComprehend
    agent: ModelChecked
    registry: Registry
    knowledge: KnowledgeBase
    pipeline: Pipeline
    dlq_url: str
    queue_url: str  # the documents queue the processor consumes

    def put(self, key: str, body: bytes | str, **metadata: str) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        response = self.s3.put_object(Bucket=LANDING, Key=key, Body=data, Metadata=metadata)
        return {"key": key, "version": response["VersionId"], "size": len(data)}

    def objects(self, bucket: str) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    def landing_versions(self) -> list[Any]:
        response = self.s3.list_object_versions(Bucket=LANDING)
        return [*response.get("Versions", []), *response.get("DeleteMarkers", [])]

    def registry_items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.Table("registry").scan()["Items"])

    def dlq(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        )
        return list(messages.get("Messages", []))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (LANDING, CURATED, QUARANTINE):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="registry",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        queue_url = sqs.create_queue(QueueName="documents")["QueueUrl"]
        comprehend, agent = (
            FakeComprehend(),
            ModelChecked(
                "bedrock-agent",
                {
                    "IngestKnowledgeBaseDocuments": {"documentDetails": []},
                    "DeleteKnowledgeBaseDocuments": {"documentDetails": []},
                },
            ),
        )
        registry = Registry(dynamodb.Table("registry"))
        knowledge = KnowledgeBase(agent, "KB12345678", "DS3SOURCE1", "DSCUSTOM01")
        scanner = PiiScanner(comprehend, custom_identifiers=CUSTOM, min_score=0.8)
        pipeline = Pipeline(s3, scanner, registry, knowledge, SETTINGS, readers=lambda: READERS)
        monkeypatch.setattr(handler, "pipeline", lambda: pipeline)
        monkeypatch.setattr(handler, "registry", lambda: registry)
        monkeypatch.setattr(handler, "sqs", lambda: sqs)
        monkeypatch.setattr(handler.persistence, "client", boto3.client("dynamodb", region_name=REGION))
        monkeypatch.setattr(handler.persistence, "table_name", "idempotency")
        processor = ProcessorSettings(
            **SETTINGS.model_dump(),
            knowledge_base_id=knowledge.knowledge_base_id,
            s3_data_source_id=knowledge.s3_data_source_id,
            custom_data_source_id=knowledge.custom_data_source_id,
            landing_bucket=LANDING,
            registry_table="registry",
            idempotency_table="idempotency",
            dlq_url=dlq_url,
            queue_url=queue_url,
            max_receive_count=MAX_RECEIVE,
            classification_readers=ConfigLocation(
                application="app", environment="env", profile="readers", environment_name="ingestion"
            ),
        )
        monkeypatch.setattr(handler, "settings", lambda: processor)
        yield Aws(s3, dynamodb, sqs, comprehend, agent, registry, knowledge, pipeline, dlq_url, queue_url)


_ids = itertools.count(1)
_sequencers = itertools.count(0x0055AED6DCD90281E5)  # S3's: hex, growing with every event on a key


def s3_event(key: str, version: str, size: int, bucket: str = LANDING) -> dict[str, Any]:
    """EventBridge's "Object Created" event for a landing object."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-29T20:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": "e",
                "version-id": version,
                "sequencer": f"{next(_sequencers):018X}",
            },
            "request-id": "r",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def sqs_message(body: Any, *, receive_count: int = 1, message_id: str | None = None) -> dict[str, Any]:
    return {
        "messageId": message_id or f"m-{next(_ids)}",
        "receiptHandle": "h",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795888800000",
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "1795888800000",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingestion",
        "awsRegion": REGION,
    }


def batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


def landed(aws: Aws, key: str, body: bytes | str, **metadata: str) -> dict[str, Any]:
    """Put an object into the landing bucket and return the SQS message its event becomes."""
    put = aws.put(key, body, **metadata)
    return sqs_message(s3_event(put["key"], put["version"], put["size"]))


# --- one pipeline call at a time (the policy tests) ---------------------------------------------------

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
_event_order = itertools.count(0x0066AED6DCD90281E5)


def make(
    aws: Aws,
    *,
    custom: dict[str, str] | None = None,
    textract: Any = None,
    monotonic: Callable[[], float] | None = None,
    readers: dict[str, list[str]] | None = None,
    copy_limit: int | None = None,
    **settings: Any,
) -> Pipeline:
    """A pipeline over the test AWS with these settings changed and fixed clocks."""
    scanner = PiiScanner(aws.comprehend, custom_identifiers=CUSTOM if custom is None else custom, min_score=0.8)
    changed = SETTINGS.model_copy(update=settings)
    # Monotonic time stopped unless a test brings its own: no read's deadline passes on a busy machine.
    extra: dict[str, Any] = {"monotonic": monotonic or (lambda: 0.0)}
    if copy_limit is not None:
        extra["copy_limit"] = copy_limit
    return Pipeline(
        aws.s3,
        scanner,
        aws.registry,
        aws.knowledge,
        changed,
        readers=lambda: READERS if readers is None else readers,
        clock=lambda: NOW,
        textract=textract,
        **extra,
    )


def land(aws: Aws, key: str, body: bytes | str, *, event_key: str | None = None, **metadata: str) -> ObjectRef:
    """Put a landing object; the event S3 sends for it (sequencers grow with every event)."""
    put = aws.put(key, body, **metadata)
    sequencer = f"{next(_event_order):018X}"
    return ObjectRef(LANDING, event_key or key, put["version"], put["size"], sequencer)


def record_of(aws: Aws, ref: ObjectRef) -> dict[str, Any]:
    item = aws.dynamodb.Table("registry").get_item(
        Key={"pk": document_id(LANDING, ref.key), "sk": f"version#{ref.version}"}
    )
    return dict(item["Item"])


def current_of(aws: Aws, key: str) -> dict[str, Any]:
    current = aws.registry.current(document_id(LANDING, key))
    assert current is not None
    return current


def curated_versions(aws: Aws) -> list[str]:
    return sorted(v["Key"] for v in aws.s3.list_object_versions(Bucket=CURATED).get("Versions", []))


@pytest.fixture
def pushing(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """The push connector's function over ``aws``: source "crm" (customer), three records a request."""
    settings = PushSettings(
        landing_bucket=LANDING, push_sources={"crm": "customer"}, registry_table="registry", max_records=3
    )
    monkeypatch.setattr(push, "settings", lambda: settings)
    monkeypatch.setattr(push, "s3", lambda: aws.s3)
    monkeypatch.setattr(push, "registry", lambda: aws.dynamodb.Table("registry"))
    return aws
