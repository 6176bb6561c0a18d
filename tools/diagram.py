"""Draw each tier's architecture from the synthesized app, as Mermaid, into docs/architecture.md.

    python tools/diagram.py                      # synthesize in-process, write docs/architecture.md
    python tools/diagram.py --assembly cdk.out   # read an existing cloud assembly instead

Nothing here is drawn by hand: the nodes are the resources of the templates whose type matters to a
reader (functions, APIs, stores, queues, AgentCore, Bedrock, ...), grouped by stack; the edges are the
references between them (Ref, Fn::GetAtt, Fn::GetStackOutput, Fn::ImportValue, in properties,
environment variables and the IAM policies of their roles) and the wiring resources that connect two
of them (event source mappings, API integrations, data sources, gateway targets, EventBridge targets).
``mermaid()`` is the public entry point; tests/test_diagram.py fails when the committed file is stale.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (python tools/diagram.py): the repository root is not on the path
    sys.path.insert(0, str(ROOT))

from tools.inputs import read_json  # noqa: E402
from tools.synth import synthesize  # noqa: E402

OUTPUT = ROOT / "docs" / "architecture.md"

Key = tuple[str, str]  # (stack name, logical id); stack "" for the nodes outside every stack
CLIENT: Key = ("", "Client")
MODELS: Key = ("", "Models")
EXTERNAL = {CLIENT: "client", MODELS: "Bedrock models"}
# Past this many nodes a diagram stops being read; build() merges and folds until it fits.
MAX_NODES = 60
# The overview names this many kinds of resource per stack (the most frequent first) and relations per arrow.
OVERVIEW_KINDS = 4
OVERVIEW_LABELS = 3

# Resource types a reader of the architecture cares about, with the name shown under the label.
MAIN_TYPES = {
    "AWS::Lambda::Function": "Lambda function",
    "AWS::ApiGateway::RestApi": "REST API",
    "AWS::ApiGateway::UsagePlan": "usage plan",
    "AWS::Cognito::UserPool": "Cognito user pool",
    "AWS::DynamoDB::Table": "DynamoDB table",
    "AWS::DynamoDB::GlobalTable": "DynamoDB table",
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::SQS::Queue": "SQS queue",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::KMS::Key": "KMS key",
    "AWS::Bedrock::KnowledgeBase": "knowledge base",
    "AWS::Bedrock::Guardrail": "guardrail",
    "AWS::Kendra::Index": "Kendra index",
    "AWS::BedrockAgentCore::Runtime": "AgentCore runtime",
    "AWS::BedrockAgentCore::Gateway": "AgentCore gateway",
    "AWS::BedrockAgentCore::Memory": "AgentCore memory",
    "AWS::BedrockAgentCore::PolicyEngine": "AgentCore policy engine",
    "AWS::S3Vectors::VectorBucket": "S3 Vectors bucket",
    "AWS::Macie::Session": "Macie",
    "AWS::Macie::FindingsFilter": "Macie findings filter",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::Scheduler::Schedule": "EventBridge schedule",
    "AWS::WAFv2::WebACL": "WAF web ACL",
    "AWS::StepFunctions::StateMachine": "state machine",
}
# Custom resources of the project's own that stand for a service (an AwsCustomResource per Macie job).
CUSTOM_MAIN = re.compile(r"^Custom::Macie")
CUSTOM_TYPE_NAME = "Macie job"

STORES = {
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::S3::Bucket",
    "AWS::S3Vectors::VectorBucket",
    "AWS::Bedrock::KnowledgeBase",
    "AWS::Kendra::Index",
    "AWS::BedrockAgentCore::Memory",
}
EVENTS = {"AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::Events::Rule", "AWS::Scheduler::Schedule"}
CONTROLS = {
    "AWS::KMS::Key",
    "AWS::ApiGateway::UsagePlan",
    "AWS::Bedrock::Guardrail",
    "AWS::BedrockAgentCore::PolicyEngine",
    "AWS::WAFv2::WebACL",
}
# Every resource is encrypted with its tier's key: an edge to it from each would hide the rest.
UNDRAWN_TARGETS = {"AWS::KMS::Key"}

# CDK's own functions (custom-resource providers, singletons, auto-delete, log retention).
CDK_INTERNAL_PATH = re.compile(
    r"/(Custom::[^/]+|AWS[0-9a-f]{32}|framework-[A-Za-z]+|LogRetention[0-9a-f]*|BucketNotificationsHandler[0-9a-f]*)(/|$)"
)
MODEL_ARN = re.compile(r":(foundation-model|inference-profile|application-inference-profile)/")
# Path segments that say little on their own; the label puts the parent's name first ("query function").
GENERIC_SEGMENTS = {"Resource", "Default", "Function", "Index", "Bucket", "Table", "Queue", "Topic", "Api"}

# Properties of a helper resource that name the main resource it belongs to.
PARENT_PROPERTIES = (
    "Roles",
    "FunctionName",
    "Bucket",
    "Queues",
    "Topics",
    "TopicArn",
    "WebACLArn",
    "ApiStages",
    "TargetKeyId",
    "RestApiId",
    "KnowledgeBaseId",
    "IndexId",
    "TargetFunctionArn",
    "VectorBucketName",
    "VectorBucketArn",
    "GuardrailIdentifier",
    "UserPoolId",
)
# Helpers that belong to whatever refers to them (a function's role and log group); a shared helper
# such as a dependency layer is not one: its users are not related through it.
OWNED_BY_REFERENCE = {"AWS::IAM::Role", "AWS::Logs::LogGroup", "AWS::IAM::InstanceProfile"}
# Where a main resource's property says what the relationship is.
PROPERTY_LABELS = (
    ("Interceptor", "intercepts"),
    ("PolicyEngineConfiguration", "authorizes with"),
    ("AuthorizerConfiguration", "verifies tokens"),
    ("RedrivePolicy", "dead letters"),
    ("DeadLetter", "dead letters"),
    ("NotificationConfiguration", "notifies"),
    ("LambdaConfig", "triggers"),
    ("EmbeddingModelArn", "embeds with"),
    ("StorageConfiguration", "stores vectors"),
    ("ApiStages", "throttles and quotas"),
)
# What an edge means when nothing more specific is known, by the type of its target.
TARGET_LABELS = {
    "AWS::Lambda::Function": "invokes",
    "AWS::BedrockAgentCore::Runtime": "invokes",
    "AWS::BedrockAgentCore::Gateway": "calls tools (MCP)",
    "AWS::Bedrock::Guardrail": "applies",
    "AWS::Cognito::UserPool": "verifies tokens",
    "AWS::StepFunctions::StateMachine": "starts",
}
SOURCE_LABELS = {"Custom::Macie": "scans", "AWS::Events::Rule": "targets", "AWS::Scheduler::Schedule": "triggers"}

READ_ACTIONS = re.compile(r"^(Get|List|Describe|Query|Scan|BatchGet|Retrieve|Receive|Head|Search|ChangeMessage)")
WRITE_ACTIONS = re.compile(r"^(Put|Update|Delete|BatchWrite|Create|Abort|Restore|Send|Publish|Ingest|Start|Copy)")
INVOKE_ACTIONS = re.compile(r"^(InvokeFunction|InvokeAgentRuntime|InvokeGateway|InvokeModel|Converse|StartExecution)")


# --------------------------------------------------------------------------------------------------
# References


@dataclass(frozen=True)
class Ref:
    """A reference from a property value: the resource it names and the property path it sits under."""

    target: Key
    path: str


def _intrinsics(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (function, argument) of the one-key mappings (intrinsic functions) in ``value``."""
    if isinstance(value, list):
        for item in value:
            yield from _intrinsics(item)
    elif isinstance(value, Mapping):
        if len(value) == 1:
            yield next(iter(value.items()))
        for item in value.values():
            yield from _intrinsics(item)


