"""Fetched text through the Bedrock guardrail before it reaches an agent: sent as guarded content
(source INPUT, so the prompt-attack filter applies to it), blocked text refused whole, masked text
(PII anonymised per the guardrail) returned instead of the original. Any failure of the service
refuses the call: the tools fail closed."""

from __future__ import annotations

from typing import Any

from shared.aws_errors import UpstreamError, call
from shared.guardrail_findings import findings
from shared.logs import service_logger
from web_mcp.errors import forbidden, unavailable

logger = service_logger("web-mcp")


class Guard:
    def __init__(self, client: Any, *, guardrail_id: str, version: str) -> None:
        self._client = client
        self._id = guardrail_id
        self._version = version

    def screen(self, text: str) -> str:
        """The text to return (masked where the guardrail anonymised); raises a WebError when the
        guardrail blocks it or cannot be asked."""
        if not text:
            return text
        try:
            with call("bedrock-runtime"):  # an answer botocore cannot read too
                response = self._client.apply_guardrail(
                    guardrailIdentifier=self._id,
                    guardrailVersion=self._version,
                    source="INPUT",
                    content=[{"text": {"text": text, "qualifiers": ["guard_content"]}}],
                )
        except UpstreamError as error:
            logger.warning("guardrail failed", extra={"error": error.code})
            raise unavailable("guardrail_unavailable", "the content guardrail could not check the page") from None
        if response.get("action") != "GUARDRAIL_INTERVENED":
            return text
        found = findings(response.get("assessments", []))
        if any(action == "BLOCKED" for _, action in found):
            logger.info("guardrail blocked", extra={"findings": sorted({name for name, _ in found})})
            raise forbidden("content_blocked", "the page's content was blocked by the content guardrail")
        return "".join(output.get("text", "") for output in response.get("outputs", []))
