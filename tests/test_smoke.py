"""make smoke's logic, offline: AWS through botocore's Stubber (real request shapes, any call nobody
expected fails), the Function URL and the AI gateway as real HTTP servers on loopback, a clock that
moves only when the smoke test sleeps."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from botocore.stub import ANY

from ai_gateway.agents import runtime_session_id
from evaluation.evaluator import load_golden_set
from ingestion.pipeline import document_id
from stacks.config import load_config
from tests.aws_stubs import Stubbed
from tests.lambdas.loopback import QuietHandler, loopback
from tools import smoke

RUN = "20261202120000ab12"
WALL = 1_796_212_800.0  # 2026-12-02T12:00:00Z
SUB = "7d1c7a3e-1111-4222-8333-944455556666"
TRACE = "1-6751a2b0-0123456789abcdef01234567"
T0 = "2026-12-02T12:00:00Z"


class Clock:
    """Monotonic time that passes only when the smoke test sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


@dataclass
class Served:
    """What the loopback stand-ins for the Function URL and the gateway saw and will answer."""

    url: str = ""
    group: str = ""  # the caller's group, as GET /v1/usage names it
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    chat_units_used: int = 4
    answer_cites: str = ""
    # The streamed completion's body: Server-Sent Events as the streaming function writes them.
    stream: str = (
        'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"smoke test "}}]}\n\n'
        'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"passed"}}]}\n\n'
        'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )


class GatewayStandIn(QuietHandler):
    """The loopback stand-ins for the sandbox's Function URL and the production gateway; what they
    saw and will answer is ``state`` (a subclass per test sets it)."""

    state: Served

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _signed_in(self) -> bool:
        return self.headers.get("Authorization") == "Bearer access-token"

    def do_GET(self) -> None:
        self.state.requests.append(("GET", self.path, dict(self.headers), None))
        if self.path == "/live/v1/usage" and self._signed_in():
            self._reply(
                200,
                {"group": self.state.group, "quotas": [{"output_type": "chat", "used": self.state.chat_units_used}]},
            )
        elif self.path == "/live/v1/models" and self._signed_in():
            self._reply(200, {"object": "list", "data": [{"id": "amazon.nova-lite-v1:0", "object": "model"}]})
        else:
            self._reply(401, {"error": "unauthorized", "message": "Unauthorized"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.requests.append(("POST", self.path, dict(self.headers), body))
        if self.path == "/query":  # the sandbox's Function URL: IAM auth, SigV4 for service lambda
            if "/lambda/aws4_request" not in self.headers.get("Authorization", ""):
                self._reply(403, {"message": "Forbidden"})
                return
            self._reply(
                200,
                {
                    "source": body["source"],
                    "answer": "quartz",
                    "citations": [{"number": 1, "excerpt": "...", "uri": self.state.answer_cites}],
                },
            )
        elif self.path == "/live/v1/chat/completions" and self._signed_in():
            self._reply(200, self.state.stream, "text/event-stream")
        elif self.path == "/live/v1/chat" and self._signed_in():
            self._chat(body)
        else:
            self._reply(401, {"error": "unauthorized", "message": "Unauthorized"})

    def _chat(self, body: Any) -> None:
        if self.headers.get("X-Evaluation-Case"):
            self._reply(
                200,
                {
                    "output": "Returns within 30 days.",
                    "units": 1,
                    "tool_calls": [{"name": "knowledge___knowledge_search", "ok": True}],
                },
            )
        else:
            self.state.chat_units_used += 1
            self._reply(200, {"output": "smoke test passed", "units": 1, "session_id": body.get("session_id")})


@pytest.fixture
def served() -> Iterator[Served]:
    state = Served()
    with loopback(type("Handler", (GatewayStandIn,), {"state": state})) as url:
        state.url = url
        yield state


@pytest.fixture
def aws() -> Iterator[Stubbed]:
    stubbed = Stubbed()
    yield stubbed
    stubbed.done()


def make_smoke(aws: Stubbed, clock: Clock) -> smoke.Smoke:
    return smoke.Smoke(
        clients=aws, http=smoke.Http(timeout=5), clock=clock, sleep=clock.sleep, wall=lambda: WALL + clock.now
    )


def outputs(**values: str) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "s",
                "StackStatus": "UPDATE_COMPLETE",
                "CreationTime": T0,
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in values.items()],
            }
        ]
    }


