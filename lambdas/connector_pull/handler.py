"""The pull connector: on a schedule, fetch what a REST source changed since the last run.

Authenticated like the legacy API tools (client credentials from Secrets Manager, token cached,
retries with backoff: shared.legacy_client). Pages are followed by cursor; each record becomes a
landing document. A record that is not an object, without an id or body, with a field of another
JSON type than it must be (an id is text or an integer; a title and a body text), or whose last
change is out of range or later than now (beyond a small clock skew), is a poison record: it goes
to the pipeline's DLQ with its reason, cut to fit an SQS message. The watermark (the newest change
seen) is saved only after every page was landed, so a failed run is repeated whole by the next one
(landing the same key again is safe). A poison record whose change time is one a record could land
with moves it too: its DLQ message is its copy, and left behind the watermark it would be listed,
and dead-lettered, again by every run. An id's change older than one landed before, in this run
or an earlier one, is not landed: the registry keeps each id's change landed last. Nor is the
watermark's own change of an id the run that saved it landed, the same text (saved with it, up to
MAX_AT_WATERMARK: landed_version), nor dead-lettered again if it was poison: a source whose
``since`` includes its bound lists it again on every run, and landing it again would have the
pipeline ingest it again each time. A source whose cursor repeats fails the run: its paging loops,
and saving the watermark would skip, for good, the changes on the pages never read. So does a page
not in the shape the config describes (AnswerShapeError, logged and counted): no list of records at
``items_field`` (an empty list is a page without changes; a renamed field or an error answered with
200 is not), or a next cursor neither text nor an integer.

A run stops at MAX_PAGES with the cursor still going (a first run, a backfill, a watermark not
trusted) and saves a resume point beside the watermark: the cursor, the ``since`` it was paging and
the newest change seen so far. The next run goes on from that cursor with the same ``since``; the
run that reaches the last page saves the newest change of them all as the watermark and clears the
resume point. Failing there instead would land the same first pages on every run and never end. A
resume cursor the source refuses (the legacy client's invalid_argument: a 4xx other than 401, 403
or 404; an expired cursor, say) is dropped and the run starts again from the watermark.

One run at a time per source: a run first takes a lease (a conditional write in the registry
table) and gives it back when it ends; a run that finds the lease held ends at once. A lease lasts
longer than the function may run, so a run that was killed cannot hold it forever. (Not reserved
concurrency: a new account's concurrency quota of 10 refuses any reservation.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import TypeAdapter, ValidationError

from connector_pull.contract import SOURCE, Metric, PullSource, Settings
from shared.bodies import problems
from shared.connector_state import CLOCK_SKEW, claim_change, state_partition, utc
from shared.dead_letters import cut_to_fit, fits, sqs_json
from shared.field_paths import value_at
from shared.landing import Document, Record, document, land
from shared.legacy_client import LegacyClient, client_for
from shared.logs import log_unexpected, service_logger
from shared.tool_errors import ToolError

logger = service_logger()
metrics = Metrics()
MAX_PAGES = 1000  # per run: the next run resumes from the cursor
# Records on one page at most: each lands (an S3 write) or is dead-lettered (an SQS send) before the
# run can stop for time, so a page of hundreds of thousands (1 MiB of "0,") would outlast the
# invocation, save nothing, and be read again by every later run.
MAX_PAGE_RECORDS = 1000
# Every AWS call of a run waits briefly (botocore's default is a minute per read), so a run that
# stops for time (between pages) can count on its save.
AWS_CONNECT_SECONDS, AWS_READ_SECONDS, AWS_ATTEMPTS = 2, 5, 3
AWS = Config(
    connect_timeout=AWS_CONNECT_SECONDS,
    read_timeout=AWS_READ_SECONDS,
    retries={"mode": "standard", "total_max_attempts": AWS_ATTEMPTS},
)
# The longest one of those calls may take: every attempt to its timeouts, and botocore's standard
# backoffs between them (at most 2 ** (n - 1) s before the n-th retry, and up to 5 s more when the
# service answers x-amz-retry-after).
RETRY_AFTER_SECONDS = 5
AWS_BACKOFFS: int = sum(2**n + RETRY_AFTER_SECONDS for n in range(AWS_ATTEMPTS - 1))
AWS_CALL_SECONDS = AWS_ATTEMPTS * (AWS_CONNECT_SECONDS + AWS_READ_SECONDS) + AWS_BACKOFFS
# Kept back when a run stops for time: the resume point's write at its longest, and the answer. (The
# lease's release after it may be cut short: the lease then expires, and the next run starts after.)
SAVE_SECONDS = AWS_CALL_SECONDS + 1.0
# The longest cursor followed: it goes into a URL's query and, at the page cap, into the registry
# item (DynamoDB holds 400 KB an item); no paging scheme needs more.
MAX_CURSOR_CHARS = 4096
# How far ahead of ours the source's clock may run. A later change is poison: as the watermark it
# would ask the source, on every later run, only for changes made after a date that never comes.
MAX_REASON_CHARS = 1000


class PagingError(RuntimeError):
    """The source's cursor repeated itself: the run fails, keeping the watermark."""