def _excerpt(value: Any) -> str:
    """``value`` as JSON-ish text, cut short: enough to find it in the template."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class App:
    """The templates of one or more stacks, with cross-stack references resolved."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        self.templates = templates
        self.resources: dict[Key, Mapping[str, Any]] = {
            (stack, lid): resource
            for stack, template in sorted(templates.items())
            for lid, resource in sorted(template.get("Resources", {}).items())
        }
        self.exports: dict[str, tuple[str, Any]] = {
            output["Export"]["Name"]: (stack, output.get("Value"))
            for stack, template in templates.items()
            for output in template.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
        }

    def stack_refs(self, stack: str) -> set[str]:
        """The other stacks whose outputs ``stack`` reads."""
        found = {
            str(arg.get("StackName")) if fn == "Fn::GetStackOutput" else self.exports.get(str(arg), ("", None))[0]
            for fn, arg in _intrinsics(self.templates.get(stack, {}))
            if (fn == "Fn::GetStackOutput" and isinstance(arg, Mapping)) or fn == "Fn::ImportValue"
        }
        return found - {stack, ""}

    def type(self, key: Key) -> str:
        return str(self.resources[key].get("Type", "")) if key in self.resources else ""

    def path(self, key: Key) -> str:
        resource = self.resources.get(key, {})
        return str(resource.get("Metadata", {}).get("aws:cdk:path", f"{key[0]}/{key[1]}"))

    def properties(self, key: Key) -> Mapping[str, Any]:
        props = self.resources.get(key, {}).get("Properties", {})
        return props if isinstance(props, Mapping) else {}

    def refs(self, stack: str, value: Any, path: str = "") -> Iterator[Ref]:
        """Every resource (or the models) that ``value``, a property of a resource in ``stack``, names."""
        if isinstance(value, str):
            if MODEL_ARN.search(value):
                yield Ref(MODELS, path)
        elif isinstance(value, list):
            for item in value:
                yield from self.refs(stack, item, path)
        elif isinstance(value, Mapping):
            yield from self._mapping_refs(stack, value, path)

    def _mapping_refs(self, stack: str, value: Mapping[str, Any], path: str) -> Iterator[Ref]:
        if len(value) == 1:
            ((fn, arg),) = value.items()
            target = self._intrinsic(stack, fn, arg)
            if target is not None:
                yield from (Ref(key, path) for key in target)
                return
        for name, item in value.items():
            yield from self.refs(stack, item, f"{path}/{name}")

    def _intrinsic(self, stack: str, fn: str, arg: Any) -> list[Key] | None:
        """The resources an intrinsic function names, or None when ``fn`` is not a referencing one."""
        if fn == "Ref":
            return [(stack, arg)] if (stack, arg) in self.resources else []
        if fn == "Fn::GetAtt":
            if isinstance(arg, list) and not (len(arg) == 2 and isinstance(arg[0], str)):
                raise ValueError(f"stack {stack}: Fn::GetAtt of {_excerpt(arg)}: not [logical id, attribute]")
            lid = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
            return [(stack, lid)] if (stack, lid) in self.resources else []
        if fn == "Fn::Sub":
            if isinstance(arg, list) and not (len(arg) == 2 and isinstance(arg[0], str)):
                raise ValueError(f"stack {stack}: Fn::Sub of {_excerpt(arg)}: not [text, {{variable: value}}]")
            text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            named = re.findall(r"\$\{([^}.!]+)[^}]*\}", str(text))
            keys = [(stack, n) for n in named if (stack, n) in self.resources]
            return keys + [ref.target for ref in self.refs(stack, variables)]
        if fn == "Fn::GetStackOutput" and isinstance(arg, Mapping):
            other = str(arg.get("StackName", ""))
            output = self.templates.get(other, {}).get("Outputs", {}).get(str(arg.get("OutputName", "")), {})
            return [ref.target for ref in self.refs(other, output.get("Value"))]
        if fn == "Fn::ImportValue" and isinstance(arg, str) and arg in self.exports:
            other, exported = self.exports[arg]
            return [ref.target for ref in self.refs(other, exported)]
        return None


