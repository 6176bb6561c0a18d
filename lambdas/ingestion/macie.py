"""Macie findings (the EventBridge rule passes those at or above the configured severity):
quarantine the object, take it out of the Knowledge Base, mark the registry, notify.

A finding for an object already gone (processed, superseded or deleted since the job ran) is
reported, never an error (recorded where an earlier attempt quarantined it). Findings on other
buckets (the log archive), and policy findings (category POLICY: a bucket's settings, such as its
public-access block, no object) are reported only. The notification names the finding, bucket and
document id, never the key or the data.

Any AWS call failing (refused, throttled, unreachable, timed out) fails the invocation with a
FindingNotHandledError naming the finding, the step and the error's code, never the key (an AWS
error's text can carry the object's URL), after an error log line, a MacieFindingsFailed metric and
(if SNS takes it) a "failed" notification: Lambda retries the event (an asynchronous invocation,
twice), and every step is safe to repeat. The copy in quarantine is recorded in the registry
before the flagged object is deleted, so a retry after the delete finds the object gone and the
record of where it went: it completes the response as "quarantined" (never "already_gone" with no
record).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError

from ingestion.contract import MACIE_QUARANTINE_PREFIX, ResponderSettings
from ingestion.copies import COPY_OBJECT_LIMIT, in_parts
from ingestion.events import MAX_KEY_BYTES, utf8_within
from ingestion.knowledge import KnowledgeBase
from ingestion.pipeline import MISSING, SIDECAR_SUFFIX, CuratedStore, document_id, named_under
from ingestion.registry import Registry
from shared.aws_errors import failure_code
from shared.logs import service_logger

logger = service_logger()
metrics = Metrics()


@dataclass(frozen=True)
class Finding:
    id: str
    type: str
    severity: str
    bucket: str
    key: str  # "" for a policy finding, which is about the bucket
    version: str | None


@dataclass(frozen=True)
class Buckets:
    landing: str
    curated: str
    quarantine: str


FINDING_ID = re.compile(r"[A-Za-z0-9-]{1,128}")  # Macie's are hex; it names a registry item and a folder
FINDING_TYPE = re.compile(r"[A-Za-z0-9:/._-]{1,128}")  # e.g. SensitiveData:S3Object/Personal
DOCUMENT_ID = re.compile(r"[0-9a-f]{32}")  # pipeline.document_id's
SEVERITIES = frozenset({"Low", "Medium", "High"})
MAX_BUCKET_CHARS = 255  # legacy bucket names are longer than today's 63


def parse(event: Any) -> Finding:
    """The finding an EventBridge event carries; ValueError for anything Macie would not have sent,
    before anything is moved. Its reason names the field, never the value (the key is data)."""
    detail = _object(event, "detail")
    affected = _object(detail, "resourcesAffected")
    # A policy finding (its bucket's settings) names no object: it is reported, never acted on.
    policy = detail.get("category") == "POLICY" and affected.get("s3Object") is None
    obj = {"key": ""} if policy else _object(affected, "s3Object")
    bucket = _object(affected, "s3Bucket").get("name")
    severity = _object(detail, "severity").get("description")
    finding_id, key, version = detail.get("id"), obj.get("key"), obj.get("versionId")
    if not isinstance(finding_id, str) or not FINDING_ID.fullmatch(finding_id):
        raise ValueError("the finding's id is not a Macie finding id")
    if not isinstance(bucket, str) or not 0 < len(bucket) <= MAX_BUCKET_CHARS or not bucket.isprintable():
        raise ValueError("the finding names no bucket")
    if not isinstance(key, str) or not (key or policy) or not utf8_within(key, MAX_KEY_BYTES):
        raise ValueError("the finding names no object key")
    if not isinstance(severity, str) or severity not in SEVERITIES:
        raise ValueError("the finding's severity is not Low, Medium or High")
    if version == "":
        version = None
    if version is not None and (
        not isinstance(version, str) or not utf8_within(version, MAX_KEY_BYTES) or not version.isprintable()
    ):
        raise ValueError("the finding's object version id is not a version id")
    kind = detail.get("type")
    return Finding(
        id=finding_id,
        type=kind if isinstance(kind, str) and FINDING_TYPE.fullmatch(kind) else "unknown",
        severity=severity,
        bucket=bucket,
        key=key,
        version=version,
    )


class FindingNotHandledError(Exception):
    """A finding the responder could not act on completely: the invocation fails, so Lambda retries
    it. Its message names the finding, the step and the error's code, never the key or the data."""

    def __init__(self, notice: dict[str, str]) -> None:
        super().__init__(f"Macie finding {notice['finding']} not handled: {notice['step']} failed ({notice['error']})")
        self.notice = notice