class AnswerShapeError(RuntimeError):
    """A page the source answered, but not in the shape its config describes: no list of records
    at ``items_field`` (renamed, turned into an object, an error answered with 200), or a next
    cursor that is neither text nor an integer. The run fails, keeping the watermark, so the next
    run reads the page again: an empty run would hide that nothing could be read. The message
    names the config field, its path and the JSON types found, never the source's text."""

    def __init__(self, *, page: int, field: str, path: str, value: Any, body: Any, expected: str) -> None:
        found, answer = _json_type(value), _json_type(body)  # types only: never the source's text
        super().__init__(f"page {page}: the answer ({answer}) holds {found} at {field} {path!r}, not {expected}")
        self.page = page
        self.field = field
        self.path = path
        self.found = found
        self.answer = answer


class _PoisonError(Exception):
    """An item that cannot become a landing document; its text is the reason the DLQ message gives.
    ``changed``: its change time in UTC, when it has one a record would land with (the watermark
    moves past it, as past a landed record's)."""

    def __init__(self, reason: str, *, changed: dt.datetime | None = None) -> None:
        super().__init__(reason)
        self.changed = changed


@dataclass(frozen=True)
class Run:
    landed: int
    poison: int
    pages: int
    watermark: str | None  # the newest change seen, in this run and the runs it resumed
    capped: bool = False  # stopped at MAX_PAGES or for time: a resume point was saved, the watermark kept
    repeated: int = 0  # records of an id this run had landed a version as new of, or newer: not landed
    outdated: int = 0  # records of an id an earlier run had landed a newer change of: not landed
    unchanged: int = 0  # the watermark's own changes, which the run that saved it landed or dead-lettered: skipped


@dataclass(frozen=True)
class Resume:
    """Where a run stopped at the page cap: the next run asks for ``cursor`` with the same ``since``."""

    cursor: str
    since: str | None
    newest: str | None  # the newest change seen up to the cursor


@dataclass(frozen=True)
class Mark:
    watermark: str | None
    resume: Resume | None = None
    # What the run that saved the watermark landed or dead-lettered of the changes at it
    # (landed_version's, dead_letter_version's).
    at_watermark: frozenset[str] = frozenset()


# The most versions saved as landed at the watermark (an id is at most 128 characters, a version
# some 145: 145 KB of the item's 400 KB). More changes at one instant are saved as none, and land
# again, as before.
MAX_AT_WATERMARK = 1000


def landed_version(record_id: str, doc: Document) -> str:
    """A landed document as the watermark keeps it: its record's id and a digest of what landed
    (text and metadata), so another change at the same instant (a second-granular source) is not
    taken for the one landed."""
    digest = hashlib.sha256(doc.body + json.dumps(doc.metadata, sort_keys=True).encode()).hexdigest()
    return f"{record_id}:{digest[:16]}"


def dead_letter_version(item: Any) -> str:
    """A poison record as the watermark keeps it, beside the landed versions: a digest of the item
    as the source gave it. It has no ``:``, and ``~`` is in no record id: it is no landed version's
    record (_Newest.landed's), whatever id the item holds."""
    return f"~{hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:16]}"