# --------------------------------------------------------------------------------------------------
# Nodes


def _is_main(app: App, key: Key, log_buckets: set[Key]) -> bool:
    kind = app.type(key)
    if not (kind in MAIN_TYPES or CUSTOM_MAIN.match(kind)):
        return False
    if kind == "AWS::Lambda::Function" and CDK_INTERNAL_PATH.search(app.path(key)):
        return False
    return key not in log_buckets


def _access_log_buckets(app: App) -> set[Key]:
    """Buckets that other buckets write their access logs to: plumbing, not architecture."""
    return {
        ref.target
        for key in app.resources
        if app.type(key) == "AWS::S3::Bucket"
        for ref in app.refs(key[0], app.properties(key).get("LoggingConfiguration"))
    }


def type_name(kind: str) -> str:
    return MAIN_TYPES.get(kind) or (CUSTOM_TYPE_NAME if CUSTOM_MAIN.match(kind) else kind)


def readable(path: str) -> str:
    """The construct path's last meaningful segment, in words: ".../GatewayFunction/Resource" -> "gateway function"."""
    segments = [s for s in path.split("/")[1:] if s not in ("Resource", "Default")] or path.split("/")[-1:]
    name = re.sub(r"(?<=[A-Za-z])[0-9][0-9a-f]{5,}$", "", segments[-1])
    if name in GENERIC_SEGMENTS and len(segments) > 1:
        name = f"{segments[-2]}{name}"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|[_\-.]+", " ", name).split()
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)


# --------------------------------------------------------------------------------------------------
# Ownership: a helper resource (a role, its policies, a log group, a data source) belongs to the main
# resources it serves, so that its references are theirs.


class Owners:
    def __init__(self, app: App, mains: set[Key]) -> None:
        self.app = app
        self.mains = mains
        self.referencers: dict[Key, set[Key]] = defaultdict(set)
        for key in app.resources:
            for ref in app.refs(key[0], app.properties(key)):
                self.referencers[ref.target].add(key)
        self._cache: dict[Key, frozenset[Key]] = {}

    def __call__(self, key: Key) -> frozenset[Key]:
        return self._owners(key, frozenset())

    def _owners(self, key: Key, seen: frozenset[Key]) -> frozenset[Key]:
        if key in self.mains or key in EXTERNAL:
            return frozenset({key})
        if key in seen or key not in self.app.resources:
            return frozenset()
        if key not in self._cache:
            self._cache[key] = self._find(key, seen | {key})
        return self._cache[key]

    def _find(self, key: Key, seen: frozenset[Key]) -> frozenset[Key]:
        parents = self.parents(key)
        if parents:
            return frozenset().union(*(self._owners(p, seen) for p in parents))
        kind = self.app.type(key)
        if kind not in OWNED_BY_REFERENCE:
            return frozenset()
        by_referencer = frozenset().union(
            *(self._owners(r, seen) for r in sorted(self.referencers[key]) if key not in self.parents(r))
        )
        if by_referencer or kind != "AWS::Logs::LogGroup":
            return by_referencer
        # A log group named after what writes to it (an AgentCore runtime's).
        return frozenset(
            ref.target for ref in self.app.refs(key[0], self.app.properties(key)) if ref.target in self.mains
        )

    def parents(self, key: Key) -> list[Key]:
        props = self.app.properties(key)
        if key in self.mains:
            return []
        return [ref.target for name in PARENT_PROPERTIES for ref in self.app.refs(key[0], props.get(name))]


# --------------------------------------------------------------------------------------------------
# Edges


