"""Every AWS call a function's code makes, checked against what the function's role allows.

Static analysis finds the calls. A function's code is its handler module and the modules under
lambdas/ it imports, transitively. A call is a method call with keyword arguments only, whose name
is an operation of a service those modules make a boto3 client or resource for, and whose keywords
that operation accepts (botocore's own service model says so). Powertools utilities that call AWS
for the code (parameters, idempotency) are recognised by name; so are the objects of other libraries
that call AWS for it (Strands' model, AgentCore's browser client), by the constructor the code makes
them with: LIBRARY_CALLS lists the calls the methods the code uses make, read from the library's source.

Each call becomes IAM actions on a resource. The resource is read from the call's resource
argument: ``Bucket=self._settings.quarantine_bucket`` names the environment variable
``QUARANTINE_BUCKET``, ``os.environ["X"]`` names ``X``; where the code cannot say (a bucket from an
event, a model from the caller's group) the explicit maps below do. The variable's value in the
synthesized template names the resource, followed through ``Fn::GetStackOutput`` across stacks.

A call is covered when an Allow statement of the role's policies grants the action on ``*`` or on
a resource that can match: one that refers to the same resource (an object ARN for S3 object
operations, the bucket ARN for bucket operations) or, for a resource chosen at run time, an ARN of
the right service.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3

from stacks.production.web_tools import runtime_package
from tests.conftest import ROOT

LAMBDAS = ROOT / "lambdas"
REGION = "us-east-1"
Template = dict[str, Any]
Identity = tuple[str, str]  # (stack, logical id)
Target = tuple[str, ...] | str | None  # environment variables | ARN service (run time) | no resource

# The argument naming an operation's resource, per service (a dotted path into a literal dict for
# nested ones); None: the service's actions take no resource, only "*" grants them.
RESOURCE_ARGUMENT: dict[str, str | None] = {
    "s3": "Bucket",
    "sqs": "QueueUrl",
    "sns": "TopicArn",
    "dynamodb": "TableName",
    "bedrock-agent": "knowledgeBaseId",
    "bedrock-agent-runtime": "knowledgeBaseId",
    "bedrock-runtime": "modelId",
    "bedrock-agentcore": "memoryId",
    "kendra": "IndexId",
    "apigateway": "apiKey",
    "comprehend": None,
    "logs": "logGroupName",
    "lambda": "FunctionName",
    "kms": "KeyId",
}
RAG = "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration"
# Operations whose IAM actions are not "<signing name>:<operation>" on the resource argument.
NEEDS: dict[tuple[str, str], tuple[tuple[str, str | None], ...]] = {
    ("bedrock-runtime", "Converse"): (("bedrock:InvokeModel", "modelId"),),
    ("bedrock-runtime", "ConverseStream"): (("bedrock:InvokeModelWithResponseStream", "modelId"),),
    ("bedrock-runtime", "ApplyGuardrail"): (("bedrock:ApplyGuardrail", "guardrailIdentifier"),),
    ("bedrock-agent-runtime", "RetrieveAndGenerate"): (
        ("bedrock:RetrieveAndGenerate", None),
        ("bedrock:Retrieve", f"{RAG}.knowledgeBaseId"),
        ("bedrock:InvokeModel", f"{RAG}.modelArn"),
    ),
    ("apigateway", "GetApiKey"): (("apigateway:GET", "apiKey"),),
    ("bedrock-agentcore", "InvokeAgentRuntime"): (("bedrock-agentcore:InvokeAgentRuntime", "agentRuntimeArn"),),
    # Lambda's Invoke (the gateway starting its jobs' worker) is the InvokeFunction action.
    ("lambda", "Invoke"): (("lambda:InvokeFunction", "FunctionName"),),
    # API Gateway's account settings: HTTP verbs on arn:…:apigateway:<region>::/account; handing
    # a logging role to a service needs iam:PassRole on it.
    ("apigateway", "GetAccount"): (("apigateway:GET", "arn:apigateway"),),
    ("apigateway", "UpdateAccount"): (("apigateway:PATCH", "arn:apigateway"), ("iam:PassRole", "arn:iam")),
    ("bedrock", "PutModelInvocationLoggingConfiguration"): (
        ("bedrock:PutModelInvocationLoggingConfiguration", None),
        ("iam:PassRole", "arn:iam"),
    ),
    # Macie's classification jobs (the deploy-time function): a job's id is Macie's answer to
    # creating it, so its calls are granted on the account's jobs, arn:…:macie2:…:classification-job/*.
    **{
        ("macie2", operation): ((f"macie2:{operation}", "arn:macie2"),)
        for operation in ("CreateClassificationJob", "DescribeClassificationJob", "UpdateClassificationJob")
    },
}
# A resource chosen at run time may also be granted by reference to a resource of this type.
RUN_TIME_TYPES = {"iam": "AWS::IAM::Role", "bedrock-agentcore": "AWS::BedrockAgentCore::Runtime"}
S3_BUCKET_OPERATIONS = {"ListObjectsV2", "ListObjectVersions", "HeadBucket"}
S3_VERSIONED = {
    "GetObject": "GetObjectVersion",
    "HeadObject": "GetObjectVersion",
    "DeleteObject": "DeleteObjectVersion",
}
# Methods of other libraries whose names are also SDK methods, where they are called: (module path,
# method) -> what it is. (A keyword-only call named like an operation of a service the package
# makes clients for is taken for that operation.)
NOT_SDK: dict[tuple[str, str], str] = {
    ("ingestion/documents.py", "get_object"): "pypdf's PdfObject.get_object(): resolves an indirect PDF object",
}
# Resource arguments the code cannot name itself: (package or "*", expression) -> the environment
# variables it may name, or the ARN service of a resource chosen at run time.
EXPLICIT: dict[tuple[str, str], tuple[str, ...] | str] = {
    # The processor: an event's object is in the landing bucket (not in its environment: the
    # event names it; "@" names a resource of the function's stack by logical-id prefix); a
    # retired copy is a curated one.
    ("ingestion", "ref.bucket"): ("@IngestionLanding",),
    ("ingestion", "bucket"): ("CURATED_BUCKET",),
    # The Macie responder: a finding's object is in landing or curated.
    ("ingestion", "finding.bucket"): ("LANDING_BUCKET", "CURATED_BUCKET"),
    ("ingestion", "self._buckets.quarantine"): ("QUARANTINE_BUCKET",),
    ("ingestion", "self._topic"): ("FINDINGS_TOPIC",),
    ("ingestion", "self._table"): ("REGISTRY_TABLE",),
    ("connector_pull", "self._table"): ("REGISTRY_TABLE",),
    # Their conditional writes (_put_if; shared.connector_state.claim_change, each record id's change).
    ("connector_pull", "table"): ("REGISTRY_TABLE",),
    ("connector_push", "table"): ("REGISTRY_TABLE",),
    # The connectors land records in the bucket their settings name (shared.landing.land).
    ("connector_push", "bucket"): ("LANDING_BUCKET",),
    ("connector_pull", "bucket"): ("LANDING_BUCKET",),
    ("ai_gateway", "self._client"): ("LEDGER_TABLE",),  # the ledger's transactions
    ("ai_gateway", "self._table"): ("LEDGER_TABLE",),
    ("ai_gateway", "self._id"): ("GUARDRAIL_ID",),
    ("ai_gateway", "self._transcripts_table"): ("TRANSCRIPT_TABLE",),
    # The web tools' server: its guardrail (web_mcp.guard).
    ("web_mcp", "self._id"): ("GUARDRAIL_ID",),
    # The jobs' store (jobs.JobStore) and the worker the gateway starts (jobs_contract.GatewayJobsSettings).
    ("ai_gateway", "self._jobs_table"): ("JOBS_TABLE",),
    ("ai_gateway", "self._worker_function"): ("WORKER_FUNCTION",),
    # The gateway writes agent turns to the agents' memory (shared.agent_memory).
    ("ai_gateway", "memory_id"): ("AGENT_MEMORY_ID",),
    # An output type's agent runtime: one of those in the policy's agents (runtime config), chosen per request.
    ("ai_gateway", "arn"): "bedrock-agentcore",
    ("prototype_query", "index_id"): ("KENDRA_INDEX_ID",),
    # The AI gateway's passages (shared.passage): the key its settings name, on both sides.
    ("*", "self._key_id"): ("PASSAGE_KEY_ID",),
    # Models come from the caller's group or the config: any Bedrock model or inference profile.
    ("*", "model"): "bedrock",
    ("*", "models[0]"): "bedrock",
    ("*", "model_arn"): "bedrock",
    # API keys are the groups' (the ApiKeys runtime document); legacy secrets are named in JSON config.
    ("gateway_authorizer", "key_id"): "apigateway",
    ("*", "secret_name"): "secretsmanager",
    # Account-wide log groups of services (aws/spans, Macie's job logs): fixed names, not the tier's.
    ("account_settings", "name"): "logs",
}
# Calls a function makes only where a setting switches them on: (package, service) -> (variable,
# value, or None: set at all). Elsewhere the role rightly lacks them (the processor calls Textract
# only with OCR=textract; the sandbox's query function Kendra only where the tier switched it on).
SWITCHED_ON: dict[tuple[str, str], tuple[str, str | None]] = {
    ("ingestion", "textract"): ("OCR", "textract"),
    ("prototype_query", "kendra"): ("KENDRA_INDEX_ID", None),
}
# Modules whose calls a function makes only where a variable is set at all: file -> variable (the
# gateway's functions keep sessions' transcripts and the buffered one jobs; the jobs' worker, running the
# same package, no transcripts, and the streaming function no jobs).
SWITCHED_ON_BY_VARIABLE: dict[str, str] = {
    "ai_gateway/transcript.py": "TRANSCRIPT_TABLE",
    # Jobs are the buffered gateway function's (its routes alone submit and read them).
    "ai_gateway/jobs.py": "JOBS_TABLE",
}
# CopySource arguments built before the call: (package, expression) -> (bucket, may name a version).
COPY_SOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("ingestion", "source"): ("finding.bucket", True),
    ("ingestion", "landed"): ("ref.bucket", True),
}


@dataclass(frozen=True)
class LibraryCall:
    """An AWS call a library's object makes for the code that made it. ``resource`` names where
    the code says which resource: a keyword of the constructor (``model_id``), or ``method.keyword``,
    that keyword of the calls of the object's method anywhere in the package's code. ``when``: the
    call is made only where the object's configuration may say so: (constructor keyword, value,
    the library's default for it)."""

    service: str
    operation: str  # the API operation (or the IAM action's name, for a call that is not an SDK one)
    resource: str
    when: tuple[str, object, object] | None = None


