"""The agent runtime's service, exactly: how it is built from the runtime's environment, how a
tools session ends, and what a refusal says (agent.app). The turns end to end are test_agent.py's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import boto3
import httpx
import jwt
import pytest
from annotated_types import Le, MaxLen
from botocore.stub import ANY, Stubber
from pydantic import BaseModel

from agent import app as agent_app
from agent.app import MAX_INSTRUCTIONS, MESSAGE_CHARS, OUTPUT_INSTRUCTIONS_CHARS, GatewayTools, Service
from agent.contract import AgentGroups, Settings
from agent.memory import SessionMemory
from agent.turn import STOPPED_ANSWER
from shared.aws_errors import UpstreamError
from shared.bodies import MAX_MESSAGES
from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER
from shared.runtime_config import DocumentReader, RuntimeConfigError
from shared.tokens import GROUP_CLAIM, InvalidToken, TokenVerifier
from tests.lambdas.bedrock_fakes import answering_raw, converse_answer
from tests.lambdas.conftest import logged
from tests.lambdas.loopback import serve_asgi
from tests.lambdas.test_agent import AGENT, DOCUMENT, LOCATION, MEMORY_ID, MODEL, NAMESPACES, SESSION
from tests.lambdas.tools_gateway_fake import tools_gateway

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
TOOLS_URL = "https://gw.example.com/mcp"


def settings(**changes: Any) -> Settings:
    return Settings(
        agent_name=AGENT,
        tools_gateway_url=TOOLS_URL,
        token_issuer=ISSUER,
        token_client_id="client-9",
        groups=LOCATION,
        **changes,
    )


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Sets the runtime's environment from settings; the AWS clients are built afresh for each test."""

    def set_to(chosen: Settings) -> None:
        for name, value in chosen.environment().items():
            monkeypatch.setenv(name, value)

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    agent_app._clients.cache_clear()
    yield set_to
    agent_app._clients.cache_clear()


# --- the service, from the environment ----------------------------------------------------------


def test_the_service_is_built_from_the_settings_the_runtime_is_given(environ: Any) -> None:
    chosen = settings(
        turn_seconds=15,
        memory_id=MEMORY_ID,
        memory_namespaces=NAMESPACES,
        memory_history_turns=3,
        memory_recall_records=4,
    )
    environ(chosen)
    service = agent_app.service_from_environ()
    assert service.settings == chosen
    bedrock, memory_client = agent_app._clients(15)
    assert service.bedrock is bedrock
    # One attempt per model call, never longer than the turn: the next model is the retry.
    config = bedrock.meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (2, 15, 1)
    assert service.memory == SessionMemory(memory_client, MEMORY_ID, NAMESPACES, history_turns=3, recall_records=4)
    # Memory is best effort: one short attempt.
    config = memory_client.meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (1, 3, 1)
    assert memory_client.meta.service_model.service_name == "bedrock-agentcore"
    assert bedrock.meta.service_model.service_name == "bedrock-runtime"
    assert service.verifier == TokenVerifier(issuer=ISSUER, client_id="client-9")
    # A tools session starts within the turn's time, and never waits more than 20 s.
    assert service.tools_for == GatewayTools(TOOLS_URL, timeout_seconds=15)


def test_without_a_memory_the_service_reads_none_and_tools_start_within_20_s(environ: Any) -> None:
    environ(settings(turn_seconds=90))
    service = agent_app.service_from_environ()
    assert service.memory is None
    assert service.tools_for == GatewayTools(TOOLS_URL, timeout_seconds=20)


def test_the_groups_are_read_from_the_settings_document_as_agent_groups(
    environ: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[Any, ...]] = []

    def reader(location: Any, model: Any) -> DocumentReader[AgentGroups]:
        made.append((location, model))
        return DocumentReader.static(DOCUMENT)

    monkeypatch.setattr(agent_app, "DocumentReader", reader)
    environ(settings())
    service = agent_app.service_from_environ()
    assert made == [(LOCATION, AgentGroups)]
    assert service.groups.get() == DOCUMENT


# --- a tools session's end ----------------------------------------------------------------------


class Session:
    """What _stop calls of Strands' MCPClient: stop(exc_type, exc_val, exc_tb), as a context exit."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.stopped: list[tuple[Any, ...]] = []

    def stop(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.stopped.append((exc_type, exc_val, exc_tb))
        if self.fails:
            raise RuntimeError("the session's thread did not end")


def test_a_tools_session_is_stopped_as_a_context_exit_and_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    session = Session()
    agent_app._stop(session)
    assert session.stopped == [(None, None, None)]
    assert logged(capsys, "tools session did not close cleanly") == []


def test_a_tools_session_that_fails_to_stop_is_logged_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    agent_app._stop(Session(fails=True))
    (line,) = logged(capsys, "tools session did not close cleanly")
    assert line["level"] == "WARNING"


# --- what a refusal names -----------------------------------------------------------------------


class Verified:
    """The forwarded token taken as verified (verification has its own tests)."""

    def claims(self, token: str) -> dict[str, Any]:
        return {"sub": "user-1", GROUP_CLAIM: "customer-gold"}


@contextmanager
def no_tools(token: str, conversation: str, seconds_left: float, passage: str | None) -> Iterator[list[Any]]:
    yield []


def service(
    bedrock: Any = None,
    *,
    clock: Callable[[], float] = lambda: 0.0,
    verifier: Any = None,
    groups: Any = None,
    **changes: Any,
) -> Service:
    """The agent's service with no tools, its callers taken as verified (``Verified`` unless another
    verifier is given), its groups the test document's, on a stopped clock unless another is given."""
    return Service(
        settings(**changes),
        bedrock,
        verifier or Verified(),  # type: ignore[arg-type]
        no_tools,
        groups or DocumentReader.static(DOCUMENT),
        clock=clock,
    )


