"""Configuration a function reads at run time: documents in AWS AppConfig, not environment variables.

What a function needs of the deployment's config that grows with it (groups, tools, prices,
quotas, models) is a **document**: a :class:`RuntimeDocument` model in the function's contract.
The stack writes it as an AppConfig hosted configuration whose validator is the model's JSON
schema (:meth:`RuntimeDocument.validator_schema`), so AppConfig refuses a document that does not
match before it deploys it, and rolls a deployment out with the tier's strategy, back on an
alarm (stacks/shared/runtime_config.py). The function keeps only the document's location in its
environment (:class:`ConfigLocation`: three ids) and reads it with :class:`DocumentReader`:
Powertools' AppConfig provider (one session, the latest configuration, cached ``max_age``
seconds), parsed once per version, so a request costs a dictionary lookup whatever the size.

With ``refresh_seconds`` a reader that has a version never makes a request wait for the store:
it serves its version for that long, then re-reads it on a background thread while requests go
on with the version they have. Only the first read (nothing to serve yet) is made in line. After
an idle spell the first request is served the version the environment had and starts the
refresh, which the next ones are served (a refresh frozen with the environment between
invocations resumes with it, and ends within the store client's few seconds of timeouts).

Strict where the document is written, tolerant where it is read: the models forbid what they
do not declare, so synth and AppConfig's validator (the schema says ``additionalProperties:
false``) refuse a misspelt or unknown field before any function sees it; a reader ignores fields
its model does not declare, at every depth. A function's code and its document are updated by
different resources of one deployment, so a document with a field a newer release added can
reach a function still running the older code: it is read, the field unused, rather than refused
and rolled back until every function runs the new code.

A document the function cannot parse never replaces the one it has: it keeps serving the last
good version and counts :data:`REFUSED_METRIC` (the alarm AppConfig rolls the deployment back
on); a store it cannot reach keeps the last good version too. Either raises
:class:`RuntimeConfigError` only when the function has no version yet.

Imports only the standard library and pydantic at module level: the CDK app imports it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Counted (EMF, in the function's namespace, by Environment) each time a function refuses a
# deployed document; the environment's alarm on it makes AppConfig roll the deployment back.
REFUSED_METRIC: Final = "RuntimeConfigRefused"
ENVIRONMENT_DIMENSION: Final = "Environment"
DEFAULT_MAX_AGE_SECONDS: Final = 60
# AppConfig's JSON Schema validator speaks draft 4.
DRAFT_04: Final = "http://json-schema.org/draft-04/schema#"

logger = logging.getLogger(__name__)


class RuntimeConfigError(RuntimeError):
    """No usable document: never deployed, unreadable, or refused with nothing to fall back on."""


class ConfigLocation(BaseModel):
    """Where a document lives: AppConfig's application, environment and configuration profile ids."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application: str = Field(min_length=1)
    environment: str = Field(min_length=1)
    profile: str = Field(min_length=1)
    environment_name: str = Field(min_length=1)  # the refusal metric's dimension


class RuntimeDocument(BaseModel):
    """Base of every runtime document: frozen, and written with nothing it does not declare
    (:class:`DocumentReader` reads one with fields it does not know, for the next release's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def validator_schema(cls) -> dict[str, Any]:
        """The model's JSON schema in the draft AppConfig's validator speaks (draft 4)."""
        schema: dict[str, Any] = _draft4(cls.model_json_schema())
        schema["$schema"] = DRAFT_04
        return schema


def _draft4(node: Any) -> Any:
    """Pydantic writes JSON Schema 2020-12; the constructs it uses here map onto draft 4."""
    if isinstance(node, list):
        return [_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "prefixItems" in node:
        raise ValueError("fixed-length tuples have no draft-4 schema: declare tuple[X, ...] or a list")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":
            out["definitions"] = {name: _draft4(sub) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/definitions/")
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _draft4(sub) for name, sub in value.items()}
        else:
            out[key] = _draft4(value)
    return out


D = TypeVar("D", bound=RuntimeDocument)
T = TypeVar("T")
Fetch = Callable[[ConfigLocation], bytes | str]


def appconfig_fetch(max_age: int = DEFAULT_MAX_AGE_SECONDS, client: Callable[[], Any] | None = None) -> Fetch:
    """Powertools' AppConfig provider, one per document: a configuration session, the latest
    configuration at most every ``max_age`` seconds (the cached value in between). A failed read
    drops the provider, so the next read opens a new session (an expired one never recovers)."""
    providers: dict[ConfigLocation, Any] = {}

    def fetch(location: ConfigLocation) -> bytes | str:
        from aws_lambda_powertools.utilities.parameters import AppConfigProvider

        provider = providers.get(location)
        if provider is None:
            provider = providers[location] = AppConfigProvider(
                environment=location.environment,
                application=location.application,
                boto3_client=(client or _appconfigdata)(),
            )
        try:
            value = provider.get(location.profile, max_age=max_age)
        except Exception:
            del providers[location]
            raise
        if not isinstance(value, bytes | str):  # no transform asked for: bytes as AppConfig served them
            raise TypeError(f"AppConfig answered {type(value).__name__}")
        return value

    return fetch


def _appconfigdata() -> Any:
    """AppConfig's data plane with bounded time: a cold start waits at most a few seconds."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "appconfigdata",
        config=Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}),
    )


