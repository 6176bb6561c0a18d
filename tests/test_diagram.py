"""docs/architecture.md is drawn from the synthesized app (tools/diagram.py) and cannot drift from it.

The app is the session's synthesized one (tests/synth_fixtures.py); the diagrams are read back from their Mermaid
text, so what is asserted is what a reader sees. The small hand-written templates below pin down how
references, permissions and wiring resources become edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.synth_fixtures import STACK_SUFFIXES, Assembly
from tools import diagram

Templates = dict[str, dict[str, Any]]


@pytest.fixture(scope="session")
def tiers(assembly: Assembly) -> dict[str, Templates]:
    """The session's synthesized app (as `make diagram` synthesizes it), its templates by tier."""
    return diagram.by_tier(assembly.templates)


@dataclass(frozen=True)
class Drawn:
    """A Mermaid flowchart read back: node id -> (names, type), (source, target) -> label."""

    text: str
    nodes: dict[str, tuple[str, str]]
    edges: dict[tuple[str, str], str]

    def node(self, names: str, kind: str) -> str:
        (found,) = [n for n, (ns, k) in self.nodes.items() if (ns, k) == (names, kind)] or [f"<no {names} {kind}>"]
        return found

    def of_type(self, kind: str) -> list[str]:
        return sorted(n for n, (_, k) in self.nodes.items() if k == kind)

    def edge(self, source: str, target: str) -> str:
        assert (source, target) in self.edges, f"no edge {source} -> {target} in\n{self.text}"
        return self.edges[source, target]


NODE = re.compile(r'^\s+(\w+)[\[({/]+"(.*?)"[\])}/]+$')
EDGE = re.compile(r'^\s+(\w+) -\.?->(?:\|"(.*?)"\|)? (\w+)$')


def read(text: str) -> Drawn:
    nodes: dict[str, tuple[str, str]] = {}
    edges: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        if node := NODE.match(line):
            names, _, kind = node[2].partition("<br/><i>")
            nodes[node[1]] = (names, kind.removesuffix("</i>") or names)
        elif edge := EDGE.match(line):
            edges[edge[1], edge[3]] = edge[2] or ""
    return Drawn(text, nodes, edges)


@pytest.fixture(scope="session")
def production(tiers: dict[str, Templates]) -> Drawn:
    return read(diagram.mermaid(tiers["production"]))


@pytest.fixture(scope="session")
def sandbox(tiers: dict[str, Templates]) -> Drawn:
    return read(diagram.mermaid(tiers["sandbox"]))


# --------------------------------------------------------------------------------------------------
# The app's diagrams


@pytest.mark.sample_only  # docs/architecture.md is cdk.json's app
def test_the_architecture_page_is_up_to_date(tiers: dict[str, Templates]) -> None:
    templates = {stack: template for stacks in tiers.values() for stack, template in stacks.items()}
    committed = diagram.OUTPUT.read_text(encoding="utf-8") if diagram.OUTPUT.exists() else ""
    assert committed == diagram.render(templates), "docs/architecture.md is stale: run `make diagram` and commit it"
    readme = diagram.README.read_text(encoding="utf-8")
    assert readme == diagram.readme_with(readme, templates), "the README's diagram is stale: run `make diagram`"


def test_production_has_the_request_path(production: Drawn) -> None:
    api = production.node("api", "REST API")
    function = production.node("gateway function", "Lambda function")
    assert production.edge("Client", api) == "HTTPS"
    assert production.edge(api, production.node("authorizer function", "Lambda function")) == "authorizes"
    assert production.edge(api, function) == "invokes"
    assert production.edge(function, production.node("guardrail", "guardrail")) == "applies"
    assert production.edge(function, production.node("ledger", "DynamoDB table")) == "reads/writes"
    assert production.edge(function, "Models") == "invokes"
    # The agents' runtimes (the tools stack's one is the web tools' MCP server, drawn with the tools).
    runtimes = [r for r in production.of_type("AgentCore runtime") if not r.startswith("tools_")]
    (tools_gateway,) = production.of_type("AgentCore gateway")
    assert runtimes
    for runtime in runtimes:
        assert production.edge(function, runtime) == "invokes"
        assert production.edge(runtime, tools_gateway) == "calls tools (MCP)"


