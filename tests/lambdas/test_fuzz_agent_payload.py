"""Property: the agent runtime (BedrockAgentCoreApp over loopback HTTP, as AgentCore Runtime runs
it) answers any POST /invocations, whatever its body or identity headers, with JSON: the turn (200)
or a 4xx in the agent's shape ({"error", "message", "session_id"}) that names what was wrong. Never
a 5xx or a stack trace; an invalid payload or caller costs no model call and no tools session; and
/ping answers Healthy afterwards.

The caller's token is verified for real (a stand-in Cognito pool's keys on loopback); the model is a
fake that counts its calls and answers at once; the tools gateway is a fake session with no tools;
there is no memory; the agent's clock is stopped, so a turn's time never runs out. A body past the
cap (AgentCore Runtime's own payload limit) is a 413 in the agent's shape, before it is read into
memory, declared or chunked.
"""

from __future__ import annotations

import json
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, example, given, settings, strategies as st

from agent import app as agent_app
from agent.app import MAX_INSTRUCTIONS, Service, create_app
from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER
from tests.lambdas.bedrock_fakes import converse_answer
from tests.lambdas.cognito_fixtures import pool_verifier, sign
from tests.lambdas.loopback import serve_asgi
from tests.lambdas.strategies import json_values
from tests.lambdas.test_agent import MODEL, Documents, settings_for
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS: dict[str, Any] = dict(
    max_examples=60,
    deadline=None,
    # capfd is read (and so emptied) at the start of each example that looks at the logs.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SESSION = "session-fuzz-0123456789abcdef0123456789"
ANSWER = "Hello from the model."
PROMPT_MARKER = "prompt-text-4b1e "  # begins every hostile prompt: no log line may carry it
REFUSALS = {400, 401, 403, 404, 405, 409, 413}
# What an HTTP/1.1 header value may carry (Latin-1, no controls): anything else is the HTTP server's 400.
HEADER_CHARACTERS = st.characters(codec="latin-1", exclude_categories=["Cc"])


class CountingBedrock:
    """What BedrockModel calls of a bedrock-runtime client: converse, counted, answered at once."""

    meta = SimpleNamespace(region_name="us-east-1")

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def converse(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        return converse_answer([{"text": ANSWER}], "end_turn")


@dataclass
class Agent:
    base: str
    model: CountingBedrock
    sessions: list[str] = field(default_factory=list)  # tools sessions opened
    token: Any = None

    def calls(self) -> tuple[int, int]:
        return self.model.calls, len(self.sessions)

    def caller(self, **claims: Any) -> dict[str, str]:
        return {CALLER_TOKEN_HEADER: self.token(**claims), AGENT_SESSION_HEADER: SESSION}

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{self.base}/invocations",
            content=body,
            # Bytes: a header carries any Latin-1 text, which httpx sends only as bytes.
            headers=[(b"Content-Type", b"application/json")]
            + [(name.encode(), value.encode("latin-1")) for name, value in headers.items()],
            timeout=30,
        )


@pytest.fixture(scope="module")
def agent(cognito: tuple[str, list[str]], signing_key: rsa.RSAPrivateKey) -> Iterator[Agent]:
    issuer = cognito[0]
    model = CountingBedrock()
    opened: list[str] = []

    @contextmanager
    def tools_for(token: str, conversation: str, seconds_left: float, passage: str | None) -> Iterator[list[Any]]:
        opened.append(conversation)
        yield []

    service = Service(
        settings_for("http://127.0.0.1:9/mcp", issuer),  # memory: none (the Service has no SessionMemory)
        model,
        pool_verifier(issuer),
        tools_for,
        Documents().reader(),
        # Stopped, at zero: a body's turn_seconds (0.001, even 1e-14, is valid) ends no turn on a
        # busy machine's clock, nor vanishes when added to a larger time.
        clock=lambda: 0.0,
    )
    with serve_asgi(create_app(lambda: service)) as base:
        yield Agent(base, model, opened, lambda **claims: sign(signing_key, issuer, **claims))


def refusal(response: httpx.Response) -> dict[str, Any]:
    """The agent's refusal, after checking its shape."""
    assert response.status_code in REFUSALS, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {"error", "message", "session_id"}, answer
    assert all(isinstance(value, str) and value for value in answer.values()), answer
    assert len(response.content) < 2_000, response.content[:300]  # names what was wrong; echoes little
    return dict(answer)


def answered(agent: Agent, response: httpx.Response, before: tuple[int, int]) -> dict[str, Any]:
    """The answer of any invocation: the turn or a refusal, and the calls it cost."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    if response.status_code == 200:
        answer = dict(response.json())
        assert answer["answer"] == ANSWER, answer
        assert agent.model.calls > before[0]
        return answer
    answer = refusal(response)
    assert agent.calls() == before, answer  # refused: no model call, no tools session
    return answer


def healthy(agent: Agent) -> None:
    response = httpx.get(f"{agent.base}/ping", timeout=10)
    assert (response.status_code, response.json()["status"]) == (200, "Healthy")


# Any body


def _fields(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


bodies = st.one_of(
    st.binary(max_size=100),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
    st.builds(
        lambda body: json.dumps(body).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                "prompt": st.one_of(hostile_text(40), json_values),
                "messages": st.one_of(
                    json_values,
                    st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "role": st.one_of(
                                    st.sampled_from(["user", "assistant", "system", "tool"]), json_values
                                ),
                                "content": st.one_of(hostile_text(20), json_values),
                            },
                        ),
                        max_size=4,
                    ),
                ),
                "instructions": st.one_of(hostile_text(20), json_values),
                "models": st.one_of(st.lists(st.sampled_from([MODEL, "other-model"]), max_size=3), json_values),
                "max_tokens": st.one_of(st.integers(-10, 10_000), json_values),
                "turn_seconds": st.one_of(st.floats(), json_values),
            },
        ),
    ),
    st.sampled_from(
        [
            b"",
            b"null",
            b'"prompt"',
            b'{"prompt": NaN}',
            b'{"prompt": "hi", "turn_seconds": NaN}',
            b'{"prompt": "hi", "turn_seconds": Infinity}',
            b'{"prompt": "hi", "max_tokens": -Infinity}',
            b'{"prompt": "hi"}\x00',
            b'\xef\xbb\xbf{"prompt": "hi"}',
            b'{"prompt": "\\ud800\\u0000"}',
        ]
    ),
)


@settings(**SETTINGS)
@given(body=bodies)
@example(body=b'{"prompt": "hi"}')
@example(body=b'{"prompt": "hi", "models": 0}')
@example(body=b'{"prompt": "!", "turn_seconds": 0.001}')  # the whole turn, however long the machine takes
@example(body=b'{"prompt": "!", "turn_seconds": 1e-14}')
def test_any_body_is_the_turn_or_a_refusal_in_the_agents_shape(
    agent: Agent, body: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    before = agent.calls()
    answered(agent, agent.post(body, agent.caller()), before)
    assert "Traceback" not in "".join(capfd.readouterr())
    healthy(agent)


# Each field typed wrong


VALID: dict[str, Any] = {"prompt": "hi", "models": [MODEL], "max_tokens": 100, "turn_seconds": 30, "instructions": "x"}
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "instructions": st.one_of(
        json_values.filter(lambda v: v is not None and not isinstance(v, str)),
        st.just("i" * (MAX_INSTRUCTIONS + 1)),
    ),
    "models": st.one_of(
        # (a list of strings is well-typed: a model outside the group's is a 403, model_forbidden)
        json_values.filter(
            lambda v: v is not None and not (isinstance(v, list) and v and all(isinstance(m, str) for m in v))
        ),
        st.sampled_from([0, "", {}, False, [], [None], [MODEL, 1]]),
    ),
    "max_tokens": st.one_of(
        json_values.filter(lambda v: v is not None and not (type(v) is int and 1 <= v <= 8192)),
        st.sampled_from([0, 8193, True, 1.0, "100"]),
    ),
    "turn_seconds": st.one_of(
        json_values.filter(
            lambda v: v is not None and not (isinstance(v, int | float) and type(v) is not bool and v > 0)
        ),
        st.sampled_from([0, -1, True, "30", 0.0]),
    ),
    "messages": st.one_of(
        json_values.filter(lambda v: v is not None),
        st.sampled_from(
            [
                [],
                [{"role": "assistant", "content": "hi"}],
                [{"role": "user", "content": ""}],
                [{"role": "user", "content": 1}],
                [{"role": "system", "content": "hi"}],
                [{"role": "user"}],
            ]
        ),
    ),
}


@st.composite
def wrong_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(WRONG)))
    body = {**VALID, name: draw(WRONG[name])}
    if name == "messages":  # the prompt takes precedence: without one, the messages are the body
        del body["prompt"]
        body["prompt"] = draw(st.sampled_from([None, "", "   ", 0, [], {}]))
        name = "body"
    return name, body


@settings(**SETTINGS)
@given(case=wrong_bodies())
@example(case=("models", {**VALID, "models": 0}))
@example(case=("models", {**VALID, "models": ""}))
@example(case=("models", {**VALID, "models": {}}))
@example(case=("models", {**VALID, "models": False}))
def test_a_field_typed_wrong_is_a_400_naming_it_and_costs_nothing(
    agent: Agent, case: tuple[str, dict[str, Any]]
) -> None:
    name, body = case
    before = agent.calls()
    response = agent.post(json.dumps(body).encode(), agent.caller())
    assert response.status_code == 400, (body, response.text[:300])
    answer = answered(agent, response, before)
    assert answer["error"] == "invalid_request", (body, answer)
    assert answer["message"].startswith(f"{name}: "), (body, answer)


def test_a_valid_body_runs_the_turn(agent: Agent) -> None:
    before = agent.calls()
    answer = answered(agent, agent.post(json.dumps(VALID).encode(), agent.caller()), before)
    assert (answer["model"], answer["session_id"]) == (MODEL, SESSION)
    assert agent.calls() == (before[0] + 1, before[1] + 1)


# Identity headers


@settings(**SETTINGS)
@given(
    token=st.one_of(
        st.none(),
        st.sampled_from(["", "Bearer x", "a.b.c", "e30.e30.", "x" * 8_000]),
        st.text(HEADER_CHARACTERS, max_size=50).map(str.strip),
        st.builds(
            lambda claims: claims,
            st.fixed_dictionaries(
                {},
                optional={
                    # Any text but "" is a subject (a token of "0" is a caller's): only what no subject is.
                    "sub": st.one_of(st.none(), st.just(""), json_values.filter(lambda v: not isinstance(v, str))),
                    "gateway_group": st.one_of(
                        st.none(), st.sampled_from(["", "strangers", "customer-basic"]), json_values
                    ),
                    "token_use": st.sampled_from(["id", "refresh", ""]),
                    "client_id": st.sampled_from(["someone-else", ""]),
                    "exp": st.sampled_from([0, 1, "soon"]),
                    "iss": st.sampled_from(["https://elsewhere.test/pool", ""]),
                },
            ).filter(bool),
        ),
    ),
    session=st.one_of(
        st.none(),
        st.text(HEADER_CHARACTERS, max_size=300).map(str.strip),
    ),
)
@example(token=None, session=None)
@example(token={"sub": ""}, session=None)
@example(token={"sub": 0}, session=None)
def test_a_caller_the_agent_cannot_verify_or_serve_is_refused_before_any_call(
    agent: Agent, token: str | dict[str, Any] | None, session: str | None
) -> None:
    headers: dict[str, str] = {}
    if isinstance(token, dict):
        headers[CALLER_TOKEN_HEADER] = agent.token(**token)
    elif token is not None:
        headers[CALLER_TOKEN_HEADER] = token
    if session is not None:
        headers[AGENT_SESSION_HEADER] = session
    before = agent.calls()
    response = agent.post(b'{"prompt": "hi"}', headers)
    assert response.status_code in (401, 403), response.text[:300]
    answer = answered(agent, response, before)
    assert answer["error"] in ("unauthorized", "forbidden"), answer
    healthy(agent)


@settings(**SETTINGS)
@given(prompt=hostile_text(200), session=st.text(HEADER_CHARACTERS, min_size=1, max_size=100).map(str.strip))
@example(prompt="\ud800 \x00 hi", session=SESSION)
@example(prompt="p" * 300_000, session=SESSION)
def test_hostile_text_in_a_valid_body_is_a_turn_and_every_log_line_is_written(
    agent: Agent, prompt: str, session: str, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    headers = {**agent.caller(), AGENT_SESSION_HEADER: session}
    before = agent.calls()
    response = agent.post(json.dumps({"prompt": PROMPT_MARKER + prompt}).encode(), headers)
    answer = answered(agent, response, before)
    if response.status_code != 200:  # another test's caller bound this session first
        assert answer["error"] == "session_bound", answer
    logs = "".join(capfd.readouterr())
    assert "Traceback" not in logs
    assert PROMPT_MARKER not in logs  # the caller's text is never logged


# Size


def test_a_body_past_the_cap_is_a_413_before_it_is_read(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = 1 << 20
    monkeypatch.setattr(agent_app, "MAX_BODY_BYTES", cap)
    before = agent.calls()
    body = json.dumps({"prompt": "p" * cap}).encode()
    response = agent.post(body, agent.caller())
    assert response.status_code == 413, response.text[:300]
    answer = answered(agent, response, before)
    assert (answer["error"], answer["session_id"]) == ("too_large", SESSION)

    chunk = b"p" * (1 << 20)

    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(64):  # 64 MiB offered, no Content-Length
            yield chunk
        yield b'"}'

    tracemalloc.start()
    try:
        try:
            response = httpx.post(
                f"{agent.base}/invocations",
                content=chunks(),
                headers={"Content-Type": "application/json", **agent.caller()},
                timeout=30,
            )
            assert refusal(response)["error"] == "too_large"
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the agent answered and closed while the client was still sending: refused all the same
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * cap, peak  # the cap and a chunk in flight, not the 64 MiB offered
    assert agent.calls() == before
    healthy(agent)
    assert cap == agent_app.MAX_BODY_BYTES


@pytest.mark.parametrize("declared", ["999999999999999999999999999999", "9" * 5_000, str(100 * 1000 * 1000 + 1)])
def test_a_declared_length_past_the_cap_is_a_413_without_reading(agent: Agent, declared: str) -> None:
    """Over a raw socket: an HTTP client would not send a length its body does not have."""
    before = agent.calls()
    host, port = agent.base.removeprefix("http://").split(":")
    head = [
        "POST /invocations HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {declared}",
        *(f"{k}: {v}" for k, v in agent.caller().items()),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"prompt": "hi"}')
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)  # the answer comes without the body being sent (a timeout fails)
            if not chunk:
                break
            received += chunk
    status = int(received.split(b" ", 2)[1])
    if status == 400 and b"too_large" not in received:  # the HTTP server refused the length itself
        assert b"Traceback" not in received
    else:
        assert status == 413, received[:300]
        assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "too_large"
    assert agent.calls() == before
    healthy(agent)


# Other paths and methods


@settings(**SETTINGS)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/invocations", "/ping", "/invocations/", "/", "/mcp", "/ws", "/PING", "//invocations"]),
        st.text(st.characters(codec="ascii", exclude_characters="#?%", categories=["L", "N", "P"]), max_size=20).map(
            lambda text: "/" + text
        ),
    ),
)
@example(method="GET", path="/invocations")
@example(method="POST", path="/ping")
@example(method="POST", path="/nope")
def test_any_other_path_or_method_is_a_json_4xx_in_the_agents_shape(agent: Agent, method: str, path: str) -> None:
    before = agent.calls()
    body = b'{"prompt": "hi"}' if method in ("POST", "PUT", "PATCH") else b""
    response = httpx.request(method, f"{agent.base}{path}", content=body, headers=agent.caller(), timeout=30)
    if (method, path) in (("POST", "/invocations"), ("GET", "/ping"), ("HEAD", "/ping")):
        assert response.status_code == 200
        return
    assert response.status_code in (404, 405), (method, path, response.status_code)
    if method != "HEAD":
        answer = answered(agent, response, before)
        assert answer["error"] in ("not_found", "method_not_allowed"), answer
    assert agent.calls() == before
    healthy(agent)