@dataclass(frozen=True)
class RawEdge:
    """A relationship between two resources, before they are mapped to the main resources owning them."""

    source: Key
    target: Key
    label: str = ""
    via_iam: bool = False
    rank: int = 1  # 2: from a wiring resource that says what the relationship is; 1: a reference; 0: IAM


def _refs_of(app: App, key: Key, *names: str) -> list[Key]:
    props = app.properties(key)
    return [ref.target for name in names for ref in app.refs(key[0], props.get(name))]


def _wired(sources: Iterable[Key], targets: Iterable[Key], label: str) -> Iterator[RawEdge]:
    targets = list(targets)
    for source in sources:
        for target in targets:
            yield RawEdge(source, target, label, rank=2)


def _iam_label(actions: Iterable[str]) -> str:
    verbs = set()
    for action in actions:
        name = action.split(":", 1)[-1]
        if name == "*" or action == "*":
            verbs |= {"reads", "writes"}
        elif INVOKE_ACTIONS.match(name):
            verbs.add("invokes")
        elif name.startswith("StartIngestionJob") or name.startswith("IngestKnowledgeBase"):
            verbs.add("syncs")
        elif name == "ApplyGuardrail":
            verbs.add("applies")
        elif READ_ACTIONS.match(name):
            verbs.add("reads")
        elif WRITE_ACTIONS.match(name):
            verbs.add("writes")
    for single in ("invokes", "syncs", "applies"):
        if single in verbs:
            return single
    return "/".join(v for v in ("reads", "writes") if v in verbs)


def _statements(document: Any) -> Iterator[Mapping[str, Any]]:
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if isinstance(statement, Mapping) and statement.get("Effect") == "Allow":
            yield statement


def _policy_edges(app: App, key: Key) -> Iterator[RawEdge]:
    props = app.properties(key)
    documents = [props.get("PolicyDocument")]
    if app.type(key) == "AWS::IAM::Role":
        documents = [policy.get("PolicyDocument") for policy in props.get("Policies", []) or []]
    for document in documents:
        for statement in _statements(document):
            actions = statement.get("Action", [])
            label = _iam_label([actions] if isinstance(actions, str) else actions)
            for ref in app.refs(key[0], statement.get("Resource")):
                yield RawEdge(key, ref.target, label, via_iam=True, rank=0)


def _property_label(path: str) -> str:
    return next((label for marker, label in PROPERTY_LABELS if marker in path), "")


def _main_edges(app: App, key: Key) -> Iterator[RawEdge]:
    kind = app.type(key)
    props = app.properties(key)
    if kind == "AWS::ApiGateway::RestApi":
        yield RawEdge(CLIENT, key, "HTTPS", rank=2)
    if kind == "AWS::Events::Rule":
        yield from _rule_edges(app, key)
        return
    for name, value in sorted(props.items()):
        if name in ("Tags", "LoggingConfiguration", "ServiceToken"):
            continue
        for ref in app.refs(key[0], value, f"/{name}"):
            yield RawEdge(key, ref.target, _property_label(ref.path))


def _rule_edges(app: App, key: Key) -> Iterator[RawEdge]:
    """An EventBridge rule: what its pattern matches sends it events; it sends them to its targets."""
    pattern = app.properties(key).get("EventPattern", {})
    sources = pattern.get("source", []) if isinstance(pattern, Mapping) else []
    if "aws.macie" in sources:
        emitters = [k for k in app.resources if k[0] == key[0] and CUSTOM_MAIN.match(app.type(k))]
        emitters += [k for k in app.resources if app.type(k).startswith("AWS::Macie::Session")]
    else:
        emitters = [ref.target for ref in app.refs(key[0], pattern)]
    yield from _wired(emitters, [key], "events")
    for target in app.properties(key).get("Targets", []) or []:
        yield from _wired([key], [ref.target for ref in app.refs(key[0], target.get("Arn"))], "targets")
        dead = target.get("DeadLetterConfig", {}).get("Arn")
        yield from _wired([key], [ref.target for ref in app.refs(key[0], dead)], "dead letters")


def _wiring_edges(app: App, key: Key) -> Iterator[RawEdge]:
    """Resources whose only job is to connect two others, in the direction data or calls flow."""
    kind = app.type(key)
    props = app.properties(key)
    if kind == "AWS::Lambda::EventSourceMapping":
        yield from _wired(_refs_of(app, key, "EventSourceArn"), _refs_of(app, key, "FunctionName"), "triggers")
    elif kind == "AWS::ApiGateway::Method":
        integration = props.get("Integration", {})
        uri = integration.get("Uri") if isinstance(integration, Mapping) else None
        yield from _wired(_refs_of(app, key, "RestApiId"), [r.target for r in app.refs(key[0], uri)], "invokes")
    elif kind == "AWS::ApiGateway::Authorizer":
        authorizers = _refs_of(app, key, "AuthorizerUri", "ProviderARNs")
        yield from _wired(_refs_of(app, key, "RestApiId"), authorizers, "authorizes")
    elif kind == "AWS::Bedrock::DataSource":
        yield from _wired(
            _refs_of(app, key, "DataSourceConfiguration"), _refs_of(app, key, "KnowledgeBaseId"), "data source"
        )
    elif kind == "AWS::Kendra::DataSource":
        yield from _wired(_refs_of(app, key, "DataSourceConfiguration"), _refs_of(app, key, "IndexId"), "data source")
    elif kind == "AWS::BedrockAgentCore::GatewayTarget":
        label = f"target {props.get('Name', '')}".strip()
        yield from _wired(_refs_of(app, key, "GatewayIdentifier"), _refs_of(app, key, "TargetConfiguration"), label)
    else:
        yield from _more_wiring_edges(app, key)