def _object(parent: Any, name: str) -> dict[str, Any]:
    value = parent.get(name) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"not a Macie finding about an S3 object (no {name} object)")
    return value


class Responder:
    def __init__(
        self,
        s3: Any,
        store: CuratedStore,
        registry: Registry,
        sns: Any,
        buckets: Buckets,
        topic: str,
        *,
        copy_limit: int = COPY_OBJECT_LIMIT,
    ) -> None:
        """``copy_limit``: the largest object S3's CopyObject copies (tests lower it)."""
        self._s3 = s3
        self._copy_limit = copy_limit
        self._store = store
        self._registry = registry
        self._sns = sns
        self._buckets = buckets
        self._topic = topic

    def respond(self, finding: Finding, at: dt.datetime) -> dict[str, str]:
        """Act on the finding and notify; FindingNotHandledError if any step fails."""
        notice = {"finding": finding.id, "type": finding.type, "severity": finding.severity, "bucket": finding.bucket}
        steps = ["quarantine"]
        try:
            if finding.key:
                doc = notice["document_id"] = self._document(finding)
                notice["action"] = self._act(finding, doc, at, steps)
            else:  # a policy finding: nothing to move, the security team is told
                notice["action"] = "reported"
            steps.append("notify")
            self._notify(finding, notice)
        except Exception as error:  # refused, throttled, unreachable, timed out, invalid: all the same
            failed = {"action": "failed", "step": steps[-1], "error": failure_code(error)}
            raise FindingNotHandledError(notice | failed) from None
        return notice

    def notify_failure(self, failure: FindingNotHandledError) -> None:
        """Tell the security team a finding was not handled (best effort: the invocation fails anyway)."""
        notice = failure.notice
        # Sent on each failed attempt: Lambda retries twice, then the finding waits in its DLQ.
        subject = f"Macie {notice['severity']} finding: failed (retried, then held in the findings DLQ)"
        try:
            self._sns.publish(TopicArn=self._topic, Subject=subject, Message=json.dumps(notice, sort_keys=True))
        except Exception as error:
            logger.warning(
                "failure notification not sent", extra={"finding": notice["finding"], "error": failure_code(error)}
            )

    def _act(self, finding: Finding, doc: str, at: dt.datetime, steps: list[str]) -> str:
        buckets = self._buckets
        if finding.bucket == buckets.quarantine:
            return "already_quarantined"
        if finding.bucket not in (buckets.curated, buckets.landing):
            return "reported"
        reason = f"Macie finding {finding.type} ({finding.severity})"
        location = self._quarantine(finding, doc, reason, at, steps)
        retired = None
        # Out of the bucket and the KB, if it is the current copy; only when the flagged object was
        # there to quarantine: a finding on a version already gone (a stale sidecar's, say) would
        # otherwise delete the document's newer copy with none kept in quarantine.
        if location and finding.bucket == buckets.curated:
            steps.append("read the registry")
            current = self._registry.current(doc)
            steps.append("retire the curated copy")
            # A sidecar's versions are not recorded: Macie classifies objects' latest versions, so a
            # flagged sidecar is the current document's metadata, and the document goes with it.
            sidecar = finding.key.endswith(SIDECAR_SUFFIX)
            retired = self._store.retire_current(doc, current, object_version=None if sidecar else finding.version)
        if location:
            steps.append("record the finding")
            taken_out = retired is not None  # the document's current state becomes quarantined
            self._registry.finding(doc, finding.id, reason=reason, location=location, at=at, current=taken_out)
        return "quarantined" if location else "already_gone"

    def _notify(self, finding: Finding, notice: dict[str, str]) -> None:
        self._sns.publish(
            TopicArn=self._topic,
            Subject=f"Macie {finding.severity} finding: {notice['action']}"[:100],
            Message=json.dumps(notice, sort_keys=True),
        )

    def _document(self, finding: Finding) -> str:
        """The document the object is a copy of. Curated keys are <prefix>/<document id>.txt[.metadata.json];
        a curated key named otherwise (".x", "a/") is no document's copy, and an empty id is no
        registry key: it gets the id of its own place, as an object elsewhere does."""
        if finding.bucket == self._buckets.curated:
            name = PurePosixPath(finding.key).name.split(".", 1)[0]
            if DOCUMENT_ID.fullmatch(name):
                return name
        return document_id(finding.bucket, finding.key)

    def _quarantine(self, finding: Finding, doc: str, reason: str, at: dt.datetime, steps: list[str]) -> str | None:
        """Copy the flagged version to quarantine, record where, and delete it. When it is gone
        already: where an earlier attempt put it, or None (it went another way)."""
        source = {"Bucket": finding.bucket, "Key": finding.key}
        if finding.version:
            source["VersionId"] = finding.version
        target = named_under(f"{MACIE_QUARANTINE_PREFIX}{finding.id}/", finding.key)
        steps.append("copy to quarantine")
        try:
            self._s3.copy_object(Bucket=self._buckets.quarantine, Key=target, CopySource=source)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in MISSING:
                steps.append("read the registry")
                return self._registry.finding_location(doc, finding.id)
            if code != "InvalidRequest" or not self._copied_in_parts(finding, source, target, steps):
                raise
        location = f"s3://{self._buckets.quarantine}/{target}"
        steps.append("record the finding")  # before the delete: a retry finds where it went
        self._registry.finding(doc, finding.id, reason=reason, location=location, at=at, current=False)
        steps.append("delete the flagged object")
        if finding.version:
            self._s3.delete_object(Bucket=finding.bucket, Key=finding.key, VersionId=finding.version)
        else:
            self._s3.delete_object(Bucket=finding.bucket, Key=finding.key)
        return location

    def _copied_in_parts(self, finding: Finding, source: dict[str, str], target: str, steps: list[str]) -> bool:
        """CopyObject refuses a source over its limit (InvalidRequest): one that is, is copied in
        parts (copies.py); False for any other InvalidRequest, which stands."""
        steps.append("copy to quarantine in parts")
        if finding.version:
            head = self._s3.head_object(Bucket=finding.bucket, Key=finding.key, VersionId=finding.version)
        else:
            head = self._s3.head_object(Bucket=finding.bucket, Key=finding.key)
        if int(head.get("ContentLength", 0)) <= self._copy_limit:
            return False
        self._s3.copy(
            CopySource=source,
            Bucket=self._buckets.quarantine,
            Key=target,
            Config=in_parts(self._copy_limit),
        )
        return True


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
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, str]:
    try:
        finding = parse(event)
    except ValueError as error:
        logger.error("unusable finding event", extra={"reason": str(error)})
        metrics.add_metric(name="MacieFindingsUnusable", unit=MetricUnit.Count, value=1)
        return {"action": "ignored"}
    acting = responder()
    try:
        notice = acting.respond(finding, dt.datetime.now(dt.UTC))
    except FindingNotHandledError as failure:  # Lambda retries the event; every step is safe to repeat
        metrics.add_metric(name="MacieFindingsFailed", unit=MetricUnit.Count, value=1)
        logger.error("macie finding not handled", extra=failure.notice)
        acting.notify_failure(failure)
        raise
    metrics.add_metric(name="MacieFindingsActedOn", unit=MetricUnit.Count, value=1)
    logger.info("macie finding handled", extra=notice)
    return notice
