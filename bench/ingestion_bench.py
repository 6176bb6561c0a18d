"""How fast the ingestion pipeline's own logic is, and how much memory a document at the size
limit takes.

AWS is replaced by in-memory stand-ins that answer at once (S3 with versions, the registry
table, Comprehend finding e-mail addresses, SSNs, phones and names by pattern, the Knowledge
Base), so the figures are the pipeline's: validation, text extraction, chunked PII scanning,
masking, policy and bookkeeping. Real throughput is bounded by Comprehend and S3 latency, and
by the event source mapping's concurrency.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from botocore.exceptions import ClientError  # noqa: E402

from ingestion.contract import PipelineSettings as Settings  # noqa: E402
from ingestion.events import ObjectRef  # noqa: E402
from ingestion.knowledge import KnowledgeBase  # noqa: E402
from ingestion.pii import PiiScanner  # noqa: E402
from ingestion.pipeline import Pipeline  # noqa: E402
from ingestion.registry import Registry  # noqa: E402
from stacks.config import load_config  # noqa: E402
from tests.lambdas.ingestion_corpus import (  # noqa: E402
    CLEAN,
    CUSTOM,
    WITH_PII_INTERNAL,
    FakeComprehend,
    docx_bytes,
    pdf_bytes,
    pptx_bytes,
    xlsx_bytes,
)

LANDING = "landing"
CONFIG = load_config(json.loads((ROOT / "cdk.json").read_text())["context"]).production.ingestion
READERS = {c: ["platform-admins"] for c in CONFIG.classifications}
SETTINGS = Settings(
    curated_bucket="curated",
    quarantine_bucket="quarantine",
    curated_prefix="curated/",
    classification_policies={c: p.on_pii for c, p in CONFIG.classifications.items()},
    default_classification=CONFIG.default_classification,
    max_document_bytes=CONFIG.max_document_bytes,
    # PDF and DOCX are measured even where the deployment's config does not take them (yet).
    document_formats=tuple(dict.fromkeys((*CONFIG.formats, "pdf", "docx", "xlsx", "pptx"))),
)


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], tuple[bytes, dict[str, str]]] = {}
        self._versions = itertools.count(1)

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        version = f"v{next(self._versions)}"
        self.objects[(bucket, key, version)] = (body, metadata or {})
        return version

    def head_object(self, *, Bucket: str, Key: str, VersionId: str) -> dict[str, Any]:  # noqa: N803
        found = self.objects.get((Bucket, Key, VersionId))
        if found is None:
            raise ClientError({"Error": {"Code": "404", "Message": "missing"}}, "HeadObject")
        return {"ContentLength": len(found[0]), "Metadata": found[1]}

    def get_object(self, *, Bucket: str, Key: str, VersionId: str) -> dict[str, Any]:  # noqa: N803
        body = self.objects[(Bucket, Key, VersionId)][0]
        return {"Body": _Body(body)}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        return {"VersionId": self.put(Bucket, Key, Body)}

    def copy_object(self, *, Bucket: str, Key: str, CopySource: dict[str, str], **_: Any) -> dict[str, Any]:  # noqa: N803
        body, metadata = self.objects[(CopySource["Bucket"], CopySource["Key"], CopySource["VersionId"])]
        return {"VersionId": self.put(Bucket, Key, body, metadata)}

    def delete_object(self, *, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:  # noqa: N803
        if VersionId is not None:
            self.objects.pop((Bucket, Key, VersionId), None)
        return {}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class MemoryTable:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get_item(self, *, Key: dict[str, str], **_: Any) -> dict[str, Any]:  # noqa: N803
        item = self.items.get((Key["pk"], Key["sk"]))
        return {"Item": item} if item else {}

    def put_item(self, *, Item: dict[str, Any]) -> None:  # noqa: N803
        self.items[(Item["pk"], Item["sk"])] = Item

    @contextmanager
    def batch_writer(self) -> Any:
        yield self


class MemoryKnowledgeBase:
    def __init__(self) -> None:
        self.calls = 0

    def ingest_knowledge_base_documents(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {}

    def delete_knowledge_base_documents(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {}


def pipeline() -> tuple[Pipeline, MemoryS3]:
    s3 = MemoryS3()
    scanner = PiiScanner(FakeComprehend(), custom_identifiers=CUSTOM, min_score=CONFIG.pii_min_score)
    knowledge = KnowledgeBase(MemoryKnowledgeBase(), "KB", "S3", "CUSTOM")
    return Pipeline(s3, scanner, Registry(MemoryTable()), knowledge, SETTINGS, readers=lambda: READERS), s3


def corpus(copies: int) -> list[tuple[str, bytes, dict[str, str]]]:
    documents: list[tuple[str, bytes, dict[str, str]]] = []
    for n in range(copies):
        for key, text in {**CLEAN, **WITH_PII_INTERNAL}.items():
            documents.append((f"{n}/{key}", text.encode(), {}))
        documents.append((f"realtime/crm/{n}.md", b"# Case\n\nCall ada.lovelace@example.com back.", {}))
        documents.append((f"{n}/web/press.txt", b"Press: ada.lovelace@example.com", {"classification": "public"}))
    return documents


def throughput(copies: int = 200, rounds: int = 5) -> tuple[float, int]:
    rates = []
    for _ in range(rounds):
        runner, s3 = pipeline()
        refs = [
            ObjectRef(LANDING, key, s3.put(LANDING, key, body, metadata), len(body))
            for key, body, metadata in corpus(copies)
        ]
        started = time.perf_counter()
        for ref in refs:
            runner.process(ref)
        rates.append(len(refs) / (time.perf_counter() - started))
    return statistics.median(rates), len(refs)


PAGES = ["Our refund window is thirty days from delivery.", "Escalations go to ada.lovelace@example.com."] * 2


def format_throughput(fmt: str, body: bytes, copies: int = 200, rounds: int = 5) -> float:
    """Documents/s for one format: a 4-page PDF or 4-paragraph DOCX (one e-mail address masked in each)."""
    rates = []
    for _ in range(rounds):
        runner, s3 = pipeline()
        refs = [
            ObjectRef(LANDING, f"{n}/doc.{fmt}", s3.put(LANDING, f"{n}/doc.{fmt}", body), len(body))
            for n in range(copies)
        ]
        started = time.perf_counter()
        for ref in refs:
            assert runner.process(ref).status == "curated"
        rates.append(len(refs) / (time.perf_counter() - started))
    return statistics.median(rates)


def peak_memory_at_the_limit() -> tuple[int, int]:
    runner, s3 = pipeline()
    line = "Contact ada.lovelace@example.com about invoice 42 before Friday, please.\n"
    text = (line * (SETTINGS.max_document_bytes // len(line)))[: SETTINGS.max_document_bytes]
    body = text.encode()
    ref = ObjectRef(LANDING, "big/at-the-limit.txt", s3.put(LANDING, "big/at-the-limit.txt", body), len(body))
    tracemalloc.start()
    outcome = runner.process(ref)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert outcome.status == "curated", outcome
    return len(body), peak


def main() -> None:
    rate, count = throughput()
    print(f"{'pipeline logic (AWS in memory)':<34} {rate:9.0f} documents/s   ({count} documents, median of 5 runs)")
    binary = {
        "pdf": pdf_bytes(PAGES, compress=True),
        "docx": docx_bytes(PAGES),
        "xlsx": xlsx_bytes([[[text] for text in PAGES]]),
        "pptx": pptx_bytes([[text] for text in PAGES]),
    }
    for fmt, body in binary.items():
        label = f"{fmt.upper()} ({len(body):,} bytes, 4 pages or parts)"
        print(f"{label:<34} {format_throughput(fmt, body):9.0f} documents/s   (200 documents, median of 5 runs)")
    size, peak = peak_memory_at_the_limit()
    print(f"{'document at the size limit':<34} {size:9,} bytes   peak Python memory {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