@pytest.mark.parametrize(
    ("models", "named"),
    [
        (["m-1"], "m-1"),
        (["m-1", "m-2", "m-3"], "m-1, m-2, m-3"),
        (["m-1", "m-2", "m-3", "m-4", "m-5"], "m-1, m-2, m-3 and 2 more"),
        ([MODEL, "m-1", "m-2", "m-3", "m-4"], "m-1, m-2, m-3 and 1 more"),
    ],
)
def test_a_forbidden_model_refusal_names_at_most_three_and_counts_the_rest(models: list[str], named: str) -> None:
    status, answer = service().invoke({"prompt": "hi", "models": models}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["error"]) == (403, "model_forbidden")
    assert answer["message"] == f"not available to this group: {named}"


# --- the body's messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        5,
        "hello",
        {},
        [],
        ["hello"],
        [{"role": "system", "content": "Obey me."}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": 5}],
        [{"role": "user", "content": ["hi"]}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}],
    ],
    ids=[
        "a-number",
        "text",
        "an-object",
        "none",
        "a-turn-that-is-text",
        "a-system-turn",
        "content-a-number",
        "content-a-list",
        "the-assistants-last",
    ],
)
def test_messages_of_any_other_shape_are_a_400_naming_the_shape(messages: Any) -> None:
    status, answer = service().invoke({"messages": messages}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["error"], answer["message"]) == (400, "invalid_request", agent_app.BODY_SHAPE)


# --- the session's first caller -------------------------------------------------------------------


class Callers:
    """Each token is its own caller: "user-2/customer-gold" is user-2 of customer-gold."""

    def claims(self, token: str) -> dict[str, Any]:
        user, group = token.split("/")
        return {"sub": user, GROUP_CLAIM: group}


def test_a_session_is_bound_to_its_first_caller_and_no_other_session_is(capsys: pytest.CaptureFixture[str]) -> None:
    """The binding is made before the body is read: a body refused after it (a model outside the
    group's, a 403) still binds, and costs no model call."""
    bound = service(verifier=Callers())
    forbidden = {"prompt": "hi", "models": ["not-ours"]}
    other = "session-" + "1" * 32

    def invoke(token: str, session: str) -> tuple[int, str]:
        status, answer = bound.invoke(forbidden, {CALLER_TOKEN_HEADER: token}, session)
        return status, answer["error"]

    assert invoke("user-1/customer-gold", SESSION) == (403, "model_forbidden")
    assert invoke("user-2/customer-gold", other) == (403, "model_forbidden")  # another session: its own caller
    capsys.readouterr()
    status, answer = bound.invoke(forbidden, {CALLER_TOKEN_HEADER: "user-2/customer-gold"}, SESSION)
    # Each refusal is logged by its status, error and session: never the caller's text.
    (line,) = logged(capsys, "refused")
    assert (line["level"], line["status"], line["error"], line["session_id"]) == ("INFO", 409, "session_bound", SESSION)
    assert (status, answer) == (
        409,
        {
            "error": "session_bound",
            "message": "this session belongs to another caller or group; start a new one",
            "session_id": SESSION,
        },
    )
    assert invoke("user-1/platform-admins", SESSION) == (409, "session_bound")  # the same user, another group
    assert invoke("user-1/customer-gold", SESSION) == (403, "model_forbidden")  # its first caller, still


# --- the system prompt ------------------------------------------------------------------------------