def test_the_overview_is_one_box_per_stack_with_the_paths_between_stacks(tiers: dict[str, Templates]) -> None:
    """The README's picture: each production stack once, named with what it holds, and the request
    path from the client to the knowledge base through the gateway, an agent and the tools."""
    drawn = read(diagram.overview(tiers["production"]))
    boxes = {names.split("<br/>")[0]: node for node, (names, _) in drawn.nodes.items() if node.startswith("stack_")}
    assert set(boxes) == set(tiers["production"])
    (gateway,) = [node for name, node in boxes.items() if name.endswith("-gateway")]
    # The groups' usage plans, in a stack of their own, limit the gateway's API.
    (keys,) = [node for name, node in boxes.items() if name.endswith(STACK_SUFFIXES["gateway_keys"])]
    assert "usage plan" in drawn.nodes[keys][1]
    assert drawn.edge(keys, gateway) == "throttles and quotas"
    (tools,) = [node for name, node in boxes.items() if name.endswith("-tools")]
    (knowledge,) = [node for name, node in boxes.items() if name.endswith("-knowledge")]
    agents = [node for name, node in boxes.items() if "-agent-" in name]
    assert "REST API" in drawn.nodes[gateway][1]
    assert drawn.edge("Client", gateway) == "HTTPS"
    assert agents
    for agent in agents:
        assert drawn.edge(gateway, agent) == "invokes"
        assert drawn.edge(agent, tools) == "calls tools (MCP)"
    assert drawn.edge(tools, knowledge) == "reads"


def test_the_readme_stays_short() -> None:
    """What it is, the two commands, one picture, the stack map, where to read next: the rest is in docs/."""
    lines = diagram.README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md is {len(lines)} lines; move detail to docs/ (150 at most)"


def test_production_has_the_tool_path(production: Drawn) -> None:
    (tools_gateway,) = production.of_type("AgentCore gateway")
    search = production.node("knowledge search function", "Lambda function")
    assert production.edge(tools_gateway, search) == "target knowledge"
    assert production.edge(search, production.node("knowledge base", "knowledge base")) == "reads"
    assert production.edge(tools_gateway, production.node("tool guard function", "Lambda function")) == "intercepts"
    web = production.node("server", "AgentCore runtime")
    assert production.edge(tools_gateway, web) == "target web"
    assert production.edge(web, production.node("content guardrail", "guardrail")) == "applies"
    legacy = [n for n, (names, _) in production.nodes.items() if names.endswith(" tools function")]
    assert legacy, "no legacy API tool functions drawn"
    for function in legacy:
        assert production.edge(tools_gateway, function).startswith("target ")


def test_production_has_the_ingestion_path(production: Drawn) -> None:
    landing = production.node("landing", "S3 bucket")
    rule = production.node("object created", "EventBridge rule")
    queue = production.node("documents", "SQS queue")
    processor = production.node("processor", "Lambda function")
    curated = production.node("curated", "S3 bucket")
    assert production.edge(landing, rule) == "events"
    assert production.edge(rule, queue) == "targets"
    assert production.edge(queue, processor) == "triggers"
    assert "writes" in production.edge(processor, curated)
    assert production.edge(processor, production.node("quarantine", "S3 bucket")) == "writes"
    assert production.edge(curated, production.node("knowledge base", "knowledge base")) == "data source"
    # Receiving from its queue alone would mirror the trigger and not be drawn; the processor also
    # sends a document deferred on its message's last receive back to it.
    assert production.edge(processor, queue) == "reads/writes"


def test_sandbox_has_its_documents_indexes_and_query_function(sandbox: Drawn) -> None:
    documents = sandbox.node("documents", "S3 bucket")
    knowledge_base = sandbox.node("knowledge base", "knowledge base")
    query = sandbox.node("query function", "Lambda function")
    assert sandbox.edge(documents, knowledge_base) == "data source"
    assert sandbox.edge("Client", query) == "function URL"
    assert sandbox.edge(query, knowledge_base) == "reads"
    for kendra in sandbox.of_type("Kendra index"):  # `sandbox.kendra.enabled` switches it off
        assert sandbox.edge(documents, kendra) == "data source"
        assert sandbox.edge(query, kendra) == "reads"