class Watermarks:
    """The newest change landed per source, and the resume point of a run that stopped at the page
    cap, in one item of the document registry table. An item without ``resume_cursor`` is a plain
    watermark, as every item was before resume points. Beside it, under the source's partition key,
    the change landed last of each record id (``landed#<id>``). Written whole with PutItem (the
    function may get, put and delete its own items, not update them)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def read(self, source: str) -> Mark:
        item = self._table.get_item(Key=self._key(source), ConsistentRead=True).get("Item", {})
        cursor = item.get("resume_cursor")
        resume = None
        if cursor:
            resume = Resume(str(cursor), _text(item.get("resume_since")), _text(item.get("resume_newest")))
        ids = item.get("landed_at_watermark")  # a string set
        at_watermark = frozenset(i for i in ids if isinstance(i, str)) if isinstance(ids, set) else frozenset()
        return Mark(_text(item.get("updated_since")) or None, resume, at_watermark)

    def get(self, source: str) -> str | None:
        return self.read(source).watermark

    def put(
        self, source: str, value: str | None, resume: Resume | None = None, at_watermark: frozenset[str] = frozenset()
    ) -> None:
        """Save the watermark, with the ids whose change at it was landed (at most MAX_AT_WATERMARK:
        more are saved as none); the resume point with it, or none (a run reached the last page)."""
        item: dict[str, Any] = {**self._key(source)}
        if value:
            item["updated_since"] = value
            if 0 < len(at_watermark) <= MAX_AT_WATERMARK:  # (a set may not be empty)
                item["landed_at_watermark"] = set(at_watermark)
        if resume is not None:
            fields = {"resume_cursor": resume.cursor, "resume_since": resume.since, "resume_newest": resume.newest}
            item.update({name: text for name, text in fields.items() if text is not None})
        self._table.put_item(Item=item)

    def claim(self, source: str, record_id: str, changed: dt.datetime) -> bool:
        """Whether this change of ``record_id`` lands (shared.connector_state.claim_change): a listing that
        spans runs can give an id's older change after the newer one landed in an earlier run."""
        return claim_change(self._table, source, record_id, changed)

    @staticmethod
    def _key(source: str) -> dict[str, str]:
        return {"pk": state_partition(source), "sk": "watermark"}


