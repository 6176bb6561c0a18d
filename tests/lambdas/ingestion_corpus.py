"""The fixture corpus the ingestion tests and bench run, and a Comprehend stand-in that keeps
Comprehend's limits (importable without AWS set-up)."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from ingestion.pii import MAX_CALL_BYTES

LANDING = "landing-bucket"
MAX_BYTES = 4_000
CUSTOM = {"employee_id": r"\bEMP-\d{6}\b"}
# Personal data seeded into the corpus: none of it may reach a log, the registry or curated text.
SEEDED_PII = ["ada.lovelace@example.com", "078-05-1120", "+1 206 555 0143", "Grace Hopper", "EMP-314159"]
FRENCH = "Bonjour, voici le rapport trimestriel de l'équipe. Merci de le lire attentivement."


class FakeComprehend:
    """Answers like Comprehend for the corpus: detects English/Spanish/French by marker words and
    finds e-mail addresses, SSNs, phone numbers and two names; refuses texts over 100 KB."""

    PATTERNS: ClassVar[dict[str, re.Pattern[str]]] = {
        "EMAIL": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
        "SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
        "PHONE": re.compile(r"\+1 \d{3} \d{3} \d{4}"),
        "NAME": re.compile(r"\b(Grace Hopper|Alan Turing)\b"),
    }

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def detect_dominant_language(self, *, Text: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self._check(Text)
        code = "fr" if "Bonjour" in Text else "es" if " el " in Text else "en"
        self.calls.append(("language", len(Text.encode())))
        return {"Languages": [{"LanguageCode": code, "Score": 0.99}]}

    def detect_pii_entities(self, *, Text: str, LanguageCode: str) -> dict[str, Any]:  # noqa: N803
        self._check(Text)
        assert LanguageCode in ("en", "es")
        self.calls.append(("pii", len(Text.encode())))
        entities = [
            {"Type": kind, "BeginOffset": m.start(), "EndOffset": m.end(), "Score": 0.99}
            for kind, pattern in self.PATTERNS.items()
            for m in pattern.finditer(Text)
        ]
        return {"Entities": entities}

    @staticmethod
    def _check(text: str) -> None:
        if not text or len(text.encode()) > MAX_CALL_BYTES:
            raise AssertionError(f"Comprehend refuses {len(text.encode())} bytes of text")


# --- the corpus -----------------------------------------------------------------------------------

CLEAN = {
    "docs/handbook.txt": "Our refund window is thirty days from delivery.",
    "docs/faq.md": "# FAQ\n\nShipping takes three to five working days.",
    "docs/prices.csv": "sku,price\nA-1,10\nB-2,12\n",
    "docs/catalog.json": json.dumps({"items": [{"sku": "A-1", "name": "Kettle"}]}),
    "docs/about.html": "<html><head><style>p{}</style><script>var x=1</script></head>"
    "<body><h1>About</h1><p>We make kettles.</p></body></html>",
}
WITH_PII_INTERNAL = {
    "hr/contact.txt": "Escalations go to ada.lovelace@example.com or +1 206 555 0143 (Grace Hopper).",
    "hr/payroll.md": "Employee EMP-314159 has SSN 078-05-1120 on file.",
}
WITH_PII_PUBLIC = {"web/press.txt": "Press contact: ada.lovelace@example.com"}
REJECTED: dict[str, tuple[bytes | str, str]] = {
    "big/oversized.txt": ("x " * MAX_BYTES, "over the 4000 byte limit"),
    "bin/report.pdf": (b"%PDF-1.7 binary", "format .pdf"),
    "bin/tool.exe": (b"MZ\x90\x00", "format .exe"),
    "bin/noextension": (b"plain", "format .(none)"),
    "bad/latin1.txt": ("caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
    "bad/broken.json": ('{"items": [1, 2', "not valid JSON"),
    "intl/rapport.txt": (FRENCH, "does not support the document's language (fr)"),
}
MALFORMED = {
    "not json": "{nope",
    "wrong type": json.dumps({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}),
    "no version": json.dumps(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": LANDING}, "object": {"key": "k", "size": 1}},
        }
    ),
}
