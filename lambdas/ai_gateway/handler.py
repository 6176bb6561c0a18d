"""The AI gateway API (API Gateway REST, behind the gateway's Lambda authorizer).

    POST /v1/chat              a conversation turn
    POST /v1/outputs/{type}    an output-priced workload (report, summary, ...); with
                               Prefer: respond-async a job (202, ai_gateway.jobs)
    GET  /v1/jobs/{id}         an asynchronous output's status and, when done, the output
    GET  /v1/usage             the caller's group's usage and remaining quotas
    POST /v1/chat/completions  OpenAI's chat completions (ai_gateway.openai_api), metered as an output type
    GET  /v1/models            OpenAI's model list: the caller's group's allowed models
    GET  /v1/models/{model}    one of them as OpenAI's model object (any other id: a 404)

Routes check the request and hand it to the generation flow (ai_gateway.flow: screen, admit,
produce, guard, deliver or release); this module maps what the flow raises to HTTP. Each output
type is produced by a model directly or, where the config routes it to one, by an agent on
AgentCore Runtime, which the gateway invokes with its own IAM identity on the caller's behalf
(forwarding the caller's token). Outputs are metered once per request id (the
Idempotency-Key header, or API Gateway's request id). Errors are JSON {"error", "message"}, on the
OpenAI routes OpenAI's {"error": {"message", "type", "param", "code"}}; prompts and answers are
never logged.
"""

from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Final

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_gateway import clients, jobs, openai_api
from ai_gateway.agents import AgentClient, runtime_session_id
from ai_gateway.contract import (
    CORRELATION_ID_HEADER,
    GENERATION_MARGIN_SECONDS,
    IDEMPOTENCY_KEY_HEADER,
    OUTPUT_TYPE_HEADER,
    QUOTA_REMAINING_HEADER,
    QUOTA_RESETS_HEADER,
    QUOTA_RETRY_SECONDS,
    RETRY_AFTER_HEADER,
    SESSION_ID_HEADER,
    SHOULD_RETRY_HEADER,
    Settings,
)
from ai_gateway.flow import (
    Clock,
    Delivery,
    DuplicateRequestError,
    Flow,
    GenerationRequest,
    InputBlockedError,
    QuotaRefusedError,
    TokenRequiredError,
)
from ai_gateway.guardrail import Guard
from ai_gateway.jobs_contract import PREFER_HEADER
from ai_gateway.ledger import Admission, Ledger
from ai_gateway.models import Caller, ChatRequest, GatewayPolicy, GroupPolicy, OutputPolicy, OutputRequest
from ai_gateway.openai_api import ChatCompletionRequest, Conversation, OpenAIError
from ai_gateway.request import OUTPUT_TYPE, SESSION_ID, GatewayError, Incoming
from ai_gateway.router import ModelForbiddenError, ModelRouter, candidates
from ai_gateway.stream_runtime import StreamedResponse
from ai_gateway.telemetry import Telemetry
from ai_gateway.transcript import Transcripts, Turn, thread_of
from shared import snapstart
from shared.aws_errors import INVALID_RESPONSE, RETRY_AFTER_SECONDS, UpstreamError, call
from shared.bodies import clip
from shared.http_events import REST_API, misshapen
from shared.logs import log_unexpected, service_logger
from shared.runtime_config import DocumentReader, RuntimeConfigError, appconfig_fetch

# Cold start matters at the front door: bodies are validated with pydantic directly (Powertools'
# OpenAPI validation adds ~40 ms of imports) and spans come from Lambda's active tracing rather
# than the X-Ray SDK (~80 ms of imports).
logger = service_logger()
metrics = Metrics()
telemetry = Telemetry(metrics, logger)
app = APIGatewayRestResolver()
clock = Clock()

CHAT = "chat"
UNEXPECTED: Final = "the request failed; quote the correlation id"  # a bug's message: nothing of it
# Per invocation: _ACCEPTS_STREAM while stream_handler runs (a stream may be opened), then the
# stream's body the chat completions route opened, for stream_handler to send.
_ACCEPTS_STREAM = object()
_STREAM: ContextVar[object] = ContextVar("stream")