# What a library's object calls, by the constructor the code makes it with (as the code names it):
# the calls of the methods the code uses, as the library's source (at the version the runtimes
# pin, lambdas/agent/requirements.txt) makes them. Their IAM actions are NEEDS's, or the service's.
LIBRARY_CALLS: dict[str, tuple[LibraryCall, ...]] = {
    # strands/models/bedrock.py (strands-agents 1.62.0): stream() -> converse (streaming=False) or converse_stream.
    "BedrockModel": (
        LibraryCall("bedrock-runtime", "Converse", "model_id", when=("streaming", False, True)),
        LibraryCall("bedrock-runtime", "ConverseStream", "model_id", when=("streaming", True, True)),
        # ... and count_tokens() -> count_tokens, with use_native_token_count=True only (else a local estimate).
        LibraryCall("bedrock-runtime", "CountTokens", "model_id", when=("use_native_token_count", True, False)),
    ),
    # bedrock_agentcore/tools/browser_client.py (bedrock-agentcore 1.25.0): start, generate_ws_headers, stop.
    "BrowserClient": (
        # start() -> start_browser_session(browserIdentifier=identifier); the session's browser is that one.
        LibraryCall("bedrock-agentcore", "StartBrowserSession", "start.identifier"),
        # generate_ws_headers() SigV4-signs the automation stream's WebSocket (wss://…/browser-streams/
        # <browser>/sessions/<id>/automation, opened by web_mcp.browse): no SDK operation, this action.
        LibraryCall("bedrock-agentcore", "ConnectBrowserAutomationStream", "start.identifier"),
        # stop() -> stop_browser_session(browserIdentifier=self.identifier) (get_session(), GetBrowserSession,
        # is not on this path).
        LibraryCall("bedrock-agentcore", "StopBrowserSession", "start.identifier"),
    ),
}
_UNKNOWN = object()  # a keyword's value the code does not spell as a literal
# boto3's managed copy (a client method of boto3's, not an API operation): CopyObject, or
# HeadObject and a multipart upload of UploadPartCopy parts, aborted on failure.
MANAGED_COPY = frozenset({"CopySource", "Bucket", "Key", "ExtraArgs", "Callback", "SourceClient", "Config"})