def _more_wiring_edges(app: App, key: Key) -> Iterator[RawEdge]:
    kind = app.type(key)
    if kind == "AWS::WAFv2::WebACLAssociation":
        yield from _wired(_refs_of(app, key, "WebACLArn"), _refs_of(app, key, "ResourceArn"), "protects")
    elif kind == "AWS::Logs::SubscriptionFilter":
        yield from _wired(_refs_of(app, key, "LogGroupName"), _refs_of(app, key, "DestinationArn"), "log events")
    elif kind == "AWS::SNS::Subscription":
        yield from _wired(_refs_of(app, key, "TopicArn"), _refs_of(app, key, "Endpoint"), "delivers")
    elif kind == "Custom::S3BucketNotifications":
        yield from _wired(_refs_of(app, key, "BucketName"), _refs_of(app, key, "NotificationConfiguration"), "notifies")
    elif kind == "AWS::Lambda::Url":
        yield from _wired([CLIENT], _refs_of(app, key, "TargetFunctionArn"), "function URL")
    elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
        yield from _policy_edges(app, key)


# --------------------------------------------------------------------------------------------------
# The graph


@dataclass
class Edge:
    source: Key
    target: Key
    labels: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))

    @property
    def via_iam_only(self) -> bool:
        return set(self.labels) == {0}

    @property
    def label(self) -> str:
        """The most specific label known, "reads" and "writes" merged."""
        for rank in sorted(self.labels, reverse=True):
            parts = {part for label in self.labels[rank] for part in label.split("/") if part}
            if {"reads", "writes"} <= parts:
                parts = (parts - {"reads", "writes"}) | {"reads/writes"}
            if parts:
                return " · ".join(sorted(parts))
        return ""


@dataclass
class Graph:
    """What a diagram shows: nodes (each standing for one or more main resources) and edges between them."""

    app: App
    owners: Owners
    members: dict[Key, list[Key]]  # a node -> the resources it stands for, itself first
    edges: dict[tuple[Key, Key], Edge]
    titles: dict[str, str] = field(default_factory=dict)  # a stack -> its subgraph's title

    @property
    def nodes(self) -> set[Key]:
        return set(self.members)

    def stacks(self) -> list[str]:
        """The stacks with a node, each after those it refers to (deployment order), then by name."""
        present = {key[0] for key in self.members if key not in EXTERNAL}
        ordered: list[str] = []
        while len(ordered) < len(present):
            left = sorted(present - set(ordered))
            ready = [stack for stack in left if self.app.stack_refs(stack) & present <= set(ordered)]
            ordered.append((ready or left)[0])
        return ordered


def build(templates: Mapping[str, Mapping[str, Any]], max_nodes: int = MAX_NODES) -> Graph:
    """The main resources of ``templates`` and the relationships between them, in about ``max_nodes`` nodes."""
    app = App(templates)
    log_buckets = _access_log_buckets(app)
    mains = {key for key in app.resources if _is_main(app, key, log_buckets)}
    owners = Owners(app, mains)
    edges: dict[tuple[Key, Key], Edge] = {}
    for key in app.resources:
        for edge in _main_edges(app, key) if key in mains else _wiring_edges(app, key):
            # A permission on another's role or log group says nothing about how they work together.
            if edge.via_iam and app.type(edge.target) in OWNED_BY_REFERENCE:
                continue
            for pair in itertools.product(owners(edge.source), owners(edge.target)):
                if pair[0] != pair[1] and app.type(pair[1]) not in UNDRAWN_TARGETS:
                    edges.setdefault(pair, Edge(*pair)).labels[edge.rank].add(edge.label)
    _default_labels(app, edges)
    # A permission that mirrors a drawn flow (a consumer may receive from the queue that triggers it).
    for pair in [p for p, e in edges.items() if e.via_iam_only and (p[1], p[0]) in edges]:
        del edges[pair]
    nodes = sorted(mains | {k for pair in edges for k in pair})
    graph = Graph(app, owners, {key: [key] for key in nodes}, edges)
    for reduce in (_merge_alike, _drop_isolated, _fold_same_stacks):
        if len(graph.members) > max_nodes:
            reduce(graph)
    return graph


def _default_labels(app: App, edges: Mapping[tuple[Key, Key], Edge]) -> None:
    for (source, target), edge in edges.items():
        if edge.label:
            continue
        kind = app.type(source)
        default = TARGET_LABELS.get(app.type(target)) or next(
            (label for prefix, label in SOURCE_LABELS.items() if kind.startswith(prefix)), ""
        )
        if target == MODELS:
            default = "invokes"
        edge.labels[-1].add(default)


# Over budget, a diagram first merges resources that look and connect alike (two agent runtimes called by
# the same function and calling the same gateway), then leaves out unconnected ones, then draws stacks of
# the same shape (one sandbox stack per workload) once.