@dataclass(frozen=True)
class Dependencies:
    ledger: Ledger
    guard: Guard
    bedrock: Any
    agents: AgentClient
    transcripts: Transcripts | None = None  # the sessions' guarded transcripts (None: not kept)


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def dependencies() -> Dependencies:
    current = settings()
    bedrock, dynamodb = clients.bedrock_runtime(current.generation_timeout_seconds), clients.dynamodb()
    return Dependencies(
        ledger=Ledger(dynamodb, current.ledger_table),
        guard=Guard(bedrock, guardrail_id=current.guardrail_id, version=current.guardrail_version),
        bedrock=bedrock,
        agents=AgentClient(
            current.agentcore_endpoint,
            lambda: policy().agents,  # where each agent runs: the policy's, with the output types
            read_seconds=current.agent_timeout_seconds,
            memory_id=current.agent_memory_id,
            passage=clients.passage_issuer(current.passage_key_id),
        ),
        transcripts=Transcripts(
            dynamodb,
            current.transcript_table,
            guardrail=f"{current.guardrail_id}:{current.guardrail_version}",
            ttl_seconds=current.transcript_ttl_seconds,
            now=clock.now,
        )
        if current.transcript_table
        else None,
    )


@cache
def policy_reader() -> DocumentReader[GatewayPolicy]:
    current = settings()
    # A request never waits for the store once the function has a version: it is re-read in the background.
    age = current.policy_max_age_seconds
    return DocumentReader(current.policy, GatewayPolicy, fetch=appconfig_fetch(age), refresh_seconds=age)


def policy() -> GatewayPolicy:
    """The groups, models, quotas and prices (AppConfig; re-read in the background every
    policy_max_age_seconds, parsed once per version): a request looks its group up by key."""
    return policy_reader().get()


def flow() -> Flow:
    deps = dependencies()
    router = ModelRouter(deps.bedrock, attempt_seconds=settings().generation_timeout_seconds, clock=clock.monotonic)
    return Flow(
        ledger=deps.ledger, guard=deps.guard, models=router, agents=deps.agents, telemetry=telemetry, clock=clock
    )


# --- SnapStart (shared.snapstart): init creates no client; the first request after a restore does.

# What the first request's clients call: Bedrock, the ledger and jobs (DynamoDB), the policy
# (AppConfig), the worker (Lambda) and the agents (AgentCore).
SERVICES = ("bedrock-runtime", "dynamodb", "appconfigdata", "lambda", "bedrock-agentcore")


@snapstart.before_snapshot
def _warm() -> None:
    """What the first request would spend parsing, done once for every environment of the version:
    the SDK's service models and the AppConfig provider's import. Nothing is sent."""
    import aws_lambda_powertools.utilities.parameters  # noqa: F401 - the policy reader's first read imports it

    snapstart.load_service_models(SERVICES)


@snapstart.after_restore
def _restored() -> None:
    """Each resumed environment draws its own jitter, and builds its clients, credentials and
    policy session itself (empty caches: nothing of a request reaches the snapshot, and nothing will
    if init ever fills them)."""
    snapstart.fresh_environment(settings, dependencies, policy_reader, jobs.environment)


# --- routes ----------------------------------------------------------------------------------

# Each route's path (a {name} is one segment) and method: a 404 lists them, a 405 answers Allow.
METHODS: Final = {
    "/v1/chat": "POST",
    "/v1/outputs/{type}": "POST",
    "/v1/jobs/{id}": "GET",
    "/v1/usage": "GET",
    openai_api.CHAT_COMPLETION_PATH: "POST",
    openai_api.MODELS_PATH: "GET",
    openai_api.MODEL_PATH: "GET",
}
ROUTES: Final = ", ".join(f"{method} {path}" for path, method in METHODS.items())