def job(status: str, job_id: str = "JOB1", **extra: Any) -> dict[str, Any]:
    return {
        "ingestionJob": {
            "knowledgeBaseId": "KB1",
            "dataSourceId": "DS1",
            "ingestionJobId": job_id,
            "status": status,
            "startedAt": T0,
            "updatedAt": T0,
            **extra,
        }
    }


# --- sandbox -----------------------------------------------------------------------------------


def stub_sandbox(aws: Stubbed, served: Served, *, sync: str = "COMPLETE") -> None:
    aws.stub("cloudformation").add_response(
        "describe_stacks",
        outputs(
            DocumentsBucketName="docs",
            DocumentsPrefix="documents/",
            KnowledgeBaseId="KB1",
            DataSourceId="DS1",
            KendraIndexId="0123456789abcdef0123456789abcdef0123",
            KendraDataSourceId="0123456789abcdef0123456789abcdef0124",
            QueryUrl=f"{served.url}/",
        ),
        {"StackName": "genai-sandbox-support"},
    )
    key = f"documents/smoke/{RUN}.md"
    served.answer_cites = f"s3://docs/{key}"
    s3, agent, kendra = aws.stub("s3"), aws.stub("bedrock-agent"), aws.stub("kendra")
    s3.add_response("put_object", {}, {"Bucket": "docs", "Key": key, "Body": ANY, "ContentType": "text/markdown"})
    agent.add_response("start_ingestion_job", job("STARTING"), {"knowledgeBaseId": "KB1", "dataSourceId": "DS1"})
    agent.add_response(
        "get_ingestion_job",
        job("IN_PROGRESS"),
        {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "ingestionJobId": "JOB1"},
    )
    agent.add_response(
        "get_ingestion_job",
        job(
            sync,
            failureReasons=["Access denied to the documents bucket"] if sync == "FAILED" else [],
            statistics={"numberOfDocumentsScanned": 12},
        ),
        {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "ingestionJobId": "JOB1"},
    )
    ids = {"Id": "0123456789abcdef0123456789abcdef0124", "IndexId": "0123456789abcdef0123456789abcdef0123"}
    # The scheduled sync is running: the smoke test waits for its turn.
    kendra.add_client_error("start_data_source_sync_job", "ResourceInUseException", "a sync job is running", 400)
    kendra.add_response("start_data_source_sync_job", {"ExecutionId": "EX1"}, ids)
    kendra.add_response("list_data_source_sync_jobs", {"History": [{"ExecutionId": "EX1", "Status": "SYNCING"}]}, ids)
    kendra.add_response(
        "list_data_source_sync_jobs",
        {"History": [{"ExecutionId": "EX0", "Status": "FAILED"}, {"ExecutionId": "EX1", "Status": "SUCCEEDED"}]},
        ids,
    )
    s3.add_response("delete_object", {}, {"Bucket": "docs", "Key": key})
    agent.add_response(
        "start_ingestion_job", job("STARTING", "JOB2"), {"knowledgeBaseId": "KB1", "dataSourceId": "DS1"}
    )


def run_sandbox(aws: Stubbed, clock: Clock) -> smoke.Smoke:
    checker = make_smoke(aws, clock)
    smoke.sandbox(
        checker,
        prefix="genai",
        workload="support",
        region="us-east-1",
        run=RUN,
        credentials=Credentials("AKIDEXAMPLE", "secret"),
    )
    return checker


def test_the_sandbox_smoke_test_uploads_syncs_and_gets_cited_answers_then_cleans_up(
    aws: Stubbed, served: Served
) -> None:
    stub_sandbox(aws, served)
    clock = Clock()
    checker = run_sandbox(aws, clock)
    assert [(r.check, r.status) for r in checker.rows] == [
        ("sandbox stack deployed", "PASS"),
        ("upload a document", "PASS"),
        ("sync the Knowledge Base", "PASS"),
        ("cited answer from the Knowledge Base (Function URL, SigV4)", "PASS"),
        ("sync Kendra", "PASS"),
        ("cited answer from Kendra (Function URL, SigV4)", "PASS"),
        ("clean up", "PASS"),
    ]
    assert checker.passed
    asked = [(r[3]["source"], r[3]["question"]) for r in served.requests]
    assert asked == [(s, f"What is the codeword of smoke test {RUN}?") for s in ("knowledge_base", "kendra")]
    assert clock.naps == [smoke.POLL_SECONDS] * 3  # one wait per sync, one for the scheduled Kendra sync
    table = checker.table()
    assert "sync the Knowledge Base" in table
    assert "PASS" in table
    assert "job JOB1 complete" in table