def _put_if(table: Any, item: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
    """Write ``item`` whole if ``condition`` holds: whether it was written (a failed condition is
    False; any other failure is raised)."""
    try:
        table.put_item(Item=item, ConditionExpression=condition, ExpressionAttributeValues=values)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


class Lease:
    """The right to run for one source, held by one invocation until it gives it back or it expires."""

    def __init__(self, table: Any, source: str, *, seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._key = {"pk": state_partition(source), "sk": "lease"}
        self._seconds = seconds
        self._clock = clock

    def acquire(self, holder: str) -> bool:
        """Take the lease if nobody holds it or its holder's time is up; False if another run has it."""
        now = int(self._clock())
        item = {**self._key, "holder": holder, "expires_at": now + self._seconds}
        return _put_if(self._table, item, "attribute_not_exists(pk) OR expires_at < :now", {":now": now})

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
    client: LegacyClient,
    source: PullSource,
    *,
    s3: Any,
    sqs: Any,
    watermarks: Watermarks,
    dlq_url: str,
    bucket: str,
    clock: Callable[[], float] = time.time,
    seconds_left: Callable[[], float] | None = None,
) -> Run:
    """One run: pages from the resume point or the watermark until the last page, landing each
    page's records. It stops early, saving a resume point, at MAX_PAGES or, with ``seconds_left``
    (the invocation's remaining time), when what is left may not hold another page (the slowest
    page so far, or the longest the client's call may take, whichever is longer) and the save: a
    run Lambda ended at its timeout saved nothing, and every later run started again from page one."""
    mark = watermarks.read(source.name)
    resume = mark.resume
    watermark = _trusted(mark.watermark, clock)
    since = resume.since if resume else watermark
    newest = _Newest.of(resume.newest if resume else since, mark, watermark)
    cursor = resume.cursor if resume else None
    cursors = {cursor} if cursor else set()  # the source giving the resume cursor again is a loop too
    landed = poison = pages = 0
    versions = _Versions(watermarks, source.name, watermark, mark.at_watermark)
    pace = _Pace(seconds_left, reserve=client.longest_get_seconds)
    while True:
        pace.page_starts()
        try:
            body, _ = client.get(source.records_path, {source.since_param: since, "cursor": cursor})
        except ToolError as error:
            if not (resume and pages == 0 and error.kind == "invalid_argument"):
                raise
            logger.warning(
                "the source refused the resume cursor: pulling again from the watermark",
                extra={"source": source.name, "refusal": error.message},
            )
            watermarks.put(source.name, mark.watermark, at_watermark=mark.at_watermark)
            resume = None
            since, newest = watermark, _Newest.of(watermark, mark, watermark)
            cursor, cursors = None, set()
            continue
        pages += 1
        latest = dt.datetime.fromtimestamp(clock(), dt.UTC) + CLOCK_SKEW
        for index, item in enumerate(_items(body, source, pages)):
            try:
                record, changed = _record(source, item, latest=latest)
            except _PoisonError as poisoned:
                send = partial(_poison, sqs, dlq_url, source.name, pages, index, item, str(poisoned))
                poison += _dead_letter_once(item, poisoned.changed, send, versions, newest)
                continue
            doc = document(source.name, record, classification=source.classification, owner=source.owner)
            version = landed_version(record.id, doc)
            if not versions.lands(record.id, changed, version):
                continue
            land(s3, doc, bucket)
            landed += 1
            newest.landed(version, changed)
        cursor = _cursor(body, source, pages)
        if not cursor:
            break
        _follow(cursor, cursors, pages)
        if pages >= MAX_PAGES or pace.out_of_time():
            # The mark keeps the stored watermark as it was, even one not trusted: only the run
            # that reaches the last page knows the newest change.
            watermarks.put(source.name, mark.watermark, Resume(cursor, since, newest.stamp), mark.at_watermark)
            return Run(landed, poison, pages, newest.stamp, True, *versions.counts())
    grown = newest.stamp == watermark and newest.ids != mark.at_watermark  # more landed at the same mark
    if resume or (newest.stamp and newest.stamp != since) or grown:
        watermarks.put(source.name, newest.stamp or mark.watermark, at_watermark=newest.ids)  # no resume point
    return Run(landed, poison, pages, newest.stamp, False, *versions.counts())


def _dead_letter_once(
    item: Any, changed: dt.datetime | None, send: Callable[[], None], versions: _Versions, newest: _Newest
) -> int:
    """Dead-letter a poison item (``send``), unless the run that saved the watermark did, at it; a
    change time it has (``changed``) moves the watermark as a landed record's does, its DLQ message
    being its copy. 1 if it was sent."""
    version = dead_letter_version(item)
    if versions.dead_lettered_before(version, changed):
        return 0
    send()
    if changed is not None:
        newest.landed(version, changed)
    return 1


@dataclass
class _Newest:
    """The newest change landed (UTC ISO time) and the ids landed at it, as far as the run knows
    (a run that resumes another knows the earlier pages' newest change, not its ids)."""

    stamp: str | None
    ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, stamp: str | None, mark: Mark, watermark: str | None) -> _Newest:
        return cls(stamp, mark.at_watermark if watermark is not None and stamp == watermark else frozenset())

    def landed(self, version: str, changed: dt.datetime | None) -> None:
        stamp = changed.isoformat() if changed else None
        if stamp is not None and stamp == self.stamp:  # in place of another version of its record
            record = version.rsplit(":", 1)[0]
            self.ids = frozenset({v for v in self.ids if v.rsplit(":", 1)[0] != record} | {version})
        elif stamp is not None and (self.stamp is None or stamp > self.stamp):  # UTC ISO times compare as text
            self.stamp, self.ids = stamp, frozenset({version})