def _allowed(path: str) -> str | None:
    """The method of the route whose path this is, if any."""
    segments = path.split("/")
    for route, method in METHODS.items():
        parts = route.split("/")
        if len(parts) == len(segments) and all(
            part == segment or part.startswith("{") for part, segment in zip(parts, segments, strict=True)
        ):
            return method
    return None


@app.post("/v1/chat")
def chat() -> Response[Any]:
    caller, group = _caller_and_group()
    incoming = _incoming()
    request_id = incoming.request_id()
    request = incoming.body(ChatRequest)
    _check_size(sum(len(m.content) for m in request.messages))
    output = _output_for(group, CHAT)
    models = _models(group, request.model)
    session = request.session_id or request_id
    conversation = _correlate(caller, session)
    current = flow()
    generation = _generation(
        caller,
        group,
        output,
        CHAT,
        models,
        request_id,
        conversation=conversation,
        session=session,
        messages=[],
        asked=_sole_prompt([(m.role, m.content) for m in request.messages], request.session_id),
    )
    # Every turn is the client's text, its "assistant" turns included: all of it is guarded, once
    # per session (the session's transcript holds what was checked before).
    turns = [(m.role, m.content) for m in request.messages]
    transcripts, kept_as = _kept(caller, request.session_id, turns)
    admission, screened = current.screen_and_admit(generation, turns, transcripts, kept_as=kept_as)
    messages = [
        {"role": m.role, "content": [{"text": text}]} for m, text in zip(request.messages, screened.texts, strict=True)
    ]
    generation = replace(generation, messages=messages, transcript=screened.transcript)
    return _json(200, current.complete(generation, admission).body())


@app.post("/v1/outputs/<output_type>")
def outputs(output_type: str) -> Response[Any]:
    caller, group = _caller_and_group()
    # Powertools matches routes with "$", which also accepts a trailing newline and leaves it out
    # of the parameter: the path's own last segment is what is checked whole.
    if not OUTPUT_TYPE.fullmatch(app.current_event.path.removesuffix("/").rpartition("/")[2]):
        raise GatewayError(422, "invalid_request", "output_type: a-z, 0-9 and _, starting with a letter")
    incoming = _incoming()
    request_id = incoming.request_id()
    request = incoming.body(OutputRequest)
    _check_size(len(request.material) + len(request.instructions or ""))
    output = _output_for(group, output_type)
    models = _models(group, request.model)
    conversation = _correlate(caller, request_id)
    current = flow()
    generation = _generation(
        caller,
        group,
        output,
        output_type,
        models,
        request_id,
        conversation=conversation,
        session=request_id,
        messages=[],
        asked=None if request.instructions else request.material,
    )
    texts = [request.material, *([request.instructions] if request.instructions else [])]
    respond_async = jobs.respond_async(incoming.header_lines(PREFER_HEADER))  # Prefer: respond-async: a job, 202
    admission: Admission | None = None
    sent = None
    if respond_async:  # the job admits its units (jobs.submit), after the screen
        sent = jobs.fingerprint(output_type, request.material, request.instructions, request.model)
        # Only a caller's Idempotency-Key can name an existing job (API Gateway's request id is new).
        keyed = incoming.header(IDEMPOTENCY_KEY_HEADER) is not None
        if keyed and (again := jobs.resubmitted(caller, request_id, sent, now=clock.now())) is not None:
            return _json(*again)  # nothing screened again
        screened = current.screen(texts, conversation).texts
    else:
        admission, both = current.screen_and_admit(generation, [("user", text) for text in texts])
        screened = both.texts
    material = screened[0]
    ask = screened[1] if request.instructions else f"Produce the {output_type.replace('_', ' ')}."
    prompt = f"<material>\n{material}\n</material>\n\n<request>\n{ask}\n</request>"
    generation = replace(
        generation, messages=[{"role": "user", "content": [{"text": prompt}]}], grounding=(material, ask)
    )
    if admission is None:
        return _json(
            *jobs.submit(
                generation, flow=current, ledger=dependencies().ledger, agents=policy().agents, clock=clock, sent=sent
            )
        )
    return _json(200, current.complete(generation, admission).body())


