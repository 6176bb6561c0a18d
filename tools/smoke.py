"""Prove a deployed tier works, end to end: ``make smoke TIER=sandbox|production|all``.

Runs after ``make deploy``, with AWS credentials for the tier's account (it reads the stacks'
outputs and makes real calls: a few model invocations, a Knowledge Base sync, a handful of
objects). Prints one row per check, PASS / FAIL / SKIP (a check whose prerequisite failed), with
its seconds and what it saw, and exits 0 only when every check passed. What it creates (a test
user, test documents and their curated and quarantined copies) is removed at the end, whatever
happened; the document registry keeps its records of them, as it keeps every document's.

sandbox:    upload a document, sync the Knowledge Base, a cited answer through the SigV4-signed
            Function URL; with Kendra on, sync Kendra and a cited answer through Kendra.
production: a test user in an existing group (the first internal one that may chat, or
            --group), sign in (SRP, and TOTP when MFA is on), POST /v1/chat, GET /v1/usage counts
            the turn, a streamed POST /v1/chat/completions (the streaming function, through its
            alias) with one of GET /v1/models, an agent turn that calls a tool, an uploaded
            document curated and indexed in the KB, a PII document quarantined, and the chat turn's
            trace found by its conversation id.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

import boto3  # noqa: E402
import urllib3  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from ai_gateway.agents import runtime_session_id  # noqa: E402
from evaluation.evaluator import load_golden_set  # noqa: E402
from ingestion.pipeline import document_id  # noqa: E402
from stacks.config import BlueprintConfig, ConfigError, ProductionConfig, load_config  # noqa: E402
from tools.inputs import cdk_context  # noqa: E402

T = TypeVar("T")
Clients = Callable[[str], Any]
NO_CREDENTIALS = (
    "make smoke needs AWS credentials for the deployed tier's account, and none were found: set "
    "AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and run it again."
)
POLL_SECONDS = 10.0
SYNC_TIMEOUT = 1200.0  # a Knowledge Base or Kendra sync
PIPELINE_TIMEOUT = 300.0  # a document through the ingestion pipeline
LOGS_TIMEOUT = 300.0  # a log line reaching CloudWatch Logs Insights
MAX_RESPONSE_BYTES = 1_000_000  # an answer of the tier's APIs, read at most
# Fake but well-formed personal data: a PII document the pipeline must quarantine.
PII_TEXT = "Customer record: Jane Roe, jane.roe@example.com, phone +1 206 555 0100, SSN 078-05-1120.\n"


class Failed(Exception):  # noqa: N818 - a check's failure, with what was seen
    """A check that did not see what it needed to; the message says what it saw."""


@dataclass(frozen=True)
class Row:
    check: str
    status: str  # PASS, FAIL, SKIP
    seconds: float
    detail: str


class _Missing:
    """What a failed or skipped check returns: the checks that need its value are skipped."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Smoke:
    """Runs checks, times them, and keeps their rows; injectable clients, HTTP, clock and sleep."""

    clients: Clients
    http: Http
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time
    rows: list[Row] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], tuple[T, str]], *, needs: tuple[Any, ...] = ()) -> T:
        """Run ``run`` (which returns its value and what it saw) unless a prerequisite is missing."""
        if any(value is MISSING for value in needs):
            self.rows.append(Row(name, "SKIP", 0.0, "a check it needs did not pass"))
            return MISSING  # type: ignore[no-any-return]
        started = self.clock()
        try:
            value, detail = run()
        except (Failed, ClientError, BotoCoreError, urllib3.exceptions.HTTPError) as error:
            self.rows.append(Row(name, "FAIL", self.clock() - started, _one_line(error)))
            return MISSING  # type: ignore[no-any-return]
        except Exception as error:  # a surprise (a KeyError in an odd answer) fails this check, not the run
            self.rows.append(Row(name, "FAIL", self.clock() - started, f"{type(error).__name__}: {_one_line(error)}"))
            return MISSING  # type: ignore[no-any-return]
        self.rows.append(Row(name, "PASS", self.clock() - started, detail))
        return value

    def wait(self, what: str, probe: Callable[[], T | None], *, timeout: float) -> T:
        """``probe()`` until it returns a value, every POLL_SECONDS, for up to ``timeout`` seconds."""
        deadline = self.clock() + timeout
        while True:
            value = probe()
            if value is not None:
                return value
            if self.clock() + POLL_SECONDS > deadline:
                raise Failed(f"{what}: not within {timeout:.0f} s")
            self.sleep(POLL_SECONDS)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.status == "PASS" for row in self.rows)

    def table(self) -> str:
        width = max(len(row.check) for row in self.rows)
        lines = [f"{'check':<{width}}  result  seconds  detail", f"{'-' * width}  ------  -------  ------"]
        lines += [f"{r.check:<{width}}  {r.status:<6}  {r.seconds:7.1f}  {r.detail}" for r in self.rows]
        return "\n".join(lines)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass
class Http:
    """JSON over HTTPS: plain (a bearer token) or SigV4-signed (an IAM-authorized Function URL)."""

    pool: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False))
    timeout: float = 60.0

    def json(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, url, data, {"Content-Type": "application/json", **(headers or {})})

    def text(self, url: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
        """POST ``body`` as JSON; the answer as text (a stream of Server-Sent Events, read to its end)."""
        status, raw = self._read(
            "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        )
        return status, raw.decode(errors="replace")

    def signed_json(self, url: str, body: Any, *, service: str, region: str, credentials: Any) -> tuple[int, Any]:
        """POST ``body``, signed: the bytes sent are the bytes signed."""
        data = json.dumps(body).encode()
        request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
        SigV4Auth(credentials, service, region).add_auth(request)
        return self._send("POST", url, data, dict(request.headers.items()))

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
        """One request within ``timeout``, its answer as JSON (or its first 200 characters)."""
        status, raw = self._read(method, url, data, headers)
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"raw": raw[:200].decode(errors="replace")}

    def _read(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request within ``timeout``; at most MAX_RESPONSE_BYTES of the answer are read."""
        response = self.pool.request(
            method, url, body=data, headers=headers, timeout=urllib3.Timeout(total=self.timeout), preload_content=False
        )
        try:
            raw = response.read(MAX_RESPONSE_BYTES + 1)
        finally:
            response.release_conn()
        if len(raw) > MAX_RESPONSE_BYTES:
            raise Failed(f"{method} {url}: an answer over {MAX_RESPONSE_BYTES} bytes")
        return response.status, raw


# --- the deployed tier ----------------------------------------------------------------------------


# The outputs each stack must have for the checks (older deploys of the blueprint lack some).
REQUIRED_OUTPUTS = {
    "sandbox": ("DocumentsBucketName", "DocumentsPrefix", "KnowledgeBaseId", "DataSourceId", "QueryUrl"),
    "production-identity": ("UserPoolId", "AppClientId"),
    "production-gateway": ("ApiUrl", "GatewayFunctionLogGroup"),
    "production-gateway-keys": (),  # the groups' API keys the authorizer hands out: deployed, no output read
    "production-knowledge": ("LandingBucketName", "RegistryTableName", "KnowledgeBaseId", "DataSourceId"),
}


def stack_outputs(clients: Clients, prefix: str, part: str) -> dict[str, str]:
    """The outputs of the stack ``<prefix>-<part>``; fails the check naming the stack when it is not
    deployed, and naming the outputs when some the checks read are missing."""
    stack = f"{prefix}-{part}"
    try:
        (found,) = clients("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        raise Failed(f"stack {stack} is not deployed here ({error.response['Error']['Message']})") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    missing = [
        key for key in REQUIRED_OUTPUTS["sandbox" if part.startswith("sandbox-") else part] if key not in outputs
    ]
    if missing:
        raise Failed(f"stack {stack} has no output {', '.join(missing)}: deploy this version of the blueprint first")
    return outputs


def totp(secret_base32: str, now: float, *, digits: int = 6, step: int = 30) -> str:
    """RFC 6238 time-based one-time password (SHA-1): what an authenticator app shows."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8), casefold=True)
    counter = struct.pack(">Q", int(now // step))
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def start_and_wait_for_ingestion(smoke: Smoke, knowledge_base: str, data_source: str) -> str:
    """One ingestion job of a KB data source, to COMPLETE. A job already running (the scheduled
    sync) is waited for first, then ours is started."""
    agent = smoke.clients("bedrock-agent")

    def start() -> str | None:
        try:
            job = agent.start_ingestion_job(knowledgeBaseId=knowledge_base, dataSourceId=data_source)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConflictException":
                return None  # another job is running: ask again
            raise
        return str(job["ingestionJob"]["ingestionJobId"])

    job_id = smoke.wait("start an ingestion job", start, timeout=SYNC_TIMEOUT)

    def finished() -> dict[str, Any] | None:
        job = agent.get_ingestion_job(knowledgeBaseId=knowledge_base, dataSourceId=data_source, ingestionJobId=job_id)
        status = job["ingestionJob"]["status"]
        if status in ("COMPLETE", "FAILED", "STOPPED"):
            return dict(job["ingestionJob"])
        return None

    job = smoke.wait(f"ingestion job {job_id}", finished, timeout=SYNC_TIMEOUT)
    if job["status"] != "COMPLETE":
        raise Failed(f"ingestion job {job_id} ended {job['status']}: {'; '.join(job.get('failureReasons', []))}")
    scanned = job.get("statistics", {}).get("numberOfDocumentsScanned", "?")
    return f"job {job_id} complete, {scanned} documents scanned"


# --- sandbox ---------------------------------------------------------------------------------------


def sandbox(smoke: Smoke, *, prefix: str, workload: str, region: str, run: str, credentials: Any) -> None:
    """One workload's prototype stack (<prefix>-sandbox-<workload>)."""
    stack = f"sandbox-{workload}"
    outputs = smoke.check(
        "sandbox stack deployed", lambda: (stack_outputs(smoke.clients, prefix, stack), f"{prefix}-{stack}")
    )
    if outputs is MISSING:
        return
    s3 = smoke.clients("s3")
    bucket = outputs["DocumentsBucketName"]
    key = f"{outputs['DocumentsPrefix']}smoke/{run}.md"
    codeword = f"quartz-{run}"
    text = f"# Smoke test {run}\n\nThe codeword of smoke test {run} is {codeword}.\n"

    def upload() -> tuple[bool, str]:
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/markdown")
        return True, f"s3://{bucket}/{key}"

    uploaded = smoke.check("upload a document", upload)
    try:
        synced = smoke.check(
            "sync the Knowledge Base",
            lambda: (True, start_and_wait_for_ingestion(smoke, outputs["KnowledgeBaseId"], outputs["DataSourceId"])),
            needs=(uploaded,),
        )
        question = f"What is the codeword of smoke test {run}?"
        url = f"{outputs['QueryUrl']}query"

        def ask(source: str) -> tuple[bool, str]:
            status, body = smoke.http.signed_json(
                url, {"question": question, "source": source}, service="lambda", region=region, credentials=credentials
            )
            if status != 200:
                raise Failed(f"HTTP {status}: {body}")
            citations = body.get("citations") or []
            cited = [c for c in citations if codeword in str(c.get("excerpt")) or key in str(c.get("uri"))]
            if not cited:
                raise Failed(f"no citation of the smoke document among {len(citations)}: {str(body)[:160]}")
            return True, f"{len(citations)} citations; answer: {str(body.get('answer'))[:80]!r}"

        smoke.check(
            "cited answer from the Knowledge Base (Function URL, SigV4)", lambda: ask("knowledge_base"), needs=(synced,)
        )
        if outputs.get("KendraIndexId"):
            _sandbox_kendra(smoke, outputs, uploaded=uploaded, ask=ask)
    finally:
        if uploaded is not MISSING:

            def clean() -> tuple[bool, str]:
                s3.delete_object(Bucket=bucket, Key=key)
                # The next sync (this one, not waited for) takes its vectors out of the KB.
                smoke.clients("bedrock-agent").start_ingestion_job(
                    knowledgeBaseId=outputs["KnowledgeBaseId"], dataSourceId=outputs["DataSourceId"]
                )
                return True, f"deleted s3://{bucket}/{key}; a sync removes its vectors"

            smoke.check("clean up", clean)


def _sandbox_kendra(
    smoke: Smoke, outputs: dict[str, str], *, uploaded: Any, ask: Callable[[str], tuple[bool, str]]
) -> None:
    """With Kendra on: sync Kendra once the document is uploaded, then a cited answer through it."""
    kendra = smoke.clients("kendra")
    index, source = outputs["KendraIndexId"], outputs["KendraDataSourceId"]

    def start_kendra_sync() -> str | None:
        try:
            return str(kendra.start_data_source_sync_job(Id=source, IndexId=index)["ExecutionId"])
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceInUseException":
                return None  # the scheduled sync is running: ask again
            raise

    def sync_kendra() -> tuple[bool, str]:
        execution = smoke.wait("start a Kendra sync", start_kendra_sync, timeout=SYNC_TIMEOUT)

        def finished() -> str | None:
            jobs = kendra.list_data_source_sync_jobs(Id=source, IndexId=index)["History"]
            status = next((j["Status"] for j in jobs if j["ExecutionId"] == execution), None)
            return status if status in ("SUCCEEDED", "FAILED", "ABORTED", "INCOMPLETE") else None

        status = smoke.wait(f"Kendra sync {execution}", finished, timeout=SYNC_TIMEOUT)
        if status != "SUCCEEDED":
            raise Failed(f"Kendra sync {execution} ended {status}")
        return True, f"sync {execution} succeeded"

    kendra_synced = smoke.check("sync Kendra", sync_kendra, needs=(uploaded,))
    smoke.check("cited answer from Kendra (Function URL, SigV4)", lambda: ask("kendra"), needs=(kendra_synced,))


# --- production ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestUser:
    username: str
    password: str
    sub: str
    group: str


def _password() -> str:
    # Every class the pool's policy asks for, and 24 random characters.
    return f"Sm0ke!{secrets.token_urlsafe(18)}aZ9#"


def sign_in(smoke: Smoke, user: TestUser, *, pool_id: str, client_id: str) -> str:
    """The user's access token: SRP sign-in (the app client's only flow), then TOTP MFA set up on
    first sign-in when the pool requires it. Returns the access token."""
    from pycognito.aws_srp import AWSSRP  # the SRP arithmetic; boto3 has none

    idp = smoke.clients("cognito-idp")
    srp = AWSSRP(username=user.username, password=user.password, pool_id=pool_id, client_id=client_id, client=idp)
    parameters = srp.get_auth_params()
    response = idp.initiate_auth(AuthFlow="USER_SRP_AUTH", AuthParameters=parameters, ClientId=client_id)
    mfa_secret: str | None = None
    for _ in range(5):
        if "AuthenticationResult" in response:
            return str(response["AuthenticationResult"]["AccessToken"])
        challenge, session = response.get("ChallengeName"), response.get("Session")
        if challenge == "PASSWORD_VERIFIER":
            answers = srp.process_challenge(response["ChallengeParameters"], parameters)
        elif challenge == "MFA_SETUP":
            associated = idp.associate_software_token(Session=session)
            mfa_secret = str(associated["SecretCode"])
            verified = idp.verify_software_token(
                Session=associated["Session"], UserCode=totp(mfa_secret, smoke.wall()), FriendlyDeviceName="smoke"
            )
            if verified.get("Status") != "SUCCESS":
                raise Failed(f"TOTP set-up not accepted: {verified.get('Status')}")
            session = verified["Session"]
            answers = {"USERNAME": user.username}
        elif challenge == "SOFTWARE_TOKEN_MFA" and mfa_secret is not None:
            answers = {"USERNAME": user.username, "SOFTWARE_TOKEN_MFA_CODE": totp(mfa_secret, smoke.wall())}
        else:
            raise Failed(f"sign-in asked for {challenge}, which a smoke test cannot answer")
        kwargs: dict[str, Any] = {"ClientId": client_id, "ChallengeName": challenge, "ChallengeResponses": answers}
        if session:
            kwargs["Session"] = session
        response = idp.respond_to_auth_challenge(**kwargs)
    raise Failed("sign-in did not end after five challenges")


def smoke_group(config: ProductionConfig, requested: str | None) -> str:
    """The group the test user joins: the one asked for, or the first internal group that may chat
    (internal callers may replay golden cases, which show the agent's tool calls)."""
    if requested:
        if requested not in config.groups:
            raise SystemExit(f"--group {requested}: not a configured group; known: {', '.join(config.groups)}")
        return requested
    for name, group in config.groups.items():
        if group.kind == "internal" and "chat" in group.output_quotas:
            return name
    return next(name for name, group in config.groups.items() if "chat" in group.output_quotas)


def production(smoke: Smoke, *, prefix: str, config: ProductionConfig, run: str, group: str) -> None:
    parts = ("production-identity", "production-gateway", "production-knowledge", "production-gateway-keys")
    found = smoke.check(
        "production stacks deployed",
        lambda: ([stack_outputs(smoke.clients, prefix, p) for p in parts], ", ".join(f"{prefix}-{p}" for p in parts)),
    )
    if found is MISSING:
        return
    identity, gateway, knowledge, _ = found
    idp = smoke.clients("cognito-idp")
    pool_id, client_id = identity["UserPoolId"], identity["AppClientId"]
    created: list[Callable[[], None]] = []  # clean-ups, last first

    def create_user() -> tuple[TestUser, str]:
        username, password = f"smoke+{run}@example.com", _password()
        made = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )
        created.append(lambda: idp.admin_delete_user(UserPoolId=pool_id, Username=username))
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        sub = next(a["Value"] for a in made["User"]["Attributes"] if a["Name"] == "sub")
        return TestUser(username, password, sub, group), f"{username} in {group}"

    try:
        user = smoke.check(f"test user in group {group}", create_user)
        token = smoke.check(
            "sign in (SRP; TOTP MFA when required)",
            lambda: (sign_in(smoke, user, pool_id=pool_id, client_id=client_id), "access token issued"),
            needs=(user,),
        )
        api = gateway["ApiUrl"]
        auth = {"Authorization": f"Bearer {token}"}
        session = f"smoke-{run}"

        def used_chat_units() -> int:
            status, body = smoke.http.json("GET", f"{api}v1/usage", headers=auth)
            if status != 200:
                raise Failed(f"GET /v1/usage: HTTP {status}: {body}")
            return int(next((q["used"] for q in body["quotas"] if q["output_type"] == "chat"), 0))

        def chat() -> tuple[tuple[int, int], str]:
            before = used_chat_units()
            message = f"This is smoke test {run}. Reply with the words: smoke test passed."
            status, body = smoke.http.json(
                "POST",
                f"{api}v1/chat",
                {"messages": [{"role": "user", "content": message}], "session_id": session},
                auth,
            )
            if status != 200 or not body.get("output"):
                raise Failed(f"HTTP {status}: {str(body)[:200]}")
            return (before, int(body.get("units", 0))), f"{body.get('units')} unit(s); {str(body['output'])[:60]!r}"

        turn = smoke.check("POST /v1/chat", chat, needs=(token,))

        def usage() -> tuple[bool, str]:
            before, units = turn
            after = used_chat_units()
            if after - before < units or units < 1:
                raise Failed(f"chat units used went {before} -> {after} for a turn of {units}")
            return True, f"chat units used {before} -> {after}"

        smoke.check("GET /v1/usage counts the turn", usage, needs=(turn,))
        smoke.check(
            "POST /v1/chat/completions, streamed",
            lambda: _streamed_completion(smoke, api=api, auth=auth, run=run),
            needs=(token,),
        )

        smoke.check(
            "an agent turn calls a tool (golden case)",
            lambda: _tool_call(smoke, api=api, auth=auth, config=config, group=group),
            needs=(token,),
        )
        _documents(smoke, knowledge=knowledge, config=config, run=run, created=created)

        smoke.check(
            "the chat turn's trace, found by its conversation id",
            lambda: _traced(
                smoke,
                log_group=gateway["GatewayFunctionLogGroup"],
                conversation=runtime_session_id(group, user.sub, session),
            ),
            needs=(turn,),
        )
    finally:
        _clean_up(smoke, created)


def _tool_call(
    smoke: Smoke, *, api: str, auth: dict[str, str], config: ProductionConfig, group: str
) -> tuple[bool, str]:
    """A golden case that calls knowledge_search, replayed through POST /v1/chat: some tool call succeeds."""
    case = next(
        (
            c
            for c in load_golden_set()
            if c.expected.tool.endswith("knowledge_search") and "knowledge_search" in config.groups[group].tools
        ),
        None,
    )
    if case is None:
        raise Failed(f"group {group} may not use knowledge_search, which the golden cases this check replays call")
    status, body = smoke.http.json(
        "POST",
        f"{api}v1/chat",
        {"messages": [{"role": "user", "content": case.prompt}]},
        {**auth, "X-Evaluation-Case": case.id},
    )
    calls = body.get("tool_calls") or [] if status == 200 else []
    if status != 200 or not any(call.get("ok") for call in calls):
        raise Failed(f"HTTP {status}; tool calls: {calls or str(body)[:200]}")
    return True, ", ".join(f"{c.get('name')} ({'ok' if c.get('ok') else 'error'})" for c in calls)


def _streamed_completion(smoke: Smoke, *, api: str, auth: dict[str, str], run: str) -> tuple[bool, str]:
    """The OpenAI-compatible route, streamed, with the first model GET /v1/models lists: the
    streaming function (its own runtime loop, resumed from its snapshot with SnapStart) answers
    Server-Sent Events that end with ``data: [DONE]`` and carry some text."""
    status, listed = smoke.http.json("GET", f"{api}v1/models", headers=auth)
    models = listed.get("data") if status == 200 and isinstance(listed, dict) else None
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        raise Failed(f"GET /v1/models: HTTP {status}: {str(listed)[:200]}")
    model = str(models[0].get("id"))
    message = f"This is smoke test {run}. Reply with the words: smoke test passed."
    body = {"model": model, "messages": [{"role": "user", "content": message}], "stream": True}
    status, text = smoke.http.text(f"{api}v1/chat/completions", body, auth)
    if status != 200:
        raise Failed(f"HTTP {status}: {text[:200]}")
    events = [line.removeprefix("data:").strip() for line in text.splitlines() if line.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        raise Failed(f"the stream did not end with data: [DONE] ({len(events)} events): {text[-200:]!r}")
    content = ""
    for event in events[:-1]:
        try:
            chunk = json.loads(event)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise Failed(f"an event that is not a JSON object: {event[:100]!r}")
        if "error" in chunk:
            raise Failed(f"the stream carried an error: {str(chunk['error'])[:200]}")
        choices = chunk.get("choices") or []
        deltas = [c.get("delta") for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []
        content += "".join(str(d.get("content") or "") for d in deltas if isinstance(d, dict))
    if not content.strip():
        raise Failed(f"{len(events) - 1} chunks from {model}, none with text")
    return True, f"{len(events) - 1} chunks from {model}; {content[:40]!r}"


def _clean_up(smoke: Smoke, created: list[Callable[[], None]]) -> None:
    """Run the clean-ups, last first, each whatever the others do; one row says how it went."""
    problems = []
    for clean in reversed(created):
        try:
            clean()
        except (ClientError, BotoCoreError) as error:
            problems.append(_one_line(error))
    if problems:
        smoke.rows.append(Row("clean up", "FAIL", 0.0, "; ".join(problems)))
    elif created:
        smoke.rows.append(Row("clean up", "PASS", 0.0, f"{len(created)} things removed"))


def _traced(smoke: Smoke, *, log_group: str, conversation: str) -> tuple[bool, str]:
    """The conversation's trace id, from the gateway's log lines, is a trace X-Ray has."""
    trace_id = smoke.wait(
        "the chat turn's log lines", lambda: _trace_id(smoke, log_group, conversation), timeout=LOGS_TIMEOUT
    )
    if not _trace_found(smoke, trace_id):
        raise Failed(f"trace {trace_id} (from the log lines of conversation {conversation}) is not in X-Ray")
    return True, f"conversation {conversation[:12]}... -> trace {trace_id}"


def _trace_found(smoke: Smoke, trace_id: str) -> bool:
    """Whether X-Ray has the trace. With Transaction Search on, traces are read back from its log
    group (StartTraceRetrieval; BatchGetTraces finds nothing there); otherwise BatchGetTraces."""
    xray = smoke.clients("xray")
    if xray.get_trace_segment_destination().get("Destination") != "CloudWatchLogs":
        return bool(xray.batch_get_traces(TraceIds=[trace_id]).get("Traces"))
    now = dt.datetime.fromtimestamp(smoke.wall(), dt.UTC)
    token = xray.start_trace_retrieval(
        TraceIds=[trace_id], StartTime=now - dt.timedelta(hours=1), EndTime=now + dt.timedelta(minutes=1)
    )["RetrievalToken"]

    def retrieved() -> dict[str, Any] | None:
        answer = xray.list_retrieved_traces(RetrievalToken=token)
        return dict(answer) if answer.get("RetrievalStatus") in ("COMPLETE", "FAILED", "CANCELLED", "TIMEOUT") else None

    answer = smoke.wait(f"retrieving trace {trace_id}", retrieved, timeout=LOGS_TIMEOUT)
    return answer["RetrievalStatus"] == "COMPLETE" and any(t.get("Id") == trace_id for t in answer.get("Traces", []))


def _trace_id(smoke: Smoke, log_group: str, conversation: str) -> str | None:
    """The X-Ray trace id of the gateway's log lines for one conversation (Logs Insights)."""
    logs = smoke.clients("logs")
    now = int(smoke.wall())
    query = logs.start_query(
        logGroupName=log_group,
        startTime=now - 3600,
        endTime=now + 60,
        queryString=f'fields xray_trace_id | filter `gen_ai.conversation.id` = "{conversation}" | limit 5',
    )["queryId"]

    def results() -> list[Any] | None:
        answer = logs.get_query_results(queryId=query)
        return list(answer.get("results", [])) if answer["status"] in ("Complete", "Failed", "Cancelled") else None

    for row in smoke.wait("a Logs Insights query", results, timeout=LOGS_TIMEOUT):
        fields = {f["field"]: f["value"] for f in row}
        if fields.get("xray_trace_id"):
            return str(fields["xray_trace_id"])
    return None


def _documents(
    smoke: Smoke, *, knowledge: dict[str, str], config: ProductionConfig, run: str, created: list[Callable[[], None]]
) -> None:
    """A clean document curated and indexed; a PII document of a quarantining classification quarantined."""
    s3, dynamodb = smoke.clients("s3"), smoke.clients("dynamodb")
    landing, registry = knowledge["LandingBucketName"], knowledge["RegistryTableName"]
    classes = config.ingestion.classifications
    clean_class = next((c for c, p in classes.items() if p.on_pii == "mask"), config.ingestion.default_classification)
    quarantining = next((c for c, p in classes.items() if p.on_pii == "quarantine"), None)

    def land(key: str, text: str, classification: str) -> str:
        s3.put_object(
            Bucket=landing, Key=key, Body=text.encode(), Metadata={"classification": classification, "owner": "smoke"}
        )
        return document_id(landing, key)

    def settled(doc: str) -> dict[str, str] | None:
        item = dynamodb.get_item(
            TableName=registry, Key={"pk": {"S": doc}, "sk": {"S": "current"}}, ConsistentRead=True
        )
        found = item.get("Item")
        return {k: v.get("S", "") for k, v in found.items()} if found else None

    def remove(location: str) -> Callable[[], None]:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return lambda: s3.delete_object(Bucket=bucket, Key=key)

    def curated() -> tuple[bool, str]:
        doc = land(f"smoke/{run}/notes.txt", f"Smoke test {run}: the pipeline curates this note.\n", clean_class)
        state = smoke.wait(f"document {doc} in the registry", lambda: settled(doc), timeout=PIPELINE_TIMEOUT)
        if state.get("status") != "curated":
            raise Failed(f"document {doc} is {state.get('status')}: {state}")
        location = state["location"]
        created.append(remove(location))
        created.append(remove(f"{location}.metadata.json"))
        _indexed(smoke, knowledge=knowledge, location=location, created=created)
        return True, f"classification {clean_class} -> {location}, INDEXED"

    smoke.check("an uploaded document is curated and indexed in the KB", curated)
    if quarantining is None:
        smoke.rows.append(Row("a PII document is quarantined", "SKIP", 0.0, "no classification quarantines on PII"))
        return

    def quarantined() -> tuple[bool, str]:
        doc = land(f"smoke/{run}/customer.txt", PII_TEXT, quarantining)
        state = smoke.wait(f"document {doc} in the registry", lambda: settled(doc), timeout=PIPELINE_TIMEOUT)
        if state.get("location", "").startswith("s3://"):
            created.append(remove(state["location"]))
        if state.get("status") != "quarantined":
            raise Failed(f"a {quarantining} document with PII is {state.get('status')}: {state.get('reason')}")
        return True, f"classification {quarantining} -> {state['location']}"

    smoke.check("a PII document is quarantined", quarantined)


def _indexed(smoke: Smoke, *, knowledge: dict[str, str], location: str, created: list[Callable[[], None]]) -> None:
    """Sync the KB, then fail unless the curated document at ``location`` is INDEXED in it (its KB
    entry is removed at clean-up)."""
    kb, source = knowledge["KnowledgeBaseId"], knowledge["DataSourceId"]
    agent = smoke.clients("bedrock-agent")
    identifier = {"dataSourceType": "S3", "s3": {"uri": location}}
    created.append(
        lambda: agent.delete_knowledge_base_documents(
            knowledgeBaseId=kb, dataSourceId=source, documentIdentifiers=[identifier]
        )
    )
    start_and_wait_for_ingestion(smoke, kb, source)
    (detail,) = agent.get_knowledge_base_documents(
        knowledgeBaseId=kb, dataSourceId=source, documentIdentifiers=[identifier]
    )["documentDetails"]
    if detail["status"] != "INDEXED":
        raise Failed(f"{location} is {detail['status']} in the KB: {detail.get('statusReason', '')}")


# --- the command ------------------------------------------------------------------------------------


def run_tier(
    tier: str, config: BlueprintConfig, *, clients: Clients, http: Http, credentials: Any, group: str | None, run: str
) -> Smoke:
    smoke = Smoke(clients=clients, http=http)
    if tier == "sandbox":
        for workload in config.workloads_in("sandbox"):
            sandbox(
                smoke,
                prefix=config.prefix,
                workload=workload,
                region=config.sandbox.region,
                run=run,
                credentials=credentials,
            )
    else:
        production(
            smoke,
            prefix=config.prefix,
            config=config.production,
            run=run,
            group=smoke_group(config.production, group),
        )
    return smoke


def main(
    argv: list[str] | None = None, *, session: Any = None, http: Http | None = None, out: TextIO = sys.stdout
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=("sandbox", "production", "all"), default="all")
    parser.add_argument("--group", help="the production group the test user joins (default: an internal one)")
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="as cdk's -c, e.g. blueprint.prefix=acme",
    )
    args = parser.parse_args(argv)
    bare = [item for item in args.context if "=" not in item]
    if bare:
        parser.error(f"-c {bare[0]}: expected KEY=VALUE, as cdk's -c")
    overrides = dict(item.split("=", 1) for item in args.context)
    try:
        config = load_config({**cdk_context(), **overrides})
    except ConfigError as error:
        print(f"make smoke: {error}", file=sys.stderr)
        return 2
    if args.group is not None and args.group not in config.production.groups:  # before any AWS call, not after a tier
        known = ", ".join(config.production.groups)
        print(f"make smoke: --group {args.group}: not a configured group; known: {known}", file=sys.stderr)
        return 2
    tiers = ("sandbox", "production") if args.tier == "all" else (args.tier,)
    passed = True
    for tier in tiers:
        region = config.sandbox.region if tier == "sandbox" else config.production.region
        try:
            aws = session or boto3.Session(region_name=region)  # AWS_PROFILE naming no profile: ProfileNotFound
            credentials = aws.get_credentials()
        except BotoCoreError as error:
            print(f"make smoke: the AWS credentials could not be read ({_one_line(error)}).", file=sys.stderr)
            return 2
        if credentials is None:
            print(NO_CREDENTIALS, file=sys.stderr)
            return 2
        try:
            aws.client("sts").get_caller_identity()
        except (ClientError, BotoCoreError) as error:
            print(f"make smoke: the AWS credentials were refused ({_one_line(error)}).", file=sys.stderr)
            return 2
        cache: dict[str, Any] = {}

        def clients(service: str, aws: Any = aws, cache: dict[str, Any] = cache) -> Any:
            if service not in cache:
                cache[service] = aws.client(service)
            return cache[service]

        run = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
        print(f"\n{tier} tier, run {run}:", file=out, flush=True)
        smoke = run_tier(
            tier, config, clients=clients, http=http or Http(), credentials=credentials, group=args.group, run=run
        )
        print(smoke.table(), file=out, flush=True)
        passed = passed and smoke.passed
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