def test_a_failed_sync_fails_its_check_skips_what_needs_it_and_still_cleans_up(aws: Stubbed, served: Served) -> None:
    stub_sandbox(aws, served, sync="FAILED")
    checker = run_sandbox(aws, Clock())
    statuses = {r.check: (r.status, r.detail) for r in checker.rows}
    assert statuses["sync the Knowledge Base"] == (
        "FAIL",
        "ingestion job JOB1 ended FAILED: Access denied to the documents bucket",
    )
    assert statuses["cited answer from the Knowledge Base (Function URL, SigV4)"][0] == "SKIP"
    assert statuses["clean up"][0] == "PASS"  # the Stubber fails the test had the delete not happened
    assert not checker.passed


def test_an_answer_that_cites_something_else_fails(aws: Stubbed, served: Served) -> None:
    stub_sandbox(aws, served)
    served.answer_cites = "s3://docs/documents/handbook.md"
    rows = {r.check: r for r in run_sandbox(aws, Clock()).rows}
    answer = rows["cited answer from the Knowledge Base (Function URL, SigV4)"]
    assert answer.status == "FAIL"
    assert answer.detail.startswith("no citation of the smoke document among 1")


def test_a_tier_that_is_not_deployed_fails_at_once_by_name(aws: Stubbed) -> None:
    aws.stub("cloudformation").add_client_error(
        "describe_stacks", "ValidationError", "Stack with id genai-sandbox-support does not exist"
    )
    checker = run_sandbox(aws, Clock())
    (row,) = checker.rows
    assert row.status == "FAIL"
    assert "stack genai-sandbox-support is not deployed here" in row.detail


def test_waiting_gives_up_at_its_timeout_without_sleeping_past_it() -> None:
    clock = Clock()
    checker = smoke.Smoke(clients=Stubbed(), http=smoke.Http(), clock=clock, sleep=clock.sleep)
    with pytest.raises(smoke.Failed, match="the job: not within 35 s"):
        checker.wait("the job", lambda: None, timeout=35)
    assert clock.naps == [10.0, 10.0, 10.0]
    assert clock.now <= 35


# --- production --------------------------------------------------------------------------------


def stub_production_stacks(aws: Stubbed, served: Served) -> None:
    """The outputs of the production stacks the smoke test reads."""
    cfn = aws.stub("cloudformation")
    for stack, values in (
        ("identity", {"UserPoolId": "us-east-1_AbCdEf123", "AppClientId": "client123"}),
        ("gateway", {"ApiUrl": f"{served.url}/live/", "GatewayFunctionLogGroup": "/aws/lambda/gateway"}),
        (
            "knowledge",
            {
                "LandingBucketName": "landing",
                "RegistryTableName": "registry",
                "KnowledgeBaseId": "KB1",
                "DataSourceId": "DS1",
            },
        ),
        ("gateway-keys", {}),
    ):
        cfn.add_response("describe_stacks", outputs(**values), {"StackName": f"genai-production-{stack}"})