class _Versions:
    """The change time of each record id this run landed. A source can list an id twice in one
    run (paged newest first, or a listing that shifts while it is paged): landed in page order, an
    older version would be left current for good, the watermark having passed the newer. So could
    a listing that spans runs: a dated change is claimed in the registry too (Watermarks.claim)."""

    def __init__(
        self, watermarks: Watermarks, source: str, watermark: str | None, at_watermark: frozenset[str]
    ) -> None:
        self._changed: dict[str, dt.datetime | None] = {}
        self._watermarks = watermarks
        self._source = source
        self._watermark = watermark
        self._at_watermark = at_watermark if watermark is not None else frozenset()
        self.repeated = 0
        self.outdated = 0
        self.unchanged = 0

    def counts(self) -> tuple[int, int, int]:
        return self.repeated, self.outdated, self.unchanged

    def lands(self, record_id: str, changed: dt.datetime | None, version: str) -> bool:
        """Whether this version of ``record_id`` lands: the run's first, or a later change than the
        one landed (one without a change time is not later than any); and, dated, not the
        watermark's own change the run that saved it landed (``version``: landed_version), and no
        older than the change an earlier run landed (undated, nothing orders it against that one)."""
        if record_id in self._changed:
            earlier = self._changed[record_id]
            if changed is None or (earlier is not None and changed <= earlier):
                self.repeated += 1
                return False
        self._changed[record_id] = changed
        if self._saved_with_watermark(version, changed):  # the run that saved the watermark landed this very change
            return False
        if changed is not None and not self._watermarks.claim(self._source, record_id, changed):
            self.outdated += 1
            return False
        return True

    def dead_lettered_before(self, version: str, changed: dt.datetime | None) -> bool:
        """Whether the run that saved the watermark dead-lettered this very poison record, at it
        (``version``: dead_letter_version)."""
        return self._saved_with_watermark(version, changed)

    def _saved_with_watermark(self, version: str, changed: dt.datetime | None) -> bool:
        if changed is None or version not in self._at_watermark or changed.isoformat() != self._watermark:
            return False
        self.unchanged += 1
        return True


class _Pace:
    """The invocation's remaining time (``seconds_left``, None: unbounded) against its pages: out of
    time when what is left may not hold another page, as slow as the slowest so far or
    ``reserve`` seconds, whichever is longer, and the save (SAVE_SECONDS)."""

    def __init__(self, seconds_left: Callable[[], float] | None, *, reserve: float) -> None:
        self._seconds_left, self._reserve = seconds_left, reserve
        self._started = self._slowest = 0.0

    def page_starts(self) -> None:
        if self._seconds_left:
            self._started = self._seconds_left()

    def out_of_time(self) -> bool:
        if not self._seconds_left:
            return False
        left = self._seconds_left()
        self._slowest = max(self._slowest, self._started - left)
        return left < max(self._slowest, self._reserve) + SAVE_SECONDS


def _items(body: Any, source: PullSource, page: int) -> list[Any]:
    """The page's records: a list ([] is an honest "no changes") of at most MAX_PAGE_RECORDS, or an
    AnswerShapeError naming the field and what was found."""
    items = value_at(body, source.items_field)
    if isinstance(items, list) and len(items) <= MAX_PAGE_RECORDS:
        return items
    raise AnswerShapeError(
        page=page,
        field="items_field",
        path=source.items_field,
        value=items,
        body=body,
        expected=(
            "a list of records"
            if not isinstance(items, list)
            else f"a list of at most {MAX_PAGE_RECORDS} records ({len(items)}: ask for smaller pages)"
        ),
    )