def test_the_system_prompt_is_the_agents_own_unless_the_body_adds_instructions(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    agent = service(client)
    for body, system in (
        ({"prompt": "hi"}, "You help customers."),
        ({"prompt": "hi", "instructions": "Be brief."}, "You help customers.\n\nBe brief."),
    ):
        stubber.add_response(
            "converse",
            converse_answer([{"text": "Hello."}], "end_turn"),
            {"modelId": MODEL, "system": [{"text": system}], "messages": ANY, "inferenceConfig": ANY,
             "requestMetadata": {"session_id": SESSION}},
        )  # fmt: skip
        assert agent.invoke(body, {CALLER_TOKEN_HEADER: "t"}, SESSION)[0] == 200


# --- the body's fields, at their bounds -------------------------------------------------------------


class Late:
    """The agent's clock: the turn arrives at 0 and every later reading is ``later``, so a turn
    whose deadline is before ``later`` stops before any model call."""

    def __init__(self, later: float) -> None:
        self.later = later
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return 0.0 if self.readings == 1 else self.later


def timed(later: float, **changes: Any) -> Service:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")  # never called: the turn is out of time
    return service(client, clock=Late(later), **changes)


def out_of_time(body: dict[str, Any]) -> dict[str, Any]:
    """The answer of a turn that stops at its deadline (past it at once: no model call)."""
    status, answer = timed(1e9).invoke(body, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["stop"]) == (200, "deadline"), answer
    return answer


@pytest.mark.parametrize(
    "field",
    [
        {"max_tokens": 1},
        {"max_tokens": 8192},
        {"instructions": "i" * MAX_INSTRUCTIONS},
        {"turn_seconds": 0.5},
        {"turn_seconds": 1},
        {"models": [MODEL, MODEL]},
    ],
    ids=[
        "max-tokens-1",
        "max-tokens-8192",
        "instructions-at-the-limit",
        "half-a-second",
        "one-second",
        "a-model-twice",
    ],
)
def test_a_field_at_its_bound_is_taken(field: dict[str, Any]) -> None:
    out_of_time({"prompt": "hi", **field})


def _largest(model: type[BaseModel], name: str) -> int:
    """A config field's upper bound (max_length or le)."""
    for bound in model.model_fields[name].metadata:
        if isinstance(bound, MaxLen):
            return bound.max_length
        if isinstance(bound, Le):
            return cast(int, bound.le)
    raise AssertionError(f"{model.__name__}.{name} has no upper bound")


def test_the_instructions_bound_is_what_the_gateway_sends_with_configs_largest_values() -> None:
    """The gateway sends the output type's instructions, "\n\n" and the caller's system messages
    (joined by "\n\n", all of a request's text at most api.max_message_chars): a system message of
    4,800 characters, which a model route answers, was refused here (4,000) as upstream_rejected."""
    from stacks.config.api import ApiConfig
    from stacks.config.groups import OutputTypeConfig
    from stacks.config.workloads import WorkloadGeneration, WorkloadOutput

    largest_instructions = {
        _largest(OutputTypeConfig, "instructions"),
        _largest(WorkloadOutput, "instructions"),
        _largest(WorkloadGeneration, "prompt"),  # an output type's instructions by default
    }
    assert largest_instructions == {OUTPUT_INSTRUCTIONS_CHARS}
    assert _largest(ApiConfig, "max_message_chars") == MESSAGE_CHARS
    # Every message but the user's a system message, their text all a request may carry.
    system = ["s"] * (MAX_MESSAGES - 2) + ["s" * (MESSAGE_CHARS - (MAX_MESSAGES - 2))]
    sent = "o" * OUTPUT_INSTRUCTIONS_CHARS + "\n\n" + "\n\n".join(system)
    assert len(sent) == MAX_INSTRUCTIONS
    out_of_time({"prompt": "hi", "instructions": sent})
    out_of_time({"prompt": "hi", "instructions": "o" * OUTPUT_INSTRUCTIONS_CHARS + "\n\n" + "s" * 4800})


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"max_tokens": 0}, "max_tokens: an integer from 1 to 8192"),
        ({"max_tokens": 8193}, "max_tokens: an integer from 1 to 8192"),
        ({"max_tokens": 100.0}, "max_tokens: an integer from 1 to 8192"),
        (
            {"instructions": "i" * (MAX_INSTRUCTIONS + 1)},
            f"instructions: a string of at most {MAX_INSTRUCTIONS} characters",
        ),
        ({"instructions": 5}, f"instructions: a string of at most {MAX_INSTRUCTIONS} characters"),
        ({"turn_seconds": 0}, "turn_seconds: a positive number"),
        ({"turn_seconds": -0.5}, "turn_seconds: a positive number"),
        ({"turn_seconds": "30"}, "turn_seconds: a positive number"),
        ({"memory": "false"}, "memory: true or false"),
        ({"memory": 0}, "memory: true or false"),
        ({"models": []}, "models: a non-empty list of model ids"),
        ({"models": MODEL}, "models: a non-empty list of model ids"),
        ({"models": [MODEL, 7]}, "models: a non-empty list of model ids"),
        ({"models": {}}, "models: a non-empty list of model ids"),
        ({"prompt": " ", "messages": None}, agent_app.BODY_SHAPE),
    ],
    ids=[
        "max-tokens-0",
        "max-tokens-8193",
        "max-tokens-a-float",
        "instructions-past-the-limit",
        "instructions-a-number",
        "turn-seconds-0",
        "turn-seconds-negative",
        "turn-seconds-text",
        "memory-text",
        "memory-a-number",
        "models-empty",
        "models-text",
        "models-holding-a-number",
        "models-an-object",
        "a-blank-prompt",
    ],
)
def test_a_field_past_its_bound_is_a_400_that_names_it(field: dict[str, Any], message: str) -> None:
    status, answer = service().invoke({"prompt": "hi", **field}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer) == (400, {"error": "invalid_request", "message": message, "session_id": SESSION})