@app.get("/v1/jobs/<job_id>")
def job(job_id: str) -> Response[Any]:
    caller, _ = _caller_and_group()
    # The id as sent, whole: Powertools' "$" leaves a final newline out of ``job_id``.
    return _json(*jobs.read(_path_parameter("id"), caller=caller, clock=clock))


@app.get("/v1/usage")
def usage() -> Response[Any]:
    if app.current_event.path not in ("/v1/usage", "/v1/usage/"):  # "/v1/usage\n" matched "$" too
        raise NotFoundError()
    caller, group = _caller_and_group()
    prices = policy().outputs
    quotas = {name: (quota.limit, quota.period) for name, quota in group.quotas.items()}
    with call("dynamodb"):  # the ledger's failure (throttled: a 429 to retry), not the gateway's
        rows = dependencies().ledger.usage(caller.group, quotas, clock.now())
    return _json(
        200,
        {
            "group": caller.group,
            "tier": group.tier,
            "quotas": [
                {
                    "output_type": row.output_type,
                    "used": row.used,
                    "limit": row.limit,
                    "remaining": row.remaining,
                    "period": row.period,
                    "resets_at": row.resets_at.isoformat(),
                    "unit_price_usd": prices[row.output_type].unit_price_usd if row.output_type in prices else None,
                }
                for row in rows
            ],
        },
    )


@app.post(openai_api.CHAT_COMPLETION_PATH)
def chat_completions() -> Response[Any]:
    caller, group = _caller_and_group()
    body = _incoming().completion_body()
    if body.stream and _STREAM.get(None) is not _ACCEPTS_STREAM:
        return _stream_refused()
    current, generation, admission = completion_generation(caller, group, body)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _streamed(generation, admission, include_usage=include_usage)
    return _json(200, _completion(current.complete(generation, admission)))


@app.get(openai_api.MODELS_PATH)
def list_models() -> Response[Any]:
    # The list's path alone: Powertools' match also takes "/v1/models//" (an empty model id it
    # trims away) and "/v1/models/\n" ("$" matches before a final newline).
    if app.current_event.path not in (openai_api.MODELS_PATH, f"{openai_api.MODELS_PATH}/"):
        raise NotFoundError()
    _, group = _caller_and_group()
    return _json(200, openai_api.model_list(group.models.allowed))


@app.get("/v1/models/<model>")
def retrieve_model(model: str) -> Response[Any]:
    _, group = _caller_and_group()
    return _json(200, openai_api.retrieved_model(_path_parameter("model"), group.models.allowed))


def _path_parameter(name: str) -> str:
    """API Gateway's own reading of the resource's ``{name}`` when it sent one; else the path's
    last segment whole (Powertools' "$" would leave a trailing newline out of its parameter)."""
    segment = (app.current_event.path_parameters or {}).get(name)
    return segment if isinstance(segment, str) else app.current_event.path.rpartition("/")[2]


def _streamed(generation: GenerationRequest, admission: Admission, *, include_usage: bool) -> Response[Any]:
    """Open the admitted request's model stream (a model failing before its first token raises
    here, its units released, and is answered as JSON like any other); the body, OpenAI's
    server-sent events of the guarded stream, is left for stream_handler to send after this head."""
    from ai_gateway.streaming import ModelStreamer, StreamingFlow, openai_sse  # only the streamed route needs it

    deps, attempt = dependencies(), settings().generation_timeout_seconds
    streaming = StreamingFlow(
        ledger=deps.ledger,
        guard=deps.guard,
        models=ModelRouter(deps.bedrock, attempt_seconds=attempt, clock=clock.monotonic),
        agents=deps.agents,
        telemetry=telemetry,
        clock=clock,
    )
    stream = streaming.stream(
        generation, ModelStreamer(deps.bedrock, attempt_seconds=attempt, clock=clock.monotonic), admission
    )
    _STREAM.set(
        openai_sse(
            stream,
            chunk_id=f"chatcmpl-{generation.request_id}",
            created=int(clock.now().timestamp()),
            model=stream.model,
            include_usage=include_usage,
        )
    )
    admission = stream.admission
    return Response(
        status_code=200,
        content_type="text/event-stream; charset=utf-8",
        body="",
        headers={
            "Cache-Control": "no-cache",
            QUOTA_REMAINING_HEADER: str(admission.remaining),
            QUOTA_RESETS_HEADER: admission.resets_at.isoformat(),
        },
    )