def _cursor(body: Any, source: PullSource, page: int) -> str | None:
    """The next page's cursor as the query sends it; None (or "") on the last page. Text, or an
    integer (an offset or page number: its digits are its one spelling). Anything else (false for
    "no more", an object) is an AnswerShapeError: sent as Python's text of it, the source would be
    asked for a page it never named."""
    value = value_at(body, source.next_cursor_field)
    if value is None or (isinstance(value, str) and _is_text(value)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise AnswerShapeError(
        page=page,
        field="next_cursor_field",
        path=source.next_cursor_field,
        value=value,
        body=body,
        expected="text a URL can carry, or an integer",
    )


def _is_text(value: str) -> bool:
    """Text a URL can carry: JSON's escapes can spell a lone surrogate (\\ud800), which no encoding
    takes, so a query holding it could never be sent."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _follow(cursor: str, cursors: set[str], pages: int) -> None:
    """The next cursor, added to those followed; PagingError for one the source gave before (its
    paging loops) or one too long to follow."""
    if cursor in cursors:
        raise PagingError(f"the source repeated a cursor after page {pages}: its paging loops")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise PagingError(f"the source's cursor after page {pages} is longer than {MAX_CURSOR_CHARS} characters")
    cursors.add(cursor)


def _trusted(watermark: str | None, clock: Callable[[], float]) -> str | None:
    """The stored watermark, unless it cannot be one: not a time, or later than now by more than
    the skew (saved before future changes were poison). Such a watermark would hide every change
    for good, so the run starts from the beginning instead (landing is idempotent) and saves the
    newest change it sees."""
    if watermark is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(watermark)
        later = stamp.tzinfo is not None and stamp > dt.datetime.fromtimestamp(clock(), dt.UTC) + CLOCK_SKEW
    except (TypeError, ValueError):
        later = True
    if later:
        logger.warning("stored watermark not trusted: pulling from the beginning")
        return None
    return watermark


def _record(source: PullSource, item: Any, *, latest: dt.datetime) -> tuple[Record, dt.datetime | None]:
    """The item as a record and its last change in UTC, or _PoisonError with the reason it is neither.

    Each field is taken only as the JSON type it must be, never as Python's text of another (an
    object's body would land as its repr and reach the Knowledge Base): an id is text or an integer
    (its digits: sources number their records), a title text or nothing (no heading), a body text,
    and a change time text or a number (pydantic reads it: ISO 8601, or seconds since 1970)."""
    if not isinstance(item, dict):
        raise _PoisonError(f"record: {_json_type(item)}, not an object")
    try:
        raw = {
            "id": _field(item, "id", source.id_field, integer=True),
            "title": _field(item, "title", source.title_field, optional=True) or "",
            "body": _field(item, "body", source.body_field),
            "updated_at": _change_time(item, source.updated_field),
        }
        record = Record.model_validate(raw)
    except (_PoisonError, ValidationError) as error:
        reason = problems(error, envelope=()) if isinstance(error, ValidationError) else str(error)
        raise _PoisonError(reason, changed=_poison_change(item, source.updated_field, latest)) from None
    return record, None if record.updated_at is None else _in_range(record.updated_at, latest)


# A change time read as Record reads its updated_at.
_CHANGE_TIME: TypeAdapter[dt.datetime | None] = TypeAdapter(dt.datetime | None)


def _poison_change(item: dict[str, Any], path: str, latest: dt.datetime) -> dt.datetime | None:
    """A poison record's change in UTC, if it has one a record would land with; None otherwise."""
    try:
        stamp = _CHANGE_TIME.validate_python(_change_time(item, path))
        return None if stamp is None else _in_range(stamp, latest)
    except (_PoisonError, ValidationError):
        return None


def _in_range(stamp: dt.datetime, latest: dt.datetime) -> dt.datetime:
    """``stamp`` in UTC; _PoisonError for one out of UTC's years or later than ``latest``."""
    try:
        changed = utc(stamp)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
        raise _PoisonError("updated_at: out of range once converted to UTC") from None
    if changed > latest:
        raise _PoisonError(f"updated_at: later than now (by more than {CLOCK_SKEW}); it would hide later changes")
    return changed


def _field(item: dict[str, Any], name: str, path: str, *, integer: bool = False, optional: bool = False) -> str | None:
    """The text at ``path``; _PoisonError naming the field and the JSON type found instead."""
    value = value_at(item, path)
    if isinstance(value, str) or (value is None and optional):
        return value
    if integer and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    expected = "text or an integer" if integer else "text"
    raise _PoisonError(f"{name}: {_json_type(value)} at {path}, not {expected}")


def _change_time(item: dict[str, Any], path: str) -> Any:
    """The change time at ``path`` for pydantic to read, unless it is of a type no time can be."""
    value = value_at(item, path)
    if isinstance(value, bool | list | dict):
        raise _PoisonError(f"updated_at: {_json_type(value)} at {path}, not a time")
    return value


def _json_type(value: Any) -> str:
    """What a JSON value is, as a message names it: never the value, which is the source's text."""
    if value is None:
        return "nothing (missing or null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # json.loads makes nothing else: a caller's own value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _poison(sqs: Any, dlq_url: str, source: str, page: int, index: int, item: Any, reason: str) -> None:
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=_dead_letter({"connector": source, "page": page, "index": index}, item),
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": f"poison record: {reason}"[:MAX_REASON_CHARS]}
        },
    )
    logger.warning("poison record dead-lettered", extra={"source": source, "page": page, "index": index})