@pytest.mark.parametrize(("turn_seconds", "stopped"), [(5, True), (9.5, True), (10.5, False), (None, False)])
def test_the_bodys_turn_seconds_shortens_the_turn_never_lengthens_it(
    bedrock: tuple[Any, Stubber], turn_seconds: float | None, stopped: bool
) -> None:
    """The turn arrives at 0 and the model would be asked at 10: a turn of fewer seconds stops
    first; more (or none: the agent's own 120) asks the model. A body cannot go past the agent's."""
    client, stubber = bedrock
    body: dict[str, Any] = {"prompt": "hi"} if turn_seconds is None else {"prompt": "hi", "turn_seconds": turn_seconds}
    agent = service(client, clock=Late(10.0))
    if not stopped:
        stubber.add_response("converse", converse_answer([{"text": "Hello."}], "end_turn"), None)
    status, answer = agent.invoke(body, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["stop"]) == (200, "deadline" if stopped else "end_turn")
    long = service(client, clock=Late(10.0), turn_seconds=8)
    status, answer = long.invoke({"prompt": "hi", "turn_seconds": 60}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["stop"]) == (200, "deadline")  # the agent's 8 s, not the body's 60


# --- no groups document -----------------------------------------------------------------------------


class Unreadable:
    def get(self) -> AgentGroups:
        raise RuntimeConfigError("the AppConfig session could not start")


def test_no_groups_document_is_a_503_and_says_why_in_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    agent = service(groups=Unreadable())
    capsys.readouterr()
    status, answer = agent.invoke({"prompt": "hi"}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer["error"]) == (503, "config_unavailable")
    (line,) = logged(capsys, "no groups document")
    assert (line["level"], line["why"]) == ("ERROR", "the AppConfig session could not start")


@pytest.mark.parametrize("prompts", [{}, {AGENT: ""}, {"report_writer": "You write reports."}])
def test_a_document_without_the_agents_prompt_is_a_503_before_any_model_call(
    prompts: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack always writes each agent's prompt beside its groups; a document without it (or
    with a blank one) is refused as configuration not available, never a turn without a prompt."""
    agent = service(groups=DocumentReader.static(DOCUMENT.model_copy(update={"prompts": prompts})))
    capsys.readouterr()
    status, answer = agent.invoke({"prompt": "hi"}, {CALLER_TOKEN_HEADER: "t"}, SESSION)  # no Converse queued
    assert (status, answer["error"]) == (503, "config_unavailable")
    assert answer["message"] == "the agent's configuration is not available yet; retry"
    (line,) = logged(capsys, "no system prompt in the groups document")
    assert (line["level"], line["agent"]) == ("ERROR", AGENT)


# --- a body past the cap ----------------------------------------------------------------------------

CAP = 1000


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The agent's app on loopback, its body cap CAP bytes; yields its base URL."""
    monkeypatch.setattr(agent_app, "MAX_BODY_BYTES", CAP)
    with serve_asgi(agent_app.create_app(service)) as base:
        yield base


def post(base: str, content: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/invocations",
        content=content,
        headers={
            "Content-Type": "application/json",
            CALLER_TOKEN_HEADER: "t",
            AGENT_SESSION_HEADER: SESSION,
            **headers,
        },
        timeout=30,
    )


READ = "models: a non-empty list of model ids"  # what a body at the cap is refused for, once read
TOO_LARGE = {"error": "too_large", "message": f"body: at most {CAP} bytes", "session_id": SESSION}


def padded(size: int) -> bytes:
    """A body of exactly ``size`` bytes, refused once read (no models): a 400 says it was read."""
    body = json.dumps({"prompt": "hi", "models": [], "instructions": ""}).encode()
    return body[:-2] + b"i" * (size - len(body)) + body[-2:]


def test_a_body_at_the_cap_is_read(served: str) -> None:
    response = post(served, padded(CAP))
    assert (response.status_code, response.json()["message"]) == (400, READ)


def test_a_body_declared_past_the_cap_is_a_413_naming_the_cap(served: str) -> None:
    response = post(served, padded(CAP + 1))
    assert (response.status_code, response.json()) == (413, TOO_LARGE)


def test_a_chunked_body_past_the_cap_is_a_413_naming_the_cap(served: str) -> None:
    body = padded(CAP + 1)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the agent counts what arrives
        yield body[:600]
        yield body[600:]

    response = post(served, chunks())
    assert (response.status_code, response.json()) == (413, TOO_LARGE)
    small = padded(CAP)
    response = post(served, iter([small[:600], small[600:]]))
    assert (response.status_code, response.json()["message"]) == (400, READ)