def test_plumbing_is_left_out(tiers: dict[str, Templates], production: Drawn, sandbox: Drawn) -> None:
    drawn = set(production.nodes) | set(sandbox.nodes)
    assert not [n for n in drawn if "AccessLogs" in n], "access-log buckets are plumbing"
    assert not [n for n in drawn if re.search(r"Provider|AWS679f53fac|AutoDeleteObjects", n)], "CDK's own functions"
    assert not [label for label in production.edges.values() if "KMS" in label]
    assert not [t for (_, t) in production.edges if production.nodes[t][1] == "KMS key"]


def test_each_tier_fits_in_a_readable_diagram(production: Drawn, sandbox: Drawn) -> None:
    for drawn in (production, sandbox):
        assert 5 <= len(drawn.nodes) <= diagram.MAX_NODES
        assert len(drawn.edges) < 2 * diagram.MAX_NODES


def test_highlight_marks_the_resource_or_what_owns_it(tiers: dict[str, Templates], production: Drawn) -> None:
    templates = tiers["production"]
    (stack,) = [s for s in templates if s.endswith("-gateway")]
    resources = templates[stack]["Resources"]
    (function,) = [
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and "/GatewayFunction/" in r["Metadata"]["aws:cdk:path"]
    ]
    (policy,) = [
        lid
        for lid, r in resources.items()
        if r["Metadata"]["aws:cdk:path"].endswith("GatewayFunctionRole/DefaultPolicy/Resource")
    ]
    node = production.node("gateway function", "Lambda function")
    for highlight in ({function}, {policy}, {f"{stack}/{policy}"}):
        text = diagram.mermaid(templates, highlight)
        assert "classDef highlight" in text
        assert text.splitlines()[-1] == f"  class {node} highlight", highlight
    assert "highlight" not in production.text
    assert diagram.mermaid(templates, {"NoSuchResource"}) == production.text


def test_the_output_is_deterministic(tiers: dict[str, Templates]) -> None:
    for templates in tiers.values():
        assert diagram.mermaid(dict(reversed(templates.items()))) == diagram.mermaid(templates)
    everything = {stack: template for stacks in tiers.values() for stack, template in stacks.items()}
    assert diagram.render(everything) == diagram.render(dict(reversed(everything.items())))


# --------------------------------------------------------------------------------------------------
# How templates become edges, on small templates of our own


def _function(name: str, role: str, env: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Role": {"Fn::GetAtt": [role, "Arn"]},
            "Environment": {"Variables": env or {}},
            "Tags": [{"Key": "tier", "Value": "test"}],
        },
        "Metadata": {"aws:cdk:path": f"app/{name}/Resource"},
    }


def _resource(kind: str, path: str, **properties: Any) -> dict[str, Any]:
    return {"Type": kind, "Properties": properties, "Metadata": {"aws:cdk:path": f"app/{path}"}}


def _policy(role: str, *statements: tuple[list[str], Any]) -> dict[str, Any]:
    document = {"Statement": [{"Effect": "Allow", "Action": a, "Resource": r} for a, r in statements]}
    return _resource(
        "AWS::IAM::Policy", f"{role}/DefaultPolicy/Resource", PolicyDocument=document, Roles=[{"Ref": role}]
    )


def _output(stack: str, name: str) -> dict[str, Any]:
    return {"Fn::GetStackOutput": {"StackName": stack, "Region": "us-east-1", "OutputName": name}}


STORE: Templates = {
    "app-store": {
        "Resources": {
            "Table": _resource("AWS::DynamoDB::Table", "Table/Resource"),
            "Queue": _resource("AWS::SQS::Queue", "Queue/Resource"),
            "Logs": _resource("AWS::S3::Bucket", "AccessLogs/Resource"),
            "Bucket": _resource(
                "AWS::S3::Bucket", "Bucket/Resource", LoggingConfiguration={"DestinationBucketName": {"Ref": "Logs"}}
            ),
        },
        "Outputs": {
            "TableArn": {"Value": {"Fn::GetAtt": ["Table", "Arn"]}},
            "BucketArn": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]}, "Export": {"Name": "app-store:BucketArn"}},
        },
    },
}
WORKER: Templates = {
    "app-worker": {
        "Resources": {
            "WorkerRole": _resource("AWS::IAM::Role", "WorkerRole/Resource"),
            "WorkerPolicy": _policy(
                "WorkerRole",
                (["dynamodb:GetItem", "dynamodb:Query"], _output("app-store", "TableArn")),
                (["s3:PutObject"], {"Fn::Join": ["", [{"Fn::ImportValue": "app-store:BucketArn"}, "/*"]]}),
                (["sqs:ReceiveMessage"], {"Fn::Sub": ["${Arn}", {"Arn": _output("app-store", "QueueArn")}]}),
                (["bedrock:InvokeModel"], "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
            ),
            "Worker": _function("Worker", "WorkerRole", {"TABLE": _output("app-store", "TableArn")}),
            "Mapping": _resource(
                "AWS::Lambda::EventSourceMapping",
                "Worker/Mapping/Resource",
                EventSourceArn=_output("app-store", "QueueArn"),
                FunctionName={"Ref": "Worker"},
            ),
            "ProviderRole": _resource("AWS::IAM::Role", "Provider/framework-onEvent/ServiceRole/Resource"),
            "Provider": _function("Provider/framework-onEvent", "ProviderRole"),
        },
    },
}
STORE["app-store"]["Outputs"]["QueueArn"] = {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}}