# Where in a bucket an S3 call's key can be, when the code builds it at run time:
# (package, file, enclosing function, Key expression) -> prefixes; "{VAR}" is the function's
# environment variable, "{VAR.field}" a field of its JSON value. Calls not named here may touch
# any object of their bucket (the bucket is still checked).
KEY_PREFIXES: dict[tuple[str, str, str, str], tuple[str, ...]] = {
    # The processor writes curated copies under the documents prefix, or direct/ for real-time items.
    ("ingestion", "ingestion/pipeline.py", "_put", "key"): ("{CURATED_PREFIX}", "direct/"),
    ("ingestion", "ingestion/pipeline.py", "_delete_versions", "key"): ("{CURATED_PREFIX}", "direct/"),
    ("ingestion", "ingestion/pipeline.py", "undo", "curated_key"): ("direct/",),  # only direct items are re-read
    ("ingestion", "ingestion/pipeline.py", "undo", "f'{curated_key}{SIDECAR_SUFFIX}'"): ("direct/",),
    ("ingestion", "ingestion/pipeline.py", "retire", "key"): ("{CURATED_PREFIX}", "direct/"),
    ("ingestion", "ingestion/pipeline.py", "retire", "f'{key}{SIDECAR_SUFFIX}'"): ("{CURATED_PREFIX}", "direct/"),
    # The Macie responder's quarantine copies.
    ("ingestion", "ingestion/macie.py", "_quarantine", "target"): ("macie/",),
    # The connectors land real-time records under realtime/ (the pull connector, its source's).
    ("connector_push", "shared/landing.py", "land", "doc.key"): ("realtime/",),
    ("connector_pull", "shared/landing.py", "land", "doc.key"): ("realtime/{PULL_SOURCE.name}/",),
}