def _merge_alike(graph: Graph) -> None:
    def signature(key: Key) -> tuple[Any, ...]:
        out = sorted((t, e.label) for (s, t), e in graph.edges.items() if s == key)
        into = sorted((s, e.label) for (s, t), e in graph.edges.items() if t == key)
        return (key[0], graph.app.type(key), tuple(out), tuple(into))

    groups: dict[tuple[Any, ...], list[Key]] = defaultdict(list)
    for key in sorted(graph.members):
        if key not in EXTERNAL:
            groups[signature(key)].append(key)
    for first, *others in groups.values():
        for other in others:
            graph.members[first].extend(graph.members.pop(other))
            for pair in [p for p in graph.edges if other in p]:
                del graph.edges[pair]


def _drop_isolated(graph: Graph) -> None:
    connected = {key for pair in graph.edges for key in pair}
    for key in sorted(graph.nodes - connected):
        del graph.members[key]


def _fold_same_stacks(graph: Graph) -> None:
    def describe(key: Key, stack: str) -> tuple[str, ...]:
        return (readable(graph.app.path(key)), graph.app.type(key)) if key[0] == stack else key

    shapes: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for stack in sorted({key[0] for key in graph.members} - {""}):
        nodes = sorted(describe(k, stack) for k in graph.members if k[0] == stack)
        edges = sorted(
            (describe(s, stack), describe(t, stack), e.label)
            for (s, t), e in graph.edges.items()
            if stack in (s[0], t[0])
        )
        shapes[(tuple(nodes), tuple(edges))].append(stack)
    for first, *others in shapes.values():
        if others:
            more = ", ".join(others) if len(others) <= 3 else f"{len(others)} more stacks"
            graph.titles[first] = f"{first} (and {more} of the same shape)"
        for key in [k for k in graph.members if k[0] in others]:
            del graph.members[key]
        for pair in [p for p in graph.edges if p[0][0] in others or p[1][0] in others]:
            del graph.edges[pair]


# --------------------------------------------------------------------------------------------------
# Mermaid


def _node_ids(graph: Graph) -> dict[Key, str]:
    """Short, stable ids: the stack's own part of its name and the logical id without CDK's hash suffix."""
    stacks = sorted({key[0] for key in graph.members} - {""})
    words = [stack.split("-") for stack in stacks]
    common = next((n for n in range(min(map(len, words), default=0)) if len({w[n] for w in words}) > 1), None)
    if common is None:  # one stack, or all alike: its last word
        common = min(map(len, words), default=1) - 1
    short = {stack: "-".join(stack.split("-")[common:]) for stack in stacks}
    keys = sorted(graph.nodes - EXTERNAL.keys())
    ids = {key: _safe(f"{short[key[0]]}_{re.sub(r'(?<=.)[0-9A-F]{8}$', '', key[1])}") for key in keys}
    ids.update({key: _safe(f"{short[key[0]]}_{key[1]}") for key in ids if list(ids.values()).count(ids[key]) > 1})
    ids.update({key: key[1] for key in EXTERNAL})
    ids.update({("", stack): f"stack_{_safe(name)}" for stack, name in short.items()})
    return ids


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _shape(kind: str, text: str) -> str:
    if kind in STORES:
        return f'[("{text}")]'
    if kind in EVENTS:
        return f'{{{{"{text}"}}}}'
    if kind in CONTROLS:
        return f'[/"{text}"/]'
    return f'["{text}"]'


def _node_line(graph: Graph, key: Key, node_id: str) -> str:
    if key in EXTERNAL:
        return f'{node_id}(["{EXTERNAL[key]}"])'
    kind = graph.app.type(key)
    count = len(graph.members[key])
    names = ", ".join(readable(graph.app.path(member)) for member in graph.members[key][:3])
    names += f" and {count - 3} more" if count > 3 else ""
    kind_text = f"{type_name(kind)}{f' ×{count}' if count > 1 else ''}"
    text = kind_text if names.lower() == kind_text.lower() else f"{names}<br/><i>{kind_text}</i>"
    return node_id + _shape(kind, text.replace('"', "#quot;"))


def _highlighted(graph: Graph, highlight: Iterable[str]) -> set[Key]:
    wanted = set(highlight)
    node_of = {member: node for node, members in graph.members.items() for member in members}
    keys = [k for k in graph.app.resources if k[1] in wanted or f"{k[0]}/{k[1]}" in wanted]
    return {node_of[owner] for key in keys for owner in graph.owners(key) if owner in node_of}