def _dead_letter(where: dict[str, Any], item: Any) -> str:
    """The DLQ message body: where the record was and the record itself. A record too large for an
    SQS message (any item near the source's response cap) is cut to its first bytes, with its full
    size, so that a poison record can always be dead-lettered instead of failing every run."""
    whole = sqs_json({**where, "record": item})
    if fits(whole):
        return whole
    record = sqs_json(item).encode()  # sqs_json escapes lone surrogates: every character encodes
    return cut_to_fit(record, lambda start: sqs_json({**where, "record_bytes": len(record), "record_start": start}))


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def client() -> LegacyClient:
    return client_for(settings().pull_source)


class PullFailedError(RuntimeError):
    """A run that failed, named by its source and the type of what went wrong (the log line before
    it says where); raised so that Lambda retries the run and counts the error."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    source = config.pull_source
    table = boto3.resource("dynamodb", config=AWS).Table(config.registry_table)
    metrics.add_dimension(SOURCE, source.name)
    lease = Lease(table, source.name, seconds=config.lease_seconds)
    holder = context.aws_request_id
    if not lease.acquire(holder):
        metrics.add_metric(name=Metric.RUNS_SKIPPED, unit=MetricUnit.Count, value=1)
        logger.info("another run of this source holds the lease; this one ends", extra={"source": source.name})
        return {"skipped": "another run of this source is in progress"}
    try:
        run = pull(
            client(),
            source,
            s3=boto3.client("s3", config=AWS),
            sqs=boto3.client("sqs", config=AWS),
            watermarks=Watermarks(table),
            dlq_url=config.dlq_url,
            bucket=config.landing_bucket,
            seconds_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    except Exception as error:
        metrics.add_metric(name=Metric.RUNS_FAILED, unit=MetricUnit.Count, value=1)
        if isinstance(error, AnswerShapeError):
            metrics.add_metric(name=Metric.ANSWERS_UNUSABLE, unit=MetricUnit.Count, value=1)
            logger.error(  # every part names the config or a JSON type: none is the source's text
                "pull failed: the source's answer is not in the shape its config describes; "
                "the watermark stays where it was",
                extra={"source": source.name, "error_type": type(error).__qualname__, "reason": str(error)},
            )
        else:
            log_unexpected(logger, "pull failed; the watermark stays where it was", error, source=source.name)
        # The run fails (Lambda retries it; PullFailing watches) with an error of its own: Lambda logs
        # an unhandled error's text, and this one's could quote the source's URL or a record.
        raise PullFailedError(f"the pull of {source.name} failed ({type(error).__qualname__})") from None
    finally:
        lease.release(holder)
    metrics.add_metric(name=Metric.RECORDS_PULLED, unit=MetricUnit.Count, value=run.landed)
    metrics.add_metric(name=Metric.POISON_RECORDS, unit=MetricUnit.Count, value=run.poison)
    if run.capped:
        metrics.add_metric(name=Metric.RUNS_CAPPED, unit=MetricUnit.Count, value=1)
        logger.warning(
            "pull stopped at the page cap; the next run resumes"
            if run.pages >= MAX_PAGES
            else "pull stopped before the function's timeout; the next run resumes",
            extra={"source": source.name, **run.__dict__},
        )
    else:
        logger.info("pull finished", extra={"source": source.name, **run.__dict__})
    return {
        "landed": run.landed,
        "poison": run.poison,
        "pages": run.pages,
        "capped": run.capped,
        "repeated": run.repeated,
        "outdated": run.outdated,
        "unchanged": run.unchanged,
    }