def test_references_across_stacks_and_permissions_become_labelled_edges() -> None:
    drawn = read(diagram.mermaid({**STORE, **WORKER}))
    assert drawn.edge("worker_Worker", "store_Table") == "reads"  # an environment variable and a policy
    assert drawn.edge("worker_Worker", "store_Bucket") == "writes"  # Fn::ImportValue, a policy only: dotted
    assert '  worker_Worker -.->|"writes"| store_Bucket' in drawn.text.splitlines()
    assert drawn.edge("store_Queue", "worker_Worker") == "triggers"  # the event source mapping
    assert ("worker_Worker", "store_Queue") not in drawn.edges  # its receive permission mirrors the trigger
    assert drawn.edge("worker_Worker", "Models") == "invokes"
    # CDK's provider function and the access-log bucket are plumbing.
    assert set(drawn.nodes) == {"Models", "store_Bucket", "store_Queue", "store_Table", "worker_Worker"}
    # Stacks in deployment order: the one whose outputs another reads first.
    assert drawn.text.index("subgraph stack_store") < drawn.text.index("subgraph stack_worker")


def test_a_diagram_over_budget_merges_alike_resources_then_folds_alike_stacks() -> None:
    def stack(name: str, functions: int) -> dict[str, Any]:
        resources: dict[str, Any] = {"Api": _resource("AWS::ApiGateway::RestApi", "Api/Resource")}
        for n in range(functions):
            resources[f"Fn{n}"] = _function(f"Handler{n}", f"Fn{n}Role")
            resources[f"Fn{n}Role"] = _resource("AWS::IAM::Role", f"Fn{n}Role/Resource")
            uri = {"Fn::Join": ["", ["arn:aws:apigateway:lambda:path/functions/", {"Fn::GetAtt": [f"Fn{n}", "Arn"]}]]}
            resources[f"M{n}"] = _resource(
                "AWS::ApiGateway::Method", f"Api/M{n}/Resource", RestApiId={"Ref": "Api"}, Integration={"Uri": uri}
            )
        return {"Resources": resources}

    wide = {"app-wide": stack("app-wide", 80)}
    assert len(diagram.build(wide, max_nodes=1000).nodes) == 80 + 2
    drawn = read(diagram.mermaid(wide))
    assert len(drawn.nodes) == 3
    assert drawn.nodes["wide_Fn0"] == ("handler0, handler1, handler10 and 77 more", "Lambda function ×80")
    many = {f"app-team{n:02}": stack(f"app-team{n:02}", 2) for n in range(30)}
    folded = diagram.build(many)
    assert len(folded.nodes) <= diagram.MAX_NODES
    assert folded.titles == {"app-team00": "app-team00 (and 29 more stacks of the same shape)"}
    assert sorted(key[0] for key in folded.nodes) == ["", "app-team00", "app-team00"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("s/GatewayFunction/Resource", "gateway function"),
        ("s/KnowledgeBase/KnowledgeBase72acec", "knowledge base"),
        ("s/Query/Function/Resource", "query function"),
        ("s/Macie/ClassificationJob/Resource/Default", "classification job"),
        ("s/Ingestion/PullKbArticles/Resource", "pull kb articles"),
        ("s/WebAcl", "web acl"),
    ],
)
def test_labels_are_the_construct_path_in_words(path: str, words: str) -> None:
    assert diagram.readable(path) == words
