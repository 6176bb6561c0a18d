"""Offline guards for failures that only show on AWS, one per failure class (issue: deployable).

Each guard reads the synthesized templates; where it is generic (IAM coverage, ordering, retained
names, replacement), a negative control shows that it catches the failure it is for.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from stacks.production.agent import EVALUATION_RESERVED_PREFIX, RESULT_WRITE_ACTIONS
from stacks.shared.naming import pascal_case
from tests.conftest import ROOT
from tests.infra import deploy_checks, iam_coverage
from tests.infra.cfn import only, props, render, resources
from tests.infra.conftest import AGENT_STACK_INFIX, Assembly, Synthesizer
from tests.infra.test_cfn_lint import cfn_lint

ACCOUNT_SINGLETONS = {
    "AWS::XRay::TransactionSearchConfig",
    "AWS::Macie::Session",
    "AWS::ApiGateway::Account",
    "Custom::BedrockModelInvocationLogging",
}
ADOPTED = {
    "Custom::AdoptedTransactionSearch": "transaction_search",
    "Custom::AdoptedModelInvocationLogging": "model_invocation_logging",
    "Custom::AdoptedMacie": "macie",
    "Custom::AdoptedApiGatewayLogging": "api_gateway_logging",
}
# A Lambda function's role is checked when the function runs, not when it is created; what runs it
# during a deploy (a custom resource, an event source mapping) is checked for the role's policies.
NOT_CHECKED_AT_CREATION = {"AWS::Lambda::Function": "its role is used when it runs, not when it is created"}
# What a replacing change is: a new embedding model and chunking for both tiers' Knowledge Bases
# (and a new pattern for a Macie custom data identifier, and a renamed agent: see ``replacing``).
REPLACING = {
    "blueprint.production.knowledge_base.embedding_model_id": "cohere.embed-english-v3",
    "blueprint.production.knowledge_base.chunking": {"strategy": "FIXED_SIZE", "max_tokens": 400},
    "blueprint.workloads.support.knowledge_base.embedding_model_id": "cohere.embed-english-v3",
    # A budget's notifications are create-only: new recipients replace it (beside the old, by name).
    "blueprint.workloads.support.sandbox.budget.alert_emails": ["finance@example.com"],
}
RENAMED_AGENT = "renamed_agent"


def _settings(mode: str) -> dict[str, str]:
    return {
        f"blueprint.production.account_settings.{s}": mode
        for s in ("transaction_search", "model_invocation_logging", "macie", "api_gateway_logging")
    }


@pytest.fixture(scope="module")
def managed(synthesize: Synthesizer) -> Assembly:
    return synthesize(tier="production", **_settings("manage"))


@pytest.fixture(scope="module")
def left_alone(synthesize: Synthesizer) -> Assembly:
    return synthesize(tier="production", **_settings("off"))


def _renamed(cdk_context: dict[str, Any]) -> str:
    """The agent the replacing change renames (to RENAMED_AGENT): the config's last."""
    return str(list(cdk_context["blueprint"]["production"]["agents"])[-1])


