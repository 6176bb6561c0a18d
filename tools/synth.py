"""The app synthesized in-process, as `cdk synth` would: one way for the tools, benchmarks and tests.

One jsii start-up per process instead of the CLI's own; schema validation off (`make synth` and
cfn-lint do it, and it does not change a template).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What the CDK CLI adds to the context (cdk.json sets versionReporting off), so the in-process
# synth writes the same templates as `cdk synth` (tests/infra/test_determinism.py checks it).
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True}
Templates = dict[str, dict[str, Any]]


def cdk_context() -> dict[str, Any]:
    """cdk.json's context, as the CLI hands it to the app."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {})
    return context


def templates_in(outdir: Path) -> Templates:
    """The templates of a cloud assembly, by stack name."""
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(outdir.glob("*.template.json"))
    }


def synthesize(outdir: Path, context: Mapping[str, Any] | None = None) -> Templates:
    """The app (``context``, cdk.json's unless given) synthesized into ``outdir``, cdk-nag on
    (a finding raises); its templates by stack name."""
    # jsii reads this when it starts, at the first import of aws_cdk.
    os.environ.setdefault("CDK_VALIDATION", "false")
    sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "lambdas")) if p not in sys.path]
    from aws_cdk import App

    from app import build_app

    app = App(context={**(cdk_context() if context is None else context), **CLI_CONTEXT}, outdir=str(outdir))
    build_app(app)
    app.synth()
    return templates_in(outdir)


# jsii's Python client talks to its Node.js kernel over one pipe, one request at a time, with no lock
# of its own: a second thread may use it only with this lock around each request and its answer.
_KERNEL_LOCK = threading.RLock()


def _serialize_kernel_requests() -> None:
    from jsii._kernel.providers import process

    send = process._NodeProcess.send
    if getattr(send, "serialized", False):
        return

    def serialized(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _KERNEL_LOCK:
            return send(self, *args, **kwargs)

    serialized.serialized = True  # type: ignore[attr-defined]
    process._NodeProcess.send = serialized  # type: ignore[method-assign]


@contextmanager
def validator_warmed_up(preload: Iterable[str] = ()) -> Iterator[None]:
    """Start CloudFormation schema validation's engine in the background while the body runs.

    aws-cdk-lib builds one validation engine per process the first time an app synthesizes (about
    2 s of WebAssembly in the jsii kernel, every synth, whatever the app's size). Synthesizing an
    empty app in another thread builds it while this one does its Python-only work (importing and
    validating the config, importing the stacks): the real synth then finds it built and validates
    every template as before. The thread's only output is a temporary folder. Jsii calls made by the
    body wait for the warm-up's (see _KERNEL_LOCK), so the body should start with what needs none.
    ``preload``: jsii packages (Python modules) the warm-up imports first, so that their assemblies
    are loaded by the time the body imports them. Nothing to do when validation is off
    (CDK_VALIDATION=false).
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        yield
        return
    from aws_cdk import App

    _serialize_kernel_requests()
    failure: list[BaseException] = []

    def warm_up() -> None:
        try:
            for module in preload:
                importlib.import_module(module)
            with tempfile.TemporaryDirectory() as outdir:
                App(outdir=outdir).synth()
        except BaseException as error:  # re-raised by the caller's thread below
            failure.append(error)

    thread = threading.Thread(target=warm_up, name="validator-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failure:
        raise failure[0]
