"""The pull connector: on a schedule, fetch what a REST source changed since the last run.

Authenticated like the legacy API tools (client credentials from Secrets Manager, token cached,
retries with backoff: shared.legacy_client). Pages are followed by cursor; each record becomes a
landing document. A record without an id or body is a poison record: it goes to the pipeline's
DLQ with its reason. The watermark (the newest change seen) is saved only after every page was
landed, so a failed run is repeated whole by the next one (landing the same key again is safe).

One run at a time per source: a run first takes a lease (a conditional write in the registry
table) and gives it back when it ends; a run that finds the lease held ends at once. A lease lasts
longer than the function may run, so a run that was killed cannot hold it forever. (Not reserved
concurrency: a new account's concurrency quota of 10 refuses any reservation.)
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import ValidationError

from connector_pull.contract import PullSource, Settings
from shared.field_paths import value_at
from shared.landing import Record, document, land
from shared.legacy_client import LegacyClient, client_for

logger = Logger()
metrics = Metrics()
MAX_PAGES = 1000  # a guard against a source whose cursor never ends


@dataclass(frozen=True)
class Run:
    landed: int
    poison: int
    pages: int
    watermark: str | None


class Watermarks:
    """The newest change landed per source, in the document registry table."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, source: str) -> str | None:
        item = self._table.get_item(Key={"pk": f"connector#{source}", "sk": "watermark"}, ConsistentRead=True)
        value = item.get("Item", {}).get("updated_since")
        return str(value) if value else None

    def put(self, source: str, value: str) -> None:
        self._table.put_item(Item={"pk": f"connector#{source}", "sk": "watermark", "updated_since": value})


class Lease:
    """The right to run for one source, held by one invocation until it gives it back or it expires."""

    def __init__(self, table: Any, source: str, *, seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._key = {"pk": f"connector#{source}", "sk": "lease"}
        self._seconds = seconds
        self._clock = clock

    def acquire(self, holder: str) -> bool:
        """Take the lease if nobody holds it or its holder's time is up; False if another run has it."""
        now = int(self._clock())
        try:
            self._table.put_item(
                Item={**self._key, "holder": holder, "expires_at": now + self._seconds},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, holder: str) -> None:
        """Give the lease back, unless it expired and another run took it meanwhile."""
        try:
            self._table.delete_item(
                Key=self._key, ConditionExpression="holder = :holder", ExpressionAttributeValues={":holder": holder}
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def pull(
    client: LegacyClient, source: PullSource, *, s3: Any, sqs: Any, watermarks: Watermarks, dlq_url: str, bucket: str
) -> Run:
    since = watermarks.get(source.name)
    newest = since
    cursor: str | None = None
    landed = poison = pages = 0
    while pages < MAX_PAGES:
        params = {source.since_param: since, "cursor": cursor}
        body, _ = client.get(source.records_path, params)
        pages += 1
        items = value_at(body, source.items_field) or []
        for index, item in enumerate(items if isinstance(items, list) else []):
            raw = {
                "id": _text(value_at(item, source.id_field)),
                "title": _text(value_at(item, source.title_field)) or "",
                "body": _text(value_at(item, source.body_field)),
                "updated_at": value_at(item, source.updated_field),
            }
            try:
                record = Record.model_validate(raw)
            except ValidationError as error:
                reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                _poison(sqs, dlq_url, source.name, pages, index, item, reason)
                poison += 1
                continue
            land(s3, document(source.name, record, classification=source.classification, owner=source.owner), bucket)
            landed += 1
            if record.updated_at is not None:
                stamp = record.updated_at.astimezone(dt.UTC).isoformat()
                newest = max(newest or stamp, stamp)
        cursor = _text(value_at(body, source.next_cursor_field))
        if not cursor:
            break
    if newest and newest != since:
        watermarks.put(source.name, newest)
    return Run(landed=landed, poison=poison, pages=pages, watermark=newest)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _poison(sqs: Any, dlq_url: str, source: str, page: int, index: int, item: Any, reason: str) -> None:
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=json.dumps({"connector": source, "page": page, "index": index, "record": item}, default=str),
        MessageAttributes={"reason": {"DataType": "String", "StringValue": f"poison record: {reason}"}},
    )
    logger.warning("poison record dead-lettered", extra={"source": source, "page": page, "index": index})


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def client() -> LegacyClient:
    return client_for(settings().pull_source)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    source = config.pull_source
    aws = Config(retries={"mode": "standard", "total_max_attempts": 3})
    table = boto3.resource("dynamodb", config=aws).Table(config.registry_table)
    metrics.add_dimension("Source", source.name)
    lease = Lease(table, source.name, seconds=config.lease_seconds)
    holder = context.aws_request_id
    if not lease.acquire(holder):
        metrics.add_metric(name="RunsSkipped", unit=MetricUnit.Count, value=1)
        logger.info("another run of this source holds the lease; this one ends", extra={"source": source.name})
        return {"skipped": "another run of this source is in progress"}
    try:
        run = pull(
            client(),
            source,
            s3=boto3.client("s3", config=aws),
            sqs=boto3.client("sqs", config=aws),
            watermarks=Watermarks(table),
            dlq_url=config.dlq_url,
            bucket=config.landing_bucket,
        )
    except Exception:
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        raise
    finally:
        lease.release(holder)
    metrics.add_metric(name="RecordsPulled", unit=MetricUnit.Count, value=run.landed)
    metrics.add_metric(name="PoisonRecords", unit=MetricUnit.Count, value=run.poison)
    logger.info("pull finished", extra={"source": source.name, **run.__dict__})
    return {"landed": run.landed, "poison": run.poison, "pages": run.pages}
