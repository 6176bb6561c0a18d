"""SnapStart safety of the functions that have it (shared.snapstart): the gateway function, the
streaming gateway function (the same handler module, under its own runtime loop, which runs the
hooks shared.snapstart records) and the authorizer, the knowledge search tool and the push
connector.

What init leaves in memory is shared by every environment resumed from the snapshot: importing the
handlers must create no client, connection or credentials; the before-snapshot hooks may only warm
(parse service models, import), never call out; the after-restore hooks reseed ``random`` and empty
the caches so each environment builds its own clients and sessions.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ai_gateway import handler, jobs
from connector_push import handler as push
from gateway_authorizer import handler as authorizer
from gateway_authorizer.contract import Settings as AuthorizerSettings
from knowledge_search import handler as search
from shared import snapstart
from shared.runtime_config import ConfigLocation
from tests.lambdas.gateway_fixtures import environment

ROOT = Path(__file__).resolve().parents[2]

# Stands in for the managed runtime's library: records what registers, in order.
FAKE_LIBRARY = """
before, after = [], []
def register_before_snapshot(func, *args, **kwargs):
    before.append(func)
    return func
def register_after_restore(func, *args, **kwargs):
    after.append(func)
    return func
"""

# The handlers of the functions with SnapStart (tests/infra/test_snapstart.py), in import order.
SNAPSHOTTED = ("ai_gateway.handler", "gateway_authorizer.handler", "knowledge_search.handler", "connector_push.handler")

# Imports the handlers with every way of creating a client, resolving credentials or opening a
# socket recorded, then runs the hooks as the runtime would (before-snapshot in reverse order of
# registration, after-restore in order) and reports what happened at each step.
PROBE = """
import json, socket
import boto3, botocore.session

seen = {"clients": [], "credentials": 0, "sockets": []}
create_client = botocore.session.Session.create_client
get_credentials = botocore.session.Session.get_credentials
def recording_client(self, service_name, *args, **kwargs):
    seen["clients"].append(service_name)
    return create_client(self, service_name, *args, **kwargs)
def recording_credentials(self, *args, **kwargs):
    seen["credentials"] += 1
    return get_credentials(self, *args, **kwargs)
def refused(*args, **kwargs):
    seen["sockets"].append(repr(args[1:] if args else kwargs)[:80])
    raise OSError("no network during init")
botocore.session.Session.create_client = recording_client
botocore.session.Session.get_credentials = recording_credentials
socket.socket.connect = refused
socket.socket.connect_ex = refused
socket.create_connection = refused

def snapshot():
    return {k: (list(v) if isinstance(v, list) else v) for k, v in seen.items()}

import ai_gateway.handler, gateway_authorizer.handler, knowledge_search.handler, connector_push.handler
import snapshot_restore_py as runtime
from shared import snapstart
report = {
    "before": [f"{f.__module__}.{f.__qualname__}" for f in runtime.before],
    "after": [f"{f.__module__}.{f.__qualname__}" for f in runtime.after],
    # What the streaming function's own loop runs (ai_gateway.stream_runtime), library or not.
    "recorded_before": [f"{f.__module__}.{f.__qualname__}" for f in snapstart.before_snapshot_hooks],
    "recorded_after": [f"{f.__module__}.{f.__qualname__}" for f in snapstart.after_restore_hooks],
    "import": snapshot(),
    "default_session_at_import": boto3.DEFAULT_SESSION is not None,
}
for hook in reversed(runtime.before):
    hook()
report["before_snapshot"] = snapshot()
loader = boto3.DEFAULT_SESSION._session.get_component("data_loader")
report["models"] = sorted({str(key[1]) for key in loader._cache if key[0] == "load_service_model"})
for hook in runtime.after:
    hook()
report["after_restore"] = snapshot()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What importing the handlers and running their hooks did, in a fresh interpreter with the
    runtime's hook library present."""
    library = tmp_path_factory.mktemp("runtime")
    (library / "snapshot_restore_py.py").write_text(FAKE_LIBRARY, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(library), str(ROOT), str(ROOT / "lambdas")]),
        "AWS_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


NOTHING = {"clients": [], "credentials": 0, "sockets": []}


def test_the_probe_imports_every_snapshotted_handler() -> None:
    assert f"import {', '.join(SNAPSHOTTED)}" in PROBE


