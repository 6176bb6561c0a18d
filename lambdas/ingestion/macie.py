"""Macie findings (the EventBridge rule passes those at or above the configured severity):
quarantine the object, take it out of the Knowledge Base, mark the registry, notify.

A finding for an object already gone (processed, superseded or deleted since the job ran) is
reported and recorded, never an error. Findings on other buckets (the log archive) are reported
only. The notification names the finding, bucket and document id, never the key or the data.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError

from ingestion.contract import ResponderSettings
from ingestion.knowledge import KnowledgeBase
from ingestion.pipeline import MISSING, CuratedStore, document_id
from ingestion.registry import Registry

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Finding:
    id: str
    type: str
    severity: str
    bucket: str
    key: str
    version: str | None


@dataclass(frozen=True)
class Buckets:
    landing: str
    curated: str
    quarantine: str


def parse(event: dict[str, Any]) -> Finding:
    detail = event.get("detail") or {}
    affected = detail.get("resourcesAffected") or {}
    obj = affected.get("s3Object") or {}
    bucket = (affected.get("s3Bucket") or {}).get("name")
    if not detail.get("id") or not bucket or not obj.get("key"):
        raise ValueError("not a Macie finding about an S3 object")
    return Finding(
        id=str(detail["id"]),
        type=str(detail.get("type", "unknown")),
        severity=str((detail.get("severity") or {}).get("description", "unknown")),
        bucket=str(bucket),
        key=str(obj["key"]),
        version=obj.get("versionId") or None,
    )


class Responder:
    def __init__(
        self, s3: Any, store: CuratedStore, registry: Registry, sns: Any, buckets: Buckets, topic: str
    ) -> None:
        self._s3 = s3
        self._store = store
        self._registry = registry
        self._sns = sns
        self._buckets = buckets
        self._topic = topic

    def respond(self, finding: Finding, at: dt.datetime) -> dict[str, str]:
        buckets = self._buckets
        reason = f"Macie finding {finding.type} ({finding.severity})"
        doc = self._document(finding)
        if finding.bucket == buckets.quarantine:
            action = "already_quarantined"
        elif finding.bucket in (buckets.curated, buckets.landing):
            location = self._quarantine(finding)
            action = "quarantined" if location else "already_gone"
            retired = None
            if finding.bucket == buckets.curated:  # out of the bucket and the KB, if it is the current copy
                current = self._registry.current(doc)
                retired = self._store.retire_current(doc, current, object_version=finding.version)
            if location:
                self._registry.finding(
                    doc, finding.id, reason=reason, location=location, at=at, current=retired is not None
                )
        else:
            action = "reported"
        notice = {"finding": finding.id, "type": finding.type, "severity": finding.severity, "bucket": finding.bucket}
        notice |= {"document_id": doc, "action": action}
        self._sns.publish(
            TopicArn=self._topic,
            Subject=f"Macie {finding.severity} finding: {action}"[:100],
            Message=json.dumps(notice, sort_keys=True),
        )
        return notice

    def _document(self, finding: Finding) -> str:
        if finding.bucket == self._buckets.curated:  # curated keys are <prefix>/<document id>.txt[.metadata.json]
            return PurePosixPath(finding.key).name.split(".", 1)[0]
        return document_id(finding.bucket, finding.key)

    def _quarantine(self, finding: Finding) -> str | None:
        """Copy the flagged version to quarantine and delete it; None when it is already gone."""
        source = {"Bucket": finding.bucket, "Key": finding.key}
        if finding.version:
            source["VersionId"] = finding.version
        target = f"macie/{finding.id}/{PurePosixPath(finding.key).name}"
        try:
            self._s3.copy_object(Bucket=self._buckets.quarantine, Key=target, CopySource=source)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        if finding.version:
            self._s3.delete_object(Bucket=finding.bucket, Key=finding.key, VersionId=finding.version)
        else:
            self._s3.delete_object(Bucket=finding.bucket, Key=finding.key)
        return f"s3://{self._buckets.quarantine}/{target}"


@cache
def responder() -> Responder:
    config = ResponderSettings.from_environ()
    aws = Config(retries={"mode": "standard", "total_max_attempts": 3})
    s3 = boto3.client("s3", config=aws)
    registry = Registry(boto3.resource("dynamodb", config=aws).Table(config.registry_table))
    knowledge = KnowledgeBase(
        boto3.client("bedrock-agent", config=aws),
        knowledge_base_id=config.knowledge_base_id,
        s3_data_source_id=config.s3_data_source_id,
        custom_data_source_id=config.custom_data_source_id,
    )
    buckets = Buckets(config.landing_bucket, config.curated_bucket, config.quarantine_bucket)
    sns = boto3.client("sns", config=aws)
    return Responder(s3, CuratedStore(s3, knowledge), registry, sns, buckets, config.findings_topic)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    try:
        finding = parse(event)
    except ValueError as error:
        logger.error("unusable finding event", extra={"reason": str(error)})
        metrics.add_metric(name="MacieFindingsUnusable", unit=MetricUnit.Count, value=1)
        return {"action": "ignored"}
    notice = responder().respond(finding, dt.datetime.now(dt.UTC))
    metrics.add_metric(name="MacieFindingsActedOn", unit=MetricUnit.Count, value=1)
    logger.info("macie finding handled", extra=notice)
    return notice