@pytest.fixture(scope="module")
def replacing(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Assembly:
    """The replacing change, a new pattern for the first custom data identifier, and a renamed
    agent (a new runtime the gateway must call)."""
    production = cdk_context["blueprint"]["production"]
    agents = dict(production["agents"])
    agents[RENAMED_AGENT] = agents.pop(_renamed(cdk_context))
    identifier = next(iter(production["ingestion"]["custom_identifiers"]))
    pattern = {f"blueprint.production.ingestion.custom_identifiers.{identifier}.regex": r"\bNEW-\d{7}\b"}
    return synthesize(**REPLACING, **pattern, **{"blueprint.production.agents": agents})


def _types(assembly: Assembly) -> set[str]:
    return {r["Type"] for t in assembly.templates.values() for r in t["Resources"].values()}


# --- every AWS call in lambdas/ is allowed by that function's role --------------------------------


def test_every_aws_call_in_the_code_is_allowed_by_its_functions_role(assembly: Assembly) -> None:
    coverage = iam_coverage.check(assembly.templates)
    assert coverage.unresolved == []
    assert [str(f) for f in coverage.findings] == []
    assert coverage.matched == coverage.actions
    # The analysis sees the code: the calls the pipeline is known to make (how many calls in all:
    # the next test), and those libraries make for the runtimes (iam_coverage.LIBRARY_CALLS).
    processor = {(c.where.split(":")[0], c.action) for c in iam_coverage.calls_in("ingestion", "handler")}
    assert {("ingestion/pipeline.py", "s3:DeleteObject"), ("ingestion/pipeline.py", "s3:GetObject")} <= processor
    model, browser = _where("agent/turn.py", "BedrockModel("), _where("web_mcp/server.py", "BrowserClient(")
    runners = iam_coverage.runners(assembly.templates)
    made = {
        (runner.logical_id, call.where, call.action, iam_coverage.target_of(call, runner))
        for runner in runners
        for call in iam_coverage.calls_in(runner.package, runner.module)
        if call.where in (model, browser)
    }
    agents = [r.logical_id for r in runners if r.package == "agent"]
    (web,) = [r.logical_id for r in runners if r.package == "web_mcp"]
    assert agents
    # Each agent's models, chosen per turn from its callers' groups: Converse only (streaming=False),
    # which InvokeModel authorizes; the web server's browser sessions, on its browser (BROWSER_ID's).
    assert made == {(agent, model, "bedrock:InvokeModel", "bedrock") for agent in agents} | {
        (web, browser, f"bedrock-agentcore:{operation}", ("BROWSER_ID",))
        for operation in ("StartBrowserSession", "ConnectBrowserAutomationStream", "StopBrowserSession")
    }


@pytest.mark.sample_only  # the figures are cdk.json's app's
def test_the_iam_coverage_counts_are_those_the_operations_guide_states(assembly: Assembly) -> None:
    """docs/operations.md states how many calls and IAM actions the check covers: exactly these, so
    neither a call the analysis stops seeing nor the guide's figure can drift unnoticed."""
    guide = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    stated = re.search(r"(\d+) AWS calls in the functions' code, (\d+) actions", guide)
    assert stated is not None, "docs/operations.md no longer states the IAM coverage figures"
    coverage = iam_coverage.check(assembly.templates)
    assert (coverage.calls, coverage.actions) == (int(stated[1]), int(stated[2]))


def _revoke(template: dict[str, Any], action: str, resource_ref: str, path_part: str) -> None:
    """Take ``action`` on resources naming ``resource_ref`` and containing ``path_part`` out of
    every policy statement of the template (splitting statements that grant more)."""
    for resource in resources(template, "AWS::IAM::Policy").values():
        kept = []
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            hit = [r for r in targets if resource_ref in json.dumps(r) and path_part in json.dumps(r)]
            if action not in actions or not hit:
                kept.append(statement)
                continue
            if len(actions) > 1:
                kept.append({**statement, "Action": [a for a in actions if a != action]})
            if len(targets) > len(hit):
                kept.append({**statement, "Resource": [r for r in targets if r not in hit]})
        resource["Properties"]["PolicyDocument"]["Statement"] = kept


def test_the_iam_coverage_check_finds_the_grants_the_processor_once_lacked(assembly: Assembly) -> None:
    """Negative control: without the two grants the pipeline's race path needs (delete a quarantine
    copy; read a directly ingested curated copy and its sidecar back), exactly those calls are reported."""
    templates = copy.deepcopy(assembly.templates)
    knowledge = next(name for name in templates if name.endswith("-production-knowledge"))
    _revoke(templates[knowledge], "s3:DeleteObjectVersion", "IngestionQuarantine", "/*")
    _revoke(templates[knowledge], "s3:GetObject", "Curated", "/direct/*")
    findings = iam_coverage.check(templates, only="IngestionProcessor").findings
    assert sorted((f.call.where, f.call.action, f.resource) for f in findings) == [
        (_where("ingestion/pipeline.py", "latest = self._s3.get_object("), "s3:GetObject", "CURATED_BUCKET"),
        (_where("ingestion/pipeline.py", "winner = self._s3.get_object("), "s3:GetObject", "CURATED_BUCKET"),
        (
            _where("ingestion/pipeline.py", "self._s3.delete_object(Bucket=self._settings.quarantine_bucket"),
            "s3:DeleteObjectVersion",
            "QUARANTINE_BUCKET",
        ),
    ]


def _where(path: str, code: str) -> str:
    """``path:line`` of the one line under lambdas/ that holds ``code``."""
    lines = (ROOT / "lambdas" / path).read_text().splitlines()
    (number,) = [n for n, line in enumerate(lines, start=1) if code in line]
    return f"{path}:{number}"


def test_the_iam_coverage_check_knows_where_in_a_bucket_a_call_writes(assembly: Assembly) -> None:
    """Negative control: the processor's read of a directly ingested copy granted on another
    prefix of the right bucket is reported; so are the adopting function's calls that hand a
    logging role to a service, once it may pass no role (which role, the check does not tell)."""
    templates = copy.deepcopy(assembly.templates)
    knowledge = next(name for name in templates if name.endswith("-production-knowledge"))
    foundation = next(name for name in templates if name.endswith("-production-foundation"))
    templates[knowledge] = json.loads(json.dumps(templates[knowledge]).replace('/direct/*"', '/elsewhere/*"'))
    for role in ("AccountSettingsModelInvocationLogging", "AccountSettingsApiGatewayLogging"):
        _revoke(templates[foundation], "iam:PassRole", role, "Arn")
    found = {
        (f.call.where.split(":")[0], f.call.operation, f.call.action) for f in iam_coverage.check(templates).findings
    }
    assert {
        ("ingestion/pipeline.py", "GetObject", "s3:GetObject"),  # and the writes under direct/ with it
        ("account_settings/settings.py", "PutModelInvocationLoggingConfiguration", "iam:PassRole"),
        ("account_settings/settings.py", "UpdateAccount", "iam:PassRole"),
    } <= found
    assert {path for path, _, _ in found} == {"ingestion/pipeline.py", "account_settings/settings.py"}


def test_the_iam_coverage_check_finds_a_gateway_function_that_may_not_start_the_worker(assembly: Assembly) -> None:
    """Negative control: without lambda:InvokeFunction on the worker, the function whose routes
    submit jobs (the buffered one; the streaming function has no jobs) is reported for the one call
    that starts a job, and nothing else is."""
    templates = copy.deepcopy(assembly.templates)
    gateway = next(name for name in templates if name.endswith("-production-gateway"))
    _revoke(templates[gateway], "lambda:InvokeFunction", "JobsWorker", "Arn")
    findings = iam_coverage.check(templates).findings
    assert {(f.call.where, f.call.action, f.resource) for f in findings} == {
        (_where("ai_gateway/jobs.py", "self._client.invoke("), "lambda:InvokeFunction", "WORKER_FUNCTION")
    }
    assert sorted(f.runner.logical_id[:-8] for f in findings) == ["GatewayFunction"]


def test_the_iam_coverage_check_finds_a_web_server_that_may_not_start_a_browser_session(assembly: Assembly) -> None:
    """Negative control for a library's calls: without StartBrowserSession on its browser, the web
    tools' server is reported for the session its AgentCore BrowserClient starts, and nothing else is."""
    templates = copy.deepcopy(assembly.templates)
    tools = next(name for name in templates if name.endswith("-production-tools"))
    _revoke(templates[tools], "bedrock-agentcore:StartBrowserSession", "WebToolsBrowser", "BrowserArn")
    findings = iam_coverage.check(templates).findings
    assert {(f.runner.logical_id[:-8], f.call.where, f.call.action, f.resource) for f in findings} == {
        (
            "WebToolsServer",
            _where("web_mcp/server.py", "BrowserClient("),
            "bedrock-agentcore:StartBrowserSession",
            "BROWSER_ID",
        )
    }


def test_the_iam_coverage_check_finds_an_agent_that_may_not_invoke_its_models(assembly: Assembly) -> None:
    """Negative control for a library's calls: without InvokeModel on any model, an agent is reported
    for the model calls its Strands BedrockModel makes (Converse), and no other runner is."""
    templates = copy.deepcopy(assembly.templates)
    agent = min(name for name in templates if AGENT_STACK_INFIX in name)
    _revoke(templates[agent], "bedrock:InvokeModel", ":bedrock:", "")
    findings = iam_coverage.check(templates).findings
    assert {(f.runner.stack, f.call.where, f.call.operation, f.call.action, f.resource) for f in findings} == {
        (agent, _where("agent/turn.py", "BedrockModel("), "Converse", "bedrock:InvokeModel", "bedrock")
    }


def test_every_key_prefix_entry_names_a_call_the_code_makes(assembly: Assembly) -> None:
    made = {
        (c.package, c.path, c.function, c.key or "")
        for runner in iam_coverage.runners(assembly.templates)
        for c in iam_coverage.calls_in(runner.package, runner.module)
    }
    assert set(iam_coverage.KEY_PREFIXES) <= made


# --- ordering: nothing is created before the policies of a role it uses ------------------------


def test_nothing_is_created_before_the_policies_of_the_roles_it_uses(assembly: Assembly) -> None:
    assert [str(r) for r in deploy_checks.races(assembly.templates, exempt=NOT_CHECKED_AT_CREATION)] == []


def test_every_custom_resource_waits_for_the_policies_it_runs_with(assembly: Assembly, managed: Assembly) -> None:
    checked = 0
    for templates in (assembly.templates, managed.templates):
        for template in templates.values():
            for logical_id, resource in template["Resources"].items():
                if not resource["Type"].startswith("Custom::"):
                    continue
                roles = deploy_checks.roles_used(template, logical_id)
                assert roles, f"{logical_id} runs with no role"
                needed = {p for role in roles for p in deploy_checks.role_policies(template, role)}
                assert needed <= deploy_checks.dependency_closure(template, logical_id), logical_id
                checked += 1
    assert checked >= 6  # Macie's job, four adopted settings, the managed logging setting


def test_the_ordering_check_finds_a_custom_resource_that_does_not_wait(assembly: Assembly) -> None:
    """Negative control: the invocation-logging setting without its DependsOn races its role's policy."""
    templates = copy.deepcopy(assembly.templates)
    foundation = next(t for name, t in templates.items() if name.endswith("-production-foundation"))
    setting_id, setting = only(foundation, "Custom::AdoptedModelInvocationLogging")
    setting.pop("DependsOn")
    found = [r for r in deploy_checks.races(templates, exempt=NOT_CHECKED_AT_CREATION) if r.resource == setting_id]
    policies = {r.policy for r in found}
    assert any(p.startswith("AccountSettingsAdopterPermissions") for p in policies), found


def test_the_ordering_check_sees_a_managed_policy_that_attaches_itself_to_the_role() -> None:
    """Negative control: a customer managed policy naming the role in its Roles (none in the app
    today) races a resource that uses the role as an inline policy would; one the role names in
    ManagedPolicyArns is made before the role, so cannot."""
    function = {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Attached": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"Roles": [{"Ref": "Role"}]}},
            "Function": function,
        }
    }
    assert [str(r) for r in deploy_checks.races({"stack": template}, exempt={})] == [
        "stack/Function can be created before Attached, the policy of the role Role it uses"
    ]
    function["DependsOn"] = ["Attached"]
    assert list(deploy_checks.races({"stack": template}, exempt={})) == []