class DocumentReader(Generic[D]):
    """One function's reader of one document (see the module docstring)."""

    def __init__(
        self,
        location: ConfigLocation,
        model: type[D],
        *,
        fetch: Fetch | None = None,
        refused: Callable[[ConfigLocation, str], None] | None = None,
        refresh_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        start: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._location = location
        self._model = model
        self._fetch = fetch or appconfig_fetch()
        self._refused = refused or _count_refusal
        self._raw: bytes | str | None = None
        self._current: D | None = None
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._start = start or _in_background
        self._read_at = 0.0
        self._refreshing = threading.Lock()

    @classmethod
    def static(cls, document: D, environment_name: str = "local") -> DocumentReader[D]:
        """A reader of one fixed document (local runs and tests), serialised as AppConfig would serve it."""
        location = ConfigLocation(
            application="local", environment="local", profile="local", environment_name=environment_name
        )
        text = document.model_dump_json()
        return cls(location, type(document), fetch=lambda _: text)

    def derive(self, build: Callable[[D], T]) -> Callable[[], T]:
        """``build`` of the current document, rebuilt only when a new version is in use."""
        last: list[Any] = [None, None]

        def current() -> T:
            document = self.get()
            if last[0] is not document:
                last[:] = [document, build(document)]
            value: T = last[1]
            return value

        return current

    def get(self) -> D:
        """The document: the last good version, re-read when the cache says so (with
        ``refresh_seconds``, in the background once there is a version to serve, however old)."""
        current = self._current
        if current is None or self._refresh_seconds is None:
            return self._read()
        if self._monotonic() - self._read_at >= self._refresh_seconds and self._refreshing.acquire(blocking=False):
            try:
                self._start(self._refresh)
            except Exception:  # no thread to be had: served as it is, tried again on the next request
                self._refreshing.release()
                logger.warning("runtime config refresh not started", exc_info=True)
        return current

    def _refresh(self) -> None:
        try:
            self._read()
        except Exception:  # kept the version it has (logged by _read); tried again after refresh_seconds
            logger.warning("runtime config not refreshed", exc_info=True)
        finally:
            self._refreshing.release()

    def _read(self) -> D:
        """The document from the store: the last good version when the store fails or serves one
        that does not parse (RuntimeConfigError when there is none yet). Its time is taken when the
        store has answered: the provider's own cache expires after that, so the next read finds it
        expired rather than served from the cache."""
        try:
            raw = self._fetch(self._location)
        except Exception as error:  # the store is unreachable, or nothing is deployed yet
            self._read_at = self._monotonic()
            if self._current is None:
                raise RuntimeConfigError(
                    f"runtime config {self._location.profile}: not readable ({type(error).__name__})"
                ) from None
            logger.warning("runtime config not readable: keeping the last good version", exc_info=True)
            return self._current
        self._read_at = self._monotonic()
        if self._current is not None and (raw is self._raw or raw == self._raw):
            return self._current
        try:
            # The next release's fields are not this reader's to refuse (see the module docstring).
            parsed = self._model.model_validate_json(raw if raw else b"null", extra="ignore")
        except ValidationError as error:
            self._raw = raw  # refused once per version, not once per request
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<document>'}: {e['msg']}" for e in error.errors())
            self._refused(self._location, problems[:500])
            if self._current is None:
                raise RuntimeConfigError(
                    f"runtime config {self._location.profile}: refused: {problems[:500]}"
                ) from None
            return self._current
        self._raw, self._current = raw, parsed
        return parsed


def _in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="runtime-config", daemon=True).start()


# The refusal's log message (a metric filter on the runtimes' log groups counts it: stacks/production/agents.py).
REFUSED_MESSAGE = "runtime config refused: keeping the last good version"


def _count_refusal(location: ConfigLocation, why: str) -> None:
    logger.error(
        REFUSED_MESSAGE,
        extra={"profile": location.profile, "environment": location.environment_name, "why": why},
    )
    from aws_lambda_powertools.metrics import MetricUnit

    from shared.telemetry import emit

    emit(REFUSED_METRIC, MetricUnit.Count, 1, {ENVIRONMENT_DIMENSION: location.environment_name})