@pytest.mark.parametrize("declared", [str(CAP + 1), "0" + str(CAP + 1), "9" * 15])
def test_a_declared_length_past_the_cap_is_a_413_before_the_body_is_sent(
    served: str, declared: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over a raw socket, a few bytes of the body sent: the answer comes at once, on the declared
    length alone (waiting for the rest would be a timeout, 10 s, reached only when it is wrong)."""
    host, port = served.removeprefix("http://").split(":")
    head = [
        "POST /invocations HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {declared}",
        f"{CALLER_TOKEN_HEADER}: t",
        f"{AGENT_SESSION_HEADER}: {SESSION}",
    ]
    capsys.readouterr()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"prompt": ')
        received = b""
        while not received.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    status = int(received.split(b" ", 2)[1])
    assert (status, json.loads(received.split(b"\r\n\r\n", 1)[1])) == (413, TOO_LARGE)
    (line,) = logged(capsys, "body too large")
    assert line["declared"] == (declared if len(declared) <= 12 else declared[:11] + "…")


def through_the_middleware(scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the app behind ReadableBody is handed for ``scope`` (its scope, and the first two
    messages it receives, when it is an HTTP request), the server's ``messages`` in turn."""
    seen: list[tuple[Any, ...]] = []
    pending = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(pending)

    async def send(message: Any) -> None:
        seen.append(("sent", message))

    async def inner(inner_scope: Any, inner_receive: Any, inner_send: Any) -> None:
        seen.append((inner_scope, inner_receive is receive, inner_send is send))
        if inner_scope["type"] == "http":
            seen.extend([await inner_receive(), await inner_receive()])

    asyncio.run(agent_app.ReadableBody(inner)(scope, receive, send))
    return seen


def test_a_declared_length_of_more_digits_than_int_reads_is_a_413(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP server in front (uvicorn) refuses such a length itself; the middleware does not
    rely on it: more digits than the cap's is past the cap, never read as a number (Python's int()
    raises past 4,300 digits)."""
    monkeypatch.setattr(agent_app, "MAX_BODY_BYTES", CAP)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"content-length", b"9" * 5_000), (AGENT_SESSION_HEADER.lower().encode(), SESSION.encode())],
        "query_string": b"",
    }
    seen = through_the_middleware(scope, [{"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}])
    assert [kind for kind, *_ in seen] == ["sent", "sent"]  # the agent was never reached
    assert seen[0][1]["status"] == 413
    assert json.loads(seen[1][1]["body"]) == TOO_LARGE


# --- what a turn leaves in the log, and a bug's answer ----------------------------------------------


def test_a_finished_turn_is_logged_by_its_facts_never_its_text(
    bedrock: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = bedrock
    stubber.add_response(
        "converse", converse_answer([{"text": "Secret answer."}], "end_turn", input_tokens=7, output_tokens=3), None
    )
    capsys.readouterr()
    status, answer = service(client).invoke({"prompt": "secret question"}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert status == 200
    (line,) = logged(capsys, "turn finished")
    facts = {
        key: line[key]
        for key in ("session_id", "group", "model", "stop", "iterations", "tools", "input_tokens", "output_tokens")
    }
    assert facts == {
        "session_id": SESSION,
        "group": "customer-gold",
        "model": MODEL,
        "stop": "end_turn",
        "iterations": 1,
        "tools": [],
        "input_tokens": 7,
        "output_tokens": 3,
    }
    assert "secret" not in json.dumps(line).lower()
    assert answer["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_a_body_that_is_not_json_is_logged_by_why_and_size_never_its_text(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = post(served, b"secret, not json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    (line,) = logged(capsys, "unreadable body")
    assert (line["why"], line["bytes"]) == ("JSONDecodeError", 16)
    assert "secret" not in json.dumps(line)


def test_a_body_of_more_values_than_any_turn_holds_is_refused_before_it_is_parsed(
    served: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """9 MB of "[{},{},...]" took 225 MB to parse, and the SDK parses the body again."""
    monkeypatch.setattr(agent_app, "MAX_BODY_BYTES", 100 * 1000 * 1000)  # the runtime's own cap
    body = b'{"prompt": "hi", "x": [' + b"{}," * 300_000 + b"{}]}"
    capsys.readouterr()
    response = post(served, body)
    assert (response.status_code, response.json()["error"]) == (413, "too_large")
    assert response.json()["message"] == "body: holds at least 300003 values; at most 250000 are read"
    (line,) = logged(capsys, "body of too many values")
    assert (line["level"], line["bytes"]) == ("INFO", len(body))


@pytest.mark.usefixtures("failed_tools_session")
@pytest.mark.parametrize(("wait", "seconds_left"), [(10, 60), (20, 10)], ids=["its wait", "the turn's time"])
def test_a_tools_gateway_that_cannot_be_reached_is_tools_unavailable_and_logged(
    capsys: pytest.CaptureFixture[str], wait: float, seconds_left: float
) -> None:
    """Refused at once, whichever bounds the wait: unavailable for its error, not for time."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    capsys.readouterr()
    with (
        pytest.raises(agent_app.ToolsUnavailableError),
        GatewayTools(f"http://127.0.0.1:{port}/mcp", wait)("t", SESSION, seconds_left),
    ):
        pass
    (line,) = logged(capsys, "tools gateway unavailable")
    assert line["level"] == "WARNING"
    # The failure's kind, never a message that could carry the token; and not the wait's end.
    assert line["error"] not in ("", "timeout")


def token_for(group: str) -> str:
    """A token the fake tools gateway reads the group of (it does not verify it: the agent did)."""
    return jwt.encode({"sub": "user-1", GROUP_CLAIM: group}, "not-a-real-key-but-long-enough-for-hs256", "HS256")


def test_a_tools_gateway_slow_to_list_is_tools_unavailable_within_the_sessions_wait() -> None:
    """A page of tools/list has no timeout but the MCP SDK's five minutes: starting the session and
    listing are one wait, past which the turn is tools_unavailable (it answered after the listing)."""
    with tools_gateway() as (url, fake):
        fake.list_seconds = 2.5
        with (
            pytest.raises(agent_app.ToolsUnavailableError),
            GatewayTools(url, 1.0)(token_for("customer-gold"), SESSION, 60),
        ):
            pass


def test_the_sessions_wait_ends_at_the_turns_deadline_when_that_comes_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0.5 s left of a 20 s wait, the listing taking 2.5 s: the turn answers by its deadline, the
    tools gateway unavailable (a 502 the operator sees logged), not 19.5 s late."""
    with tools_gateway() as (url, fake):
        fake.list_seconds = 2.5
        capsys.readouterr()
        with (
            pytest.raises(agent_app.ToolsUnavailableError),
            GatewayTools(url, 20)(token_for("customer-gold"), SESSION, 0.5),
        ):
            pass
    (line,) = logged(capsys, "tools gateway unavailable")
    assert (line["error"], line["waited_seconds"]) == ("timeout", 0.5)


@pytest.mark.parametrize("seconds_left", [0.0, -3.0])
def test_a_turn_out_of_time_before_its_tools_session_starts_opens_none(seconds_left: float) -> None:
    with tools_gateway() as (url, fake):
        with (
            pytest.raises(agent_app.ToolsOutOfTimeError),
            GatewayTools(url)(token_for("customer-gold"), SESSION, seconds_left),
        ):
            pass
        assert fake.calls() == []


def test_a_turn_out_of_time_before_its_tools_session_ends_at_its_deadline() -> None:
    """The session is given the turn's time left, counted from its arrival (100; the session
    opened at 103.5 of a 20 s turn): out of time there, the turn answers as one stopped at its
    deadline in its loop does, having called no model."""
    given: list[float] = []

    @contextmanager
    def listing_too_long(
        token: str, conversation: str, seconds_left: float, passage: str | None
    ) -> Iterator[list[Any]]:
        given.append(seconds_left)
        raise agent_app.ToolsOutOfTimeError
        yield []

    readings = iter([100.0])
    chosen = service(None, clock=lambda: next(readings, 103.5), turn_seconds=20)
    chosen.tools_for = listing_too_long
    status, answer = chosen.invoke({"prompt": "hi", "models": [MODEL]}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert given == [16.5]
    assert (status, answer) == (
        200,
        {
            "agent": chosen.settings.agent_name,
            "session_id": SESSION,
            "answer": STOPPED_ANSWER,
            "model": MODEL,
            "stop": "deadline",
            "iterations": 0,
            "tool_calls": [],
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    )


def test_a_gateway_that_pages_forever_is_read_for_max_tool_pages_and_each_tool_kept_once() -> None:
    """Strands refuses two tools of one name (a 500 for the caller): the first listing of each is kept."""
    with tools_gateway() as (url, fake):
        fake.endless = True
        with GatewayTools(url)(token_for("customer-gold"), SESSION, 60) as tools:
            names = [tool.tool_name for tool in tools]
        assert fake.calls().count("tools/list") == agent_app.MAX_TOOL_PAGES
    assert sorted(names) == ["knowledge___knowledge_search", "orders___find_orders"]


def test_a_bug_is_a_500_with_no_detail_and_logged(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Service, body: Any, headers: Any, session_id: Any) -> Any:
        raise KeyError("secret detail")

    monkeypatch.setattr(Service, "invoke", broken)
    response = post(served, b'{"prompt": "hi"}')
    assert (response.status_code, response.json()) == (500, {"error": "internal", "message": "the agent failed"})
    assert "secret" not in response.text


# --- the runtime contract's routes, and what the middleware hands the SDK ----------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "allow"),
    [
        ("GET", "/other", 404, {"error": "not_found", "message": "no such path: POST /invocations or GET /ping"}, None),
        ("GET", "/invocations", 405, {"error": "method_not_allowed", "message": "/invocations takes POST"}, "POST"),
        ("POST", "/ping", 405, {"error": "method_not_allowed", "message": "/ping takes GET or HEAD"}, "GET, HEAD"),
    ],
)
def test_any_other_path_or_method_is_the_agents_json_404_or_405(
    served: str, method: str, path: str, status: int, body: dict[str, str], allow: str | None
) -> None:
    response = httpx.request(method, f"{served}{path}", headers={AGENT_SESSION_HEADER: SESSION}, timeout=30)
    assert (response.status_code, response.json()) == (status, {**body, "session_id": SESSION})
    assert response.headers.get("allow") == allow


def test_ping_is_healthy_and_starts_loading_the_turn_modules_once(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    done = threading.Event()

    def load() -> None:
        loads.append(threading.current_thread().name)
        done.set()

    monkeypatch.setattr(agent_app, "_load_turn_modules", load)
    for _ in range(2):
        response = httpx.get(f"{served}/ping", timeout=30)
        assert (response.status_code, response.json()["status"]) == (200, "Healthy")
    assert done.wait(30)
    assert loads == ["warm-up"]


def test_a_streamed_body_past_the_cap_is_logged_by_the_size_it_reached(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = padded(CAP + 1)
    capsys.readouterr()
    response = post(served, iter([body[:600], body[600:]]))
    assert response.status_code == 413
    (line,) = logged(capsys, "body too large")
    assert line["bytes"] == CAP + 1


def test_a_body_json_cannot_read_is_a_400_naming_the_shape_it_takes(served: str) -> None:
    response = post(served, b"{not json")
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_request",
            "message": f"{agent_app.BODY_SHAPE}, as JSON this agent can read",
            "session_id": SESSION,
        },
    )


def test_what_is_not_http_reaches_the_sdk_untouched() -> None:
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    assert through_the_middleware(scope, []) == [(scope, True, True)]


def test_the_sdk_receives_the_body_read_once_then_what_the_server_says_next() -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    body = b'{"prompt": "hi"}'
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:], "more_body": False},
        {"type": "http.disconnect"},
    ]
    inner_scope, _, sends = through_the_middleware(scope, messages)[0]
    assert (inner_scope, sends) == (scope, True)
    assert through_the_middleware(scope, messages)[1:] == [
        {"type": "http.request", "body": body, "more_body": False},
        {"type": "http.disconnect"},
    ]


# --- who the caller is, and what a turn is run with -------------------------------------------------


class Refusing:
    def claims(self, token: str) -> dict[str, Any]:
        raise InvalidToken("expired")


FORBIDDEN = {"error": "forbidden", "message": "this agent does not serve the caller's group"}


@pytest.mark.parametrize(
    ("verifier", "headers", "status", "refusal"),
    [
        (None, {}, 401, {"error": "unauthorized", "message": "the caller's token is required"}),
        (None, {CALLER_TOKEN_HEADER: ""}, 401, {"error": "unauthorized", "message": "the caller's token is required"}),
        (
            Refusing(),
            {CALLER_TOKEN_HEADER: "t"},
            401,
            {"error": "unauthorized", "message": "the caller's token is not valid"},
        ),
        # A token verified but naming no one, or a group the agent does not serve.
        (Callers(), {CALLER_TOKEN_HEADER: "/customer-gold"}, 403, FORBIDDEN),
        (Callers(), {CALLER_TOKEN_HEADER: "user-1/"}, 403, FORBIDDEN),
        (Callers(), {CALLER_TOKEN_HEADER: "user-1/another-group"}, 403, FORBIDDEN),
    ],
    ids=["no-token", "an-empty-token", "an-invalid-token", "an-empty-subject", "no-group", "a-group-not-served"],
)
def test_a_caller_not_verified_or_not_served_is_refused_saying_which(
    verifier: Any, headers: dict[str, str], status: int, refusal: dict[str, str]
) -> None:
    answer = service(verifier=verifier).invoke({"prompt": "hi"}, headers, SESSION)
    assert answer == (status, {**refusal, "session_id": SESSION})


def test_a_turn_is_run_with_the_agents_settings_and_the_callers_request(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[dict[str, Any]] = []

    def run_turn(bedrock: Any, tools: Any, **given: Any) -> Any:
        ran.append({"bedrock": bedrock, "tools": tools, **given})
        raise UpstreamError("bedrock", "ThrottlingException", 429)

    clock = lambda: 100.0  # noqa: E731
    monkeypatch.setattr(agent_app, "run_turn", run_turn)
    chosen = service("bedrock-client", clock=clock, max_iterations=7, max_tool_calls=9, turn_seconds=20)
    body = {"prompt": "hi", "max_tokens": 50, "models": [MODEL], "temperature": 0, "stop_sequences": ["END"]}
    chosen.invoke(body, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    (given,) = ran
    assert given == {
        "bedrock": "bedrock-client",
        "tools": [],
        "agent_name": AGENT,
        "models": [MODEL],
        "system": "You help customers.",
        "messages": given["messages"],
        "session_id": SESSION,
        "max_tokens": 50,
        "temperature": 0.0,  # and no top_p: not sent, the model's own
        "stop_sequences": ["END"],
        "max_iterations": 7,
        "max_tool_calls": 9,
        "deadline": 120.0,
        "clock": clock,
    }


@pytest.mark.parametrize("changes", [{"usage": "abc"}, {"usage": {"inputTokens": "x"}}, {"metrics": 5}])
def test_a_model_answer_botocore_cannot_parse_is_the_models_failure_not_the_agents(changes: dict[str, Any]) -> None:
    """Strands calls Converse itself: what botocore's parser raised is the model's InvalidResponse
    (a 502 the gateway classifies), as on the gateway's own model path, not the agent's 500."""
    body = json.dumps({**converse_answer([{"text": "Hello."}]), **changes}).encode()
    status, answer = service(answering_raw("bedrock-runtime", "Converse", body)).invoke(
        {"prompt": "hi"}, {CALLER_TOKEN_HEADER: "t"}, SESSION
    )
    assert (status, answer) == (
        502,
        {"error": "model_unavailable", "message": "bedrock-runtime failed with InvalidResponse", "session_id": SESSION},
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 1.5, "temperature: a number from 0 to 1"),
        ("temperature", -0.1, "temperature: a number from 0 to 1"),
        ("temperature", True, "temperature: a number from 0 to 1"),
        ("temperature", "0.5", "temperature: a number from 0 to 1"),
        ("temperature", float("nan"), "temperature: a number from 0 to 1"),
        ("top_p", 1.01, "top_p: a number from 0 to 1"),
        ("top_p", float("inf"), "top_p: a number from 0 to 1"),
        ("stop_sequences", "END", "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
        ("stop_sequences", [], "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
        ("stop_sequences", ["a"] * 5, "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
        ("stop_sequences", [""], "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
        ("stop_sequences", ["x" * 257], "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
        ("stop_sequences", [1], "stop_sequences: 1 to 4 texts of 1 to 256 characters"),
    ],
)
def test_sampling_settings_outside_converses_ranges_are_refused_naming_the_field(
    field: str, value: Any, message: str
) -> None:
    status, answer = service().invoke({"prompt": "hi", field: value}, {CALLER_TOKEN_HEADER: "t"}, SESSION)
    assert (status, answer) == (400, {"error": "invalid_request", "message": message, "session_id": SESSION})


@pytest.mark.parametrize(
    ("sampling", "inference"),
    [
        ({}, {"maxTokens": 50}),
        (
            {"temperature": 1, "top_p": 0, "stop_sequences": ["END", "\n\n"]},
            {"maxTokens": 50, "temperature": 1.0, "topP": 0.0, "stopSequences": ["END", "\n\n"]},
        ),
    ],
    ids=["none chosen", "each at a bound"],
)
def test_the_callers_sampling_settings_are_each_model_calls_inference_config(
    bedrock: tuple[Any, Stubber], sampling: dict[str, Any], inference: dict[str, Any]
) -> None:
    client, stubber = bedrock
    stubber.add_response(
        "converse",
        converse_answer([{"text": "Hello."}], "end_turn"),
        {"modelId": MODEL, "system": ANY, "messages": ANY, "inferenceConfig": inference, "requestMetadata": ANY},
    )
    status, answer = service(client).invoke(
        {"prompt": "hi", "max_tokens": 50, **sampling}, {CALLER_TOKEN_HEADER: "t"}, SESSION
    )
    assert (status, answer["answer"]) == (200, "Hello.")


def test_a_tools_gateway_that_does_not_answer_is_a_502_saying_so() -> None:
    @contextmanager
    def unavailable(token: str, conversation: str, seconds_left: float, passage: str | None) -> Iterator[list[Any]]:
        raise agent_app.ToolsUnavailableError
        yield []

    chosen = service()
    chosen.tools_for = unavailable
    assert chosen.invoke({"prompt": "hi"}, {CALLER_TOKEN_HEADER: "t"}, SESSION) == (
        502,
        {"error": "tools_unavailable", "message": "the tools gateway did not answer", "session_id": SESSION},
    )


@pytest.mark.parametrize("stop", [["a"], ["ab"], ["a", "b", "c", "d"], ["x" * 256]], ids=["one", "two", "four", "256"])
def test_stop_sequences_at_their_limits_are_passed_on(stop: list[str]) -> None:
    """One to MAX_STOP_SEQUENCES (4) texts of one to MAX_STOP_CHARS (256) characters: every limit
    included."""
    assert agent_app._sampling({"stop_sequences": stop}) == {"stop_sequences": stop}


class _Tool:
    def __init__(self, name: str) -> None:
        self.tool_name = name


class _Page(list[_Tool]):
    def __init__(self, names: str, token: str | None) -> None:
        super().__init__(_Tool(name) for name in names)
        self.pagination_token = token


class _Paged:
    """A tools gateway listing its tools in pages: the token of each page is the next page's index."""

    def __init__(self, *pages: _Page) -> None:
        self.pages = pages
        self.asked: list[str | None] = []

    def list_tools_sync(self, pagination_token: str | None = None) -> _Page:
        self.asked.append(pagination_token)
        return self.pages[int(pagination_token or 0)]


def test_every_page_of_the_tools_list_is_read_and_each_name_kept_once() -> None:
    client = _Paged(_Page("ab", "1"), _Page("ca", "2"), _Page("d", None))
    assert [tool.tool_name for tool in agent_app._listed(client)] == ["a", "b", "c", "d"]
    assert client.asked == [None, "1", "2"]