def _stream_refused() -> Response[Any]:
    """``stream: true`` reaching the buffered function (lambda_handler): only the streaming
    function (stream_handler, behind the API's STREAM integration) can send a stream."""
    error = openai_api.stream_refused()
    telemetry.refused(error.status, error.code or error.type)
    return _openai_json(error)


def completion_generation(
    caller: Caller, group: GroupPolicy, body: ChatCompletionRequest
) -> tuple[Flow, GenerationRequest, Admission]:
    """A validated chat completion as the flow's request, its texts through the input guardrail
    (once per session) while its units are admitted (Flow.screen_and_admit): everything up to
    producing, for a buffered or a streamed answer alike."""
    incoming = _incoming()
    request_id = incoming.request_id()
    output_type = incoming.extension(body.output_type, OUTPUT_TYPE_HEADER, OUTPUT_TYPE, "output_type") or CHAT
    session_id = incoming.extension(body.session_id, SESSION_ID_HEADER, SESSION_ID, "session_id")
    if output_type not in policy().outputs:
        raise openai_api.invalid(f"output_type: unknown output type {output_type}", param="output_type")
    output = _output_for(group, output_type)
    try:
        models = candidates(group.models, body.model)
    except ModelForbiddenError:
        raise openai_api.model_not_found(str(body.model)) from None
    limit = body.requested_max_tokens()
    if limit is not None and limit[1] > output.max_tokens:
        raise openai_api.invalid(
            f"{limit[0]}: at most {output.max_tokens} for output type {output_type}", param=limit[0]
        )
    if body.stream and output.agent is not None:
        raise openai_api.stream_refused(f"output type {output_type} is produced by an agent, which does not stream")
    text = Conversation.of(body)
    turns = text.roles_and_texts()
    texts = text.texts()
    _check_size(sum(map(len, texts)))
    session = session_id or request_id
    conversation = _correlate(caller, session)
    current = flow()
    generation = _generation(
        caller,
        group,
        output,
        output_type,
        models,
        request_id,
        conversation=conversation,
        session=session,
        messages=[],
        max_tokens=limit[1] if limit else None,
        temperature=body.temperature,
        top_p=body.top_p,
        stop_sequences=body.stop_sequences(),
        asked=_sole_prompt(turns, session_id),
    )
    # System messages are the client's text too: guarded like every turn, then added to the
    # output type's instructions, never in their place.
    transcripts, kept_as = _kept(caller, session_id, turns)
    admission, screened = current.screen_and_admit(generation, turns, transcripts, kept_as=kept_as)
    system, messages = text.converse_messages(screened.texts)
    return current, replace(generation, messages=messages, system=system, transcript=screened.transcript), admission


def _completion(delivery: Delivery) -> dict[str, Any]:
    """A delivered output as OpenAI's chat.completion; what the gateway adds goes in ``gateway``."""
    extension = delivery.body()
    content, model = extension.pop("output"), extension.pop("model")
    generation = delivery.generation
    return openai_api.chat_completion(
        request_id=delivery.request.request_id,
        created=int(clock.now().timestamp()),
        model=model,
        content=content,
        finish=openai_api.finish_reason(generation.stop_reason, delivery.verdict.blocked),
        prompt_tokens=generation.input_tokens,
        completion_tokens=generation.output_tokens,
        gateway=extension,
    )


# --- what the routes check and derive ----------------------------------------------------------