@dataclass(frozen=True)
class Call:
    package: str
    where: str  # file:line
    service: str
    operation: str
    action: str
    resource: str | None  # the resource argument's expression; None: none
    key: str | None = None  # an S3 call's Key expression
    function: str = ""  # the function the call is in

    @property
    def path(self) -> str:
        return self.where.rsplit(":", 1)[0]


@cache
def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def _input_members(service: str, operation: str) -> set[str]:
    return set(_client(service).meta.service_model.operation_model(operation).input_shape.members)


def _path(node: ast.AST | None, path: list[str]) -> ast.AST | None:
    """The value at ``path`` inside literal dicts (None when it is not literal)."""
    for key in path:
        if not isinstance(node, ast.Dict):
            return None
        node = next((v for k, v in zip(node.keys, node.values, strict=True) if ast.literal_eval(k) == key), None)  # type: ignore[arg-type]
    return node


def _definitions(tree: ast.Module) -> dict[str, ast.stmt]:
    """A module's top-level definitions (functions, classes, assignments) by name."""
    found: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node
    return found


def _module_path(name: str) -> str | None:
    for candidate in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py"):
        if (LAMBDAS / candidate).is_file():
            return candidate
    return None


@cache
def _parsed(path: str) -> ast.Module:
    return ast.parse((LAMBDAS / path).read_text(), filename=path)


