"""One object through the pipeline: validate, scan, apply the classification's policy, then curate
(masked, into the Knowledge Base) or quarantine (as it came), record it, and empty the landing slot.

Every object ends in exactly one place, and the registry says which and why: curated,
quarantined, gone (deleted before it was processed) or, when processing keeps failing,
dead-lettered (handler.py). A version the registry already settled is not processed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from ingestion.contract import DIRECT_PREFIX, REALTIME_PREFIX, PipelineSettings
from ingestion.copies import PART_BYTES, CopyTooSlowError, copy_until
from ingestion.documents import ReadLimits, RejectedError, document_format, text_of, too_much_text
from ingestion.events import MAX_KEY_BYTES, ObjectRef, OcrJob
from ingestion.knowledge import MAX_INLINE_CHARS, KnowledgeBase, inline_chars, sidecar
from ingestion.pii import PiiScanner, Scan, mask
from ingestion.registry import (
    CURATED,
    GONE,
    OCR_PENDING,
    QUARANTINED,
    SEQUENCER,
    SETTLED,
    SUPERSEDED,
    Registry,
    StaleVersionError,
    UnsequencedError,
    VersionRecord,
    sequencer_key,
)
from shared.documents import CLASSIFICATION_KEY

MISSING = frozenset({"404", "NoSuchKey", "NoSuchVersion"})
DELETED = "the object was deleted before it was processed"  # a version recorded gone
MAX_FIELD_CHARS = 256  # an uploader's metadata value kept in the curated sidecar
SIDECAR_SUFFIX = ".metadata.json"  # a curated document's KB metadata: <document key> + this
MAX_LIST_VALUES = 10  # the most values Bedrock takes in a list metadata attribute (stringListValue)
VERSION_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")  # S3's version ids are; anything else is hashed
ORIGIN = re.compile(r"upload|connector:[a-z0-9][a-z0-9_-]{0,62}")
# Reads a landing object's text (a record with what was learnt on the way) or raises RejectedError.
Reader = Callable[[ObjectRef, str, VersionRecord], tuple[str, VersionRecord]]
# Seconds a copy to quarantine may still take (the handler's: the invocation's time left, less a
# document's budget); without one, a copy takes as long as it takes.
SecondsLeft = Callable[[], float]


@dataclass(frozen=True)
class Outcome:
    document_id: str
    version: str
    status: str
    reason: str
    location: str
    pii: dict[str, int]
    replayed: bool = False
    reason_code: str = ""  # a quarantine's (RejectedError.code)


def document_id(bucket: str, key: str) -> str:
    """Stable across versions of the same object: the registry's and the Knowledge Base's id."""
    return hashlib.sha256(f"s3://{bucket}/{key}".encode()).hexdigest()[:32]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Pipeline:
    def __init__(
        self,
        s3: Any,
        scanner: PiiScanner,
        registry: Registry,
        knowledge: KnowledgeBase,
        settings: PipelineSettings,
        readers: Callable[[], Mapping[str, Sequence[str]]],
        clock: Callable[[], dt.datetime] = _now,
        textract: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
        copy_limit: int = PART_BYTES,
    ) -> None:
        """``copy_limit``: the largest object quarantined with one CopyObject, which cannot be
        stopped once sent; a larger one is copied in parts, stopped for time (tests lower it)."""
        self._s3 = s3
        self._copy_limit = copy_limit
        self._scanner = scanner
        self._registry = registry
        self._kb = knowledge
        self._store = CuratedStore(s3, knowledge)
        self._settings = settings
        self._readers = readers  # classification -> groups (the current runtime document)
        self._clock = clock
        self._textract = textract  # only with settings.ocr "textract"
        self._monotonic = monotonic
        self._limits = ReadLimits(
            max_pages=settings.max_pages,
            max_chars=settings.max_extracted_chars,
            seconds=settings.read_seconds,
            max_expanded_bytes=settings.max_expanded_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_page_bytes=settings.max_page_bytes,
            max_memory_bytes=settings.read_memory_bytes,
        )

    def locate(self, ref: ObjectRef) -> ObjectRef:
        """The event's object under its real key, the one its document id comes from (the Macie
        responder's too). S3 URL-encodes the keys of some events ("my doc.txt" arrives as
        "my+doc.txt"): of the key as sent and decoded, the one the registry has the version under
        (its landing slot may be emptied already); else the one S3 holds it under; else decoded.
        Never the key as sent for being a document's id alone: "docs/a b.txt" arrives as
        "docs/a+b.txt", the key of another document, which its first version would take over.
        Once only: a located key decoded again is another key."""
        keys = _candidate_keys(ref.key)
        if len(keys) == 1:
            return ref
        for key in keys:
            if self._registry.version(document_id(ref.bucket, key), ref.version) is not None:
                return replace(ref, key=key)
        found = self._head(ref)
        return replace(ref, key=found[0] if found else keys[1])

    def process(
        self, ref: ObjectRef, seconds_left: SecondsLeft | None = None, *, scan_seconds_left: SecondsLeft | None = None
    ) -> Outcome:
        """The version of a located object (``locate``) through the pipeline, once. A copy to
        quarantine still running when ``seconds_left`` reaches zero is stopped: CopyTooSlowError,
        with the version unrecorded and its object still in the landing bucket. So is a scan for
        personal data when ``scan_seconds_left`` reaches zero between two Comprehend calls:
        ScanStoppedError."""
        doc = document_id(ref.bucket, ref.key)
        settled = self._registry.version(doc, ref.version)
        if settled is not None and settled.status == OCR_PENDING:  # its job's notification settles it
            return _outcome(settled, replayed=True)
        if settled is not None and settled.status in SETTLED:
            landed = settled.source.removeprefix(f"s3://{ref.bucket}/")
            self._empty_landing(ref, landed)  # a crash after recording may have left it
            return _outcome(settled, replayed=True)
        record = VersionRecord(
            document_id=doc,
            version=ref.version,
            status="",
            reason="",
            source=f"s3://{ref.bucket}/{ref.key}",
            size=ref.size,
            received_at=self._clock().isoformat(),
        )
        return self._run(ref, record, self._read, seconds_left, scan_seconds_left)

    def ocr_finished(self, job: OcrJob) -> Outcome | None:
        """Continue a version whose Textract job finished, with the job's text as if the PDF had had
        a text layer. None: the job is not one of this pipeline's, or its version is settled."""
        pending = self.ocr_pending(job)
        if pending is None:
            return None
        ref = source_ref(pending)
        record = replace(pending, status="", reason="", reason_code="", ocr_job="", sequencer="")

        def read(ref: ObjectRef, key: str, record: VersionRecord) -> tuple[str, VersionRecord]:
            if job.status != "SUCCEEDED":
                raise RejectedError("ocr_failed", f"text detection (OCR) did not succeed ({job.status})")
            return self._ocr_text(job.job_id), record

        return self._run(ref, record, read)

    def ocr_pending(self, job: OcrJob) -> VersionRecord | None:
        """The version waiting for ``job`` (None: not this pipeline's job, or its version settled)."""
        pending = self._registry.ocr_version(job.document_id, job.job_id)
        return pending if pending is not None and pending.status == OCR_PENDING else None

    def _run(
        self,
        ref: ObjectRef,
        record: VersionRecord,
        read: Reader,
        seconds_left: SecondsLeft | None = None,
        scan_seconds_left: SecondsLeft | None = None,
    ) -> Outcome:
        _require_sequencer(ref)
        if _newer_than(
            self._registry.current(record.document_id), ref
        ):  # e.g. this one failed once; a later one did not
            return self._superseded(record, ref, ref.key)
        landed = self._landed(ref, record)
        if isinstance(landed, Outcome):
            return landed
        key, head = landed
        metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        # User metadata is the uploader's text: only values the pipeline knows are recorded or echoed.
        classification = metadata.get("classification") or self._settings.default_classification
        known = classification in self._settings.classification_policies
        origin = metadata.get("origin", "upload")
        size = int(head.get("ContentLength", ref.size))
        record = replace(
            record,
            source=f"s3://{ref.bucket}/{key}",  # as S3 holds it: a replay empties the landing slot there
            classification=classification if known else "",
            origin=origin if ORIGIN.fullmatch(origin) else "unknown",
            size=size,  # the object's, not the event's: a queue message may say anything
        )
        scan: Scan | None = None
        try:
            if not known:
                allowed = ", ".join(self._settings.classification_policies)
                raise RejectedError("unknown_classification", f"unknown classification (allowed: {allowed})")
            if size > self._settings.max_document_bytes:
                raise RejectedError(
                    "too_large", f"{size} bytes is over the {self._settings.max_document_bytes} byte limit"
                )
            try:
                text, record = read(ref, key, record)
            except RejectedError as rejected:
                if rejected.code != "needs_ocr" or self._settings.ocr != "textract":
                    raise
                return self._start_ocr(ref, key, record)
            scan = self._scan(text, scan_seconds_left)
            if scan.unsupported and self._settings.unsupported_language == "quarantine":
                raise RejectedError(
                    "unsupported_language",
                    f"PII detection does not support the document's language ({scan.unsupported})",
                )
            if scan.spans and self._settings.classification_policies[classification] == "quarantine":
                types = ", ".join(scan.summary())
                raise RejectedError("pii", f"personal data ({types}) in a {classification} document")
            masked = _masked(key, text, scan)
        except RejectedError as rejected:
            pii = scan.summary() if scan else {}
            quarantined = replace(record, reason=rejected.reason, reason_code=rejected.code, pii=pii)
            return self._quarantine(ref, key, quarantined, size=size, seconds_left=seconds_left)
        return self._curate(ref, key, record, masked, scan, metadata)

    def _scan(self, text: str, seconds_left: SecondsLeft | None) -> Scan:
        """The text's personal data; RejectedError for a text past the scan's size (each 100 KB of
        UTF-8 is one Comprehend call: the limit in characters alone would let 4-byte characters
        quadruple them); ScanStoppedError when ``seconds_left`` runs out between two calls."""
        scanned = len(text.encode(errors="surrogatepass"))
        if scanned > self._settings.max_extracted_chars:
            raise too_much_text(scanned, self._settings.max_extracted_chars)
        return self._scanner.scan(text, seconds_left=seconds_left)

    def _read(self, ref: ObjectRef, key: str, record: VersionRecord) -> tuple[str, VersionRecord]:
        fmt = document_format(key, self._settings.document_formats)
        body = self._s3.get_object(Bucket=ref.bucket, Key=key, VersionId=ref.version)["Body"].read()
        record = replace(record, content_hash=hashlib.sha256(body).hexdigest())
        return text_of(body, fmt, self._limits), record

    # --- OCR (Textract) ------------------------------------------------------------------------

    def _start_ocr(self, ref: ObjectRef, key: str, record: VersionRecord) -> Outcome:
        """Start an asynchronous text detection on the landing object, which stays where it is. The
        token is the version's: a replay gets the same job back, not a second one."""
        token = hashlib.sha256(f"{record.document_id}\n{ref.version}".encode()).hexdigest()[:64]
        response = self._textract.start_document_text_detection(
            DocumentLocation={"S3Object": {"Bucket": ref.bucket, "Name": key, "Version": ref.version}},
            ClientRequestToken=token,
            JobTag=record.document_id,
            NotificationChannel={
                "SNSTopicArn": self._settings.ocr_topic_arn,
                "RoleArn": self._settings.ocr_role_arn,
            },
        )
        job = str(response["JobId"])
        pending = replace(
            record,
            status=OCR_PENDING,
            reason="the PDF has no text layer: text detection (OCR) started",
            ocr_job=job,
            sequencer=ref.sequencer,
        )
        self._registry.ocr_started(pending)
        return _outcome(pending)

    def _ocr_text(self, job_id: str) -> str:
        """The job's LINE blocks, page after page, within the same limits as a PDF's text layer."""
        budget = self._limits
        deadline = self._monotonic() + budget.seconds
        lines: list[str] = []
        chars = 0
        token: str | None = None
        while True:
            if self._monotonic() > deadline:
                raise RejectedError("too_slow", f"reading the text took longer than {budget.seconds:g} seconds")
            page = self._textract.get_document_text_detection(
                JobId=job_id, MaxResults=1000, **({"NextToken": token} if token else {})
            )
            if page.get("JobStatus") != "SUCCEEDED":
                raise RejectedError("ocr_failed", f"text detection (OCR) did not succeed ({page.get('JobStatus')})")
            pages = int(page.get("DocumentMetadata", {}).get("Pages", 0))
            if pages > budget.max_pages:
                raise RejectedError("too_many_pages", f"{pages} pages is over the {budget.max_pages} page limit")
            for block in page.get("Blocks", []):
                if block.get("BlockType") == "LINE":
                    line = str(block.get("Text", ""))
                    chars += len(line) + 1
                    if chars > budget.max_chars:
                        raise RejectedError("too_much_text", f"the text is over the {budget.max_chars} character limit")
                    lines.append(line)
            token = page.get("NextToken")
            if not token:
                break
        text = "\n".join(lines)
        if not text.strip():
            raise RejectedError("empty", "text detection (OCR) found no text in the document")
        return text

    # --- destinations --------------------------------------------------------------------------

    def _curate(
        self, ref: ObjectRef, key: str, record: VersionRecord, masked: str, scan: Scan, metadata: Mapping[str, str]
    ) -> Outcome:
        settings = self._settings
        classification = record.classification
        attributes: dict[str, str | list[str]] = {
            "document_id": record.document_id,
            **self._fields(
                {"source": metadata.get("source") or record.source, "owner": metadata.get("owner") or "unknown"},
                scan.language,
            ),
            CLASSIFICATION_KEY: classification,
        }
        readers = list(self._readers().get(classification, []))
        # A list attribute holds 1 to MAX_LIST_VALUES values: past that, retrieval filters on the
        # classification alone (as the tools' always do) rather than the call being refused.
        if 0 < len(readers) <= MAX_LIST_VALUES:
            attributes["allowed_groups"] = readers
        direct = key.startswith(REALTIME_PREFIX)
        prefix = DIRECT_PREFIX if direct else settings.curated_prefix
        curated_key = f"{prefix}{record.document_id}.txt"
        written: list[tuple[str, str]] = []
        # The S3 data source reads a bulk copy's sidecar with it (direct/ is not its prefix); a
        # direct copy's is what an undo indexes the winning version's copy with again.
        sidecar_key = f"{curated_key}{SIDECAR_SUFFIX}"
        written.append((sidecar_key, self._put(sidecar_key, json.dumps(sidecar(attributes)), "application/json")))
        object_version = self._put(curated_key, masked, "text/plain; charset=utf-8")
        written.append((curated_key, object_version))
        location = f"s3://{settings.curated_bucket}/{curated_key}"
        if direct:
            try:
                self._kb.ingest_text(record.document_id, masked, attributes)
            except Exception:
                # The index does not hold this copy: left the latest in the bucket, it would be
                # what a later undo indexes again (and it would outlive the version's dead letter).
                self._delete_versions(written)
                raise

        def undo() -> None:
            """A newer version won the race: its copy becomes the latest again, in S3 and the KB,
            with its own metadata (its sidecar's: its classification, readers and owner, never
            this version's); an IndexRefusedError fails the version, which SQS retries."""
            self._delete_versions(written)
            if direct:
                bucket = settings.curated_bucket
                latest = self._s3.get_object(Bucket=bucket, Key=curated_key)["Body"].read()
                winner = self._s3.get_object(Bucket=bucket, Key=f"{curated_key}{SIDECAR_SUFFIX}")["Body"].read()
                self._kb.ingest_text(record.document_id, latest.decode(), json.loads(winner)["metadataAttributes"])

        found = len(scan.spans)
        reason = f"masked {found} personal data entities" if found else "no personal data found"
        current = {
            "status": CURATED,
            "version": record.version,
            "location": location,
            "object_version": object_version,
            "mode": "direct" if direct else "bulk",
            "classification": classification,
        }
        curated = replace(record, status=CURATED, reason=reason, location=location, pii=scan.summary())
        return self._settle(curated, current, ref, key, undo=undo)

    def _fields(self, fields: Mapping[str, str], language: str) -> dict[str, str]:
        """The uploader's metadata values for the sidecar and the index: one line of at most
        MAX_FIELD_CHARS printable characters ("unknown" otherwise), with personal data masked by
        the same scan as the text (one call for all of them, in the document's language)."""
        checked = {
            name: value if len(value) <= MAX_FIELD_CHARS and value.isprintable() else "unknown"
            for name, value in fields.items()
        }
        joined = "\n".join(checked.values())
        masked = mask(joined, self._scanner.scan(joined, language=language).spans).split("\n")
        if len(masked) != len(checked):  # a mask never adds a line; anything else is not trusted
            return dict.fromkeys(checked, "unknown")
        return dict(zip(checked, masked, strict=True))

    def _quarantine(
        self, ref: ObjectRef, key: str, record: VersionRecord, *, size: int, seconds_left: SecondsLeft | None
    ) -> Outcome:
        """Copy the version to quarantine as it is (in parts above ``copy_limit``: copies.py)."""
        target = quarantine_key(record.document_id, ref.version, key)
        landed = {"Bucket": ref.bucket, "Key": key, "VersionId": ref.version}
        if size <= self._copy_limit:
            copied = self._s3.copy_object(
                Bucket=self._settings.quarantine_bucket, Key=target, CopySource=landed, MetadataDirective="COPY"
            )
            copy_version = str(copied.get("VersionId") or "null")  # "null": a bucket without versioning
        else:
            try:
                copy_version = copy_until(
                    self._s3,
                    landed,
                    self._settings.quarantine_bucket,
                    target,
                    limit=self._copy_limit,
                    seconds_left=seconds_left,
                )
            except CopyTooSlowError:
                raise CopyTooSlowError(
                    f"{record.reason}; its copy to quarantine did not finish in the invocation's time "
                    "and was stopped (the object stays in the landing bucket)"
                ) from None
        location = f"s3://{self._settings.quarantine_bucket}/{target}"
        current = {"status": QUARANTINED, "version": record.version, "location": location}

        def undo() -> None:
            # This copy's version: a delete of the key would leave the unmasked copy behind a delete
            # marker in the versioned bucket for good, and hide a duplicate delivery's copy of the
            # same version there, the one the registry names.
            self._s3.delete_object(Bucket=self._settings.quarantine_bucket, Key=target, VersionId=copy_version)

        return self._settle(replace(record, status=QUARANTINED, location=location), current, ref, key, undo=undo)

    def _settle(
        self,
        record: VersionRecord,
        current: dict[str, Any] | None,
        ref: ObjectRef | None = None,
        key: str | None = None,
        undo: Callable[[], None] | None = None,
    ) -> Outcome:
        """Retire what this version supersedes, record it, and empty its landing slot. A newer
        version settled meanwhile wins: this one's writes are undone and it is superseded."""
        if current is not None and ref is not None and key is not None:
            previous = self._registry.current(record.document_id)
            if _newer_than(previous, ref):
                if undo:
                    undo()
                return self._superseded(record, ref, key)
            if previous and previous.get("status") == CURATED:
                self._store.retire(record.document_id, previous, replacing=current.get("location"))
            now = self._clock().isoformat()
            current["updated_at"] = now
            settled = replace(record, processed_at=now)
            try:
                self._registry.record(settled, current=current, sequencer=ref.sequencer, replacing=previous)
            except StaleVersionError:
                if undo:
                    undo()
                winner = self._registry.current(record.document_id) or {}
                if winner.get("version") == record.version:  # a duplicate delivery settled this very version
                    return _outcome(replace(settled, location=str(winner.get("location", ""))), replayed=True)
                return self._superseded(record, ref, key)
            self._empty_landing(ref, key)
            return _outcome(settled)
        record = replace(record, processed_at=self._clock().isoformat())
        self._registry.record(record)
        return _outcome(record)

    def _superseded(self, record: VersionRecord, ref: ObjectRef, key: str) -> Outcome:
        current = self._registry.current(record.document_id) or {}
        reason = f"version {current.get('version', '?')} of this document is newer and was settled first"
        settled = replace(record, status=SUPERSEDED, reason=reason, processed_at=self._clock().isoformat())
        self._registry.record(settled)
        self._empty_landing(ref, key)
        return _outcome(settled)

    # --- S3 ------------------------------------------------------------------------------------

    def _head(self, ref: ObjectRef) -> tuple[str, dict[str, Any]] | None:
        """(key, HeadObject) for the event's version. The key is tried as sent and URL-decoded."""
        for key in _candidate_keys(ref.key):
            try:
                return key, self._s3.head_object(Bucket=ref.bucket, Key=key, VersionId=ref.version)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in MISSING:
                    raise
        return None

    def _landed(self, ref: ObjectRef, record: VersionRecord) -> tuple[str, dict[str, Any]] | Outcome:
        """(key, HeadObject) of the event's version; or, settled gone, its outcome: the version is
        deleted, or withdrawn behind a delete marker (then it is emptied from landing once the
        record says why)."""
        found = self._head(ref)
        if found is None:
            return self._settle(replace(record, status=GONE, reason=DELETED), None)
        key, head = found
        if self._withdrawn(ref, key):
            gone = self._settle(replace(record, source=f"s3://{ref.bucket}/{key}", status=GONE, reason=DELETED), None)
            self._empty_landing(ref, key)
            return gone
        return key, head

    def _withdrawn(self, ref: ObjectRef, key: str) -> bool:
        """Whether the key's current version is a delete marker. The landing bucket is versioned: an
        uploader's ordinary delete adds one, and the HEAD of the event's version still finds the
        version, so the object would be curated after it was deleted. A newer version, current
        instead, changes nothing here: which version wins is the registry's order to settle once
        one of them is (_newer_than, Registry.record). No version at all (this one deleted for good
        since its HEAD: a duplicate delivery settled it) is not a delete marker: the read that
        follows fails, and the retry finds the version settled, or gone."""
        try:
            self._s3.head_object(Bucket=ref.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in MISSING:
                raise
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            return str(headers.get("x-amz-delete-marker", "")).lower() == "true"
        return False

    def _put(self, key: str, text: str, content_type: str) -> str:
        response = self._s3.put_object(
            Bucket=self._settings.curated_bucket, Key=key, Body=text.encode(), ContentType=content_type
        )
        return str(response.get("VersionId", ""))

    def _delete_versions(self, written: Sequence[tuple[str, str]]) -> None:
        for key, version in written:
            self._s3.delete_object(Bucket=self._settings.curated_bucket, Key=key, VersionId=version)

    def _empty_landing(self, ref: ObjectRef, key: str) -> None:
        # Deleting a version is permanent and idempotent: a second delete is a no-op.
        self._s3.delete_object(Bucket=ref.bucket, Key=key, VersionId=ref.version)


class CuratedStore:
    """Curated copies leaving the bucket and the Knowledge Base: superseded, or pulled by Macie."""

    def __init__(self, s3: Any, knowledge: KnowledgeBase) -> None:
        self._s3 = s3
        self._kb = knowledge

    def retire_current(
        self, document_id: str, current: Mapping[str, Any] | None, *, object_version: str | None = None
    ) -> Mapping[str, Any] | None:
        """Take a document's curated copy (``current``: its registry entry) out of the bucket and
        the Knowledge Base (Macie); with ``object_version``, only if that is the current copy (an
        older one is no longer indexed)."""
        if object_version is not None and current and current.get("object_version") != object_version:
            return None
        if current and current.get("status") == CURATED:
            self.retire(document_id, current, replacing=None)
            return current
        return None

    def retire(self, document_id: str, previous: Mapping[str, Any], *, replacing: str | None) -> None:
        """Delete a superseded curated copy: its object version, its sidecar if another document
        replaces it at a new place, and (for a document that moves or goes) its index entry."""
        location = str(previous["location"])
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if previous.get("object_version"):
            self._s3.delete_object(Bucket=bucket, Key=key, VersionId=str(previous["object_version"]))
        if location == replacing:
            return  # the new version took its place; the next sync or the direct ingest updated the index
        self._s3.delete_object(Bucket=bucket, Key=key)
        self._s3.delete_object(Bucket=bucket, Key=f"{key}{SIDECAR_SUFFIX}")
        if previous.get("mode") == "direct":
            self._kb.remove(document_id=document_id)
        else:
            self._kb.remove(uri=location)


def quarantine_key(document: str, version: str, key: str) -> str:
    """Where a quarantined object goes: under its document and version, keeping its file name
    where that is a plain name, within S3's key limit (the events module bounds the version)."""
    if not VERSION_SEGMENT.fullmatch(version) or set(version) == {"."}:
        version = "v-" + hashlib.sha256(version.encode(errors="replace")).hexdigest()[:32]
    return named_under(f"{document}/{version}/", key)


def named_under(prefix: str, key: str) -> str:
    """``prefix`` and the key's file name where that is a plain name ("object" otherwise), cut to
    S3's key limit (never half a character, never a dot segment)."""
    name = PurePosixPath(key).name
    if name in ("", ".", "..") or not name.isprintable():
        name = "object"
    room = MAX_KEY_BYTES - len(prefix.encode())
    name = name.encode()[: max(room, 0)].decode(errors="ignore").strip(".") or "object"
    return prefix + name


def _candidate_keys(key: str) -> list[str]:
    """The key as sent and URL-decoded (once each); S3 keys are UTF-8, so an escape that decodes
    to anything else is not a decoding of one."""
    try:
        decoded = unquote_plus(key, errors="strict")
    except UnicodeDecodeError:
        return [key]
    return list(dict.fromkeys([key, decoded]))


def source_ref(record: VersionRecord) -> ObjectRef:
    """The landed object a version record was made from (its source, version, size and order)."""
    bucket, _, key = record.source.removeprefix("s3://").partition("/")
    return ObjectRef(bucket=bucket, key=key, version=record.version, size=record.size, sequencer=record.sequencer)


def _require_sequencer(ref: ObjectRef) -> None:
    """UnsequencedError for a version whose event has no sequencer: nothing may say where it stands
    among the document's versions. The events module refuses such an event; an OCR job an earlier
    release started for one still comes back without it, and fails with the reason."""
    if not SEQUENCER.fullmatch(ref.sequencer):
        raise UnsequencedError


def _newer_than(current: Mapping[str, Any] | None, ref: ObjectRef) -> bool:
    """Whether the document's current state comes from a later S3 event than ``ref``; an event
    without a sequencer is the older one (nothing says it is newer: it never replaces a state)."""
    recorded = (current or {}).get("sequencer")
    return bool(recorded and (not ref.sequencer or str(recorded) > sequencer_key(ref.sequencer)))


def _outcome(record: VersionRecord, *, replayed: bool = False) -> Outcome:
    return Outcome(
        document_id=record.document_id,
        version=record.version,
        status=record.status,
        reason=record.reason,
        reason_code=record.reason_code,
        location=record.location,
        pii=dict(record.pii),
        replayed=replayed,
    )


def _masked(key: str, text: str, scan: Scan) -> str:
    """The text with its personal data masked. A real-time item goes to the Knowledge Base inline,
    and masking can lengthen a text ("[BANK_ACCOUNT_NUMBER]" for a short number): past the API's
    limit it is quarantined with the reason, not failed on every retry into the dead letters."""
    masked = mask(text, scan.spans)
    if key.startswith(REALTIME_PREFIX) and (chars := inline_chars(masked)) > MAX_INLINE_CHARS:
        raise RejectedError(
            "too_much_text",
            f"the masked text is {chars} characters, over the {MAX_INLINE_CHARS} a Knowledge Base takes inline "
            "(real-time items are ingested directly)",
        )
    return masked