def _sole_prompt(turns: list[tuple[str, str]], session_id: str | None) -> str | None:
    """The request's text when it is one user prompt and nothing else, else None: an evaluation
    case's tool arguments are logged, so its request may carry no text of the caller's beside the
    golden prompt (no system text, no earlier turns, no session whose memory the agent recalls)."""
    if session_id is not None or len(turns) != 1 or turns[0][0] != "user":
        return None
    return turns[0][1]


def _generation(
    caller: Caller,
    group: GroupPolicy,
    output: OutputPolicy,
    output_type: str,
    models: list[str],
    request_id: str,
    *,
    conversation: str,
    session: str,
    messages: list[dict[str, Any]],
    grounding: tuple[str, str] | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop_sequences: tuple[str, ...] = (),
    asked: str | None = None,
) -> GenerationRequest:
    """What the flow needs to produce one output for this request (``asked``: its one prompt, as
    the caller sent it, which an evaluation case must be the golden prompt of; None when the
    request carries more text than a prompt: _sole_prompt)."""
    remaining_ms = app.lambda_context.get_remaining_time_in_millis()
    return GenerationRequest(
        caller=caller,
        output_type=output_type,
        output=output,
        quota=group.quotas[output_type],
        models=models,
        request_id=request_id,
        conversation=conversation,
        session=session,
        messages=messages,
        # Generation ends early enough to leave time to guard, meter and answer.
        deadline=clock.monotonic() + remaining_ms / 1000 - GENERATION_MARGIN_SECONDS,
        grounding=grounding,
        token=_incoming().caller_token() if output.agent else None,
        evaluation_case=_incoming().evaluation_case(group, policy().evaluation_prompts, asked)
        if output.agent
        else None,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop_sequences=stop_sequences,
    )


def _incoming() -> Incoming:
    return Incoming(app.current_event)


def _caller_and_group() -> tuple[Caller, GroupPolicy]:
    user, group_name = _incoming().identity()
    caller = Caller(user=user, group=group_name)
    group = policy().groups.get(caller.group)
    if group is None:
        # (A configured group's name is short; one that is not is not echoed whole.)
        raise GatewayError(403, "forbidden", f"group {clip(caller.group)} has no access to the gateway")
    telemetry.request(caller.group)
    return caller, group


def _output_for(group: GroupPolicy, output_type: str) -> OutputPolicy:
    known = policy().outputs
    if output_type not in known:
        raise GatewayError(404, "not_found", f"unknown output type {output_type}; known: {', '.join(known)}")
    if output_type not in group.quotas:
        raise GatewayError(403, "forbidden", f"output type {output_type} is not available to this group")
    telemetry.output_type(output_type)
    return known[output_type]


def _models(group: GroupPolicy, requested: str | None) -> list[str]:
    try:
        return candidates(group.models, requested)
    except ModelForbiddenError as error:
        raise GatewayError(403, "model_forbidden", str(error)) from None


def _kept(caller: Caller, session_id: str | None, turns: Sequence[Turn]) -> tuple[Transcripts | None, str | None]:
    """Where a request's guarded transcript is kept (transcripts, and its key: None for the
    request's conversation): its session's when it names one; for a client that names none (the
    openai SDKs and LangChain send none) the thread its resent history continues
    (transcript.thread_of), for this caller only; nowhere without the store or a user text."""
    store = dependencies().transcripts
    if store is None or session_id:
        return store, None
    thread = thread_of(turns)
    return (store, runtime_session_id(caller.group, caller.user, thread)) if thread else (None, None)


def _check_size(chars: int) -> None:
    limit = settings().max_message_chars
    if chars > limit:
        # "prompt is too long": the phrase OpenAI clients (langchain-openai) read as a context overflow.
        raise GatewayError(
            413, "too_large", f"the prompt is too long: {chars} characters of text; the limit is {limit}"
        )


def _correlate(caller: Caller, session: str) -> str:
    """One conversation id for every log line, metric and span of this request, and the agent's."""
    conversation = runtime_session_id(caller.group, caller.user, session)
    telemetry.correlate(conversation)
    return conversation