def reachable_code(package: str, module: str) -> dict[str, list[ast.AST]]:
    """What a handler can run, by file path: its whole module; of the modules under lambdas/ it
    imports, the top-level definitions that reached code names; of a reached class, the methods
    that reached code names (a method nobody names cannot run). Transitively, to a fixpoint."""
    entry = f"{package}/{module}.py"
    found: dict[str, list[ast.AST]] = {entry: [_parsed(entry)]}
    pending: list[tuple[str, ast.AST]] = [(entry, _parsed(entry))]
    seen: set[tuple[str, str]] = set()
    methods: dict[tuple[str, str], ast.AST] = {}  # methods of reached classes, not reached yet
    named: set[str] = set()  # every attribute name that reached code uses
    while pending:
        path, node = pending.pop()
        named |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        for source, name in _referenced(path, node):
            definition = _definitions(_parsed(source)).get(name)
            if definition is None or (source, name) in seen:
                continue
            seen.add((source, name))
            if isinstance(definition, ast.ClassDef):
                shell: list[ast.AST] = [
                    s for s in definition.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                shell += [*definition.bases, *definition.decorator_list]
                found.setdefault(source, []).extend(shell)
                pending.extend((source, part) for part in shell)
                for member in definition.body:
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                        methods[(source, member.name)] = member
            else:
                found.setdefault(source, []).append(definition)
                pending.append((source, definition))
        if not pending:  # methods named by now become reachable; they may name more
            for (source, name), method in list(methods.items()):
                if name in named or name.startswith("__"):
                    del methods[(source, name)]
                    found[source].append(method)
                    pending.append((source, method))
    return found


@cache
def _imports(path: str) -> dict[str, tuple[str, str | None]]:
    """A module's ``from`` imports of modules under lambdas/: local name -> (module path, the
    definition imported, or None for a module)."""
    imports: dict[str, tuple[str, str | None]] = {}
    for statement in _parsed(path).body:
        if isinstance(statement, ast.ImportFrom) and statement.module:
            for alias in statement.names:
                submodule = _module_path(f"{statement.module}.{alias.name}")
                if submodule:  # from package import module
                    imports[alias.asname or alias.name] = (submodule, None)
                elif (source := _module_path(statement.module)) is not None:
                    imports[alias.asname or alias.name] = (source, alias.name)
    return imports


def _referenced(path: str, node: ast.AST) -> list[tuple[str, str]]:
    """(module path, top-level name) of the definitions ``node`` names, in its module or imported."""
    imports = _imports(path)
    local = _definitions(_parsed(path))
    wanted: list[tuple[str, str]] = []
    for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
        if name in imports and imports[name][1] is not None:
            wanted.append((imports[name][0], str(imports[name][1])))
        elif name in local:
            wanted.append((path, name))
    for owner, attr in {
        (n.value.id, n.attr) for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }:
        if owner in imports and imports[owner][1] is None:
            wanted.append((imports[owner][0], attr))
    return wanted


@cache
def _known_services() -> frozenset[str]:
    return frozenset(boto3.Session(region_name=REGION).get_available_services())


def _services(code: Mapping[str, list[ast.AST]]) -> set[str]:
    """Services the code makes clients for: ``boto3.client("s3")``, ``boto3.resource(...)``, or a
    service name handed to a function that makes clients (``clients("xray")``)."""
    found = set()
    for nodes in code.values():
        for node in (n for root in nodes for n in ast.walk(root)):
            if (
                isinstance(node, ast.Call)
                and "client"
                in ast.unparse(node.func).lower() + ("client" if "resource" in ast.unparse(node.func) else "")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in _known_services()
            ):
                found.add(str(node.args[0].value))
    return found


def calls_in(package: str, module: str) -> list[Call]:
    """The AWS calls a handler module can make, with the code it imports."""
    code = reachable_code(package, module)
    services = _services(code)
    calls: dict[tuple[str, str, str | None], Call] = {}
    for path, nodes in code.items():
        for root in nodes:
            for call in (
                *_sdk_calls(package, path, root, services),
                *_powertools_calls(package, path, root),
                *_library_calls(package, path, root, code),
            ):
                calls[(call.where, call.action, call.resource)] = call
    return list(calls.values())


def _operation(node: ast.Call, services: set[str]) -> tuple[str, str] | None:
    """The one (service, operation) a keyword-only method call can be, or None."""
    assert isinstance(node.func, ast.Attribute)
    kwargs = {k.arg for k in node.keywords if k.arg is not None}
    if node.args:
        return None
    if node.func.attr == "copy" and "s3" in services and "CopySource" in kwargs and kwargs <= MANAGED_COPY:
        return ("s3", "ManagedCopy")
    candidates = [
        (service, operation)
        for service in sorted(services)
        if (operation := _client(service).meta.method_to_api_mapping.get(node.func.attr))
        and kwargs <= _input_members(service, operation)
    ]
    assert len(candidates) <= 1, f"line {node.lineno}: {node.func.attr} is ambiguous between {candidates}"
    return candidates[0] if candidates else None


@cache
def _enclosing(path: str) -> dict[int, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The innermost function each node of a module is in, by node id."""
    found: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in ast.walk(_parsed(path)):  # outer functions come first: inner ones overwrite
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                found[id(inner)] = node
    return found


@cache
def _transact_kinds(path: str) -> tuple[str, ...]:
    """The kinds of DynamoDB transaction item a module writes (its literal dicts' keys)."""
    return tuple(
        sorted(
            {
                key.value
                for node in ast.walk(_parsed(path))
                if isinstance(node, ast.Dict)
                for key in node.keys
                if isinstance(key, ast.Constant) and key.value in ("Put", "Update", "Delete", "ConditionCheck")
            }
        )
    )


@dataclass(frozen=True)
class _Site:
    """One SDK call in the code, to be turned into the IAM actions it needs."""

    package: str
    path: str
    node: ast.Call
    service: str
    operation: str

    @property
    def arguments(self) -> dict[str, ast.expr]:
        return {k.arg: k.value for k in self.node.keywords if k.arg is not None}

    def argument(self, name: str | None) -> str | None:
        """An argument's source text; a dotted ``name`` reaches into literal dicts."""
        if name is None:
            return None
        first, *rest = name.split(".")
        value = _path(self.arguments.get(first), rest)
        return ast.unparse(value) if value is not None else None

    @property
    def resource(self) -> str | None:
        resource = self.argument(RESOURCE_ARGUMENT.get(self.service))
        if self.service == "dynamodb" and resource is None:
            assert isinstance(self.node.func, ast.Attribute)
            return ast.unparse(self.node.func.value)  # a Table resource (or a transaction) names its table elsewhere
        return resource

    def call(self, operation: str, action: str, on: str | None, *, with_key: bool = True) -> Call:
        where = f"{self.path}:{self.node.lineno}"
        key = self.argument("Key") if with_key else None
        function = _enclosing(self.path).get(id(self.node))
        return Call(self.package, where, self.service, operation, action, on, key, function.name if function else "")


def _sdk_calls(package: str, path: str, tree: ast.AST, services: set[str]) -> Iterator[Call]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if (path, node.func.attr) in NOT_SDK:
            continue
        found = _operation(node, services)
        if found is not None:
            yield from _actions(_Site(package, path, node, *found))


def _actions(site: _Site) -> Iterator[Call]:
    """The (operation, IAM action, resource) calls one SDK call needs."""
    operation = site.operation
    if (site.service, operation) in NEEDS:
        for action, name in NEEDS[(site.service, operation)]:
            yield site.call(operation, action, name if name and name.startswith("arn:") else site.argument(name))
    elif (site.service, operation) == ("dynamodb", "TransactWriteItems"):
        for kind in _transact_kinds(site.path):
            item = "ConditionCheckItem" if kind == "ConditionCheck" else f"{kind}Item"
            yield site.call(item, f"dynamodb:{item}", site.resource)
    elif (site.service, operation) == ("s3", "CopyObject"):
        yield from _copy_object(site)
    elif (site.service, operation) == ("s3", "ManagedCopy"):
        yield from _copy_object(site)  # CreateMultipartUpload, UploadPartCopy and the rest: s3:PutObject
        yield site.call("AbortMultipartUpload", "s3:AbortMultipartUpload", site.resource)
    elif site.service == "s3" and operation in S3_VERSIONED and "VersionId" in site.arguments:
        yield site.call(operation, f"s3:{S3_VERSIONED[operation]}", site.resource)
    elif (site.service, operation) == ("s3", "HeadObject"):
        yield site.call(operation, "s3:GetObject", site.resource)
    else:
        prefix = str(_client(site.service).meta.service_model.signing_name)
        yield site.call(operation, f"{prefix}:{operation}", site.resource)


def _copy_object(site: _Site) -> Iterator[Call]:
    """A copy writes its target and reads its source (a given version of it, when it names one)."""
    yield site.call("PutObject", "s3:PutObject", site.resource)
    source = site.arguments["CopySource"]
    if isinstance(source, ast.Dict):
        bucket = _path(source, ["Bucket"])
        versioned = _path(source, ["VersionId"]) is not None
        bucket_text = ast.unparse(bucket) if bucket is not None else None
    else:  # built beforehand: COPY_SOURCES says from where
        bucket_text, versioned = COPY_SOURCES[(site.package, ast.unparse(source))]
    for read in ("GetObject", *(("GetObjectVersion",) if versioned else ())):
        yield site.call(read, f"s3:{read}", bucket_text, with_key=False)


def _powertools_calls(package: str, path: str, tree: ast.AST) -> Iterator[Call]:
    """The AWS calls Powertools makes for the code: parameters and idempotency."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        where = f"{path}:{node.lineno}"
        first = ast.unparse(node.args[0]) if node.args else None
        if name == "parameters.get_parameter":
            yield Call(package, where, "ssm", "GetParameter", "ssm:GetParameter", first)
        elif name in ("parameters.get_secret", "_secrets().get"):  # (shared.legacy_client's SecretsProvider)
            yield Call(package, where, "secretsmanager", "GetSecretValue", "secretsmanager:GetSecretValue", first)
        elif name == "DynamoDBPersistenceLayer":
            table = next(ast.unparse(k.value) for k in node.keywords if k.arg == "table_name")
            for operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
                yield Call(package, where, "dynamodb", operation, f"dynamodb:{operation}", table)


def _library_calls(package: str, path: str, tree: ast.AST, code: Mapping[str, list[ast.AST]]) -> Iterator[Call]:
    """The AWS calls libraries' objects make for the code, where the code makes them (LIBRARY_CALLS)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) in LIBRARY_CALLS):
            continue
        scope = _enclosing(path).get(id(node))
        config = _Config.of(node.keywords, scope)
        where = f"{path}:{node.lineno}"
        for made in LIBRARY_CALLS[ast.unparse(node.func)]:
            if made.when is not None and not config.may_be(*made.when):
                continue
            for action in _iam_actions(made.service, made.operation):
                for resource in _library_resources(made.resource, config, code):
                    function = scope.name if scope else ""
                    yield Call(package, where, made.service, made.operation, action, resource, function=function)


def _iam_actions(service: str, operation: str) -> list[str]:
    """The IAM actions an operation needs (NEEDS's, else the service's action of that name)."""
    if (service, operation) in NEEDS:
        return [action for action, _ in NEEDS[(service, operation)]]
    return [f"{_client(service).meta.service_model.signing_name}:{operation}"]


def _library_resources(spec: str, config: _Config, code: Mapping[str, list[ast.AST]]) -> list[str]:
    """The expressions naming a library call's resource: the constructor's keyword, or the keyword
    of the calls of the object's method in the package's code (``method.keyword``; a call of a
    method so named that lacks the keyword is another object's, or the library's default). Where
    the code names none, the spec itself: the check reports it unresolved."""
    method, _, keyword = spec.rpartition(".")
    if not method:
        found = [ast.unparse(value) for value in config.values.get(keyword, [])]
    else:
        found = [
            ast.unparse(k.value)
            for nodes in code.values()
            for node in (n for root in nodes for n in ast.walk(root))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
            for k in node.keywords
            if k.arg == keyword
        ]
    return sorted(set(found)) or [spec]


@dataclass
class _Config:
    """What a constructor's keywords may be: each keyword's possible values (expressions), the
    keywords it surely passes, and whether it may pass others too (a mapping not read here).
    ``**name`` is read from the one assignment of ``name`` in the enclosing function, a dict
    literal's ``**(a if c else b)`` from both branches."""

    values: dict[str, list[ast.expr]] = field(default_factory=dict)
    surely: set[str] = field(default_factory=set)
    open: bool = False

    @classmethod
    def of(cls, keywords: list[ast.keyword], scope: ast.AST | None) -> _Config:
        config = cls()
        config.add([(k.arg, k.value) for k in keywords], scope, surely=True)
        return config

    def add(self, pairs: list[tuple[str | None, ast.expr]], scope: ast.AST | None, *, surely: bool) -> None:
        for key, value in pairs:
            if key is not None:
                self.values.setdefault(key, []).append(value)
                if surely:
                    self.surely.add(key)
            elif isinstance(value, ast.Dict) and all(k is None or isinstance(k, ast.Constant) for k in value.keys):
                entries = [
                    (None if k is None else str(ast.literal_eval(k)), v)
                    for k, v in zip(value.keys, value.values, strict=True)
                ]
                self.add(entries, scope, surely=surely)
            elif isinstance(value, ast.IfExp):
                self.add([(None, value.body), (None, value.orelse)], scope, surely=False)
            elif isinstance(value, ast.Name) and (assigned := _assigned(scope, value.id)) is not None:
                self.add([(None, assigned)], scope, surely=surely)
            else:
                self.open = True

    def may_be(self, keyword: str, value: object, default: object) -> bool:
        """Whether ``keyword`` may have ``value`` (the library's ``default`` where it may be absent)."""
        possible = [_literal(v) for v in self.values.get(keyword, [])]
        if keyword not in self.surely:
            possible.append(default)
        return self.open or _UNKNOWN in possible or value in possible


def _assigned(scope: ast.AST | None, name: str) -> ast.expr | None:
    """The value of the one assignment of ``name`` in ``scope`` (None: none, or several)."""
    if scope is None:
        return None
    values = [
        node.value
        for node in ast.walk(scope)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and node.value is not None
        and [ast.unparse(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])] == [name]
    ]
    return values[0] if len(values) == 1 else None


def _literal(value: ast.expr) -> object:
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError):
        return _UNKNOWN


# --- the template side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """A deployed unit of code: its stack, handler module, role and environment."""

    stack: str
    logical_id: str
    package: str
    module: str
    role: str  # the role's logical id, in the same stack
    environment: Mapping[str, Any]


def runners(templates: Mapping[str, Template]) -> list[Runner]:
    """Every house function and agent runtime in the assembly."""
    found = []
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Function":
                package, module, _ = [*str(props.get("Handler", "")).split("."), "", ""][:3]
                if not (LAMBDAS / package / f"{module}.py").is_file():
                    continue  # CDK's own functions
                environment = props.get("Environment", {}).get("Variables", {})
            elif resource["Type"] == "AWS::BedrockAgentCore::Runtime":
                package, module = runtime_package(props)
                environment = props.get("EnvironmentVariables", {})
            else:
                continue
            role = props.get("Role") or props.get("RoleArn")
            found.append(Runner(stack, logical_id, package, module, role["Fn::GetAtt"][0], environment))
    return found


def identities(value: Any, stack: str, templates: Mapping[str, Template]) -> set[Identity]:
    """The resources a template value refers to, followed across stacks."""
    found: set[Identity] = set()
    if isinstance(value, dict):
        if "Ref" in value and not str(value["Ref"]).startswith("AWS::"):
            found.add((stack, value["Ref"]))
        elif "Fn::GetAtt" in value:
            found.add((stack, value["Fn::GetAtt"][0]))
        elif "Fn::GetStackOutput" in value:
            producer = value["Fn::GetStackOutput"]["StackName"]
            output = templates[producer]["Outputs"][value["Fn::GetStackOutput"]["OutputName"]]
            found |= identities(output["Value"], producer, templates)
        else:
            for item in value.values():
                found |= identities(item, stack, templates)
    elif isinstance(value, list):
        for item in value:
            found |= identities(item, stack, templates)
    return found


def _text(value: Any) -> str:
    """A template value as text, references as <ref>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return str(value["Fn::Join"][0]).join(_text(part) for part in value["Fn::Join"][1])
    return "<ref>"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: Template, role: str) -> list[dict[str, Any]]:
    """The Allow statements of every policy attached to ``role`` in its template."""
    found = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in props.get("Roles", []):
            found.extend(props["PolicyDocument"]["Statement"])
    inline = template["Resources"][role]["Properties"].get("Policies", [])
    found.extend(s for policy in inline for s in policy["PolicyDocument"]["Statement"])
    return [s for s in found if s.get("Effect") == "Allow"]


@dataclass(frozen=True)
class Finding:
    runner: Runner
    call: Call
    resource: str

    def __str__(self) -> str:
        return (
            f"{self.runner.stack}/{self.runner.logical_id} ({self.call.where}): "
            f"{self.call.action} on {self.resource} is not allowed by its role"
        )


@dataclass
class Coverage:
    calls: int = 0  # SDK and Powertools calls found in the code, per runner
    actions: int = 0  # (call, IAM action) pairs checked
    matched: int = 0  # ... of which a statement allows
    findings: list[Finding] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


def target_of(call: Call, runner: Runner) -> Target:
    """The environment variables naming the call's resource, the ARN service of a resource
    chosen at run time, or None for a call on no resource."""
    expression = call.resource
    if expression is None:
        return None
    if expression.startswith("arn:"):  # a resource of that service, named by no argument
        return expression.removeprefix("arn:")
    variables = re.findall(r"(?:os\.environ|env)(?:\[|\.get\()['\"](\w+)['\"]", expression)
    if variables:
        return tuple(variables)
    for key in ((call.package, expression), ("*", expression)):
        if key in EXPLICIT:
            return EXPLICIT[key]
    name = next((part for part in reversed(re.split(r"\W+", expression)) if part), "").upper()
    if name in runner.environment:
        return (name,)
    raise LookupError(f"{call.where}: cannot tell which resource {expression!r} names: add it to EXPLICIT")


def check(templates: Mapping[str, Template], *, only: str | None = None) -> Coverage:
    """Check every runner's calls (or only those of runners whose logical id starts with ``only``)."""
    coverage = Coverage()
    for runner in runners(templates):
        if only and not runner.logical_id.startswith(only):
            continue
        allowed = statements(templates[runner.stack], runner.role)
        calls = [call for call in calls_in(runner.package, runner.module) if _switched_on(call, runner)]
        coverage.calls += len({(c.where, c.operation) for c in calls})
        for call in calls:
            try:
                target = target_of(call, runner)
            except LookupError as error:
                coverage.unresolved.append(str(error))
                continue
            coverage.actions += 1
            grants = [
                s
                for s in allowed
                if any(fnmatch.fnmatchcase(call.action.lower(), a.lower()) for a in _listed(s["Action"]))
            ]
            if _covered(grants, call, target, runner, templates):
                coverage.matched += 1
            else:
                described = "*" if target is None else target if isinstance(target, str) else " or ".join(target)
                coverage.findings.append(Finding(runner, call, described))
    return coverage


def _switched_on(call: Call, runner: Runner) -> bool:
    variable = SWITCHED_ON_BY_VARIABLE.get(call.where.split(":")[0])
    if variable is not None and variable not in runner.environment:
        return False
    switch = SWITCHED_ON.get((call.package, call.service))
    if switch is None:
        return True
    name, value = switch
    return name in runner.environment if value is None else runner.environment.get(name) == value


def _covered(
    grants: list[dict[str, Any]], call: Call, target: Target, runner: Runner, templates: Mapping[str, Template]
) -> bool:
    resources = [r for s in grants for r in _listed(s["Resource"])]
    if "*" in resources:
        return True
    if target is None:
        return False
    if isinstance(target, str):
        return _covered_at_run_time(resources, target, runner, templates)
    return all(_names_covered(variable, resources, call, runner, templates) for variable in target)


def _covered_at_run_time(resources: list[Any], service: str, runner: Runner, templates: Mapping[str, Template]) -> bool:
    """A resource chosen at run time: an ARN of that service (or a resource of its type) can match."""
    kind = RUN_TIME_TYPES.get(service)
    referenced = [
        templates[stack]["Resources"][r]["Type"]
        for resource in resources
        for stack, r in identities(resource, runner.stack, templates)
    ]
    return any(re.search(rf"^arn:[^:]*:{service}:|:{service}:", _text(r)) for r in resources) or (
        kind is not None and kind in referenced
    )


def _names_covered(
    variable: str, resources: list[Any], call: Call, runner: Runner, templates: Mapping[str, Template]
) -> bool:
    """Whether the resources granted cover the one ``variable`` names (and, for an S3 object
    call, every place in the bucket the call may touch)."""
    if variable.startswith("@"):
        wanted = {(runner.stack, r) for r in templates[runner.stack]["Resources"] if r.startswith(variable[1:])}
    elif variable in runner.environment:
        wanted = identities(runner.environment[variable], runner.stack, templates)
    else:
        return False
    if not wanted:
        return False
    object_level = call.service == "s3" and call.operation not in S3_BUCKET_OPERATIONS
    matching = []
    for resource in resources:
        if not identities(resource, runner.stack, templates) & wanted:
            continue
        path = _text(resource).rsplit("<ref>", 1)[-1]  # after the bucket: "/curated/*", or ""
        if call.service == "s3" and object_level != ("/" in path):
            continue
        matching.append(path)
    samples = _sample_keys(call, runner) if object_level else []
    return bool(matching) and all(any(fnmatch.fnmatchcase(s, p) for p in matching) for s in samples)


def _sample_keys(call: Call, runner: Runner) -> list[str]:
    """Object paths ("/<key>") the call may touch, where KEY_PREFIXES says (else none to check)."""
    prefixes = KEY_PREFIXES.get((call.package, call.path, call.function, call.key or ""), ())
    samples = []
    for template in prefixes:
        try:
            prefix = re.sub(r"\{(\w+)(?:\.(\w+))?\}", lambda m: _variable(runner, m.group(1), m.group(2)), template)
        except LookupError:
            continue  # the function has no such variable: only its bucket is checked
        samples.append(f"/{prefix}sample-object")
    return samples


def _variable(runner: Runner, name: str, field: str | None) -> str:
    value = runner.environment.get(name)
    if not isinstance(value, str):
        raise LookupError(name)
    return str(json.loads(value)[field]) if field else value
