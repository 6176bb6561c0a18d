"""Answering a question from a Knowledge Base or from Kendra, with citations.

Pure functions over injected boto3 clients, so they run against botocore's Stubber in tests. Each
call is made ``within`` the request's deadline (deadline.py: clients made ``bound`` keep it).
"""

from __future__ import annotations

import re
from typing import Any

from prototype_query.contract import converse_system_prompt, knowledge_base_template
from prototype_query.deadline import Deadline, within
from prototype_query.models import Answer, Citation, Source
from shared.aws_errors import call, invalid_response
from shared.converse import SERVICE as CONVERSE_SERVICE, converse
from shared.display import locator_text
from shared.field_paths import value_at

EXCERPT_CHARS = 400
KNOWLEDGE_BASE_SERVICE = "bedrock-agent-runtime"
KENDRA_SERVICE = "kendra"
NO_PASSAGES_ANSWER = "No passage in the indexed documents answers this question."
# A passage number: a few digits (int() refuses 4,301 and more, and no answer has that many passages).
_CITATION_MARK = re.compile(r"\[(\d{1,6})\]")


def answer_from_knowledge_base(
    client: Any,
    *,
    knowledge_base_id: str,
    model_arn: str,
    prompt: str,
    question: str,
    max_passages: int,
    max_answer_tokens: int,
    deadline: Deadline,
) -> Answer:
    """RetrieveAndGenerate: Bedrock retrieves passages and generates a cited answer, instructed by
    the workload's ``prompt`` and the rules every answer keeps (contract.knowledge_base_template)."""
    # The model acts on the caller's question: its rejection is the caller's to see.
    with call(KNOWLEDGE_BASE_SERVICE, caller_facing=True), within(deadline):
        response = client.retrieve_and_generate(
            input={"text": question},
            retrieveAndGenerateConfiguration={
                "type": "KNOWLEDGE_BASE",
                "knowledgeBaseConfiguration": {
                    "knowledgeBaseId": knowledge_base_id,
                    "modelArn": model_arn,
                    "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": max_passages}},
                    "generationConfiguration": {
                        "promptTemplate": {"textPromptTemplate": knowledge_base_template(prompt)},
                        "inferenceConfig": {"textInferenceConfig": {"maxTokens": max_answer_tokens, "temperature": 0}},
                    },
                },
            },
        )
    # The answer is the upstream's, of any shape: without its text it is RetrieveAndGenerate's
    # failure (a 502); a reference of another shape than the API's is left out.
    answer = value_at(response, "output.text")
    if not isinstance(answer, str) or not answer.strip():  # no answer: nothing to return but a 200 of nothing
        raise invalid_response(KNOWLEDGE_BASE_SERVICE)
    citations: list[Citation] = []
    seen: set[tuple[str | None, str]] = set()
    references = (
        reference
        for citation in _items(value_at(response, "citations"))
        for reference in _items(value_at(citation, "retrievedReferences"))
    )
    for reference in references:
        excerpt = _excerpt(_string(value_at(reference, "content.text")) or "")
        uri = _reference_uri(value_at(reference, "location"))
        if (uri, excerpt) not in seen:
            seen.add((uri, excerpt))
            citations.append(Citation(number=len(citations) + 1, excerpt=excerpt, uri=uri))
        if len(citations) == max_passages:  # no more passages were retrieved: an answer claiming more is cut
            break
    return Answer(source=Source.KNOWLEDGE_BASE, answer=answer, citations=citations)


def answer_from_kendra(
    kendra: Any,
    bedrock: Any,
    *,
    index_id: str,
    model_arn: str,
    prompt: str,
    question: str,
    max_passages: int,
    max_answer_tokens: int,
    deadline: Deadline,
) -> Answer:
    """Kendra Retrieve for passages, then Bedrock Converse over them, the workload's ``prompt`` and
    the rules every answer keeps as its system prompt (contract.converse_system_prompt); cites
    passages by number."""
    with call(KENDRA_SERVICE, caller_facing=True), within(deadline):  # the caller's question, searched
        retrieved = kendra.retrieve(IndexId=index_id, QueryText=question, PageSize=max_passages)
    found = value_at(retrieved, "ResultItems")
    if found is not None and not isinstance(found, list):  # Retrieve's answer, of another shape
        raise invalid_response(KENDRA_SERVICE)
    # (An item of another shape than the API's is left out, a field of another type read as absent.)
    items = [item for item in _items(found) if isinstance(item, dict)][:max_passages]
    contents = [_string(item.get("Content")) or "" for item in items]
    passages = [
        Citation(
            number=number,
            excerpt=_excerpt(content),
            uri=locator_text(item.get("DocumentURI")),
            title=locator_text(item.get("DocumentTitle")),
        )
        for number, (item, content) in enumerate(zip(items, contents, strict=True), start=1)
    ]
    if not passages:
        return Answer(source=Source.KENDRA, answer=NO_PASSAGES_ANSWER, citations=[])

    context = "\n\n".join(
        f"[{p.number}] {p.title or 'untitled'}\n{content}" for p, content in zip(passages, contents, strict=True)
    )
    # One model, the deployment's: nothing to fall back to (botocore retries it once, in what is
    # left of the deadline after Retrieve).
    with within(deadline):
        answered = converse(
            bedrock,
            [model_arn],
            deadline=deadline.at,
            clock=deadline.clock,
            system=[{"text": converse_system_prompt(prompt)}],
            messages=[
                {
                    "role": "user",
                    "content": [{"text": f"<passages>\n{context}\n</passages>\n\n<question>\n{question}\n</question>"}],
                }
            ],
            inferenceConfig={"maxTokens": max_answer_tokens, "temperature": 0},
        )
    try:
        text = answered.text
    except (KeyError, TypeError, AttributeError):  # an answer of another shape than Converse's
        raise invalid_response(CONVERSE_SERVICE) from None
    if not text.strip():  # no text (a tool call it was given no tools for, or nothing): no answer
        raise invalid_response(CONVERSE_SERVICE)
    return Answer(source=Source.KENDRA, answer=text, citations=cited_passages(text, passages))


def cited_passages(text: str, passages: list[Citation]) -> list[Citation]:
    """The passages the answer cites as [n]; all of them when it cites none it was given."""
    cited = {int(mark) for mark in _CITATION_MARK.findall(text)}
    chosen = [p for p in passages if p.number in cited]
    return chosen or passages


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _reference_uri(location: Any) -> str | None:
    for key in ("s3Location", "webLocation", "confluenceLocation", "salesforceLocation", "sharePointLocation"):
        if isinstance(location, dict) and key in location:
            return locator_text(value_at(location[key], "uri")) or locator_text(value_at(location[key], "url"))
    return None


def _items(value: Any) -> list[Any]:
    """A list the upstream answered, or none when it answered something else."""
    return value if isinstance(value, list) else []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None