# --- errors ------------------------------------------------------------------------------------


@app.exception_handler(GatewayError)
def _refused(error: GatewayError) -> Response[Any]:
    return _refusal(error)


@app.exception_handler(InputBlockedError)
def _blocked(error: InputBlockedError) -> Response[Any]:
    return _refusal(GatewayError(400, "guardrail_blocked", str(error), reasons=list(error.verdict.reasons)))


@app.exception_handler(QuotaRefusedError)
def _quota_refused(error: QuotaRefusedError) -> Response[Any]:
    refused = error.refused
    return _refusal(
        GatewayError(
            429,
            "quota_exceeded",
            str(error),
            used=refused.used,
            remaining=refused.remaining,
            limit=refused.limit,
            resets_at=refused.resets_at.isoformat(),
            retry_after=str(error.retry_after),
            final=error.retry_after > QUOTA_RETRY_SECONDS,
        )
    )


@app.exception_handler(DuplicateRequestError)
def _duplicate(error: DuplicateRequestError) -> Response[Any]:
    # A delivered request's key is the same answer every time (a retry would only be screened
    # again); one still running may yet fail and be released, and a retry then goes through.
    return _refusal(GatewayError(409, "duplicate_request", str(error), final=error.final))


@app.exception_handler(TokenRequiredError)
def _token_required(error: TokenRequiredError) -> Response[Any]:
    return _refusal(GatewayError(401, "unauthorized", str(error)))


@app.exception_handler(UpstreamError)
def _upstream(error: UpstreamError) -> Response[Any]:
    telemetry.upstream_failed(error)
    retry_after = str(RETRY_AFTER_SECONDS) if error.throttled else None
    final = _final(error)
    if _openai_route():
        return _openai_json(
            openai_api.from_upstream(
                error.code,
                error.http_status,
                error.error_code,
                error.public_message,
                retry_after or (str(RETRY_AFTER_SECONDS) if error.retryable else None),
            ),
            final=final,
        )
    return _json(
        error.http_status, {"error": error.error_code, "message": error.public_message}, retry_after, final=final
    )


def _final(error: UpstreamError) -> bool:
    """Whether asking again cannot help: a rejection (the caller's request, or the platform's set-up:
    model access, region) or a call that could not be made. A model's answer that was not one
    (InvalidResponse) may be different next time, and throttled or unavailable services recover."""
    return not error.retryable and error.code != INVALID_RESPONSE


@app.exception_handler(RuntimeConfigError)
def _no_policy(error: RuntimeConfigError) -> Response[Any]:
    # No version of the policy yet (first deploy in progress, or the store unreachable at a cold start).
    logger.error("no gateway policy", extra={"why": str(error)})
    return _refusal(
        GatewayError(
            503,
            "policy_unavailable",
            "the gateway's policy is not available yet; retry",
            retry_after=str(RETRY_AFTER_SECONDS),
        )
    )


@app.exception_handler(OpenAIError)
def _openai_refused(error: OpenAIError) -> Response[Any]:
    telemetry.refused(error.status, error.code or error.type)
    return _openai_json(error)


@app.not_found
def _no_route(error: NotFoundError) -> Response[Any]:
    """A path the gateway does not serve (404, with its routes), or a route's path with another
    method (405, with Allow), in the route's shape."""
    allowed = _allowed(_path())
    method = app.current_event.http_method
    if allowed is None or allowed == method:  # (the route's method: a path parameter it does not take)
        allowed = None
        refusal = GatewayError(404, "not_found", f"routes: {ROUTES}")
    else:
        refusal = GatewayError(405, "method_not_allowed", f"{clip(method, 16)} is not allowed here; use {allowed}")
    response = _refusal(refusal, log=False)
    if allowed is not None:
        response.headers["Allow"] = allowed
    return response