def mermaid(templates: dict[str, dict[str, Any]], highlight: set[str] | None = None) -> str:
    """A Mermaid flowchart of ``templates`` (keyed by stack name), one subgraph per stack.

    ``highlight``: logical ids (or "<stack>/<logical id>") to emphasize; a helper resource (a role, a
    policy, a log group, an API method) highlights the main resource it belongs to.
    """
    graph = build(templates)
    ids = _node_ids(graph)
    lines = ["flowchart LR"]
    lines += [f"  {_node_line(graph, key, ids[key])}" for key in sorted(graph.nodes & EXTERNAL.keys())]
    for stack in graph.stacks():
        lines.append(f'  subgraph {ids["", stack]}["{graph.titles.get(stack, stack)}"]')
        keys = sorted((k for k in graph.members if k[0] == stack), key=lambda k: (readable(graph.app.path(k)), k))
        lines += [f"    {_node_line(graph, key, ids[key])}" for key in keys]
        lines.append("  end")
    for (source, target), edge in sorted(graph.edges.items(), key=lambda item: (ids[item[0][0]], ids[item[0][1]])):
        arrow = "-.->" if edge.via_iam_only else "-->"
        label = f'|"{edge.label}"|' if edge.label else ""
        lines.append(f"  {ids[source]} {arrow}{label} {ids[target]}")
    marked = _highlighted(graph, highlight or set())
    if marked:
        lines.append("  classDef highlight fill:#fde68a,stroke:#b45309,stroke-width:3px")
        lines.append(f"  class {','.join(sorted(ids[k] for k in marked))} highlight")
    return "\n".join(lines) + "\n"


