"""Fetched text through the Bedrock guardrail before it reaches an agent: sent as guarded content
(source INPUT, so the prompt-attack filter applies to it), blocked text refused whole, masked text
(PII anonymised per the guardrail) returned instead of the original. Any failure of the service
refuses the call: the tools fail closed. Given the call's deadline, the guardrail is waited for
until it at most (a ``timeout`` refusal): its client's timeouts are per attempt."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from shared.aws_errors import UpstreamError, call
from shared.guardrail_findings import findings
from shared.logs import service_logger
from web_mcp.errors import forbidden, unavailable
from web_mcp.fetch import Deadline

logger = service_logger("web-mcp")
# Where a guardrail call runs while a call with a deadline waits for it.
_CHECKS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="guardrail")
LATE = "the content guardrail did not answer within the call's time"


class Guard:
    def __init__(self, client: Any, *, guardrail_id: str, version: str, pool: Executor = _CHECKS) -> None:
        self._client = client
        self._id = guardrail_id
        self._version = version
        self._pool = pool

    def screen(self, text: str, deadline: Deadline | None = None) -> str:
        """The text to return (masked where the guardrail anonymised); raises a WebError when the
        guardrail blocks it or cannot be asked, or (``deadline``: the call's) does not answer in time."""
        if not text:
            return text

        def apply() -> Any:
            return self._client.apply_guardrail(
                guardrailIdentifier=self._id,
                guardrailVersion=self._version,
                source="INPUT",
                content=[{"text": {"text": text, "qualifiers": ["guard_content"]}}],
            )

        try:
            with call("bedrock-runtime"):  # an answer botocore cannot read too
                response = apply() if deadline is None else deadline.within(self._pool, apply, LATE)
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