# Registered last and broadest: Powertools picks the most specific handler for an exception.
@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    log_unexpected(logger, "unexpected error", error)
    if _openai_route():
        return _openai_json(OpenAIError(500, openai_api.API_ERROR, UNEXPECTED, code="internal_error"))
    return _json(500, {"error": "internal_error", "message": UNEXPECTED})


def _refusal(error: GatewayError, *, log: bool = True) -> Response[Any]:
    retry_after = error.extra.pop("retry_after", None)
    final = bool(error.extra.pop("final", False))
    telemetry.refused(error.status, error.code, log=log)
    if _openai_route():
        return _openai_json(
            openai_api.from_gateway(error.status, error.code, error.message, retry_after=retry_after, **error.extra),
            final=final,
        )
    return _json(
        error.status,
        {"error": error.code, "message": error.message, **error.extra},
        retry_after=retry_after,
        final=final,
    )


def _json(status: int, body: dict[str, Any], retry_after: str | None = None, *, final: bool = False) -> Response[Any]:
    """A JSON answer; ``final``: one a client's retry cannot change (x-should-retry: false, which
    the openai SDKs obey before their own rule of retrying 408, 409, 429 and 5xx)."""
    headers = {RETRY_AFTER_HEADER: retry_after} if retry_after else {}
    if final:
        headers[SHOULD_RETRY_HEADER] = "false"
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers or None)


def _openai_route() -> bool:
    """Whether the request is to an OpenAI-compatible route, whose errors are OpenAI's shape."""
    path = _path()
    return path in openai_api.PATHS or path.startswith(openai_api.MODELS_PATH + "/")


def _path() -> str:
    """The request's path as the router matches it: Powertools' REST route patterns end ``/*$``,
    and ``$`` also matches before a final newline."""
    return app.current_event.path.removesuffix("\n").rstrip("/") or "/"


def _openai_json(error: OpenAIError, *, final: bool = False) -> Response[Any]:
    return _json(error.status, error.body(), retry_after=error.retry_after, final=final)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    telemetry.start()
    response = misshapen(event, REST_API) or app.resolve(event, context)
    correlation = logger.get_correlation_id()  # the event's request id: text from API Gateway, anything by hand
    response.setdefault("headers", {})[CORRELATION_ID_HEADER] = correlation if isinstance(correlation, str) else ""
    return response


def stream_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | StreamedResponse:
    """The streaming function's entry (ai_gateway.stream_runtime, behind the API's STREAM
    integration): every answer lambda_handler gives, and for ``stream: true`` the head it gave
    followed by the stream's events as they are guarded. The stream's own telemetry (generation,
    output guardrail, delivery) is flushed when it ends, since lambda_handler's flush came first."""
    _STREAM.set(_ACCEPTS_STREAM)
    response: dict[str, Any] = lambda_handler(event, context)
    body = _STREAM.get()
    _STREAM.set(None)
    if not isinstance(body, Iterator):
        return response
    headers = {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
    headers |= response.get("headers") or {}
    return StreamedResponse(int(response["statusCode"]), headers, _flushed(body))


def _flushed(body: Iterator[bytes]) -> Iterator[bytes]:
    """The stream's body, its telemetry flushed at the end. An upstream's failure is already
    OpenAI's error event (streaming.openai_sse); anything else raised before [DONE] (a bug) ends the
    stream with the ``internal_error`` event a 500 would have carried, not a silent end the openai
    SDK would read as a complete answer (the error is logged, as ``_unexpected`` logs one)."""
    from ai_gateway.streaming import DONE, sse  # only a streamed answer gets here

    done = False
    try:
        for data in body:
            done = done or data == DONE
            yield data
    except Exception as error:
        log_unexpected(logger, "unexpected error in a stream", error)
        if not done:
            failed = OpenAIError(500, openai_api.API_ERROR, UNEXPECTED, code="internal_error")
            yield sse(failed.body())
    finally:
        # A stream closed early (the client gone) settles its delivery as its body closes: closed
        # here, before the flush, so that its metrics are this request's, not the next one's.
        close = getattr(body, "close", None)
        if close is not None:
            close()
        metrics.flush_metrics()
