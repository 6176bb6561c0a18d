"""Lambda SnapStart's runtime hooks, and nothing where there is no SnapStart.

With SnapStart, Lambda initializes a function once per published version, snapshots the
environment, and resumes every cold start of that version from the snapshot: whatever init
created is shared by every environment resumed from it, possibly hours later. So init here
creates no client, connection or credentials (they are made by the first request, after the
restore), captures no time, and draws no randomness a request relies on; what init *may* do is
the expensive work that is the same everywhere (imports, parsing the SDK's service models).

The managed Python runtime ships ``snapshot_restore_py`` and runs its hooks: before-snapshot
hooks in reverse order of registration, after-restore hooks in order (AWS Lambda's "runtime
hooks for Python"). The decorators below register each hook there and also record it
(``before_snapshot_hooks`` / ``after_restore_hooks``): the streaming function's own runtime loop
(ai_gateway.stream_runtime) runs the recorded ones, in the same orders; in tests and local runs
nothing calls them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

try:  # in Lambda's managed Python runtimes (3.12+)
    from snapshot_restore_py import (  # type: ignore[import-not-found,unused-ignore]
        register_after_restore as _runtime_after_restore,
        register_before_snapshot as _runtime_before_snapshot,
    )
except ImportError:  # tests, local runs, a runtime loop of our own
    _runtime_after_restore = _runtime_before_snapshot = None

Hook = TypeVar("Hook", bound=Callable[[], Any])

before_snapshot_hooks: list[Callable[[], Any]] = []
after_restore_hooks: list[Callable[[], Any]] = []


def before_snapshot(hook: Hook) -> Hook:
    """Run ``hook`` before Lambda snapshots the initialized environment (it counts toward init's time
    limit): warm-ups only, never a network call."""
    before_snapshot_hooks.append(hook)
    if _runtime_before_snapshot is not None:
        _runtime_before_snapshot(hook)
    return hook


def after_restore(hook: Hook) -> Hook:
    """Run ``hook`` each time an environment resumes from the snapshot, before its first request
    (within the restore's 10 s): refresh what must differ between environments."""
    after_restore_hooks.append(hook)
    if _runtime_after_restore is not None:
        _runtime_after_restore(hook)
    return hook


def reseed_random() -> None:
    """The ``random`` module's generator was seeded once, at the import before the snapshot, so every
    environment resumed from it would draw the same sequence (the ledger's and botocore's retry
    jitter would retry in lockstep): seed it again from the OS's entropy."""
    random.seed()


def fresh_environment(*cached: Any) -> None:
    """What every after-restore hook does: reseed ``random`` (reseed_random) and empty each of
    ``cached`` (``functools.cache`` functions: settings, clients, sessions), so the environment
    builds its own clients, credentials and connections at its first request."""
    reseed_random()
    for function in cached:
        function.cache_clear()


def load_service_models(services: Iterable[str]) -> None:
    """Parse botocore's models of ``services`` (the API and its endpoint rules) into boto3's default
    session, whose clients the first request creates: a client then costs its construction only.
    No client is made, no credentials are resolved and nothing is sent."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION._session  # botocore's session: boto3 exposes no loader
    loader = session.get_component("data_loader")
    for service in services:
        session.get_service_model(service)
        loader.load_service_model(service, "endpoint-rule-set-1")