def overview(templates: dict[str, dict[str, Any]]) -> str:
    """A Mermaid flowchart of ``templates`` one box per stack (its main resources counted by kind),
    with the references between stacks: the picture of a tier at a glance (the README's)."""
    graph = build(templates)
    ids = _node_ids(graph)
    lines = ["flowchart LR"]
    lines += [f"  {_node_line(graph, key, ids[key])}" for key in sorted(graph.nodes & EXTERNAL.keys())]
    for stack in graph.stacks():
        kinds = Counter(type_name(graph.app.type(k)) for k in graph.members for _ in graph.members[k] if k[0] == stack)
        shown = [f"{kind}{f' ×{n}' if n > 1 else ''}" for kind, n in sorted(kinds.items(), key=lambda i: (-i[1], i[0]))]
        contents = " · ".join(shown[:OVERVIEW_KINDS]) + (" · …" if len(shown) > OVERVIEW_KINDS else "")
        title = graph.titles.get(stack, stack)
        lines.append(f'  {ids["", stack]}["{title}<br/><i>{contents}</i>"]')
    between: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    for (source, target), edge in graph.edges.items():
        ends = tuple(ids[key] if key in EXTERNAL else ids["", key[0]] for key in (source, target))
        if ends[0] != ends[1]:
            between[ends[0], ends[1]].append(edge)
    for (source_id, target_id), edges in sorted(between.items()):
        parts = sorted({part for edge in edges for part in edge.label.split(" · ") if part})
        label = " · ".join(parts[:OVERVIEW_LABELS]) + (" · …" if len(parts) > OVERVIEW_LABELS else "")
        arrow = "-.->" if all(edge.via_iam_only for edge in edges) else "-->"
        text = f'|"{label}"|' if label else ""
        lines.append(f"  {source_id} {arrow}{text} {target_id}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The document


def tier_of(template: Mapping[str, Any]) -> str:
    """The tier a stack belongs to: the "tier" tag its resources carry (app.py tags every stack)."""
    found: Counter[str] = Counter()
    for resource in template.get("Resources", {}).values():
        tags = resource.get("Properties", {}).get("Tags")
        if isinstance(tags, Mapping):
            tags = [{"Key": k, "Value": v} for k, v in tags.items()]
        for tag in tags if isinstance(tags, list) else []:
            if isinstance(tag, Mapping) and tag.get("Key") == "tier" and isinstance(tag.get("Value"), str):
                found[tag["Value"]] += 1
    return min(found, key=lambda tier: (-found[tier], tier)) if found else "other"


def by_tier(templates: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    tiers: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for stack, template in sorted(templates.items()):
        tiers[tier_of(template)][stack] = template
    return dict(tiers)


HEADER = """\
# Architecture

<!-- Generated by tools/diagram.py from the synthesized app: run `make diagram`, do not edit by hand. -->

Each tier as the synthesized templates describe it: one box per stack, the resources a reader cares
about inside it, and the references between them. `make diagram` synthesizes the app with `cdk.json`'s
configuration and rewrites this page; tests/test_diagram.py fails when it is stale.
"""

LEGEND = """\
## Legend

| Shape | What |
| --- | --- |
| `([ ])` stadium | outside the app: the client, Bedrock foundation models |
| `[ ]` rectangle | compute and entry points: functions, APIs, AgentCore runtimes and gateways, user pools |
| `[( )]` cylinder | data: tables, buckets, knowledge bases, Kendra indexes, AgentCore memory |
| `{{ }}` hexagon | messaging and events: queues, topics, EventBridge rules and schedules |
| `[/ /]` parallelogram | controls: KMS keys, guardrails, WAF web ACLs, AgentCore policy engines, usage plans |

A solid arrow is a reference in the templates: a property, an environment variable or a wiring resource
(event source mapping, API integration or authorizer, data source, gateway target, EventBridge target,
log subscription); a dotted arrow is a permission only (an IAM policy of the source's role). A label says
what the source does to the target where the templates tell: `invokes`, `reads`, `writes`, `triggers`,
`targets`, `events` (what an EventBridge rule matches), `data source`, `target <name>` (an AgentCore
Gateway target), `intercepts`, `dead letters`. Left out: edges to KMS keys (every resource of a tier uses
its key), access-log buckets, CDK's own provider functions, alarms and dashboards. Past MAX_NODES nodes, resources
of one stack that connect alike are drawn as one node (`×n`).
"""


def render(templates: Mapping[str, dict[str, Any]]) -> str:
    parts = [HEADER]
    for tier, stacks in sorted(by_tier(templates).items(), key=lambda item: (item[0] != "sandbox", item[0])):
        parts.append(f"## The {tier} tier\n\n```mermaid\n{mermaid(stacks)}```\n")
    parts.append(LEGEND.replace("MAX_NODES", str(MAX_NODES)))
    return "\n".join(parts)


README = ROOT / "README.md"
README_BEGIN = "<!-- architecture: generated by `make diagram` from the production tier -->"
README_END = "<!-- /architecture -->"


def readme_with(readme: str, templates: Mapping[str, dict[str, Any]]) -> str:
    """The README with its embedded production overview (between the markers) redrawn; DiagramError
    when the markers are not there once each, in order."""
    if README_BEGIN not in readme or README_END not in readme:
        raise DiagramError(f"{README.name}: no {README_BEGIN} ... {README_END} markers to draw the overview between")
    # Anything else would be redrawn at the wrong place: the text between the markers is replaced.
    if readme.count(README_BEGIN) > 1 or readme.count(README_END) > 1:
        raise DiagramError(f"{README.name}: the {README_BEGIN} ... {README_END} markers are there more than once")
    start, end = readme.index(README_BEGIN) + len(README_BEGIN), readme.index(README_END)
    if end < start:
        raise DiagramError(f"{README.name}: {README_END} comes before {README_BEGIN} (the overview goes between them)")
    production = by_tier(templates).get("production", {})
    return f"{readme[:start]}\n\n```mermaid\n{overview(production)}```\n\n{readme[end:]}"


# The app's templates nest under 20 levels; the drawing recurses once or twice per level.
MAX_TEMPLATE_DEPTH = 100


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` objects or lists deep (without recursing)."""
    pending = [(value, 1)]
    while pending:
        node, level = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        if children and level > levels:
            return True
        pending.extend((child, level + 1) for child in children)
    return False


class DiagramError(Exception):
    """The assembly or the README cannot be drawn from or into (the message names it and why)."""


def assembly_templates(outdir: Path) -> dict[str, dict[str, Any]]:
    """The templates of a cloud assembly by stack name, or DiagramError naming what is wrong: not a
    directory, no manifest.json, no template, or a template that is not a JSON object or nests
    deeper than any CDK writes."""
    if not outdir.is_dir():
        what = "no such directory" if not outdir.exists() else "not a directory"
        raise DiagramError(
            f"--assembly {outdir}: {what}: give a synthesized cloud assembly (make synth writes cdk.out)"
        )
    if not (outdir / "manifest.json").is_file():
        raise DiagramError(f"--assembly {outdir}: no manifest.json: not a synthesized cloud assembly")
    templates: dict[str, dict[str, Any]] = {}
    for path in sorted(outdir.glob("*.template.json")):
        template = read_json(path, DiagramError)
        if not isinstance(template, dict) or not isinstance(template.get("Resources", {}), dict):
            raise DiagramError(f"{path}: not a CloudFormation template (an object with a Resources object)")
        if _deeper_than(template, MAX_TEMPLATE_DEPTH):
            raise DiagramError(
                f"{path}: nested more than {MAX_TEMPLATE_DEPTH} levels deep: not a template as CDK writes it"
            )
        templates[path.name.removesuffix(".template.json")] = template
    if not templates:
        raise DiagramError(f"--assembly {outdir}: no *.template.json: nothing to draw")
    return templates


def drawn(templates: Mapping[str, dict[str, Any]], readme: str) -> tuple[str, str]:
    """(docs/architecture.md, the README) drawn from ``templates``, both before either is written."""
    redrawn = readme_with(readme, templates)
    return render(templates), redrawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assembly", type=Path, help="a cloud assembly (cdk.out) to read instead")
    args = parser.parse_args(argv)
    try:
        if args.assembly:
            templates = assembly_templates(args.assembly)
            try:
                page, readme = drawn(templates, README.read_text(encoding="utf-8"))
            except (KeyError, TypeError, AttributeError, ValueError, IndexError, RecursionError) as error:
                # DiagramError is none of these. Ownership is followed recursively: a chain of roles
                # hundreds long is a RecursionError.
                detail = (
                    "references chained too deep to follow"
                    if isinstance(error, RecursionError)
                    else f"{type(error).__name__}: {error}"
                )
                raise DiagramError(f"--assembly {args.assembly}: a template not as CDK writes it ({detail})") from None
        else:
            with tempfile.TemporaryDirectory(prefix="diagram-") as outdir:
                templates = synthesize(Path(outdir))
            page, readme = drawn(templates, README.read_text(encoding="utf-8"))
    except DiagramError as error:
        print(f"diagram: {error}; nothing written", file=sys.stderr)
        return 1
    OUTPUT.write_text(page, encoding="utf-8")
    README.write_text(readme, encoding="utf-8")
    page_path = OUTPUT.relative_to(ROOT) if OUTPUT.is_relative_to(ROOT) else OUTPUT
    print(f"wrote {page_path} and the README's diagram")
    return 0


if __name__ == "__main__":
    sys.exit(main())