def stub_production(aws: Stubbed, served: Served, group: str) -> dict[str, str]:
    served.group = group
    stub_production_stacks(aws, served)
    user = f"smoke+{RUN}@example.com"
    idp = aws.stub("cognito-idp")
    idp.add_response(
        "admin_create_user",
        {"User": {"Username": SUB, "Attributes": [{"Name": "sub", "Value": SUB}, {"Name": "email", "Value": user}]}},
        {"UserPoolId": "us-east-1_AbCdEf123", "Username": user, "UserAttributes": ANY, "MessageAction": "SUPPRESS"},
    )
    idp.add_response(
        "admin_set_user_password",
        {},
        {"UserPoolId": "us-east-1_AbCdEf123", "Username": user, "Password": ANY, "Permanent": True},
    )
    idp.add_response(
        "admin_add_user_to_group",
        {},
        {"UserPoolId": "us-east-1_AbCdEf123", "Username": user, "GroupName": group},
    )
    challenge = {
        "USER_ID_FOR_SRP": SUB,
        "SALT": secrets.token_hex(16),
        "SRP_B": secrets.token_hex(384),
        "SECRET_BLOCK": "c2VjcmV0",
        "USERNAME": SUB,
    }
    idp.add_response(
        "initiate_auth",
        {"ChallengeName": "PASSWORD_VERIFIER", "ChallengeParameters": challenge},
        {"AuthFlow": "USER_SRP_AUTH", "AuthParameters": {"USERNAME": user, "SRP_A": ANY}, "ClientId": "client123"},
    )
    idp.add_response(
        "respond_to_auth_challenge",
        {"ChallengeName": "MFA_SETUP", "Session": "s1" * 10},
        {
            "ClientId": "client123",
            "ChallengeName": "PASSWORD_VERIFIER",
            "ChallengeResponses": {
                "TIMESTAMP": ANY,
                "USERNAME": SUB,
                "PASSWORD_CLAIM_SECRET_BLOCK": "c2VjcmV0",
                "PASSWORD_CLAIM_SIGNATURE": ANY,
            },
        },
    )
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    idp.add_response("associate_software_token", {"SecretCode": secret, "Session": "s2" * 10}, {"Session": "s1" * 10})
    idp.add_response(
        "verify_software_token",
        {"Status": "SUCCESS", "Session": "s3" * 10},
        {"Session": "s2" * 10, "UserCode": smoke.totp(secret, WALL), "FriendlyDeviceName": "smoke"},
    )
    idp.add_response(
        "respond_to_auth_challenge",
        {
            "AuthenticationResult": {
                "AccessToken": "access-token",
                "IdToken": "id",
                "RefreshToken": "r",
                "ExpiresIn": 3600,
                "TokenType": "Bearer",
            }
        },
        {
            "ClientId": "client123",
            "ChallengeName": "MFA_SETUP",
            "ChallengeResponses": {"USERNAME": user},
            "Session": "s3" * 10,
        },
    )
    # Documents: a clean one curated and indexed, a PII one quarantined.
    notes, pii = f"smoke/{RUN}/notes.txt", f"smoke/{RUN}/customer.txt"
    notes_id, pii_id = document_id("landing", notes), document_id("landing", pii)
    curated = f"s3://curated/curated/{notes_id}.txt"
    quarantined = f"s3://quarantine/{pii_id}/v1/customer.txt"
    s3, dynamodb, agent = aws.stub("s3"), aws.stub("dynamodb"), aws.stub("bedrock-agent")
    s3.add_response(
        "put_object",
        {},
        {"Bucket": "landing", "Key": notes, "Body": ANY, "Metadata": {"classification": "internal", "owner": "smoke"}},
    )
    key = {"TableName": "registry", "Key": {"pk": {"S": notes_id}, "sk": {"S": "current"}}, "ConsistentRead": True}
    dynamodb.add_response("get_item", {}, key)
    dynamodb.add_response("get_item", {"Item": {"status": {"S": "curated"}, "location": {"S": curated}}}, key)
    agent.add_client_error("start_ingestion_job", "ConflictException", "an ingestion job is already running", 409)
    agent.add_response("start_ingestion_job", job("STARTING"), {"knowledgeBaseId": "KB1", "dataSourceId": "DS1"})
    agent.add_response(
        "get_ingestion_job",
        job("COMPLETE", statistics={"numberOfDocumentsScanned": 3}),
        {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "ingestionJobId": "JOB1"},
    )
    identifier = {"dataSourceType": "S3", "s3": {"uri": curated}}
    agent.add_response(
        "get_knowledge_base_documents",
        {
            "documentDetails": [
                {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "status": "INDEXED", "identifier": identifier}
            ]
        },
        {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "documentIdentifiers": [identifier]},
    )
    s3.add_response(
        "put_object",
        {},
        {"Bucket": "landing", "Key": pii, "Body": ANY, "Metadata": {"classification": "public", "owner": "smoke"}},
    )
    pii_key = {"TableName": "registry", "Key": {"pk": {"S": pii_id}, "sk": {"S": "current"}}, "ConsistentRead": True}
    dynamodb.add_response(
        "get_item", {"Item": {"status": {"S": "quarantined"}, "location": {"S": quarantined}}}, pii_key
    )
    # The chat turn's trace: its log lines by conversation id, then X-Ray.
    conversation = runtime_session_id(group, SUB, f"smoke-{RUN}")
    logs = aws.stub("logs")
    logs.add_response(
        "start_query",
        {"queryId": "q1"},
        {
            "logGroupName": "/aws/lambda/gateway",
            "startTime": ANY,
            "endTime": ANY,
            "queryString": f'fields xray_trace_id | filter `gen_ai.conversation.id` = "{conversation}" | limit 5',
        },
    )
    logs.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q1"})
    logs.add_response(
        "get_query_results",
        {"status": "Complete", "results": [[{"field": "xray_trace_id", "value": TRACE}]]},
        {"queryId": "q1"},
    )
    # Transaction Search is on: the trace is read back from its log group (BatchGetTraces finds nothing there).
    xray = aws.stub("xray")
    xray.add_response("get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "ACTIVE"}, {})
    xray.add_response(
        "start_trace_retrieval", {"RetrievalToken": "token-1"}, {"TraceIds": [TRACE], "StartTime": ANY, "EndTime": ANY}
    )
    xray.add_response("list_retrieved_traces", {"RetrievalStatus": "RUNNING"}, {"RetrievalToken": "token-1"})
    xray.add_response(
        "list_retrieved_traces",
        {"RetrievalStatus": "COMPLETE", "Traces": [{"Id": TRACE, "Spans": []}]},
        {"RetrievalToken": "token-1"},
    )
    # Clean-up, last made first: the quarantine copy, the KB entry, the curated copy and sidecar, the user.
    s3.add_response("delete_object", {}, {"Bucket": "quarantine", "Key": f"{pii_id}/v1/customer.txt"})
    agent.add_response(
        "delete_knowledge_base_documents",
        {"documentDetails": []},
        {"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "documentIdentifiers": [identifier]},
    )
    s3.add_response("delete_object", {}, {"Bucket": "curated", "Key": f"curated/{notes_id}.txt.metadata.json"})
    s3.add_response("delete_object", {}, {"Bucket": "curated", "Key": f"curated/{notes_id}.txt"})
    idp.add_response("admin_delete_user", {}, {"UserPoolId": "us-east-1_AbCdEf123", "Username": user})
    return {"conversation": conversation}


def test_the_production_smoke_test_signs_in_chats_meters_ingests_quarantines_and_traces(
    aws: Stubbed, served: Served, cdk_context: dict[str, Any]
) -> None:
    config = load_config(cdk_context).production
    group = smoke.smoke_group(config, None)
    stub_production(aws, served, group)
    checker = make_smoke(aws, Clock())
    smoke.production(checker, prefix="genai", config=config, run=RUN, group=group)
    assert [(r.check, r.status) for r in checker.rows] == [
        ("production stacks deployed", "PASS"),
        (f"test user in group {group}", "PASS"),
        ("sign in (SRP; TOTP MFA when required)", "PASS"),
        ("POST /v1/chat", "PASS"),
        ("GET /v1/usage counts the turn", "PASS"),
        ("POST /v1/chat/completions, streamed", "PASS"),
        ("an agent turn calls a tool (golden case)", "PASS"),
        ("an uploaded document is curated and indexed in the KB", "PASS"),
        ("a PII document is quarantined", "PASS"),
        ("the chat turn's trace, found by its conversation id", "PASS"),
        ("clean up", "PASS"),
    ], checker.table()
    rows = {r.check: r.detail for r in checker.rows}
    assert rows["GET /v1/usage counts the turn"] == "chat units used 4 -> 5"
    assert rows["POST /v1/chat/completions, streamed"] == "4 chunks from amazon.nova-lite-v1:0; 'smoke test passed'"
    (completion,) = [r for r in served.requests if r[1] == "/live/v1/chat/completions"]
    assert (completion[3]["model"], completion[3]["stream"]) == ("amazon.nova-lite-v1:0", True)
    assert rows["an agent turn calls a tool (golden case)"] == "knowledge___knowledge_search (ok)"
    chat = next(r for r in served.requests if r[1] == "/live/v1/chat" and "X-Evaluation-Case" not in r[2])
    assert chat[3]["session_id"] == f"smoke-{RUN}"
    evaluation = next(r for r in served.requests if "X-Evaluation-Case" in r[2])
    (case,) = [c for c in load_golden_set() if c.id == evaluation[2]["X-Evaluation-Case"]]
    assert case.expected.tool.endswith("knowledge_search")  # a tool every group the smoke test may use has


def test_a_sign_in_challenge_the_smoke_test_cannot_answer_fails_it_and_the_user_is_removed(
    aws: Stubbed, served: Served, cdk_context: dict[str, Any]
) -> None:
    stub_production_stacks(aws, served)
    idp = aws.stub("cognito-idp")
    idp.add_response("admin_create_user", {"User": {"Attributes": [{"Name": "sub", "Value": SUB}]}}, None)
    idp.add_response("admin_set_user_password", {}, None)
    idp.add_response("admin_add_user_to_group", {}, None)
    idp.add_response("initiate_auth", {"ChallengeName": "SMS_MFA", "Session": "s" * 20}, None)
    # The document checks do not need the user; make them fail fast here.
    aws.stub("s3").add_client_error("put_object", "AccessDenied", "not allowed")
    aws.stub("s3").add_client_error("put_object", "AccessDenied", "not allowed")
    idp.add_response("admin_delete_user", {}, None)
    config = load_config(cdk_context).production
    checker = make_smoke(aws, Clock())
    smoke.production(checker, prefix="genai", config=config, run=RUN, group=smoke.smoke_group(config, None))
    statuses = {r.check: (r.status, r.detail) for r in checker.rows}
    assert statuses["sign in (SRP; TOTP MFA when required)"] == (
        "FAIL",
        "sign-in asked for SMS_MFA, which a smoke test cannot answer",
    )
    assert statuses["POST /v1/chat"][0] == statuses["the chat turn's trace, found by its conversation id"][0] == "SKIP"
    assert statuses["clean up"] == ("PASS", "1 things removed")


def test_without_transaction_search_the_trace_is_asked_of_x_ray_itself(aws: Stubbed) -> None:
    xray = aws.stub("xray")
    xray.add_response("get_trace_segment_destination", {"Destination": "XRay", "Status": "ACTIVE"}, {})
    xray.add_response("batch_get_traces", {"Traces": [{"Id": TRACE, "Segments": []}]}, {"TraceIds": [TRACE]})
    assert smoke._trace_found(make_smoke(aws, Clock()), TRACE)
    xray.add_response("get_trace_segment_destination", {"Destination": "XRay", "Status": "ACTIVE"}, {})
    xray.add_response("batch_get_traces", {"Traces": [], "UnprocessedTraceIds": [TRACE]}, {"TraceIds": [TRACE]})
    assert not smoke._trace_found(make_smoke(aws, Clock()), TRACE)


def test_a_stack_from_an_older_deploy_fails_naming_the_outputs_it_lacks(aws: Stubbed) -> None:
    aws.stub("cloudformation").add_response(
        "describe_stacks",
        outputs(DocumentsBucketName="docs", KnowledgeBaseId="KB1"),
        {"StackName": "genai-sandbox-support"},
    )
    (row,) = run_sandbox(aws, Clock()).rows
    assert (row.status, row.detail) == (
        "FAIL",
        "stack genai-sandbox-support has no output DocumentsPrefix, DataSourceId, QueryUrl: deploy this version of the "
        "blueprint first",
    )


def test_a_surprise_fails_its_check_and_the_run_goes_on_to_its_table() -> None:
    checker = smoke.Smoke(clients=Stubbed(), http=smoke.Http())
    assert checker.check("odd answer", lambda: ({"answer": "odd"}["output"], "unreachable")) is smoke.MISSING
    assert checker.check("next", lambda: (1, "fine")) == 1
    assert [(r.status, r.detail) for r in checker.rows] == [("FAIL", "KeyError: 'output'"), ("PASS", "fine")]


def test_totp_matches_rfc_6238s_test_vectors() -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # "12345678901234567890"
    assert [smoke.totp(secret, t, digits=8) for t in (59, 1111111109, 1234567890, 2000000000)] == [
        "94287082",
        "07081804",
        "89005924",
        "69279037",
    ]
    assert smoke.totp(secret.lower(), 59) == "287082"


# --- the command --------------------------------------------------------------------------------


class NoCredentials:
    def get_credentials(self) -> None:
        return None


class RefusedCredentials:
    def get_credentials(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "secret")

    def client(self, service: str) -> Any:
        sts = Stubbed()
        sts.stub("sts").add_client_error(
            "get_caller_identity", "ExpiredToken", "The security token included in the request is expired"
        )
        return sts("sts")


def test_without_credentials_it_fails_at_once_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--tier", "production"], session=NoCredentials()) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("make smoke needs AWS credentials")


def test_refused_credentials_fail_at_once_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--tier", "sandbox"], session=RefusedCredentials()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ExpiredToken" in err


def test_a_profile_that_does_not_exist_fails_at_once_with_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_PROFILE naming no profile (the missing-credentials line suggests setting it): botocore's
    ProfileNotFound, said in one line, not a traceback."""
    monkeypatch.setenv("AWS_PROFILE", "nosuch")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    assert smoke.main(["--tier", "sandbox"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("make smoke: the AWS credentials could not be read (")
    assert "nosuch" in err


def test_a_bad_override_is_the_config_error_before_any_aws_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["-c", "blueprint.nosuch=1"], session=NoCredentials()) == 2
    err = capsys.readouterr().err
    assert err.startswith("make smoke: blueprint.nosuch")
    assert "Traceback" not in err


def test_an_override_without_a_value_is_refused_not_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        smoke.main(["-c", "blueprint.prefix"], session=NoCredentials())
    assert done.value.code == 2
    assert "-c blueprint.prefix: expected KEY=VALUE" in capsys.readouterr().err


def test_an_unknown_group_is_refused_naming_the_known_ones(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context).production
    known = ", ".join(config.groups)
    with pytest.raises(SystemExit, match=re.escape(f"--group nobody: not a configured group; known: {known}")):
        smoke.smoke_group(config, "nobody")


def test_an_answer_larger_than_the_cap_is_refused_not_read_whole(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smoke, "MAX_RESPONSE_BYTES", 10)
    with pytest.raises(smoke.Failed, match="an answer over 10 bytes"):
        smoke.Http(timeout=5).json(
            "GET", f"{served.url}/live/v1/usage", headers={"Authorization": "Bearer access-token"}
        )


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        ('data: {"choices":[{"delta":{"content":"cut"}}]}\n\n', "did not end with data: [DONE]"),
        ("data: [DONE]\n\n", "none with text"),
        (
            'data: {"choices":[{"delta":{"content":"half"}}]}\n\ndata: {"error":{"type":"server_error"}}\n\ndata: [DONE]\n\n',
            "carried an error",
        ),
        ("data: not json\n\ndata: [DONE]\n\n", "not a JSON object"),
        ('data: [1, 2]\n\ndata: {"choices": 7}\n\ndata: [DONE]\n\n', "not a JSON object"),
        ('data: {"choices": [7, {"delta": "x"}]}\n\ndata: [DONE]\n\n', "none with text"),
    ],
    ids=["cut short", "no text", "an error mid-stream", "not JSON", "not an object", "choices of the wrong shape"],
)
def test_a_stream_cut_short_empty_or_failed_fails_its_check(
    aws: Stubbed, served: Served, cdk_context: dict[str, Any], stream: str, reason: str
) -> None:
    served.stream = stream
    config = load_config(cdk_context).production
    group = smoke.smoke_group(config, None)
    stub_production(aws, served, group)
    checker = make_smoke(aws, Clock())
    smoke.production(checker, prefix="genai", config=config, run=RUN, group=group)
    (row,) = [r for r in checker.rows if r.check == "POST /v1/chat/completions, streamed"]
    assert row.status == "FAIL"
    assert reason in row.detail
    assert {r.status for r in checker.rows if r is not row} == {"PASS"}  # the rest of the run goes on