DELIVERY_POLICIES = ("AWS::Logs::ResourcePolicy", "AWS::XRay::ResourcePolicy")


def delivery_problems(templates: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Log and trace deliveries that may be created before the resource policies that let
    CloudWatch deliver (CloudWatch checks them when the delivery is made): each delivery waits for
    its own stack's policies, or, in a stack without any, deploys after a stack that has them."""
    problems = []
    with_policies = {name for name, t in templates.items() if any(resources(t, kind) for kind in DELIVERY_POLICIES)}
    for name, template in templates.items():
        policies = {p for kind in DELIVERY_POLICIES for p in resources(template, kind)}
        for delivery in resources(template, "AWS::Logs::Delivery"):
            if policies:
                missing = policies - deploy_checks.dependency_closure(template, delivery)
                problems += [f"{name}/{delivery} can be created before {p}" for p in sorted(missing)]
            elif not _stack_dependencies(manifest, name) & with_policies:
                problems.append(f"{name}/{delivery} deploys after no stack with delivery policies")
    return problems


def test_every_delivery_is_created_after_the_policies_that_let_cloudwatch_deliver(assembly: Assembly) -> None:
    manifest = json.loads((assembly.outdir / "manifest.json").read_text())
    assert sum(len(resources(t, "AWS::Logs::Delivery")) for t in assembly.templates.values()) >= 3
    assert delivery_problems(assembly.templates, manifest) == []
    # Negative controls: the tools stack's deliveries and destinations without their DependsOn on
    # the policies, and an agent's stack deploying after nothing.
    templates = copy.deepcopy(assembly.templates)
    tools = next(t for name, t in templates.items() if name.endswith("-production-tools"))
    policies = {p for kind in DELIVERY_POLICIES for p in resources(tools, kind)}
    for kind in ("AWS::Logs::Delivery", "AWS::Logs::DeliveryDestination"):
        for resource in resources(tools, kind).values():
            resource["DependsOn"] = [d for d in resource.get("DependsOn", []) if d not in policies]
    assert any("-production-tools/" in p for p in delivery_problems(templates, manifest))
    agent = next(name for name in templates if AGENT_STACK_INFIX in name)
    alone = copy.deepcopy(manifest)
    alone["artifacts"][agent]["dependencies"] = []
    assert any(p.startswith(f"{agent}/") for p in delivery_problems(assembly.templates, alone))


# --- retries after a rollback ----------------------------------------------------------------------


def test_no_retained_resource_with_a_physical_name_blocks_a_retry(assembly: Assembly, managed: Assembly) -> None:
    for templates in (assembly.templates, managed.templates):
        assert list(deploy_checks.retained_with_names(templates)) == []
    named_and_kept = [
        r
        for t in assembly.templates.values()
        for r in t["Resources"].values()
        if r.get("DeletionPolicy") == "RetainExceptOnCreate" and deploy_checks.physical_name(r["Type"], r["Properties"])
    ]
    assert named_and_kept  # the runtime, execution and WAF log groups: kept, but not past a rolled-back create


def test_the_retained_name_check_finds_a_named_log_group_kept_through_a_rollback(assembly: Assembly) -> None:
    templates = copy.deepcopy(assembly.templates)
    gateway = next(t for name, t in templates.items() if name.endswith("-production-gateway"))
    _, waf_logs = only(gateway, "AWS::Logs::LogGroup", "WafLogs")
    waf_logs["DeletionPolicy"] = "Retain"
    assert [r for r in deploy_checks.retained_with_names(templates) if "WafLogs" in r]


def test_no_appconfig_version_outlives_its_profile(assembly: Assembly) -> None:
    """AppConfig refuses to delete a profile that still has hosted versions: a version kept on
    replace or on delete (CDK's default) would leak with each content change and block destroy."""
    versions = [
        r
        for t in assembly.templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::AppConfig::HostedConfigurationVersion"
    ]
    assert versions  # every stack whose functions read runtime config has at least one
    for version in versions:
        assert (version.get("DeletionPolicy", "Delete"), version.get("UpdateReplacePolicy", "Delete")) == (
            "Delete",
            "Delete",
        )


def test_the_waf_log_group_name_is_new_for_each_creation_of_the_stack(gateway: dict[str, Any]) -> None:
    name = render(props(gateway, "AWS::Logs::LogGroup", "WafLogs")["LogGroupName"])
    assert json.dumps(name).count("AWS::StackId") == 1


# --- account singletons ----------------------------------------------------------------------------


def test_account_singletons_are_adopted_by_default_never_created(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    assert _types(assembly) & ACCOUNT_SINGLETONS == set()
    foundation = assembly.template("-production-foundation")
    adopted = {r["Type"]: r["Properties"]["Setting"] for r in foundation["Resources"].values() if r["Type"] in ADOPTED}
    assert adopted == ADOPTED
    for type_ in ADOPTED:
        _, setting = only(foundation, type_)
        assert render(setting["Properties"]["ServiceToken"]).startswith(
            "<AccountSettingsAdopterProviderframeworkonEvent"
        )


def test_log_groups_an_adopted_setting_makes_are_encrypted_with_the_tiers_key(foundation: dict[str, Any]) -> None:
    """aws/spans (X-Ray makes it when the tier switches Transaction Search on) and Macie's jobs log
    group (made here) get the tier's key, by its ARN, and the adopting function may describe it,
    as X-Ray requires of the caller that names a key."""
    key = render({"Fn::GetAtt": [only(foundation, "AWS::KMS::Key")[0], "Arn"]})
    _, search = only(foundation, "Custom::AdoptedTransactionSearch")
    _, session = only(foundation, "Custom::AdoptedMacie")
    assert render(search["Properties"]["SpansKmsKeyArn"]) == key
    assert render(session["Properties"]["KmsKeyArn"]) == key
    permissions = props(foundation, "AWS::IAM::Policy", "AccountSettingsAdopterPermissions")
    on_key = [
        statement for statement in permissions["PolicyDocument"]["Statement"] if render(statement["Resource"]) == key
    ]
    assert [statement["Action"] for statement in on_key] == ["kms:DescribeKey"]


def test_managed_singletons_are_the_stacks_own_resources(managed: Assembly) -> None:
    foundation = managed.template("-production-foundation")
    assert {r["Type"] for r in foundation["Resources"].values()} >= ACCOUNT_SINGLETONS
    assert not any(t in ADOPTED for t in _types(managed))
    _, search = only(foundation, "AWS::XRay::TransactionSearchConfig")
    policy_id, _ = only(foundation, "AWS::Logs::ResourcePolicy", "AccountSettingsTransactionSearchLogs")
    assert policy_id in search["DependsOn"]
    # A destroy or a change of mode never switches a managed setting off; a rolled-back create
    # removes a CloudFormation one (invocation logging's delete does nothing: the next test).
    for type_ in ACCOUNT_SINGLETONS:
        _, singleton = only(foundation, type_)
        assert (singleton["DeletionPolicy"], singleton["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_managed_invocation_logging_waits_for_its_role_and_is_never_switched_off(managed: Assembly) -> None:
    """Bedrock has no CloudFormation type for it: the adopting function puts it (Mode manage), asking
    again while Bedrock refuses the role it was just given (IAM propagation), and its delete does
    nothing. No SDK call made once, and no delete call: a rolled-back switch to manage would have
    deleted the account's logging, whoever had set it."""
    foundation = managed.template("-production-foundation")
    _, setting = only(foundation, "Custom::BedrockModelInvocationLogging")
    assert render(setting["Properties"]["ServiceToken"]).startswith("<AccountSettingsAdopterProviderframeworkonEvent")
    assert (setting["Properties"]["Setting"], setting["Properties"]["Mode"]) == ("model_invocation_logging", "manage")
    assert render(setting["Properties"]["RoleArn"]) == "<AccountSettingsModelInvocationLogging.Arn>"
    role_id, _ = only(foundation, "AWS::IAM::Role", "AccountSettingsModelInvocationLogging")
    policy_id, _ = only(foundation, "AWS::IAM::Policy", "AccountSettingsAdopterPermissions")
    assert {role_id, policy_id} <= set(setting["DependsOn"])
    assert "deletemodelinvocationloggingconfiguration" not in json.dumps(foundation).lower()
    assert not resources(foundation, "Custom::AWS")  # (CDK's AwsCustomResource, which ran the API once)


def _granted(template: dict[str, Any], policy_prefix: str) -> dict[str, set[str]]:
    """Each action the policy allows, with the resources it allows it on, rendered."""
    granted: dict[str, set[str]] = {}
    for statement in props(template, "AWS::IAM::Policy", policy_prefix)["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = render(statement["Resource"])
        for action in actions:
            granted.setdefault(action, set()).update(targets if isinstance(targets, list) else [targets])
    return granted


def test_the_adopting_function_may_start_application_signals_discovery_as_aws_documents(
    foundation: dict[str, Any],
) -> None:
    """AWS's prerequisites for enabling Transaction Search with StartDiscovery ("Enable transaction
    search"): create and read Application Signals' service-linked role, and create its CloudTrail
    service-linked channel; each on that resource alone, in this account (and region)."""
    granted = _granted(foundation, "AccountSettingsAdopterPermissions")
    role = "role/aws-service-role/application-signals.cloudwatch.amazonaws.com/AWSServiceRoleForCloudWatchApplicationSignals"
    assert "application-signals:StartDiscovery" in granted
    for action in ("iam:CreateServiceLinkedRole", "iam:GetRole"):
        (arn,) = [a for a in granted[action] if "application-signals" in a]
        assert re.fullmatch(rf"arn:aws:iam::<AWS::AccountId>:{re.escape(role)}", arn), arn
    assert not [a for a in granted["iam:GetRole"] if "application-signals" not in a]
    assert granted["cloudtrail:CreateServiceLinkedChannel"] == {
        "arn:aws:cloudtrail:us-east-1:<AWS::AccountId>:channel/aws-service-channel/application-signals/*"
    }


# What the adopting function and CDK's provider framework do for themselves, whatever they run for:
# trace, write their own logs, invoke (and look up) the function behind the framework.
OWN_PLUMBING = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "lambda:InvokeFunction",
    "lambda:GetFunction",
}


def _managed_search_problems(template: dict[str, Any]) -> list[str]:
    """Why a managed Transaction Search may not have taken effect when the stack completes (so the
    online evaluation of a later stack finds no aws/spans), or its wait could change something."""
    (search_id,) = resources(template, "AWS::XRay::TransactionSearchConfig")
    waits = resources(template, "Custom::TransactionSearchReady")
    if len(waits) != 1:
        return [f"{len(waits)} waits for the TransactionSearchConfig"]
    ((wait_id, wait),) = waits.items()
    problems = []
    if wait["Properties"].get("Setting") != "transaction_search_ready":
        problems.append(f"{wait_id} waits for {wait['Properties'].get('Setting')!r}")
    if search_id not in deploy_checks.dependency_closure(template, wait_id):
        problems.append(f"{wait_id} can run before {search_id} is created")
    for role in sorted(deploy_checks.roles_used(template, wait_id)):
        for managed in template["Resources"][role]["Properties"].get("ManagedPolicyArns", []):
            if not render(managed).endswith(":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"):
                problems.append(f"{role} has the managed policy {render(managed)}")
        problems += [
            f"{policy} lets {wait_id} {action} on {targets}" for policy, action, targets in _writes(template, role)
        ]
    return problems


def _writes(template: dict[str, Any], role: str) -> Iterator[tuple[str, str, Any]]:
    """(policy, action, rendered resources) for what ``role``'s policies allow beyond reads and the
    function's own plumbing (traces, its own log group and function)."""
    for policy in sorted(deploy_checks.role_policies(template, role)):
        for statement in template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = render(
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for action in actions:
                if action.split(":")[1].startswith(("Get", "Describe", "List")):
                    continue
                own = action.startswith("xray:") or all(str(t).startswith("<AccountSettingsWaiter") for t in targets)
                if action not in OWN_PLUMBING or not own:
                    yield policy, action, targets


def test_a_managed_transaction_search_is_waited_for_reading_only(managed: Assembly) -> None:
    """``manage``: the foundation stack completes only once X-Ray's destination is CloudWatchLogs and
    ACTIVE and aws/spans exists (lambdas/account_settings, read-only), and every stack with an
    online evaluation deploys after it."""
    foundation = managed.template("-production-foundation")
    assert _managed_search_problems(foundation) == []
    wait_id, wait = only(foundation, "Custom::TransactionSearchReady")
    # The adopting function with a role of its own (the adopter's may write: Macie's jobs log group).
    assert render(wait["Properties"]["ServiceToken"]).startswith("<AccountSettingsWaiterProviderframeworkonEvent")
    assert wait.get("DeletionPolicy", "Delete") == "Delete"  # its delete does nothing: nothing to keep
    # The policy it waits with holds exactly the reads.
    permissions = props(foundation, "AWS::IAM::Policy", "AccountSettingsWaiterPermissions")
    (statement,) = permissions["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["logs:DescribeLogGroups", "xray:GetTraceSegmentDestination"]
    races = [r for r in deploy_checks.races(managed.templates, exempt=NOT_CHECKED_AT_CREATION) if r.resource == wait_id]
    assert races == []
    # Stacks deploy after the stacks they depend on (the cloud assembly's manifest).
    manifest = json.loads((managed.outdir / "manifest.json").read_text())
    foundation_name = next(name for name in managed.templates if name.endswith("-production-foundation"))
    evaluated = [
        name
        for name, template in managed.templates.items()
        if resources(template, "AWS::BedrockAgentCore::OnlineEvaluationConfig")
    ]
    assert evaluated
    for name in evaluated:
        assert foundation_name in _stack_dependencies(manifest, name), name


def test_a_managed_macie_sessions_jobs_log_group_is_made_first_with_the_tiers_retention(
    managed: Assembly, cdk_context: dict[str, Any]
) -> None:
    """Macie makes /aws/macie/classificationjobs on the first job, kept forever: with the session
    managed, the adopting function makes it first with a retention (as for an adopted session),
    and may write that log group only."""
    foundation = managed.template("-production-foundation")
    _, made = only(foundation, "Custom::AdoptedMacieJobsLogGroup")
    assert made["Properties"]["Setting"] == "macie_jobs_log_group"
    retention = cdk_context["blueprint"]["production"]["log_retention_days"]
    assert made["Properties"]["JobsLogRetentionDays"] == str(retention)
    assert made["Properties"]["KmsKeyArn"] == {"Fn::GetAtt": [only(foundation, "AWS::KMS::Key")[0], "Arn"]}
    permissions = props(foundation, "AWS::IAM::Policy", "AccountSettingsAdopterPermissions")
    writes = {
        action: render(statement["Resource"])
        for statement in permissions["PolicyDocument"]["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        if not action.split(":")[1].startswith("Describe")
    }
    jobs = "arn:aws:logs:us-east-1:<AWS::AccountId>:log-group:/aws/macie/classificationjobs"
    assert writes == {
        **{action: [jobs, f"{jobs}:*"] for action in ("logs:CreateLogGroup", "logs:PutRetentionPolicy")},
        # (the managed invocation logging, which the adopting function puts: its own test)
        "bedrock:GetModelInvocationLoggingConfiguration": "*",
        "bedrock:PutModelInvocationLoggingConfiguration": "*",
        "iam:PassRole": "<AccountSettingsModelInvocationLogging.Arn>",
    }


def _stack_dependencies(manifest: dict[str, Any], stack: str) -> set[str]:
    """The artifacts ``stack`` deploys after, transitively."""
    seen: set[str] = set()
    pending = [stack]
    while pending:
        for dependency in manifest["artifacts"].get(pending.pop(), {}).get("dependencies", []):
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)
    return seen


def test_the_managed_search_check_finds_a_wait_that_runs_too_early_or_writes(managed: Assembly) -> None:
    """Negative controls: without its DependsOn on the TransactionSearchConfig the wait may run
    before it; with a write in its permissions it could change the account; and without it there
    is nothing to wait with."""
    foundation = managed.template("-production-foundation")
    (search_id,) = resources(foundation, "AWS::XRay::TransactionSearchConfig")
    wait_id, _ = only(foundation, "Custom::TransactionSearchReady")

    early = copy.deepcopy(foundation)
    early["Resources"][wait_id]["DependsOn"].remove(search_id)
    assert _managed_search_problems(early) == [f"{wait_id} can run before {search_id} is created"]

    writing = copy.deepcopy(foundation)
    _, permissions = only(writing, "AWS::IAM::Policy", "AccountSettingsWaiterPermissions")
    permissions["Properties"]["PolicyDocument"]["Statement"][0]["Action"].append("xray:UpdateTraceSegmentDestination")
    (problem,) = _managed_search_problems(writing)
    assert problem.startswith("AccountSettingsWaiterPermissions")
    assert "xray:UpdateTraceSegmentDestination on ['*']" in problem

    missing = copy.deepcopy(foundation)
    del missing["Resources"][wait_id]
    assert _managed_search_problems(missing) == ["0 waits for the TransactionSearchConfig"]


def test_the_manage_and_off_variants_pass_cfn_lint(managed: Assembly, left_alone: Assembly) -> None:
    cfn_lint(managed)
    cfn_lint(left_alone)


def test_off_leaves_the_account_alone_and_the_tier_does_without(left_alone: Assembly) -> None:
    types = _types(left_alone)
    assert types & (ACCOUNT_SINGLETONS | set(ADOPTED)) == set()
    assert "AWS::BedrockAgentCore::OnlineEvaluationConfig" not in types  # it needs spans
    assert not any(t.startswith("AWS::Macie::") or t == "Custom::MacieClassificationJob" for t in types)


# Each setting as its own resource when managed, adopted through the adopting function.
SETTING_TYPES = {
    "transaction_search": ("AWS::XRay::TransactionSearchConfig", "Custom::AdoptedTransactionSearch"),
    "model_invocation_logging": ("Custom::BedrockModelInvocationLogging", "Custom::AdoptedModelInvocationLogging"),
    "macie": ("AWS::Macie::Session", "Custom::AdoptedMacie"),
    "api_gateway_logging": ("AWS::ApiGateway::Account", "Custom::AdoptedApiGatewayLogging"),
}
# Two mixes that between them put every setting in every mode beside the others' other modes.
MIXES = {
    "search-managed": {
        "transaction_search": "manage",
        "model_invocation_logging": "adopt",
        "macie": "off",
        "api_gateway_logging": "manage",
    },
    "search-adopted": {
        "transaction_search": "adopt",
        "model_invocation_logging": "manage",
        "macie": "manage",
        "api_gateway_logging": "off",
    },
    "search-off": {
        "transaction_search": "off",
        "model_invocation_logging": "off",
        "macie": "adopt",
        "api_gateway_logging": "adopt",
    },
}


@pytest.mark.parametrize("mix", MIXES)
def test_settings_in_different_modes_each_do_their_own_and_the_tier_still_deploys(
    mix: str, synthesize: Synthesizer
) -> None:
    """Each setting is managed, adopted or left alone by its own key, whatever the others' modes:
    what one mode brings (the adopting function, the managed search's wait, the online evaluation
    on spans, Macie's jobs) is there exactly when its setting asks for it, and the mix passes the
    ordering and schema checks (and cdk-nag: the synth runs both packs)."""
    modes = MIXES[mix]
    mixed = synthesize(tier="production", **{f"blueprint.production.account_settings.{s}": m for s, m in modes.items()})
    types = _types(mixed)
    foundation = mixed.template("-production-foundation")
    for setting, mode in modes.items():
        own, adopted = SETTING_TYPES[setting]
        assert (own in types, adopted in types) == (mode == "manage", mode == "adopt"), setting
    adopting = [r for r in foundation["Resources"].values() if r["Type"] in ADOPTED]
    assert {r["Properties"]["Setting"] for r in adopting} == {s for s, m in modes.items() if m == "adopt"}
    searched = modes["transaction_search"] != "off"
    assert ("AWS::BedrockAgentCore::OnlineEvaluationConfig" in types) == searched  # it scores spans
    assert ("Custom::TransactionSearchReady" in types) == (modes["transaction_search"] == "manage")
    if modes["transaction_search"] == "manage":
        assert _managed_search_problems(foundation) == []
    assert ("Custom::MacieClassificationJob" in types) == (modes["macie"] != "off")
    # The adopting function may pass a logging role only for a setting it puts: API Gateway's when
    # adopted, Bedrock's when adopted or managed (it puts the managed one too).
    passes = {
        render(s["Resource"])
        for logical_id, policy in resources(foundation, "AWS::IAM::Policy").items()
        if logical_id.startswith("AccountSettingsAdopterPermissions")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "iam:PassRole"
    }
    assert passes == {
        f"<AccountSettings{name}.Arn>"
        for setting, name in (
            ("model_invocation_logging", "ModelInvocationLogging"),
            ("api_gateway_logging", "ApiGatewayLogging"),
        )
        if modes[setting] == "adopt" or (setting, modes[setting]) == ("model_invocation_logging", "manage")
    }
    assert [str(r) for r in deploy_checks.races(mixed.templates, exempt=NOT_CHECKED_AT_CREATION)] == []
    cfn_lint(mixed)


def test_adopted_settings_outlive_the_stack_with_what_they_write_to(assembly: Assembly) -> None:
    foundation = assembly.template("-production-foundation")
    for type_, prefix in (
        ("AWS::IAM::Role", "AccountSettingsModelInvocationLogging"),
        ("AWS::Logs::LogGroup", "AccountSettingsModelInvocations"),
        ("AWS::IAM::Role", "AccountSettingsApiGatewayLogging"),
    ):
        _, resource = only(foundation, type_, prefix)
        assert resource["DeletionPolicy"] == "Retain", prefix
    _, setting = only(foundation, "Custom::AdoptedModelInvocationLogging")
    assert render(setting["Properties"]["LogGroupName"]).startswith("<AccountSettingsModelInvocations")
    assert setting["Properties"]["OwnedLogGroupPrefix"] == "genai-production-foundation-"
    # What is kept can still write: the role's permission is part of the role, not a policy
    # resource that would go with the stack.
    role_id, role = only(foundation, "AWS::IAM::Role", "AccountSettingsModelInvocationLogging")
    assert deploy_checks.role_policies(foundation, role_id) == set()
    (inline,) = role["Properties"]["Policies"]
    (statement,) = inline["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert render(statement["Resource"]) == "<AccountSettingsModelInvocations.Arn>"


def test_the_adopting_function_may_pass_only_the_logging_roles_to_their_services(foundation: dict[str, Any]) -> None:
    policy = props(foundation, "AWS::IAM::Policy", "AccountSettingsAdopterPermissions")
    passes = [s for s in policy["PolicyDocument"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert sorted((render(s["Resource"]), s["Condition"]["StringEquals"]["iam:PassedToService"]) for s in passes) == [
        ("<AccountSettingsApiGatewayLogging.Arn>", "apigateway.amazonaws.com"),
        ("<AccountSettingsModelInvocationLogging.Arn>", "bedrock.amazonaws.com"),
    ]


def test_the_key_lets_macie_decrypt_without_naming_a_role_that_may_not_exist_yet(foundation: dict[str, Any]) -> None:
    _, key = only(foundation, "AWS::KMS::Key")
    statement = next(s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "MacieClassification")
    assert statement["Principal"] == {"AWS": "*"}
    conditions = render(statement["Condition"]["StringEquals"])
    assert conditions["aws:PrincipalArn"].endswith(
        ":role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie"
    )
    assert conditions["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert "kms:CallerAccount" in conditions


# --- AgentCore online evaluation -------------------------------------------------------------------


def test_online_evaluation_waits_for_the_log_groups_it_reads_and_may_index_them(
    agent_stacks: dict[str, dict[str, Any]],
) -> None:
    assert agent_stacks
    for template in agent_stacks.values():
        (logical_id, evaluation) = only(template, "AWS::BedrockAgentCore::OnlineEvaluationConfig")
        agent = logical_id.removesuffix(logical_id[-8:]).removesuffix("Evaluation")
        before = deploy_checks.dependency_closure(template, logical_id)
        runtime_logs, _ = only(template, "AWS::Logs::LogGroup", f"{agent}RuntimeLogs")
        results, results_group = only(template, "AWS::Logs::LogGroup", f"{agent}EvaluationResults")
        assert {runtime_logs, results} <= before
        output = evaluation["Properties"]["OutputConfig"]["CloudWatchConfig"]["LogGroupName"]
        assert output == {"Ref": results}
        # AgentCore refuses a name under its own namespace but the group it makes itself.
        results_name = render(results_group["Properties"]["LogGroupName"])
        assert not results_name.startswith(EVALUATION_RESERVED_PREFIX), results_name
        assert "KmsKeyId" in results_group["Properties"]
        assert "RetentionInDays" in results_group["Properties"]
        role = evaluation["Properties"]["EvaluationExecutionRoleArn"]["Fn::GetAtt"][0]
        granted = {
            (a, render(r))
            for p in deploy_checks.role_policies(template, role)
            for s in template["Resources"][p]["Properties"]["PolicyDocument"]["Statement"]
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        }
        # The runtime's own log group (named /aws/bedrock-agentcore/runtimes/<id>-DEFAULT).
        runtime_group = f"arn:aws:logs:us-east-1:<AWS::AccountId>:log-group:<{agent}RuntimeLogs>"
        # Both ARN forms, as CDK grants these actions on aws/spans.
        index = {
            (a, g)
            for a in ("logs:PutIndexPolicy", "logs:DescribeIndexPolicies")
            for g in (runtime_group, f"{runtime_group}:*")
        }
        assert index <= granted
        # It writes its results there: CDK's own grant covers only the reserved namespace.
        results_arn = f"arn:aws:logs:us-east-1:<AWS::AccountId>:log-group:<{agent}EvaluationResults>"
        assert {(a, f"{results_arn}:*") for a in RESULT_WRITE_ACTIONS} <= granted


# --- log groups services would create on first use -------------------------------------------------


def test_agentcore_runtime_log_groups_exist_encrypted_before_first_use(
    agent_stacks: dict[str, dict[str, Any]],
) -> None:
    assert agent_stacks
    for template in agent_stacks.values():
        (logical_id,) = resources(template, "AWS::BedrockAgentCore::Runtime")
        groups = [g["Properties"] for g in resources(template, "AWS::Logs::LogGroup").values()]
        name = f"/aws/bedrock-agentcore/runtimes/<{logical_id[:-8]}.AgentRuntimeId>-DEFAULT"
        (group,) = [g for g in groups if render(g.get("LogGroupName")) == name]
        assert "KmsKeyId" in group
        assert group["RetentionInDays"] > 0


def test_api_gateway_execution_log_groups_exist_encrypted_before_the_stage_logs(assembly: Assembly) -> None:
    apis = 0
    for template in assembly.templates.values():
        for api in resources(template, "AWS::ApiGateway::RestApi"):
            stage_id, stage = next(
                (n, s)
                for n, s in resources(template, "AWS::ApiGateway::Stage").items()
                if s["Properties"]["RestApiId"] == {"Ref": api}
            )
            name = f"API-Gateway-Execution-Logs_<{api[:-8]}>/{stage['Properties']['StageName']}"
            (group_id,) = [
                n
                for n, g in resources(template, "AWS::Logs::LogGroup").items()
                if render(g["Properties"].get("LogGroupName")) == name
            ]
            group = template["Resources"][group_id]["Properties"]
            assert "KmsKeyId" in group
            assert group["RetentionInDays"] > 0
            assert group_id in deploy_checks.dependency_closure(template, stage_id)
            apis += 1
    assert apis == 2  # the AI gateway and the ingestion push API


def test_every_function_writes_to_a_log_group_of_the_tier_made_before_it_runs(assembly: Assembly) -> None:
    functions = 0
    for name, template in assembly.templates.items():
        groups = resources(template, "AWS::Logs::LogGroup")
        for logical_id, function in resources(template, "AWS::Lambda::Function").items():
            functions += 1
            if "LogGroup" in function["Properties"].get("LoggingConfig", {}):
                continue
            # CDK's own provider functions take no log group: one named as Lambda would name it,
            # which whatever invokes the function during the deploy waits for.
            (group_id,) = [
                g
                for g, r in groups.items()
                if render(r["Properties"].get("LogGroupName")) == f"/aws/lambda/<{logical_id[:-8]}>"
            ]
            invokers = [
                r
                for r, resource in template["Resources"].items()
                if {"Fn::GetAtt": [logical_id, "Arn"]} == resource.get("Properties", {}).get("ServiceToken")
            ]
            assert invokers, f"{name}/{logical_id}"
            before = [deploy_checks.dependency_closure(template, i) for i in invokers]
            assert all(group_id in closure for closure in before), f"{name}/{logical_id}"
    assert functions >= 15


def test_every_log_group_is_encrypted_and_expires(assembly: Assembly, managed: Assembly) -> None:
    for templates in (assembly.templates, managed.templates):
        for name, template in templates.items():
            for logical_id, group in resources(template, "AWS::Logs::LogGroup").items():
                assert {"KmsKeyId", "RetentionInDays"} <= set(group["Properties"]), f"{name}/{logical_id}"


# --- reserved concurrency ---------------------------------------------------------------------------


def test_no_function_reserves_concurrency_by_default(assembly: Assembly) -> None:
    reserved = [
        name
        for t in assembly.templates.values()
        for name, r in resources(t, "AWS::Lambda::Function").items()
        if "ReservedConcurrentExecutions" in r["Properties"]
    ]
    assert reserved == []


def test_the_pull_connector_holds_a_lease_longer_than_it_can_run(knowledge: dict[str, Any]) -> None:
    pullers = [
        f["Properties"]
        for f in resources(knowledge, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].startswith("connector_pull.")
    ]
    assert pullers
    for function in pullers:
        assert int(function["Environment"]["Variables"]["LEASE_SECONDS"]) > function["Timeout"]


# --- replacing changes --------------------------------------------------------------------------------


def test_a_replacing_change_reaches_every_consumer_and_no_replacement_reuses_a_name(
    assembly: Assembly, replacing: Assembly, cdk_context: dict[str, Any]
) -> None:
    assert list(deploy_checks.stale_replacements(assembly.templates, replacing.templates)) == []
    # The KB is a new resource under a new logical id and name; the tools stack, which reads its
    # id and ARN, reads them from the new one in the same deploy.
    before, after = assembly.template("-production-knowledge"), replacing.template("-production-knowledge")
    (old_kb,) = resources(before, "AWS::Bedrock::KnowledgeBase")
    (new_kb,) = resources(after, "AWS::Bedrock::KnowledgeBase")
    assert old_kb != new_kb
    assert props(before, "AWS::Bedrock::KnowledgeBase")["Name"] != props(after, "AWS::Bedrock::KnowledgeBase")["Name"]
    # A new model of the same dimension writes a new, empty index, not the old model's.
    assert REPLACING["blueprint.production.knowledge_base.embedding_model_id"] == "cohere.embed-english-v3"  # 1,024 too
    indexes = [
        props(t, "AWS::Bedrock::KnowledgeBase")["StorageConfiguration"]["S3VectorsConfiguration"]["IndexArn"]
        for t in (before, after)
    ]
    assert indexes[0] != indexes[1]
    tools_before = json.dumps(assembly.template("-production-tools"))
    tools_after = json.dumps(replacing.template("-production-tools"))
    assert old_kb in tools_before
    assert old_kb not in tools_after
    assert new_kb in tools_after
    # The renamed agent is a new runtime; the gateway function names the new one, not the old.
    gateway_before = json.dumps(assembly.template("-production-gateway"))
    gateway_after = json.dumps(replacing.template("-production-gateway"))
    old, new = pascal_case(_renamed(cdk_context)), pascal_case(RENAMED_AGENT)
    assert old in gateway_before
    assert old not in gateway_after
    assert new in gateway_after


def test_a_snapshotted_function_whose_environment_a_replacement_changes_publishes_a_new_version(
    assembly: Assembly, replacing: Assembly
) -> None:
    """A published version keeps the environment it was published with, and its alias keeps
    calling it: a change to a SnapStart function's environment (the replaced KB's id, which the
    knowledge search reads) must publish a new version, under a new logical id."""

    def versions(template: dict[str, Any], function: str) -> set[str]:
        return {
            name
            for name, r in template["Resources"].items()
            if r["Type"] == "AWS::Lambda::Version" and r["Properties"]["FunctionName"] == {"Ref": function}
        }

    changed = []
    for stack, before in assembly.templates.items():
        after = replacing.templates.get(stack, {"Resources": {}})
        for name, resource in before["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function" or "SnapStart" not in resource["Properties"]:
                continue
            environments = [
                json.dumps(t["Resources"].get(name, {}).get("Properties", {}).get("Environment"), sort_keys=True)
                for t in (before, after)
            ]
            if name in after["Resources"] and environments[0] != environments[1]:
                changed.append(name)
                assert versions(before, name)
                assert versions(after, name)
                assert versions(before, name).isdisjoint(versions(after, name)), name
    assert [name for name in changed if name.startswith("KnowledgeSearchFunction")]


def test_the_replacement_check_finds_a_knowledge_base_replaced_in_place(
    assembly: Assembly, replacing: Assembly
) -> None:
    """Negative control: the KB under its old logical id (as before generations) is reported as
    replaced in place while the tools stack reads it."""
    after = copy.deepcopy(replacing.templates)
    knowledge = next(name for name in after if name.endswith("-production-knowledge"))
    (old_id,) = resources(assembly.templates[knowledge], "AWS::Bedrock::KnowledgeBase")
    (new_id,) = resources(after[knowledge], "AWS::Bedrock::KnowledgeBase")
    renamed = json.loads(json.dumps(after[knowledge]).replace(new_id, old_id))
    renamed["Resources"][old_id]["Properties"]["Name"] = props(
        assembly.templates[knowledge], "AWS::Bedrock::KnowledgeBase"
    )["Name"]
    after[knowledge] = renamed
    stale = list(deploy_checks.stale_replacements(assembly.templates, after))
    assert f"{knowledge}/{old_id} is replaced in place, and other stacks read it" in stale
    assert f"{knowledge}/{old_id} is replaced but keeps its Name" in stale


# --- policies that match nothing, and API Gateway's own error bodies -----------------------------------


def test_no_policy_names_a_log_stream_under_a_log_group_arn_ending_in_a_wildcard(assembly: Assembly) -> None:
    for name, template in assembly.templates.items():
        for logical_id, resource in template["Resources"].items():
            text = json.dumps(render(resource.get("Properties", {})))
            assert ":*:log-stream:" not in text, f"{name}/{logical_id}"
            assert ".Arn>:log-stream:" not in text, f"{name}/{logical_id}: a log group's Arn attribute ends in :*"


def test_api_gateways_own_error_bodies_stay_json_whatever_the_message(gateway: dict[str, Any]) -> None:
    hostile = 'Unauthorized: "token" is \\ not valid\n{"error": "injected"}'
    responses = resources(gateway, "AWS::ApiGateway::GatewayResponse")
    assert len(responses) == 8
    for response in responses.values():
        template = response["Properties"]["ResponseTemplates"]["application/json"]
        if "$context" not in template:  # a message of its own (no route): JSON as it stands
            assert set(json.loads(template)) == {"error", "message"}
            continue
        assert '$context.error.message"' not in template
        assert "validationErrorString" not in template
        # What API Gateway does: substitute the variable; messageString is the message as a JSON string.
        body = json.loads(template.replace("$context.error.messageString", json.dumps(hostile)))
        assert body["message"] == hostile
        assert set(body) == {"error", "message"}


def test_the_iam_coverage_check_finds_a_gateway_function_that_may_not_keep_transcripts(assembly: Assembly) -> None:
    """Negative control: without PutItem on the transcripts table, each function running the
    gateway's handler is reported for the transcript's write; the worker (no transcripts) is not."""
    templates = copy.deepcopy(assembly.templates)
    gateway = next(name for name in templates if name.endswith("-production-gateway"))
    _revoke(templates[gateway], "dynamodb:PutItem", "Transcripts", "Arn")
    findings = iam_coverage.check(templates).findings
    assert {(f.call.where.split(":")[0], f.call.action, f.resource) for f in findings} == {
        ("ai_gateway/transcript.py", "dynamodb:PutItem", "TRANSCRIPT_TABLE")
    }
    assert sorted(f.runner.logical_id[:-8] for f in findings) == ["GatewayFunction", "GatewayStreamFunction"]