def test_importing_the_handlers_creates_no_client_credentials_or_socket(probe: dict[str, Any]) -> None:
    assert probe["import"] == NOTHING
    assert probe["default_session_at_import"] is False


def test_every_handler_registers_its_hooks_with_the_runtime(probe: dict[str, Any]) -> None:
    assert probe["before"] == [f"{module}._warm" for module in SNAPSHOTTED]
    assert probe["after"] == [f"{module}._restored" for module in SNAPSHOTTED]


def test_the_warm_up_parses_the_models_without_a_client_credentials_or_a_call(probe: dict[str, Any]) -> None:
    assert probe["before_snapshot"] == NOTHING
    assert set(probe["models"]) >= {*handler.SERVICES, "apigateway", "bedrock-agent-runtime", "s3"}


def test_the_restore_hooks_make_nothing_either(probe: dict[str, Any]) -> None:
    assert probe["after_restore"] == NOTHING


def test_with_the_runtime_library_the_hooks_are_recorded_too_for_the_streaming_loop(probe: dict[str, Any]) -> None:
    assert (probe["recorded_before"], probe["recorded_after"]) == (probe["before"], probe["after"])


def test_without_the_runtime_library_the_hooks_are_only_recorded() -> None:
    assert handler._warm in snapstart.before_snapshot_hooks
    assert handler._restored in snapstart.after_restore_hooks
    assert authorizer._warm in snapstart.before_snapshot_hooks
    assert authorizer._restored in snapstart.after_restore_hooks


@pytest.mark.parametrize("module", [handler, authorizer, search, push], ids=lambda m: m.__name__)
def test_a_restore_reseeds_random_so_environments_do_not_jitter_in_lockstep(module: Any) -> None:
    """The ledger's retries and botocore's (standard mode) draw their jitter from ``random``."""
    random.seed(1234)
    from_the_snapshot = [random.random() for _ in range(4)]
    random.seed(1234)  # the state every environment resumes with
    module._restored()
    assert [random.random() for _ in range(4)] != from_the_snapshot


def test_a_restore_empties_the_gateways_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    environment(monkeypatch)
    before = handler.settings(), handler.dependencies(), handler.policy_reader()
    handler._restored()
    for cached in (handler.settings, handler.dependencies, handler.policy_reader, jobs.environment):
        assert cached.cache_info().currsize == 0
    after = handler.settings(), handler.dependencies(), handler.policy_reader()
    assert all(new is not old for new, old in zip(after, before, strict=True))
    assert after[1].bedrock is not before[1].bedrock  # a new client: its own connections and credentials
    handler._restored()


def test_a_restore_empties_the_authorizers_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="gateway")
    settings = AuthorizerSettings(user_pool_id="us-east-1_pool", client_id="client", api_keys=location)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    authorizer._restored()
    before = authorizer.settings(), authorizer.api_keys(), authorizer.verifier(), authorizer.apigateway()
    authorizer._restored()
    for cached in (
        authorizer.settings,
        authorizer.api_keys,
        authorizer.verifier,
        authorizer.apigateway,
        authorizer.api_key_value,
    ):
        assert cached.cache_info().currsize == 0
    after = authorizer.settings(), authorizer.api_keys(), authorizer.verifier(), authorizer.apigateway()
    assert all(new is not old for new, old in zip(after, before, strict=True))
    authorizer._restored()


@pytest.mark.parametrize(
    ("module", "variables", "cached"),
    [
        (search, {"KNOWLEDGE_BASE_ID": "KB12345678"}, ("settings", "client")),
        (
            push,
            {"LANDING_BUCKET": "landing", "PUSH_SOURCES": '{"crm": "internal"}', "REGISTRY_TABLE": "registry"},
            ("settings", "s3", "registry"),
        ),
    ],
)
def test_a_restore_empties_a_tools_or_connectors_caches(
    monkeypatch: pytest.MonkeyPatch, module: Any, variables: dict[str, str], cached: tuple[str, ...]
) -> None:
    for name, value in {**variables, "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    module._restored()
    before = [getattr(module, name)() for name in cached]
    module._restored()
    for name in cached:
        assert getattr(module, name).cache_info().currsize == 0
    after = [getattr(module, name)() for name in cached]
    assert all(new is not old for new, old in zip(after, before, strict=True))
    module._restored()
