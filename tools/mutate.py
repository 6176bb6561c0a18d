"""Mutation testing over the money and access paths and the hostile-input readers (`make mutate`), with mutmut.

Each target is code that decides who pays or who may call what, or that reads what another
system sends (legacy APIs, web pages, pulled and pushed records), with the test files that
exercise it. mutmut changes one thing at a time in a copy of that code (a ``<`` for a ``<=``, a
dropped argument, a string made ``"XXfooXX"``) and runs the tests that reach the changed function;
a change no test notices *survives*. Some survivors cannot be noticed because the change means the
same thing (an *equivalent* mutant): those are listed in EQUIVALENT with the reason, and excluded
from the score. The score of a module is killed / (all mutants - equivalents).

mutmut names a mutant after its module path, and strips only ``src/`` from it; the handlers here
import as ``ai_gateway.ledger`` (``lambdas/`` is on the path), so the run happens in a work folder
(build/mutate) where ``src`` is ``lambdas``. The report goes to docs/mutation.md: a run rewrites the
rows and section of the targets it ran and keeps the others' (each says the commit its code was
measured at). The exit code is 1 when a module is under the floor or a listed equivalent is stale
(killed, or no longer generated) or has moved (its number now names another change than the diff the
previous report shows for it).

    python tools/mutate.py                      # every target, from scratch
    python tools/mutate.py --target ledger      # one target (make mutate TARGET=ledger)
    python tools/mutate.py --report [--target]  # the report of the last run, without running again
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"  # one folder per set of targets run
MUTMUT = Path(sys.executable).with_name("mutmut")
REPORT = ROOT / "docs" / "mutation.md"
FLOOR = 0.95

# What the tests need beside the code under test (read from the work folder's copy).
SUPPORT = ("tests", "stacks", "workloads", "evals", "tools", "cdk.json", "app.py", "package.json")


@dataclass(frozen=True)
class Target:
    modules: tuple[str, ...]  # under lambdas/
    tests: tuple[str, ...]  # the test files that exercise them


TARGETS = {
    "ledger": Target(
        modules=("ai_gateway/ledger.py",),
        tests=(
            "tests/lambdas/test_ai_gateway_ledger.py",
            "tests/lambdas/test_ai_gateway.py",
            "tests/lambdas/test_ledger_pending.py",
            "tests/lambdas/test_sweeper.py",
            "tests/lambdas/test_ai_gateway_metering.py",
            "tests/lambdas/test_streaming.py",
        ),
    ),
    "admission": Target(
        modules=("ai_gateway/flow.py",),
        tests=(
            "tests/lambdas/test_ai_gateway.py",
            "tests/lambdas/test_ai_gateway_agents.py",
            "tests/lambdas/test_ai_gateway_critical_path.py",
            "tests/lambdas/test_ai_gateway_fallback.py",
            "tests/lambdas/test_ai_gateway_ledger.py",
            "tests/lambdas/test_ai_gateway_metering.py",
            "tests/lambdas/test_jobs.py",
            "tests/lambdas/test_openai_clients.py",
            "tests/lambdas/test_openai_compat.py",
            "tests/lambdas/test_streaming.py",
            "tests/lambdas/test_telemetry.py",
        ),
    ),
    "jobs": Target(
        modules=("ai_gateway/jobs.py", "ai_gateway/worker.py"),
        tests=(
            "tests/lambdas/test_jobs.py",
            "tests/lambdas/test_jobs_exact.py",
            "tests/lambdas/test_worker_exact.py",
            "tests/lambdas/test_fuzz_events_jobs.py",
            "tests/lambdas/test_fuzz_job_items.py",
            "tests/lambdas/test_sweeper.py",
            "tests/lambdas/test_entry_points.py",
        ),
    ),
    "transcript": Target(
        modules=("ai_gateway/transcript.py",),
        tests=(
            "tests/lambdas/test_ai_gateway_transcript_store.py",
            "tests/lambdas/test_ai_gateway_critical_path.py",
            "tests/lambdas/test_ai_gateway.py",
        ),
    ),
    "interceptors": Target(
        modules=("tool_guard/handler.py", "shared/passage.py"),
        tests=(
            "tests/lambdas/test_tool_binding.py",
            "tests/lambdas/test_tool_guard_arguments.py",
            "tests/lambdas/test_tool_guard_hostile.py",
            "tests/lambdas/test_tool_guard_limits.py",
            "tests/lambdas/test_tool_guard_passage.py",
            "tests/lambdas/test_passage.py",
        ),
    ),
    "authorizer": Target(
        modules=("gateway_authorizer/handler.py", "shared/tokens.py", "shared/bearer.py", "shared/deadline_http.py"),
        tests=(
            "tests/lambdas/test_entry_points.py",
            "tests/lambdas/test_gateway_identity.py",
            "tests/lambdas/test_hostile_jwks.py",
            "tests/lambdas/test_deadline_http.py",
            "tests/lambdas/test_hostile_inputs.py",
            "tests/lambdas/test_tool_binding.py",
        ),
    ),
    "bodies": Target(
        modules=("shared/bodies.py",),
        tests=(
            "tests/lambdas/test_bodies.py",
            "tests/lambdas/test_hostile_inputs.py",
            "tests/lambdas/test_connectors.py",
            "tests/lambdas/test_connector_hostile.py",
            "tests/lambdas/test_tool_messages_bounded.py",
        ),
    ),
    "legacy": Target(
        modules=("shared/legacy_client.py", "legacy_tools/adapters.py", "legacy_tools/shaping.py"),
        tests=(
            "tests/lambdas/test_legacy_client.py",
            "tests/lambdas/test_legacy_shaping.py",
            "tests/lambdas/test_legacy_tools.py",
            "tests/lambdas/test_legacy_tools_budget.py",
            "tests/lambdas/test_legacy_hostile.py",
            "tests/lambdas/test_legacy_hostile_callers.py",
            "tests/lambdas/test_connectors.py",
            "tests/lambdas/test_connector_resume.py",
            "tests/lambdas/test_fuzz_tools.py",
        ),
    ),
    "web": Target(
        modules=("web_mcp/addresses.py", "web_mcp/fetch.py", "web_mcp/readable.py"),
        tests=(
            "tests/lambdas/test_web_mcp.py",
            "tests/lambdas/test_web_fetch_exact.py",
            "tests/lambdas/test_web_readable_exact.py",
            "tests/lambdas/test_web_readable_hidden.py",
            "tests/lambdas/test_web_fetch_hostile.py",
            "tests/lambdas/test_web_tool_results.py",
            "tests/lambdas/test_fuzz_web_mcp.py",
            "tests/lambdas/test_agent_web_tools.py",
        ),
    ),
    # What a page's markup hides (web_mcp.hidden), on its own: its tests are seconds, not the web
    # target's minutes.
    "hidden": Target(
        modules=("web_mcp/hidden.py",),
        tests=("tests/lambdas/test_web_readable_hidden.py", "tests/lambdas/test_web_readable_exact.py"),
    ),
    "connectors": Target(
        modules=("connector_pull/handler.py", "connector_push/handler.py", "shared/landing.py"),
        tests=(
            "tests/lambdas/test_connectors.py",
            "tests/lambdas/test_connector_hostile.py",
            "tests/lambdas/test_connector_pull_shapes.py",
            "tests/lambdas/test_connector_resume.py",
            "tests/lambdas/test_fuzz_connector_push.py",
            "tests/lambdas/test_entry_points.py",
            "tests/lambdas/test_http_event_shapes.py",
        ),
    ),
    "knowledge": Target(
        modules=("knowledge_search/handler.py", "shared/display.py"),
        tests=(
            "tests/lambdas/test_knowledge_search.py",
            "tests/lambdas/test_knowledge_search_hostile.py",
            "tests/lambdas/test_fuzz_tools.py",
            "tests/lambdas/test_tool_messages_bounded.py",
            "tests/lambdas/test_entry_points.py",
        ),
    ),
    "agent": Target(
        modules=("agent/app.py", "agent/turn.py", "agent/memory.py"),
        # Not the agent's fuzz tests (a minute of HTTP each time a mutant reaches the body's reading):
        # what they would find is pinned by exact tests here.
        tests=(
            "tests/lambdas/test_agent.py",
            "tests/lambdas/test_agent_app_exact.py",
            "tests/lambdas/test_agent_memory_exact.py",
            "tests/lambdas/test_agent_turn_exact.py",
            "tests/lambdas/test_agent_hostile.py",
            "tests/lambdas/test_agent_spans.py",
            "tests/lambdas/test_agent_web_tools.py",
            "tests/lambdas/test_hostile_jwks.py",
        ),
    ),
    "classification": Target(
        modules=("ingestion/pipeline.py", "ingestion/pii.py", "ingestion/copies.py"),
        tests=(
            "tests/lambdas/test_ingestion.py",
            "tests/lambdas/test_ingestion_documents.py",
            "tests/lambdas/test_ingestion_hostile.py",
            "tests/lambdas/test_ingestion_ocr.py",
        ),
    ),
}

# Survivors that mean the same as the code they mutate, by mutmut's name, with the reason.
EQUIVALENT: dict[str, str] = {
    # ai_gateway/ledger.py: DynamoDB's expression keywords are case-insensitive
    "ai_gateway.ledger.xǁLedgerǁdeliver__mutmut_24": "'set' for 'SET' in an update expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁdeliver__mutmut_27": "'remove' for 'REMOVE' in an update expression: the same",
    "ai_gateway.ledger.xǁLedgerǁrelease__mutmut_40": "'set'/'remove' for 'SET'/'REMOVE': the same expression",
    "ai_gateway.ledger.xǁLedgerǁrelease__mutmut_46": "'and' for 'AND' in a condition expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁrelease__mutmut_118": "'add' for 'ADD' in an update expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁadmit__mutmut_149": "'or' for 'OR' in a condition expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁadmit__mutmut_187": "'add'/'set' for 'ADD'/'SET' in an update expression: the same",
    "ai_gateway.ledger.xǁLedgerǁadmit__mutmut_193": "'or' for 'OR' in a condition expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁbegin_delivery__mutmut_24": "'set' for 'SET' in an update expression: the same",
    "ai_gateway.ledger.xǁLedgerǁbegin_delivery__mutmut_27": "'in' for 'IN' in a condition expression: the same",
    "ai_gateway.ledger.xǁLedgerǁdeliver__mutmut_30": "'in' for 'IN' in a condition expression: the same expression",
    "ai_gateway.ledger.xǁLedgerǁsettle_delivering__mutmut_10": "'set'/'remove' for 'SET'/'REMOVE': the same expression",
    "ai_gateway.ledger.xǁLedgerǁpending__mutmut_27": "'and' for 'AND' in a key condition: the same expression",
    "ai_gateway.ledger.xǁLedgerǁunlist_settled__mutmut_10": "'remove' for 'REMOVE' in an update expression: the same",
    "ai_gateway.ledger.xǁLedgerǁunlist_settled__mutmut_13": "'and not ... in' for 'AND NOT ... IN' in a condition "
    "expression: the same",
    "ai_gateway.ledger.xǁLedgerǁpending__mutmut_9": "a first page's start '' for None: start is read only as "
    "`if start`, where both are false, and each page sets it again",
    "ai_gateway.ledger.x_pending_shard__mutmut_8": "int.from_bytes without a byte order: 'big' is its default",
    "ai_gateway.ledger.x_pending_shard__mutmut_9": "five digest bytes for four: another even spread over the shards, "
    "and the sweeper reads every shard",
    **{
        f"ai_gateway.ledger.xǁLedgerǁpending__mutmut_{n}": "a Query answer always has Items (empty when none): "
        "the default is never read"
        for n in (49, 51)
    },
    **{
        f"ai_gateway.ledger.xǁLedgerǁ_settle_listed__mutmut_{n}": "a default for a ClientError's Error, which "
        "botocore always sets: never read"
        for n in (33, 35)
    },
    # ai_gateway/flow.py
    "ai_gateway.flow.x__newest__mutmut_9": "start is 0 only when every turn has the last turn's role, and the "
    "last turn is the caller's (both chat routes refuse a conversation ending otherwise; the OpenAI route puts "
    "its system texts first): turns[-1] is never the assistant's, so >= 0 adds nothing",
    "ai_gateway.flow.xǁFlowǁ_screen_turns__mutmut_28": "when the transcript holds every text before start, "
    "_run_start(turns, start) is start: _newest always returns the first index of a run of one role",
    **{
        f"ai_gateway.flow.xǁFlowǁ_screen_turns__mutmut_{n}": "zip(strict=...) of the turns and their screened "
        "texts: the screen answers one text per text sent (or raises), so there is one per turn"
        for n in (58, 61, 62)
    },
    **{
        f"ai_gateway.flow.xǁFlowǁ{name}__mutmut_1": "marked's default True: every caller that passes no marked "
        "releases a request it never marked delivering (admission is once per request id, so no other function "
        "holds one marked), and the ledger releases an admitted request either way"
        for name in ("_release", "_release_quietly")
    },
    "ai_gateway.flow.xǁFlowǁ_withhold__mutmut_1": "the record's default '' for None: it is read only as "
    "`(record or {})`, where both are false",
    **{
        f"ai_gateway.flow.xǁFlowǁ_withhold__mutmut_{n}": "the service an unreadable record's UpstreamError names: "
        "the error is caught in the very method and never seen (the delivery's own failure is the one raised)"
        for n in (8, 9, 10)
    },
    "ai_gateway.flow.xǁFlowǁ_withhold__mutmut_18": "released None for False after a failed release: read only "
    "as a truth value (`if released`, and the log's units wording)",
    "ai_gateway.flow.xǁFlowǁ_from_agent__mutmut_70": "the conversation agent_turn gets only re-correlates the "
    "request's recorder for the tool stages, and the output guardrail's stage, which follows every agent turn "
    "in complete(), sets the request's own id again before its documents are written",
    # ingestion/pipeline.py
    **{
        f"ingestion.pipeline.xǁPipelineǁ{name}": "a status or reason reset (or kept) that every later path "
        "sets again (curated, quarantined, gone, superseded) before the record is written or returned"
        for name in (
            *(f"ocr_finished__mutmut_{n}" for n in (8, 9, 14, 15, 19, 20)),
            *(f"process__mutmut_{n}" for n in (37, 38, 49, 50)),
        )
    },
    "ingestion.pipeline.xǁPipelineǁocr_finished__mutmut_11": "the OCR job id reset to None: the registry drops "
    "None as it drops '', and nothing after reads the record's job",
    "ingestion.pipeline.xǁPipelineǁocr_finished__mutmut_12": "the sequencer reset to None: the registry drops it, "
    "and ordering reads the event's sequencer (source_ref took it before the reset), not the record's",
    "ingestion.pipeline.xǁPipelineǁocr_finished__mutmut_16": "reason_code not reset: a pending version has none "
    "(_start_ocr records none, and only an ocr_pending version gets here), so it is '' either way",
    "ingestion.pipeline.xǁPipelineǁ_start_ocr__mutmut_3": "[:65] of a 64-character hex digest is the digest",
    "ingestion.pipeline.xǁPipelineǁ_ocr_text__mutmut_7": "a first page token '' for None: both falsy where read",
    "ingestion.pipeline.xǁPipelineǁ_ocr_text__mutmut_61": "a missing page count read as 1 for 0: both under any "
    "usable page limit",
    **{
        f"ingestion.pipeline.xǁPipelineǁ_superseded__mutmut_{n}": "the '?' shown for a missing version: a newer "
        "current state always has a version"
        for n in (6, 8, 11)
    },
    **{
        f"ingestion.pipeline.xǁPipelineǁ{name}": "a default for an AWS response field the service always sends "
        "(Metadata, ContentLength, a ClientError's Error, a versioned bucket's VersionId)"
        for name in (
            *(f"_run__mutmut_{n}" for n in (31, 33, 73, 75)),
            *(f"_head__mutmut_{n}" for n in (10, 12)),
            *(f"_put__mutmut_{n}" for n in (12, 14, 18)),
        )
    },
    "ingestion.pipeline.xǁPipelineǁ_run__mutmut_79": "a scan of '' for None: both falsy where read",
    "ingestion.pipeline.xǁPipelineǁ_fields__mutmut_36": "zip(strict=False) after the lengths were compared",
    "ingestion.pipeline.xǁPipelineǁ_settle__mutmut_1": "_settle is called with all of current, ref and key or none",
    "ingestion.pipeline.xǁPipelineǁ_settle__mutmut_2": "as above",
    **{
        f"ingestion.pipeline.xǁPipelineǁ_fields__mutmut_{n}": "zip without strict: the line before returns "
        "when the lengths differ"
        for n in (32, 35)
    },
    **{
        f"ingestion.pipeline.x_named_under__mutmut_{n}": "'', '.' or '..' left out of the check: the "
        "strip('.') or 'object' line after it turns each into 'object' anyway (the stand-ins 'XXXX', 'XX.XX' and "
        "'XX..XX' are mutmut's markers, not names the check is about)"
        for n in (5, 6, 7)
    },
    "ingestion.pii.x_chunks__mutmut_34": "a cut at 0 happens only on a one-character piece and ends it the same",
    "ingestion.pii.x__fit__mutmut_2": "< for <= on an exact fit: the same text decodes",
    # ai_gateway/jobs.py, ai_gateway/worker.py
    **{
        f"ai_gateway.jobs.xǁJobStoreǁ{name}": "'set'/'remove' for 'SET'/'REMOVE' in an update expression: the same"
        for name in ("_end__mutmut_22", "claim__mutmut_21")
    },
    **{
        f"ai_gateway.jobs.xǁJobStoreǁ{name}": "a default for a ClientError's Error, which botocore always sets: "
        "never read"
        for name in ("_end__mutmut_49", "_end__mutmut_51", "claim__mutmut_50", "claim__mutmut_52")
    },
    "ai_gateway.worker.x_run__mutmut_52": "None for False: delivered is read only as true or false",
    # ai_gateway/transcript.py
    **{
        f"ai_gateway.transcript.xǁ{name}": "zip(strict=...) of texts and their digests: chain() gives one "
        "digest per text"
        for name in (
            *(f"Knownǁprefix__mutmut_{n}" for n in (4, 7, 9)),
            *(f"Transcriptsǁwrite__mutmut_{n}" for n in (9, 12, 13)),
        )
    },
    "ai_gateway.transcript.xǁTranscriptsǁread__mutmut_20": "_parse of no item reads as empty as well (indexing "
    "None is a TypeError it catches)",
    # knowledge_search/handler.py
    **{
        f"knowledge_search.handler.x__retrieve__mutmut_{n}": "the service name of a failed Retrieve's "
        "UpstreamError: the tool's error and log line name the failure by its code only"
        for n in (1, 2, 3)
    },
    **{
        f"knowledge_search.handler.x_search__mutmut_{n}": "the name of the arguments as a whole, used only for "
        "a problem at the top level: arguments reach validation as an object (lambda_handler passes {} for any "
        "other event), so every problem names a field"
        for n in (51, 53, 54)
    },
    # tool_guard/handler.py
    **{
        f"tool_guard.handler.x__filtered_body__mutmut_{n}": "NaN allowed when the filtered answer is written: "
        "_parsed refused NaN and the infinities before, so there is none to write"
        for n in (11, 13, 21)
    },
    "tool_guard.handler.x__whole_json__mutmut_2": "any text read as JSON first: one that is not an object or a "
    "list is refused either way (a scalar is no answer; as SSE it holds no events), only the error's framing differs",
    "tool_guard.handler.x__id_key__mutmut_3": "ids are keyed only from int and str values (bool excluded by the "
    "exact type check) and no int equals a str, so the type name never tells two keys apart",
    "tool_guard.handler.xǁListingǁof__mutmut_3": "unknown_listing is read only as `not unknown_listing`, where "
    "None and False are the same",
    "tool_guard.handler.xǁRefusalǁ__init____mutmut_1": "a Refusal's exception text is never read: each is caught "
    "in intercept and answered from its code and message",
    "tool_guard.handler.x__on_batch__mutmut_53": "zip(strict=...) over a batch and its refusals, built one per "
    "message in one loop: always the same length",
    "tool_guard.handler.x__on_batch__mutmut_56": "as above",
    "tool_guard.handler.x__on_batch__mutmut_57": "as above",
    "tool_guard.handler.x__on_response__mutmut_54": "a refusal leaves _filtered_body only for an answer that is "
    "not an object, whose echoed id is None either way",
    "tool_guard.handler.x__sse_events__mutmut_20": "an empty or comment SSE line not skipped has field name '', "
    "neither data nor a kept field, so it is ignored anyway",
    "tool_guard.handler.x__sse_events__mutmut_23": "as above, for a comment line",
    "tool_guard.handler.x__filtered_stream__mutmut_9": "allow_nan of an event _parsed read (or an error built "
    "here): no NaN or infinity is there to write",
    "tool_guard.handler.x__filtered_stream__mutmut_11": "as above",
    "tool_guard.handler.x__filtered_stream__mutmut_18": "as above",
    "tool_guard.handler.x__not_a_number__mutmut_1": "the ValueError's text is never read: _parsed turns any "
    "ValueError into the same unreadable-list refusal",
    "tool_guard.handler.x__finite__mutmut_5": "as above",
    **{
        f"tool_guard.handler.x__came_through_the_gateway__mutmut_{n}": "the UpstreamError's service name is never "
        "read: only its code is logged"
        for n in (16, 20, 21)
    },
    # shared/passage.py
    "shared.passage.xǁPassageIssuerǁ__call____mutmut_20": "rstrip('XX=XX') strips X too, but an unpadded "
    "HMAC-SHA-256 MAC in base64url ends in one of AEIMQUYcgkosw048 (its last 2 bits are zero): never an X",
    "shared.passage.xǁ_Boundedǁput__mutmut_4": "popitem(last=None): None and False are the same to it (the "
    "oldest goes)",
    # shared/bearer.py, shared/tokens.py
    "shared.bearer.x_bearer__mutmut_3": "partition -> rpartition on the first space: one space splits the same; "
    "with more, the token (original) or the scheme (mutant) holds a space, and both refuse 'no bearer token'",
    "shared.bearer.x_bearer__mutmut_6": "a header that is not text read as 'XXXX' instead of '': both are "
    "no bearer token",
    # gateway_authorizer/handler.py
    "gateway_authorizer.handler.x__methods_of__mutmut_7": "a method ARN that is not text read as API 'XXXX' for '': "
    "its stage is still '', refused the same",
    "gateway_authorizer.handler.x__methods_of__mutmut_8": "the separator of a method ARN that is not text: never read",
    "gateway_authorizer.handler.x__methods_of__mutmut_9": "a method ARN that is not text read as stage 'XXXX' for '': "
    "its API is still '', refused the same",
    # shared/tokens.py (the JWKS fetch)
    **{
        f"shared.tokens.xǁBoundedJWKClientǁ_read__mutmut_{n}": "`redirect` None, left out or True: the pool "
        "has retries=False, so urllib3 answers a redirect as it came whatever `redirect` says "
        "(test_a_redirect_is_not_followed_even_to_a_key_set)"
        for n in (19, 25, 31)
    },
    "shared.tokens.xǁBoundedJWKClientǁ_read__mutmut_20": "preload_content None for False: urllib3 preloads "
    "only when it is true (test_a_huge_answer_is_read_a_chunk_at_a_time_up_to_the_bound)",
    "shared.tokens.xǁBoundedJWKClientǁ_read__mutmut_21": "decode_content None for False: urllib3 decodes only "
    "when it is true (test_a_key_set_compressed_though_not_asked_for_is_not_inflated)",
    "shared.tokens.xǁBoundedJWKClientǁ_read__mutmut_29": "'get' for 'GET': urllib3 sends the method upper-cased",
    **{
        f"shared.tokens.xǁBoundedJWKClientǁ_read__mutmut_{n}": "the size of each read (all that is there, 17 KiB, "
        "16,400 bytes): the byte cap is checked on the running total after every read, and every socket read "
        "is held to the deadline, whatever its size"
        for n in (37, 39, 40)
    },
    # shared/deadline_http.py
    **{
        f"shared.deadline_http.xǁ_DeadlineResponseǁ__init____mutmut_{n}": "http.client makes a response with "
        "the socket and method= only (no other positional argument), and a method of None reads an answer as "
        "GET's and POST's are read: the clients send no HEAD"
        for n in (3, 4)
    },
    # agent/app.py
    "agent.app.x__readable_body__mutmut_17": "Starlette's headers are read case-insensitively: 'CONTENT-LENGTH' "
    "is 'content-length'",
    "agent.app.x__readable_body__mutmut_18": "the length read when none is declared: 'XXXX', like '', is not "
    "digits, so nothing is refused before the body is counted",
    **{
        f"agent.app.x__readable_body__mutmut_{n}": "the body returned beside a refusal: a refused request's body is "
        "never read (the middleware answers the refusal)"
        for n in (39, 52)
    },
    "agent.app.xǁReadableBodyǁ__call____mutmut_27": "the receive handed on with GET or HEAD /ping: the SDK's ping "
    "handler never reads a request body",
    "agent.app.xǁReadableBodyǁ__call____mutmut_32": "the body's first value: a request that is not refused has it "
    "replaced by the body read before anything reads it",
    "agent.app.xǁReadableBodyǁ__call____mutmut_45": "the receive handed to a JSONResponse: Starlette's responses "
    "only send",
    "agent.app.xǁReadableBodyǁ__call____mutmut_56": "replayed None for False: read only for its truth",
    **{
        f"agent.app.x__misrouted__mutmut_{n}": "the case of the Allow header's name: HTTP header names are "
        "case-insensitive (Starlette writes them lowercase)"
        for n in (38, 39)
    },
    "agent.app.xǁRefusedErrorǁ__init____mutmut_1": "the exception's own text: a refusal is read by its fields "
    "(status, error, message), never as str()",
    "agent.app.xǁServiceǁ_caller__mutmut_39": "the group of a token without one: 'XXXX', like '', names no group "
    "(group names are lowercase kebab-case), so the caller is refused alike",
    **{
        f"agent.app.x__messages__mutmut_{n}": "the role of a prompt's message: it is the turn's last message, of "
        "which run_turn passes only the content (Strands makes it the user's)"
        for n in (6, 7, 8, 9)
    },
    "agent.app.x__listed__mutmut_3": "the first page as the list the others are added to: += extends that same "
    "list object, which nothing else reads",
    # agent/turn.py
    **{
        f"agent.turn.x_run_turn__mutmut_{n}": "a sampling setting the caller did not send passed as None: Strands' "
        "BedrockModel leaves a None out of inferenceConfig (the exact inferenceConfig test finds it absent either way)"
        for n in (27, 32)
    },
    "agent.turn.x_run_turn__mutmut_121": "the models _model falls back on when a turn is cut at max_tokens: a "
    "model call was made, so the strategy has selected a model and the list is not read",
    **{
        f"agent.turn.x__invoke_by__mutmut_{n}": "how long one real wait between looks at the clock lasts: a full "
        "POLL_SECONDS (50 ms) instead of what is left of it, so a turn may answer up to 50 ms late; no outcome on "
        "the injected clock changes, and a test could see it only by timing real waits"
        for n in (39, 40)
    },
    "agent.turn.x__invoke_by__mutmut_44": "the cancelled agent's final message: the agent is discarded once the "
    "turn has answered STOPPED_ANSWER, and nothing reads it",
    "agent.turn.xǁTurnBoundsǁ__init____mutmut_3": "out_of_time None for False: read only for its truth, and "
    "replaced by a bool at the first look at the clock",
    "agent.turn.x__another_model_can_help__mutmut_2": "the service name of the UpstreamError read only for its "
    "kind, which comes from the error's code and status alone",
    **{f"agent.turn.x_run_turn__mutmut_{n}": "typing.cast's type: cast does nothing at run time" for n in (6, 82)},
    **{
        f"agent.turn.x_run_turn__mutmut_{n}": "a default for the final message's content: Strands' final message "
        "always has it"
        for n in (182, 184)
    },
    **{
        f"agent.turn.x_run_turn__mutmut_{n}": "'deadline' among the stops answered STOPPED_ANSWER: a turn stops for "
        "its deadline only when a hook found it out of time, and then the before-model hook cancelled its last "
        "model call with STOPPED_ANSWER as the answer"
        for n in (190, 191)
    },
    **{
        f"agent.turn.x_run_turn__mutmut_{n}": "a default for a usage count: Strands' accumulated usage starts with "
        "inputTokens and outputTokens at 0"
        for n in (129, 131, 135, 138, 140, 144, 214, 216, 220, 223, 225, 229)
    },
    "agent.turn.x__model__mutmut_4": "a routing candidate's name is its model id, never empty (Bedrock takes no "
    "empty model id, and the caller's models are non-empty names)",
    # agent/memory.py
    **{
        f"agent.memory.xǁSessionMemoryǁ{name}__mutmut_{n}": "the service name of a failed call's UpstreamError: "
        "memory logs a failure by its code only"
        for name, numbers in (("history", (3, 4, 5)), ("recall", (11, 12, 13)))
        for n in numbers
    },
    **{
        f"agent.memory.xǁSessionMemoryǁhistory__mutmut_{n}": "zip(strict=...) of a turn's parts and their texts: "
        "one text is read per part, so they are always as many"
        for n in (91, 94, 95)
    },
    # shared/bodies.py
    "shared.bodies.x_check_arguments__mutmut_10": "ensure_ascii None for False: json.dumps reads only its truth, "
    "so the text is written unescaped and encode() meets the surrogate",
    "shared.bodies.x_check_values__mutmut_11": "what a string is replaced with before the count: any text "
    "without separators or brackets counts the same",
    **{
        f"shared.bodies.x_first_problems__mutmut_{n}": "pydantic's url, context and input keys of an error: "
        "nothing reads them (the field, the message and the type are taken by name)"
        for n in (7, 8, 9, 10, 11, 12)
    },
    **{
        f"shared.bodies.x_json_bytes__mutmut_{n}": "where the object and array counts start: lowered (or at the "
        "bound itself) it counts bodies too short to break a bound; raised by these amounts it still starts below "
        "the shortest body that could (a key takes six bytes at least, an item two and the brackets)"
        for n in (7, 12, 13, 14, 15, 16, 18)
    },
    "shared.bodies.x_json_bytes__mutmut_24": "allow_inf_nan left to pydantic_core.from_json's default, which is "
    "True (test_the_counts_run_from_the_smallest_body_that_could_break_one counts a body of NaN)",
    # shared/legacy_client.py
    **{
        f"shared.legacy_client.x__{name}__mutmut_{n}": "the text of a ValueError decode_json catches and "
        "answers with its own 'not JSON': never shown"
        for name, numbers in (("no_constant", (1, 2, 3, 4)), ("finite", (5, 6, 7)))
        for n in numbers
    },
    **{
        f"shared.legacy_client.xǁLegacyClientǁ_left_for_read__mutmut_{n}": "the text of the TimeoutError "
        "urllib3 turns into its ReadTimeoutError, which the client turns into a transport error: never shown"
        for n in (2, 3, 4)
    },
    "shared.legacy_client.x_decode_json__mutmut_4": "'UTF-8' names the codec 'utf-8' names",
    "shared.legacy_client.x__depth__mutmut_2": "the depth of a value that is no container, 1 for 0: only "
    "compared with MAX_JSON_DEPTH, which both are under",
    "shared.legacy_client.x__depth__mutmut_11": "break for continue on a value that is no container: only the "
    "root can be one (children are stacked only when they are containers), and it is then the only item",
    "shared.legacy_client.x__token_fields__mutmut_30": "expires_in <= inf: the parser refuses an infinite "
    "number (_finite), so expires_in is never inf",
    **{
        f"shared.legacy_client.x__unicode__mutmut_{n}": "a codec's name in capitals: Python's codec lookup "
        "ignores case, so UTF-16 is utf-16"
        for n in (10, 14)
    },
    "shared.legacy_client.x_decode_json__mutmut_35": "_unicode on every answer, not only one whose text holds "
    "a surrogate's escape: a value without one is returned as it is (the check only saves the walk)",
    **{
        f"shared.legacy_client.xǁLegacyClientǁ__init____mutmut_{n}": "the held token's first state: _bearer "
        "asks `self._token is None` first, and a token of '' is due at once on a monotonic clock too"
        for n in (8, 9, 10)
    },
    **{
        f"shared.legacy_client.xǁLegacyClientǁget__mutmut_{n}": "a first value that is false either way "
        "(None for False, '' for None) where only its truth is read"
        for n in (9, 11)
    },
    **{
        f"shared.legacy_client.{name}": "a header name in another case: HTTP header names are case-insensitive "
        "(the service's and urllib3's header maps both read them so)"
        for name in (
            *(f"xǁLegacyClientǁget__mutmut_{n}" for n in (23, 24, 26, 27)),
            *(f"xǁLegacyClientǁ_exchange__mutmut_{n}" for n in (26, 27, 46, 47)),
            *(f"xǁLegacyClientǁ_fetch_token__mutmut_{n}" for n in (21, 22, 26, 27)),
            *(f"xǁLegacyClientǁ_read__mutmut_{n}" for n in (8, 9, 21, 22)),
        )
    },
    **{
        f"shared.legacy_client.{name}": "a media type or content coding in capitals: both are case-insensitive "
        "(RFC 9110 8.3.1, 8.4.1)"
        for name in (
            "xǁLegacyClientǁget__mutmut_29",
            "xǁLegacyClientǁ_exchange__mutmut_29",
            "xǁLegacyClientǁ_fetch_token__mutmut_24",
            "xǁLegacyClientǁ_read__mutmut_11",
        )
    },
    "shared.legacy_client.xǁLegacyClientǁget__mutmut_38": "'get' for 'GET': urllib3 sends the method upper-cased",
    **{
        f"shared.legacy_client.xǁLegacyClientǁ{name}": "data is None only for an answer other than 200 "
        "(_exchange reads only a 200's body), so `and` and `or` decide alike"
        for name in ("get__mutmut_69", "_fetch_token__mutmut_41")
    },
    **{
        f"shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_{n}": "redirect, preload_content or "
        "decode_content None for False: urllib3 acts on each only when it is true"
        for n in (14, 15, 16)
    },
    **{
        f"shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_{n}": "decode_content true (or left to its "
        "default, true): _read refuses any Content-Encoding but identity before a byte of the body is read, so "
        "nothing is ever decoded (test_the_client_asks_for_json_without_compression)"
        for n in (24, 38)
    },
    "shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_25": "without the client's Accept-Encoding header, "
    "http.client sends 'Accept-Encoding: identity' itself",
    **{
        f"shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_{n}": "urllib3.Timeout with total=left: each "
        "of connect and read is the smaller of its own and what is left of total, so leaving either out (or "
        "None) bounds it by left all the same"
        for n in (31, 32, 34, 35)
    },
    "shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_39": "complete starts None for False: only its "
    "truth is read",
    **{
        f"shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_{n}": "a 200 read to its end is closed too: "
        "urllib3 has already given its connection back to the pool when the body ended, so close() ends only "
        "the spent response (test_the_token_fetch_and_the_calls_share_one_connection)"
        for n in (53, 54)
    },
    "shared.legacy_client.xǁLegacyClientǁ_exchange__mutmut_55": "the Retry-After returned with a 200: get "
    "reads it only for a 5xx or a 429",
    "shared.legacy_client.xǁLegacyClientǁ_read__mutmut_39": "read1 without a size: one read of at most the "
    "declared length (already held to the cap) or, without one, the buffered reader's buffer; the cap is checked "
    "after every read either way",
    # legacy_tools/adapters.py
    **{
        f"legacy_tools.adapters.x_{name}__mutmut_{n}": "quote(safe='XXXX'): quote never encodes 'X' (an "
        "unreserved character), so the encoding is the same as with safe=''"
        for name, n in (("_chained_segment", 18), ("_segment", 17))
    },
    **{
        f"legacy_tools.adapters.x_get_customer__mutmut_{n}": "the argument name _segment shows only for '', '.' "
        "or '..', which GetCustomer's pattern (^[A-Za-z0-9_-]{1,64}$) refuses first"
        for n in (7, 11, 12)
    },
    # legacy_tools/shaping.py
    "legacy_tools.shaping.x__clip__mutmut_14": "middle = (low + high + 2) // 2 still lies in (low, high] and the "
    "test is monotone, so the search ends at the same low",
    **{
        f"legacy_tools.shaping.x__weight__mutmut_{n}": "the limit passed down for a key or a value changes only "
        "the number returned past the limit (more than the limit either way), never whether a weight is within it"
        for n in (26, 34)
    },
    "legacy_tools.shaping.x_decode_cursor__mutmut_19": "+len % 4 '=' for -len % 4: b64decode ignores padding "
    "beyond what it needs, and a length of 1 mod 4 is no base64 either way",
    "legacy_tools.shaping.x__encoded__mutmut_15": "rstrip('XX=XX'): the payload always ends '\"}', so the "
    "last base64 character before the padding is '9', 'Q' or '0', never 'X'",
    "legacy_tools.shaping.x_fit__mutmut_23": "a first count of 0 cuts nothing: the record was already over the "
    "room, so spare < 0 and the loop goes on to count 1",
    "legacy_tools.shaping.x_fit__mutmut_27": "a last count of len + 1 cuts the same set as len, which did not "
    "fit, so None as before",
    "legacy_tools.shaping.x_fit__mutmut_42": "the cut names' weight exact or limited: they differ only past a "
    "room that spare is already below; a negative room needs a byte_budget under ~170 (the config's least is 512)",
    "legacy_tools.shaping.x_fit__mutmut_68": "'or' for 'and' in naming the clipped fields: a cut value is always "
    "None or a new clipped text (never the original object) and an uncut one is the same object, so both name "
    "the same fields",
    "legacy_tools.shaping.x_page__mutmut_12": "the first 'returned' is replaced in the room's sum and set again "
    "before the page is returned",
    "legacy_tools.shaping.x_single__mutmut_6": "'RECORD' weighs what 'record' does, so the room is the same",
    # web_mcp/addresses.py, web_mcp/fetch.py, web_mcp/readable.py
    "web_mcp.addresses.x_blocked_reason__mutmut_38": (
        "unreachable: an address neither global nor private is in 100.64/10, which the carrier-grade NAT "
        "check refuses first (IPv4 and IPv4-mapped; for IPv6 is_global is not is_private)"
    ),
    "web_mcp.addresses.x_blocked_reason__mutmut_39": "unreachable, as above",
    "web_mcp.addresses.x_parse__mutmut_5": "split('%')[0] is split('%', 1)[0]",
    "web_mcp.addresses.x_parse__mutmut_8": "split('%', 2)[0] is split('%', 1)[0]",
    "web_mcp.fetch.xǁCheckerǁ_host__mutmut_3": (
        "_parts has already refused an empty hostname, so the `or` default is never used"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_7": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_8": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_45": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_46": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_61": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_62": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_75": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_76": (
        "a header name in another case: urllib3's HTTPHeaderDict reads names case-insensitively"
    ),
    "web_mcp.fetch.xǁFetcherǁ_answer__mutmut_78": "a default of 'IDENTITY': it is lower-cased right after",
    "web_mcp.fetch.xǁFetcherǁ_check_length__mutmut_20": (
        "the value has matched [0-9]+, so stripping 'X' as well as '0' changes nothing"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_3": (
        "the pool's read timeout: every read sets the socket's timeout to what is left of the deadline "
        "(shared.deadline_http)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_5": (
        "the pool's read timeout: every read sets the socket's timeout to what is left of the deadline "
        "(shared.deadline_http)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_14": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_16": (
        "cert_reqs None or left out: urllib3 resolves it to CERT_REQUIRED (resolve_cert_reqs)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_19": (
        "without assert_hostname urllib3 verifies server_hostname, the same target.host"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_23": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_24": (
        "the pool's maxsize: each pool carries one request and is closed, so a second slot is never used (1 "
        "is the default)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_25": (
        "cert_reqs None or left out: urllib3 resolves it to CERT_REQUIRED (resolve_cert_reqs)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_28": (
        "without assert_hostname urllib3 verifies server_hostname, the same target.host"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_29": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_30": (
        "the pool's maxsize: each pool carries one request and is closed, so a second slot is never used (1 "
        "is the default)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_36": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_41": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_42": (
        "the pool's maxsize: each pool carries one request and is closed, so a second slot is never used (1 "
        "is the default)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_43": (
        "the pool's retries are only urlopen's default, and urlopen passes retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_pool__mutmut_44": (
        "the pool's maxsize: each pool carries one request and is closed, so a second slot is never used (1 "
        "is the default)"
    ),
    "web_mcp.fetch.xǁFetcherǁ_read__mutmut_5": "received starts None for False: only its truth is read",
    "web_mcp.fetch.xǁFetcherǁ_read__mutmut_26": (
        "one more byte of room to inflate into: a chunk that fills it is refused as too_large either way"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_11": "redirect None for False: urlopen reads only its truth",
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_12": (
        "retries None or left out: urlopen falls back to the pool's retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_13": "preload_content None for False: urllib3 reads only its truth",
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_14": (
        "decode_content None: the response's own setting, false, so nothing is decoded"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_15": (
        "assert_same_host: the request target always starts with '/', which is_same_host accepts"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_20": (
        "retries None or left out: urlopen falls back to the pool's retries=False"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_23": (
        "assert_same_host: the request target always starts with '/', which is_same_host accepts"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_27": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_28": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_30": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_31": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_33": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_34": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_38": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_39": (
        "a header name in another case: HTTP header names are case-insensitive, and urllib3 and http.client "
        "skip their own Host, User-Agent and Accept-Encoding by the lower-case name"
    ),
    "web_mcp.fetch.xǁFetcherǁ_request__mutmut_46": (
        "assert_same_host: the request target always starts with '/', which is_same_host accepts"
    ),
    "web_mcp.readable.x__close_rescans__mutmut_2": (
        "appending None still makes the list non-empty, so bool(seen) is unchanged"
    ),
    "web_mcp.readable.x__close_rescans__mutmut_6": (
        "HTMLParser lowercases tag names, so feeding '<A' behaves exactly like '<a'"
    ),
    "web_mcp.readable.x_cut__mutmut_21": "space is an int, so space > room / 2 is the same test as space > room // 2",
    # web_mcp/hidden.py
    **{
        f"web_mcp.hidden.x__declarations__mutmut_{n}": "a comment's end found at 0 or less: the search starts at "
        "index + 2, so an end it finds is at 2 or more"
        for n in (40, 41)
    },
    "web_mcp.hidden.x__unescaped__mutmut_36": "escapes substituted in a text without a backslash: the pattern "
    "finds none, and the text comes back as it was",
    "web_mcp.hidden.x_hidden_by_markup__mutmut_9": "the value of a hidden attribute written without one: '' and "
    "'XXXX' are both not 'until-found'",
    **{
        f"web_mcp.hidden.x_hidden_by_markup__mutmut_{n}": "a style attribute without a value, or none: '' and "
        "'XXXX' both hold no declaration"
        for n in (19, 23)
    },
    "web_mcp.hidden.x_hidden_by_style__mutmut_5": "a declaration split at its last colon: with one colon the same "
    "split; with more, split at the first its value holds a colon (no escape removes one) and is no keyword, split "
    "at the last its name holds one and is no property read: dropped either way",
    "web_mcp.hidden.x_hidden_by_style__mutmut_40": "the value of a default only its importance is read of",
    "web_mcp.hidden.x_standards_mode__mutmut_50": "the public id of a PUBLIC doctype without one: '' and 'XXXX' "
    "both start with none of the ids that ask for standards mode",
    "web_mcp.hidden.xǁHiddenContentǁ__init____mutmut_4": "standards None for False: read only for its truth",
    "web_mcp.hidden.xǁHiddenContentǁend__mutmut_1": "an end tag past MAX_DEPTH read as shown: every start tag and "
    "all text after are left out (and no element is dropped, as none was when hidden content began), so such an end "
    "tag can only end a line or link the page's end ends the same",
    "web_mcp.hidden.xǁHiddenContentǁ_close__mutmut_10": "the search looking at index -1, the innermost element, once "
    "more: it was looked at first, matched nothing and stopped nothing",
    "web_mcp.readable.x_from_html__mutmut_9": (
        "a base of 'XXXX' has no scheme, so every join is the href itself (or raises), as with ''"
    ),
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_16": "None and False are both false wherever in_title is read",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_18": "None and False are both false wherever titled is read",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_20": "None and False are both false wherever other_title is read",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_22": "None and False are both false wherever in_head is read",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_28": (
        "link_text is read only after <a> sets it to [] (link is None until then)"
    ),
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_29": (
        "_skip with skip_to '' finds it at 0, returns the data unchanged and resets it"
    ),
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_30": "carry is read only in _skip, after _bound has set it",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_31": "carry is read only in _skip, after _bound has set it",
    "web_mcp.readable.xǁ_Extractorǁ__init____mutmut_32": (
        "left_out starts None for False: read only as a truth, and `truncated or left_out or unread` ends on "
        "the bool unread either way"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_end_link__mutmut_9": (
        "the link is never '' (_absolute returns None or a non-empty http(s) URL), so url is always true"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_end_link__mutmut_13": (
        "url is always a non-empty string here, so the condition is always true anyway"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_end_link__mutmut_16": (
        "url is always a non-empty string here, so the else branch never runs"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_skip__mutmut_10": (
        "a longer carry adds only text known to hold no match, so neither the match nor the rest after it changes"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_skip__mutmut_17": "carry is set again by _bound before skip_to is set again",
    "web_mcp.readable.xǁ_Extractorǁflush__mutmut_8": (
        "text is collected only while size + pending < budget, so text implies size < budget"
    ),
    "web_mcp.readable.xǁ_Extractorǁhandle_data__mutmut_9": "None and False are both false wherever in_head is read",
    "web_mcp.readable.xǁ_Extractorǁhandle_endtag__mutmut_6": (
        "None and False are both false wherever in_title and other_title are read"
    ),
    "web_mcp.readable.xǁ_Extractorǁhandle_endtag__mutmut_11": "None and False are both false wherever in_head is read",
    "web_mcp.readable.xǁ_Extractorǁhandle_startendtag__mutmut_2": (
        "None and False are both false wherever in_head is read"
    ),
    "web_mcp.readable.xǁ_Extractorǁ_title_or_head__mutmut_15": (
        "None and False are both false wherever in_head is read"
    ),
    "web_mcp.readable.xǁ_Extractorǁhandle_starttag__mutmut_4": "closed None for False: web_mcp.hidden reads only "
    "its truth",
    "web_mcp.readable.xǁ_Extractorǁparse_marked_section__mutmut_1": "the report argument is never used",
    "web_mcp.readable.xǁ_Extractorǁparse_marked_section__mutmut_14": (
        "HTMLParser tests only k < 0, so -2 is handled as -1"
    ),
    "web_mcp.readable.xǁ_Extractorǁparse_marked_section__mutmut_15": (
        "find from i + 3 returns -1 or a value >= 3, so end <= 0 is end < 0"
    ),
    "web_mcp.readable.xǁ_Extractorǁparse_marked_section__mutmut_16": (
        "find from i + 3 returns -1 or a value >= 3, so end < 1 is end < 0"
    ),
    # connector_pull/handler.py, shared/landing.py
    "connector_pull.handler.x__record__mutmut_55": "the default envelope ('body', 'path') for none: a Record has "
    "no field named path, and its body fails only as a whole value, which both name 'body'",
    "connector_pull.handler.x_pull__mutmut_26": "{None} for set() on a first run: a cursor that is None ends the "
    "run before _follow looks it up",
    "connector_pull.handler.x_pull__mutmut_75": "'' for None: the resume point is read only as true or false",
    **{
        f"connector_pull.handler.x_landed_version__mutmut_{n}": "the metadata's keys unsorted: landing.document "
        "builds them in one fixed order, so a document's version is the same text either way"
        for n in (5, 7, 8)
    },
    "connector_pull.handler.x_landed_version__mutmut_9": "17 digits of the digest for 16: a version is compared "
    "only with versions the same code saved",
    **{
        f"connector_pull.handler.xǁ_Newestǁlanded__mutmut_{n}": "split for rsplit (or two splits for one): a "
        "record id holds no colon (landing.Record's pattern), so a version <id>:<digest> splits the same"
        for n in (11, 12, 14, 22, 23, 25)
    },
    "connector_pull.handler.xǁ_Newestǁlanded__mutmut_32": ">= for >: the stamp equal to the newest took the "
    "branch before",
    "connector_pull.handler.xǁ_Versionsǁ__init____mutmut_7": "the versions kept with no trusted watermark: "
    "lands skips one only if its change's time is also the watermark (None), which no time is",
    **{
        f"connector_pull.handler.xǁ{name}": "'or' for 'OR' in a condition expression: the same"
        for name in ("Leaseǁacquire__mutmut_18", "Watermarksǁclaim__mutmut_19")
    },
    **{
        f"connector_pull.handler.{name}": "a default for a ClientError's Error, which botocore always sets: never read"
        for name in (
            "x__put_if__mutmut_9",
            "x__put_if__mutmut_11",
            "xǁLeaseǁrelease__mutmut_13",
            "xǁLeaseǁrelease__mutmut_15",
        )
    },
    **{
        f"shared.landing.x_document__mutmut_{n}": "a user-metadata key in capitals: S3 keeps (and answers) "
        "user-metadata keys in lower case, as the headers they travel in are case-insensitive"
        for n in (11, 19)
    },
    # ingestion/copies.py
    **{
        f"ingestion.copies.x_in_parts__mutmut_{n}": "the part size: s3transfer's own (8 MiB) copies the same "
        "bytes in more parts; only how soon a copy stopped for time ends differs"
        for n in (2, 4)
    },
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout"}


@dataclass
class Score:
    target: str
    module: str
    killed: int
    survived: list[str]
    equivalent: list[str]
    unchecked: list[str]  # no test reached the function, or the run did not get to it

    @property
    def counted(self) -> int:
        return self.killed + len(self.survived) + len(self.unchecked)

    @property
    def score(self) -> float:
        return self.killed / self.counted if self.counted else 1.0


def prepare(work: Path, targets: dict[str, Target]) -> None:
    """A fresh work folder: ``src`` is lambdas/, the rest is linked; mutmut copies what it needs."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "src").symlink_to(ROOT / "lambdas")
    for name in SUPPORT:
        (work / name).symlink_to(ROOT / name)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject = pyproject.replace('pythonpath = [".", "lambdas"]', 'pythonpath = [".", "src"]')
    if 'pythonpath = [".", "src"]' not in pyproject:
        raise SystemExit('pyproject.toml: expected pythonpath = [".", "lambdas"] under [tool.pytest.ini_options]')
    modules = sorted({f"src/{m}" for t in targets.values() for m in t.modules})
    tests = sorted({test for t in targets.values() for test in t.tests})
    pyproject += "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src"]',
            f"only_mutate = {json.dumps(modules)}",
            f"also_copy = {json.dumps([n for n in SUPPORT if n != 'tests'])}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "tools.mutate", "-q", "-x"]',
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
            "use_git_change_detection = false",
            "",
        ]
    )
    (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")


_FORK_HOOKED = False


def pytest_configure(config: object) -> None:
    """A pytest plugin in the tests of a run (``-p tools.mutate``). mutmut forks each mutant's test
    run from a process that has run the tests already, so a module's thread pool (ai_gateway.flow's
    POOL) arrives in the child with threads that did not survive the fork: work sent to it would
    wait forever, a timeout counted as a kill whatever the mutant. Each child gets its pools afresh."""
    global _FORK_HOOKED  # once per process, however often pytest is configured
    if not _FORK_HOOKED:
        os.register_at_fork(after_in_child=_fresh_pools)
        _FORK_HOOKED = True


def _fresh_pools() -> None:
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if type(value) is ThreadPoolExecutor:  # the same object (default arguments hold it), no threads
                value.__init__(value._max_workers, value._thread_name_prefix, value._initializer, value._initargs)  # type: ignore[misc]


def run(work: Path, max_children: int) -> float:
    started = time.monotonic()
    subprocess.run([str(MUTMUT), "run", "--max-children", str(max_children)], cwd=work, check=True)  # noqa: S603
    return time.monotonic() - started


def scores(work: Path, targets: dict[str, Target]) -> list[Score]:
    found = []
    for target, spec in targets.items():
        for module in spec.modules:
            meta = work / "mutants" / "src" / f"{module}.meta"
            codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            score = Score(target, module, 0, [], [], [])
            for name, code in sorted(codes.items(), key=lambda item: _natural(item[0])):
                status = STATUS.get(code, "unchecked") if code is not None else "unchecked"
                if name in EQUIVALENT and status == "survived":
                    score.equivalent.append(name)
                elif status in ("killed", "timeout"):
                    score.killed += 1
                elif status == "survived":
                    score.survived.append(name)
                else:
                    score.unchecked.append(name)
            found.append(score)
    return found


def stale(found: Iterable[Score], targets: dict[str, Target]) -> list[str]:
    """Listed equivalents of these targets' modules that were killed or are no longer generated."""
    survived = {name for s in found for name in s.equivalent}
    modules = tuple(m.removesuffix(".py").replace("/", ".") + "." for t in targets.values() for m in t.modules)
    return sorted(name for name in EQUIVALENT if name.startswith(modules) and name not in survived)


def moved(diffs: dict[str, str], previous: str) -> list[str]:
    """Listed equivalents whose mutant is another change than the one judged equivalent (its diff
    as the previous report shows it): mutmut numbers a function's mutants in order, so an edit to
    the function gives a listed number to another mutant, which would be excused unread."""
    recorded = dict(re.findall(r"^- `([^`]+)`: .*?\n\n```diff\n(.*?)\n```", previous, flags=re.MULTILINE | re.DOTALL))
    return sorted(name for name, shown in diffs.items() if name in recorded and recorded[name] != shown)


@cache  # the report and the printout show each survivor: mutmut is asked once (a few seconds each)
def diff(work: Path, name: str) -> str:
    shown = subprocess.run([str(MUTMUT), "show", name], cwd=work, capture_output=True, text=True, check=False)  # noqa: S603
    lines = [
        line for line in shown.stdout.splitlines() if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")
    ]
    return "\n".join(lines)


HEADER = f"""# Mutation score of the money and access paths

Written by `make mutate` (tools/mutate.py, mutmut). A module's score is killed mutants over all
mutants but the listed equivalents; the floor is {FLOOR:.0%}. `make mutate TARGET=<name>` re-runs one
target and rewrites its rows and its section; the other targets keep theirs, each with the commit
its code was measured at.

Where it started: the run issue 19 reports (before this tool, 2026-12-03) scored the ledger 89%
and the tool interceptors 80%, with no surviving change that over-admitted a quota or leaked a
tool; each survivor since has a test that kills it or is listed below as equivalent, with why.

| target | module | mutants | killed | equivalent | survived | not reached | score | code at |
|---|---|---:|---:|---:|---:|---:|---:|---|
"""


def report(
    work: Path, found: list[Score], seconds: float | None, commit: str, previous: str, diffs: dict[str, str]
) -> str:
    """The report with these targets' rows and sections; other targets' come from the previous
    report. ``diffs``: the equivalents' (diff())."""
    rows = {target: [line for line in previous.splitlines() if line.startswith(f"| {target} |")] for target in TARGETS}
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", previous, flags=re.MULTILINE | re.DOTALL))
    for target in {s.target for s in found}:
        mine = [s for s in found if s.target == target]
        rows[target] = [
            f"| {s.target} | `lambdas/{s.module}` | {s.counted + len(s.equivalent)} | {s.killed} | "
            f"{len(s.equivalent)} | {len(s.survived)} | {len(s.unchecked)} | {s.score:.1%} | {commit} |"
            for s in mine
        ]
        text = [f"Code at commit {commit}."]
        if seconds is not None:
            text += [f"Run time: {seconds / 60:.1f} min for {_targets(found)} on this machine ({_cores()} cores)."]
        text += ["", "### Equivalent mutants", ""]
        equivalent = [name for s in mine for name in s.equivalent]
        text += [f"- `{n}`: {EQUIVALENT[n]}\n\n```diff\n{diffs[n]}\n```\n" for n in equivalent] or ["None.", ""]
        survivors = [name for s in mine for name in s.survived + s.unchecked]
        text += ["### Survivors", ""]
        text += [f"- `{n}`\n\n```diff\n{diff(work, n)}\n```\n" for n in survivors] or ["None.", ""]
        sections[target] = "\n".join(["", *text])
    table = [row for target in TARGETS for row in rows[target]]
    body = [f"## {target}\n{sections[target].rstrip()}\n" for target in TARGETS if target in sections]
    return HEADER + "\n".join(table) + "\n\n" + "\n".join(body)


def _commit(targets: dict[str, Target]) -> str:
    """HEAD when the run starts, and whether the modules to mutate differ from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)  # noqa: S603
    paths = [f"lambdas/{m}" for t in targets.values() for m in t.modules]
    changed = subprocess.run([*git, "status", "--porcelain", "--", *paths], capture_output=True, text=True, check=False)  # noqa: S603
    return (head.stdout.strip() or "unknown") + (" with uncommitted changes" if changed.stdout.strip() else "")


def _targets(found: list[Score]) -> str:
    names = list(dict.fromkeys(s.target for s in found))
    return "this target" if len(names) == 1 else "the run of " + ", ".join(names)


def _natural(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="only these (default: every one)")
    parser.add_argument("--report", action="store_true", help="report the last run without running again")
    parser.add_argument("--max-children", type=int, default=_cores())
    args = parser.parse_args(argv)
    chosen = args.target or list(TARGETS)
    targets = {name: TARGETS[name] for name in chosen}
    work = WORK / ("all" if args.target is None else "-".join(sorted(chosen)))
    seconds = None
    timing, measured = work / "run-seconds", work / "run-commit"
    if not args.report:
        commit = _commit(targets)
        prepare(work, targets)
        measured.write_text(commit, encoding="utf-8")
        seconds = run(work, args.max_children)
        timing.write_text(f"{seconds:.0f}", encoding="utf-8")
    elif timing.exists():
        seconds = float(timing.read_text(encoding="utf-8"))
    found = scores(work, targets)
    print(f"{'target':<14} {'module':<32} {'mutants':>7} {'survived':>8} {'score':>7}")
    for s in found:
        total = s.counted + len(s.equivalent)
        print(f"{s.target:<14} {s.module:<32} {total:>7} {len(s.survived) + len(s.unchecked):>8} {s.score:>7.1%}")
    if seconds is not None:
        print(f"run time: {seconds / 60:.1f} min")
    problems = [f"{s.module}: {s.score:.1%} < {FLOOR:.0%}" for s in found if s.score < FLOOR]
    problems += [f"equivalent no longer survives (mend EQUIVALENT): {name}" for name in stale(found, targets)]
    previous = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    diffs = {name: diff(work, name) for s in found for name in s.equivalent}
    problems += [f"equivalent is another mutant now (mend EQUIVALENT): {name}" for name in moved(diffs, previous)]
    commit = measured.read_text(encoding="utf-8") if measured.exists() else "unknown"
    REPORT.write_text(report(work, found, seconds, commit, previous, diffs), encoding="utf-8")
    print(f"report: {REPORT.relative_to(ROOT)} ({', '.join(chosen)} rewritten, other targets kept)")
    for name in (n for s in found for n in s.survived + s.unchecked):
        print(f"\nsurvived: {name}\n{diff(work, name)}")
    print("\n".join(problems) or f"every module at or above {FLOOR:.0%}", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
