"""tools/review.py: what a reviewer reads for the changes that matter, over real synthesized apps.

The core (``review``) runs on templates; one test runs the real ``cdk diff`` CLI on one stack.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config import load_config
from tests.infra.conftest import Assembly as Synthesized, Synthesizer
from tools import review as rv
from tools.reviewing.access import Grant, loosens
from tools.reviewing.changes import Assembly, Change, diff_values
from tools.reviewing.render import render_report
from tools.reviewing.report import CdkDiff, markdown_for_templates, review
from tools.reviewing.sources import changed_packages
from tools.reviewing.values import render

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "genai-production-gateway"
TOOLS = "genai-production-tools"


@pytest.fixture(scope="module")
def base(assembly: Synthesized) -> Assembly:
    return rv.read_assembly(assembly.outdir)


def same_stacks(base: Assembly, head: Assembly) -> Assembly:
    """``base`` restricted to the stacks ``head`` has (a head synthesized for one tier only)."""
    return Assembly({name: base.templates[name] for name in head.templates}, base.bundles)


def edited(base: Assembly, stack: str, edit: Any) -> Assembly:
    """A copy of ``base`` with ``edit(template)`` applied to one stack's template."""
    templates = copy.deepcopy(dict(base.templates))
    edit(templates[stack])
    return Assembly(templates, base.bundles)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {key: r for key, r in template["Resources"].items() if r["Type"] == kind}


def test_unchanged_app_reports_nothing(base: Assembly) -> None:
    report = review(base, base, [])
    sections = report.sections()
    assert report.exit_code == 0
    assert sections["access"] == "No IAM statement or security-group rule changes."
    assert sections["losses"] == "No resource is replaced or removed."
    assert sections["data"] == "No data-handling changes."
    assert sections["code"] == "No source changes under lambdas/."


def test_a_tool_added_to_a_group_is_a_cedar_permit_not_iam_broadening(base: Assembly, synthesize: Synthesizer) -> None:
    tools = ["knowledge_search", "find_orders"]
    head = rv.read_assembly(
        synthesize(tier="production", **{"blueprint.production.groups.customer-basic.tools": tools}).outdir
    )

    report = review(same_stacks(base, head), head, [])
    data = report.sections()["data"]

    # The group's one permit now names one more tool: said as the tool added, not the statement.
    assert "~ permit group `customer-basic`: +`orders___find_orders`" in data
    assert data.count("permit group `") == 1
    assert not [c for s in report.stacks for c in s.access if c.broadens]
    assert report.exit_code == 0
    # The tool guard's bindings (JSON in its runtime document) change by key path.
    assert 'Content (JSON) tool_bindings.customer-basic`: + `"orders___find_orders"`' in data


def _widen(template: dict[str, Any]) -> None:
    policy = resources_of(template, "AWS::IAM::Policy")
    statement = next(iter(policy.values()))["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Action"], statement["Resource"] = "s3:*", "*"


def test_a_widened_iam_action_broadens_and_exits_2(base: Assembly) -> None:
    head = edited(base, GATEWAY, _widen)

    report = review(base, head, [])
    access = report.sections()["access"]

    widened = [c for s in report.stacks for c in s.access if c.broadens]
    assert widened
    assert {(c.item.action, c.item.resource) for c in widened if isinstance(c.item, Grant)} == {("s3:*", "*")}
    assert f"### {GATEWAY}" in access
    assert "+ **broadens** | Allow" in access
    assert "`s3:*`" in access
    assert report.exit_code == 2


def test_the_report_draws_the_head_app_with_what_changed_highlighted(base: Assembly) -> None:
    """`make review` passes tools/diagram.py's drawing: the report's picture marks the resource the
    change touched (the widened policy's function), and an unchanged app gets no picture."""
    draw = rv.diagram()
    assert draw is not None
    text = render_report(review(base, edited(base, GATEWAY, _widen), [], draw=draw))
    picture = text.split("## Picture\n", 1)[1].split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert picture.startswith("flowchart LR")
    (marked,) = [line for line in picture.splitlines() if line.strip().startswith("class ")]
    highlighted = marked.split()[1].split(",")
    assert all(node.startswith("production_gateway_") for node in highlighted), marked
    assert "## Picture" not in render_report(review(base, base, [], draw=draw))


def test_an_embedding_model_change_shows_the_replaced_knowledge_base_and_its_data_loss(
    base: Assembly, synthesize: Synthesizer
) -> None:
    head = rv.read_assembly(
        synthesize(
            tier="production", **{"blueprint.production.knowledge_base.embedding_model_id": "cohere.embed-english-v3"}
        ).outdir
    )

    report = review(same_stacks(base, head), head, [])
    losses = {(x.diff.type, x.replaced) for s in report.stacks for x in s.losses if x.at_risk}
    table = report.sections()["losses"]

    assert ("AWS::Bedrock::KnowledgeBase", True) in losses
    assert ("AWS::Bedrock::DataSource", True) in losses
    kb_row = next(line for line in table.splitlines() if "(AWS::Bedrock::KnowledgeBase)" in line)
    assert "replaced" in kb_row
    assert "**its sync state and vectors" in kb_row
    # Data stores lead the table.
    assert "AWS::Bedrock" in table.splitlines()[2]
    # Replaced under a new logical id (ADR 0009): its outputs are new ones, which every reader's
    # template names, so no stack goes on reading the deleted one.
    assert report.stale == ()


def test_a_create_only_change_replaces_and_so_do_resources_whose_create_only_refs_point_at_it(
    base: Assembly,
) -> None:
    stack = "genai-production-knowledge"

    def resize(template: dict[str, Any]) -> None:
        (index,) = resources_of(template, "AWS::S3Vectors::Index").values()
        index["Properties"]["Dimension"] = 512

    report = review(base, edited(base, stack, resize), [])
    replaced = {x.diff.type: x.reasons for s in report.stacks for x in s.losses}

    assert replaced["AWS::S3Vectors::Index"] == ("`Dimension` changed (create-only)",)
    assert "may be replaced" in replaced["AWS::Bedrock::KnowledgeBase"][0]  # its StorageConfiguration refers to it


def test_a_resource_replaced_under_its_logical_id_names_the_stacks_that_read_it(base: Assembly) -> None:
    """A weak reference resolves when its reader is deployed: a reader that does not change keeps
    the replaced (deleted) resource; one that changes reads the new one once it updates."""
    stack = "genai-production-knowledge"
    (kb_id,) = resources_of(base.templates[stack], "AWS::Bedrock::KnowledgeBase")
    outputs = [name for name, o in base.templates[stack]["Outputs"].items() if kb_id in json.dumps(o["Value"])]
    readers = {
        reader
        for reader, template in base.templates.items()
        if any(
            f'"StackName": "{stack}", "Region": "us-east-1", "OutputName": "{o}"' in json.dumps(template)
            for o in outputs
        )
    }
    assert readers  # the tools and gateway stacks read the knowledge base

    def resize(template: dict[str, Any]) -> None:
        (index,) = resources_of(template, "AWS::S3Vectors::Index").values()
        index["Properties"]["Dimension"] = 512

    head = edited(base, stack, resize)
    report = review(base, head, [])
    stale = {(read.loss.diff.logical_id, read.reader): read for read in report.stale}
    assert {reader for logical_id, reader in stale if logical_id == kb_id} == readers
    assert all(not read.reader_changes for read in stale.values())
    section = report.sections()["losses"]
    assert f"`{kb_id}` (AWS::Bedrock::KnowledgeBase) in {stack}, replaced under the same logical id" in section
    assert "which does not change: `cdk deploy` skips it" in section
    assert f"; read by other stacks: {len(report.stale)} (section 2)" in report.markdown()

    # The reader changes too: it reads the new one once it updates (and the deleted one until then).
    reader = sorted(readers)[0]
    both = edited(head, reader, lambda t: t.setdefault("Description", "changed"))
    read = next(r for r in review(base, both, []).stale if r.reader == reader and r.loss.diff.logical_id == kb_id)
    assert read.reader_changes
    assert "reads the new one when it updates after it" in read.describe()


def test_a_handler_edit_lists_its_package(base: Assembly) -> None:
    report = review(base, base, ["lambdas/ai_gateway/handler.py", "stacks/production/gateway.py"])

    assert [c.package for c in report.code] == ["ai_gateway"]
    # Every function the package's asset deploys: the buffered and streaming gateway functions, the
    # jobs' worker and the ledger's sweeper.
    assert sorted(report.code[0].resources) == [
        f"{GATEWAY}/GatewayFunctionA7138035",
        f"{GATEWAY}/GatewayStreamFunction05E64F00",
        f"{GATEWAY}/JobsSweeperF806B727",
        f"{GATEWAY}/JobsWorker39987898",
    ]
    assert "| **ai_gateway** | ai_gateway |" in report.sections()["code"]


def test_a_shared_edit_lists_every_package_that_bundles_shared(base: Assembly) -> None:
    report = review(base, base, ["lambdas/shared/tools.py"])

    deployed = {p.name for p in (ROOT / "lambdas").iterdir() if (p / "__init__.py").is_file()} - {"shared"}
    assert {c.package for c in report.code} == deployed
    assert all(c.changed == ("shared",) for c in report.code)
    assert {"agent", "ai_gateway", "tool_guard"} <= {c.package for c in report.code}


def test_a_quota_change_is_one_key_path_in_the_runtime_document(
    base: Assembly, synthesize: Synthesizer, cdk_context: dict[str, Any]
) -> None:
    """The first group with a quota (the config's, not a name of the sample's) gets another limit."""
    production = load_config(cdk_context).production
    group, quotas = next((name, g.output_quotas) for name, g in production.groups.items() if g.output_quotas)
    output, quota = next(iter(quotas.items()))
    head = rv.read_assembly(
        synthesize(
            tier="production", **{f"blueprint.production.groups.{group}.output_quotas.{output}.limit": quota.limit + 1}
        ).outdir
    )

    report = review(same_stacks(base, head), head, [])
    sections = report.sections()

    line = f"`Content (JSON) groups.{group}.quotas.{output}.limit`: `{quota.limit}` → `{quota.limit + 1}`"
    assert line in sections["other"]
    assert report.exit_code == 0
    # A new version replaces the old one (deleted): nothing of a data store is at risk.
    (version,) = [line for line in sections["losses"].splitlines() if "HostedConfigurationVersion" in line]
    assert version.endswith("| — |")
    # A config change, not a code deploy: no function, version, alias or runtime changes (issue 18).
    deployed = ("AWS::Lambda::Function", "AWS::Lambda::Version", "AWS::Lambda::Alias", "AWS::BedrockAgentCore::Runtime")
    for name, template in head.templates.items():
        for logical, resource in template["Resources"].items():
            if resource["Type"] in deployed:
                assert base.templates[name]["Resources"].get(logical) == resource, f"{name}/{logical}"


def test_diff_values_reads_json_built_with_intrinsics() -> None:
    old = {"Fn::Join": ["", ['{"a":"', {"Ref": "X"}, '","n":1}']]}
    new = {"Fn::Join": ["", ['{"a":"', {"Ref": "X"}, '","n":2}']]}

    (change,) = diff_values(render(old), render(new), ("V",))

    assert change.describe() == "`V (JSON) n`: `1` → `2`"


def test_cdk_diff_cli_on_one_stack(assembly: Synthesized, tmp_path: Path) -> None:
    """The real CLI, offline: the head assembly folder as --app, a template file as the base."""
    stack = "genai-production-identity"
    template = json.loads((assembly.outdir / f"{stack}.template.json").read_text())
    same = tmp_path / "same.json"
    same.write_text(json.dumps(template))
    narrower = copy.deepcopy(template)
    for logical_id in list(resources_of(narrower, "AWS::IAM::Policy")):
        del narrower["Resources"][logical_id]
    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps(narrower))

    unchanged = rv.cdk_diff(assembly.outdir, stack, same)
    broader = rv.cdk_diff(assembly.outdir, stack, narrow)

    assert not unchanged.broadening
    assert broader.broadening
    assert "IAM Statement Changes" in broader.text


def test_a_renamed_stack_is_compared_with_its_former_self_and_its_data_stores_still_go(base: Assembly) -> None:
    old = "genai-production-identity"
    templates = dict(base.templates)
    templates["genai-production-people"] = templates.pop(old)
    head = Assembly(templates, base.bundles)

    report = review(base, head, [])
    moved = next(s for s in report.stacks if s.stack == "genai-production-people")
    (pool,) = [x for s in report.stacks for x in s.losses if x.diff.type == "AWS::Cognito::UserPool"]

    assert moved.moved_from == old
    assert not moved.diffs  # nothing differs from the stack it was (section 5)
    # but CloudFormation creates its roles and policies anew: every grant is a new one
    assert moved.access
    assert all(c.added for c in moved.access)
    assert report.exit_code == 2
    assert pool.diff.stack == old
    assert "genai-production-people makes a new, empty one" in pool.fate


def test_a_promotion_with_a_new_workload_shows_the_new_stacks_every_grant(base: Assembly) -> None:
    """Every `genai-sandbox-<workload>` stack has the same logical ids: one workload promoted (its
    sandbox stack leaves the app) and another added in the same change look like a renamed stack.
    The new stack's access is its own all the same, as if it had been added alone."""
    support = "genai-sandbox-support"
    billing = json.loads(json.dumps(base.templates[support]).replace("support", "billing"))
    alone = review(
        Assembly({support: base.templates[support]}),
        Assembly({support: base.templates[support], "genai-sandbox-billing": billing}),
        [],
    )
    swapped = Assembly({"genai-sandbox-billing": billing})

    report = review(Assembly({support: base.templates[support]}), swapped, [])
    (new,) = [s for s in report.stacks if s.stack == "genai-sandbox-billing"]
    (added,) = [s for s in alone.stacks if s.stack == "genai-sandbox-billing"]

    assert new.moved_from == support  # still compared with it in section 5
    assert new.access == added.access
    assert [d.key for d in new.auth] == [d.key for d in added.auth]
    assert report.exit_code == alone.exit_code == 2
    assert "- IAM / network: 0 added" not in report.markdown()


def test_a_stack_under_a_new_name_is_cdk_diffed_as_a_new_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against an empty template, as CloudFormation creates it: `cdk diff` against the stack it was
    would call a renamed stack's roles unchanged."""
    used: dict[str, str] = {}

    def diffed(app: Path, stack: str, template: Path) -> CdkDiff:
        used[stack] = template.read_text()
        return CdkDiff(stack, "", False)

    monkeypatch.setattr(rv, "cdk_diff", diffed)
    old = tmp_path / "old.template.json"
    old.write_text(json.dumps({"Resources": {"Role": {"Type": "AWS::IAM::Role"}}}))

    rv.cdk_diffs(tmp_path, {"old": old, "kept": old}, ["new", "kept"], tmp_path)

    assert used == {"new": "{}", "kept": old.read_text()}


def test_the_base_worktree_is_removed_also_on_failure(tmp_path: Path) -> None:
    linked = []

    def fail_in_worktree() -> None:
        with rv.base_checkout(rv.git("rev-parse", "HEAD").strip(), tmp_path) as checkout:
            linked.append((checkout / ".venv").is_symlink())
            raise RuntimeError("synth failed")

    with pytest.raises(RuntimeError, match="synth failed"):
        fail_in_worktree()

    assert linked == [True]

    assert not (tmp_path / "base").exists()
    assert str(tmp_path / "base") not in rv.git("worktree", "list")
    assert (ROOT / ".venv" / "bin" / "python").exists()  # the link went, not what it pointed to


def test_markdown_for_templates_is_the_report_one_heading_level_down(base: Assembly) -> None:
    """What tools/promote.py embeds under its own "##" heading."""
    after = edited(base, GATEWAY, _widen).templates

    text = markdown_for_templates(base.templates, after)

    assert text.startswith("**Access broadens: exit code 2")
    assert "\n### 1. IAM and network access\n" in text
    assert f"\n#### {GATEWAY}: " in text
    assert "\n# " not in text
    assert "\n## " not in text


def _user_tokens_for_agents(template: dict[str, Any]) -> None:
    """The agents back on a JWT authorizer: any signed-in user could call them past the gateway."""
    for runtime in resources_of(template, "AWS::BedrockAgentCore::Runtime").values():
        runtime["Properties"]["AuthorizerConfiguration"] = {
            "CustomJWTAuthorizer": {"DiscoveryUrl": "https://issuer/.well-known/openid-configuration"}
        }


def test_letting_user_tokens_reach_an_agent_loosens_authentication_and_exits_2(base: Assembly) -> None:
    # Each agent's runtime is in its own stack (<prefix>-production-agent-<name>).
    agents = [name for name in base.templates if "-production-agent-" in name]
    loose = base
    for stack in agents:
        loose = edited(loose, stack, _user_tokens_for_agents)
    report = review(base, loose, [])
    assert report.exit_code == 2
    # A value added whole is listed a leaf value a line: the discovery URL whole.
    assert (
        '`AuthorizerConfiguration.CustomJWTAuthorizer.DiscoveryUrl`: (absent) → `"https://issuer/'
        in (report.sections()["access"])
    )
    loosened = [line for line in report.sections()["access"].splitlines() if line.endswith("**loosens**")]
    assert len(loosened) == len(agents) == 2  # both runtimes
    assert all("AuthorizerConfiguration" in line and "CustomJWTAuthorizer" in line for line in loosened)
    # The other way round (a token authorizer taken away: IAM only) lets no one more in.
    back = review(loose, base, [])
    assert back.exit_code == 0
    assert all(not loosens(c) for s in back.stacks for d in s.diffs for c in d.changes)


@pytest.mark.parametrize(
    ("path", "old", "new", "loosened"),
    [
        (("AuthorizationType",), "CUSTOM", "NONE", True),
        (("AuthorizationType",), "NONE", "CUSTOM", False),
        (("AuthType",), "AWS_IAM", "NONE", True),
        (("AuthorizerType",), "CUSTOM_JWT", "NONE", True),
        (("AuthorizerType",), "NONE", "CUSTOM_JWT", False),
        (("ApiKeyRequired",), True, False, True),
        (("ApiKeyRequired",), False, True, False),
        (("AuthorizerConfiguration", "CustomJWTAuthorizer", "AllowedClients"), ["a"], ["a", "b"], True),
        (("AuthorizerConfiguration", "CustomJWTAuthorizer", "AllowedClients"), ["a", "b"], ["a"], False),
    ],
)
def test_what_loosens_authentication(path: tuple[str, ...], old: Any, new: Any, loosened: bool) -> None:
    assert loosens(Change(path, old, new)) is loosened


def test_the_tools_gateway_opened_to_unauthenticated_callers_loosens_and_exits_2(base: Assembly) -> None:
    """The AgentCore tools gateway's AuthorizerType is its authorization switch: NONE lets anyone
    call every MCP tool, as a method or Function URL with no authorization would."""

    def open_gateway(template: dict[str, Any]) -> None:
        (gateway,) = resources_of(template, "AWS::BedrockAgentCore::Gateway").values()
        assert gateway["Properties"]["AuthorizerType"] == "CUSTOM_JWT"
        gateway["Properties"]["AuthorizerType"] = "NONE"

    report = review(base, edited(base, TOOLS, open_gateway), [])

    (line,) = [line for line in report.sections()["access"].splitlines() if "`AuthorizerType`" in line]
    assert line.endswith('`AuthorizerType`: `"CUSTOM_JWT"` → `"NONE"` **loosens**')
    assert report.exit_code == 2


def _new_method(template: dict[str, Any], **auth: Any) -> None:
    """A method added at the root of the gateway's REST API: an HTTP proxy, so no Lambda permission
    (no grant) comes with it."""
    (api,) = resources_of(template, "AWS::ApiGateway::RestApi")
    integration = {"Type": "HTTP_PROXY", "IntegrationHttpMethod": "ANY", "Uri": "https://internal.example"}
    properties = {"HttpMethod": "ANY", "ResourceId": {"Fn::GetAtt": [api, "RootResourceId"]}, "RestApiId": {"Ref": api}}
    template["Resources"]["ProxyMethod"] = {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {**properties, **auth, "Integration": integration},
    }


def test_a_new_method_without_authorization_loosens_and_exits_2(base: Assembly) -> None:
    """An added resource's authentication settings are judged against absent ones: a new open
    method lets callers in as much as an existing one set to no authorization."""
    report = review(base, edited(base, GATEWAY, lambda t: _new_method(t, AuthorizationType="NONE")), [])

    assert (
        f'- {GATEWAY}: new `ProxyMethod` (AWS::ApiGateway::Method): `AuthorizationType`: (absent) → `"NONE"` **loosens**'
        in report.sections()["access"]
    )
    assert report.exit_code == 2

    # With the gateway's authorizer and an API key it is listed for the reader, and lets no one more in.
    (authorizer,) = resources_of(base.templates[GATEWAY], "AWS::ApiGateway::Authorizer")
    guarded = {"AuthorizationType": "CUSTOM", "AuthorizerId": {"Ref": authorizer}, "ApiKeyRequired": True}
    report = review(base, edited(base, GATEWAY, lambda t: _new_method(t, **guarded)), [])
    access = report.sections()["access"]
    assert (
        f'- {GATEWAY}: new `ProxyMethod` (AWS::ApiGateway::Method): `AuthorizationType`: (absent) → `"CUSTOM"`'
        in access
    )
    assert not [line for line in access.splitlines() if line.endswith("**loosens**")]
    assert report.exit_code == 0


# --- Without a synth: small templates ------------------------------------------------------------

STACK = "genai-sandbox-support"


def _policy(actions: Any, key: str = "Action", **more: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", key: actions, "Resource": "arn:aws:logs:us-east-1:1:log-group:/aws/kendra/*"}
    properties = {"PolicyDocument": {"Statement": [statement]}, "Roles": [{"Ref": "KendraIndexRole"}]}
    policy = {"Type": "AWS::IAM::Policy", "Properties": properties}
    return {"Resources": {"KendraIndexRoleDefaultPolicy": policy, **more}}


def _app(template: dict[str, Any]) -> Assembly:
    return Assembly({STACK: template})


def test_a_narrowed_statement_exits_0_and_shows_cdks_own_verdict_as_its_view() -> None:
    """`cdk diff` lists a statement whose actions shrink as a `+` row, so its --fail-on broadening
    says broadens: the exit code follows the structural comparison, and CDK's verdict is shown."""
    base = _app(_policy(["logs:CreateLogGroup", "logs:DeleteLogGroup"]))
    head = _app(_policy("logs:CreateLogGroup"))

    report = review(base, head, [], {STACK: CdkDiff(STACK, "[+] Allow logs:CreateLogGroup", True)})
    access = report.sections()["access"]

    assert report.exit_code == 0
    assert "| − | Allow | AWS:${KendraIndexRole} | `logs:DeleteLogGroup` |" in access
    assert f"CDK's view: `cdk diff` reports broadened access in {STACK}" in access
    assert "No IAM or network access broadens (exit code 0)." in report.markdown()


def test_cdk_diffs_broadening_counts_where_the_comparison_finds_no_access_change_to_explain_it() -> None:
    """A change the comparison does not read as access (here: none it sees) with `cdk diff` saying
    broadening: nothing explains CDK's verdict, so it calls for the second approval."""
    base = _app(_policy("logs:CreateLogGroup", Other={"Type": "AWS::SQS::QueuePolicy", "Properties": {"A": 1}}))
    head = _app(_policy("logs:CreateLogGroup", Other={"Type": "AWS::SQS::QueuePolicy", "Properties": {"A": 2}}))

    report = review(base, head, [], {STACK: CdkDiff(STACK, "[+] Allow sqs:SendMessage", True)})

    assert report.exit_code == 2
    assert "finds no access change there to explain it" in report.sections()["access"]
    assert review(base, head, [], {STACK: CdkDiff(STACK, "", False)}).exit_code == 0


def test_a_widened_statement_exits_2_whatever_cdk_diff_says() -> None:
    base = _app(_policy("logs:CreateLogGroup"))
    head = _app(_policy(["logs:CreateLogGroup", "logs:DeleteLogGroup"]))

    report = review(base, head, [], {STACK: CdkDiff(STACK, "", False)})

    assert report.exit_code == 2
    assert f"CDK's view: `cdk diff` reports no broadened access in {STACK}" in report.sections()["access"]
    assert review(base, head, [], {STACK: CdkDiff(STACK, "", True)}).exit_code == 2


def test_a_not_action_edit_is_not_judged_so_it_counts_as_broadening() -> None:
    wide = _app(_policy(["logs:CreateLogGroup", "logs:DeleteLogGroup"], key="NotAction"))
    narrow = _app(_policy(["logs:CreateLogGroup"], key="NotAction"))
    assert review(wide, narrow, []).exit_code == 2  # logs:DeleteLogGroup now allowed
    assert review(narrow, wide, []).exit_code == 2  # not judged either way


def test_a_stack_that_leaves_the_app_stays_deployed_until_deleted() -> None:
    """`cdk deploy` never deletes a stack that is no longer in the app (docs/promotion.md)."""
    bucket = {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete"}
    base = Assembly({STACK: _policy("logs:CreateLogGroup", Documents=bucket), "kept": {"Resources": {}}})
    head = Assembly({"kept": {"Resources": {}}})

    report = review(base, head, [])
    text = report.markdown()
    (loss,) = [x for s in report.stacks for x in s.losses if x.at_risk]

    assert report.exit_code == 0
    assert loss.fate == (
        "its stack is no longer in the app and stays deployed until deleted with "
        "`aws cloudformation delete-stack`; then it is deleted"
    )
    assert f"{STACK} is no longer in the app: it stays deployed, with the permissions it gives" in text
    assert "go with it" not in text
    assert "stack removed" not in text


def test_out_into_a_missing_folder_fails_before_any_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_run(*args: Any) -> int:
        raise AssertionError("ran")

    monkeypatch.setattr(rv, "run", no_run)
    assert rv.main(["--base", "HEAD", "--out", str(tmp_path / "nowhere" / "review.md")]) == 1
    assert "nowhere does not exist" in capsys.readouterr().err
    assert rv.main(["--base", "HEAD", "--out", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert rv.main(["--base=-x", "--out", str(tmp_path / "review.md")]) == 1
    assert "--base '-x': not a git ref" in capsys.readouterr().err


def test_changed_files_include_new_untracked_files_and_the_tree_is_dirty_only_when_it_is(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        rv.git("-c", "user.name=t", "-c", "user.email=t@example.com", *args, cwd=tmp_path)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / "cdk.json").write_text("{}")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    assert not rv.uncommitted(tmp_path)

    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "sales.json").write_text("{}")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "ignored.txt").write_text("")

    assert rv.uncommitted(tmp_path)
    assert rv.changed_files("HEAD", tmp_path) == ["workloads/sales.json"]
    assert (
        "Other changed files: `workloads` (1)"
        in review(Assembly({}), Assembly({}), ["workloads/sales.json"]).sections()["code"]
    )


def _joined_resource_policy(effect: str) -> dict[str, Any]:
    """A resource policy as CDK writes one with a token in it: JSON text in an Fn::Join."""
    head = (
        f'{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":"*","Action":"x:Invoke","Resource":"'
    )
    joined = {"Fn::Join": ["", [head, {"Fn::GetAtt": ["Runtime", "AgentRuntimeArn"]}, '"}]}']]}
    policy = {"Type": "AWS::BedrockAgentCore::RuntimeResourcePolicy", "Properties": {"Policy": joined}}
    return {"Resources": {"RuntimePolicy": policy}}


def test_a_resource_policy_written_as_a_join_is_read_and_its_widening_exits_2() -> None:
    """A Deny to "*" turned Allow in a policy CDK wrote as an Fn::Join of JSON and tokens: read once
    rendered, never left as an unreadable string (which hid it, exit 0)."""
    report = review(_app(_joined_resource_policy("Deny")), _app(_joined_resource_policy("Allow")), [])
    assert report.exit_code == 2
    assert "| + **broadens** | Allow | * | `x:Invoke` |" in report.sections()["access"]


def _conditioned(values: list[str]) -> Assembly:
    template = _policy("logs:CreateLogGroup")
    statement = template["Resources"]["KendraIndexRoleDefaultPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Condition"] = {"StringEquals": {"aws:SourceAccount": values}}
    return _app(template)


def test_values_of_a_condition_in_another_order_are_no_change() -> None:
    """IAM reads a condition's values as a set: another order neither broadens nor narrows."""
    assert review(_conditioned(["1", "2"]), _conditioned(["2", "1"]), []).exit_code == 0
    assert review(_conditioned(["1"]), _conditioned(["1", "2"]), []).exit_code == 2  # another value is


def _vector_index(keys: list[str]) -> dict[str, Any]:
    props = {"IndexName": "i", "MetadataConfiguration": {"NonFilterableMetadataKeys": keys}}
    return {"Resources": {"Index": {"Type": "AWS::S3Vectors::Index", "Properties": props}}}


def test_a_reordered_list_cloudformation_holds_unordered_replaces_nothing() -> None:
    """The schema says insertionOrder false: the order is not a change, let alone a replacement
    with the index's embeddings lost. Another key is."""
    keys = ["AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA"]
    reordered = review(_app(_vector_index(keys)), _app(_vector_index(keys[::-1])), [])
    assert "embeddings" not in reordered.sections()["losses"]
    changed = review(_app(_vector_index(keys)), _app(_vector_index([keys[0], "x-amz-other"])), [])
    assert "`MetadataConfiguration` changed (create-only)" in changed.sections()["losses"]


def _function(key: str) -> dict[str, Any]:
    code = {"S3Bucket": "cdk-assets", "S3Key": f"{key * 64}.zip"}
    return {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": code, "Handler": "h.h"}}}}


def test_new_code_no_changed_source_explains_is_listed_as_a_code_change() -> None:
    """Two template sets compared (no file list: a promotion report), or a dependency bump: the
    function's new asset hash is its code changing, said in the code section."""
    report = review(_app(_function("a")), _app(_function("b")), [])
    assert f"Code changed (new asset hash) with no changed source listed: `{STACK}/Fn`" in report.sections()["code"]
    assert "Code changed" not in review(_app(_function("a")), _app(_function("a")), []).sections()["code"]


def _invoke_permission(**limits: Any) -> Assembly:
    """Anyone ("*") may invoke the function, within ``limits`` (the permission's other properties)."""
    grant = {"Action": "lambda:InvokeFunction", "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]}, "Principal": "*"}
    permission = {"Type": "AWS::Lambda::Permission", "Properties": {**grant, **limits}}
    return _app({"Resources": {"FnInvoke": permission}})


@pytest.mark.parametrize("limit", [{"InvokedViaFunctionUrl": True}, {"EventSourceToken": "partner-token"}])
def test_a_public_lambda_permission_that_loses_its_limit_broadens(limit: dict[str, Any]) -> None:
    """InvokedViaFunctionUrl confines a public grant to calls through the function URL, and
    EventSourceToken to an event source holding the token; without either, anyone may invoke the
    function directly. Every property beyond action, function and principal is the grant's condition."""
    report = review(_invoke_permission(**limit), _invoke_permission(), [])
    access = report.sections()["access"]

    condition = json.dumps(limit, separators=(",", ":"))
    assert f"| − | Allow | AWS:* | `lambda:InvokeFunction` | ${{Fn.Arn}} | {condition} | `FnInvoke` |" in access
    assert "| + **broadens** | Allow | AWS:* | `lambda:InvokeFunction` | ${Fn.Arn} |   | `FnInvoke` |" in access
    assert report.exit_code == 2


def _read_docs(bucket: str) -> Assembly:
    """A role's grant on a bucket whose name an Fn::Sub takes from its variable map."""
    arn = {"Fn::Sub": ["arn:${AWS::Partition}:s3:::${Bucket}/*", {"Bucket": bucket}]}
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": arn}
    policy = {"PolicyDocument": {"Statement": [statement]}, "Roles": [{"Ref": "Role"}]}
    return _app({"Resources": {"ReadDocs": {"Type": "AWS::IAM::Policy", "Properties": policy}}})


def test_an_fn_sub_is_rendered_with_its_variables_so_a_grant_widened_through_one_is_seen() -> None:
    """Rendered as its text alone, the Fn::Sub was the same before and after: no change at all."""
    assert (
        render({"Fn::Sub": ["${Bucket}/${!Literal}/${Other.Arn}", {"Bucket": {"Ref": "Docs"}}]})
        == "${Docs}/${!Literal}/${Other.Arn}"
    )

    report = review(_read_docs("team-docs"), _read_docs("*"), [])
    access = report.sections()["access"]

    assert "| + **broadens** | Allow | AWS:${Role} | `s3:GetObject` | arn:${AWS::Partition}:s3:::*/* |" in access
    assert "| − | Allow | AWS:${Role} | `s3:GetObject` | arn:${AWS::Partition}:s3:::team-docs/* |" in access
    assert report.exit_code == 2


def test_a_changed_file_under_lambdas_outside_any_package_is_listed_by_its_path() -> None:
    """lambdas/requirements.txt is the Lambda layer's input: BASE is synthesized with today's build/,
    so the changed-file list is the only trace of a dependency change."""
    code = review(Assembly({}), Assembly({}), ["lambdas/requirements.txt", "docs/review.md"]).sections()["code"]

    assert code == "Other changed files: `docs` (1), `lambdas/requirements.txt`"


def test_a_changed_file_with_a_non_ascii_name_maps_to_its_package(tmp_path: Path) -> None:
    """git quotes such a path by default ("lambdas/shared/\\303\\251t\\303\\251.py"), which is in no package."""

    def git(*args: str) -> None:
        rv.git("-c", "user.name=t", "-c", "user.email=t@example.com", *args, cwd=tmp_path)

    git("init", "-q")
    package = tmp_path / "lambdas" / "shared"
    package.mkdir(parents=True)
    (package / "été.py").write_text("A = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    (package / "été.py").write_text("A = 2\n")
    (package / "nouveauté.py").write_text("B = 1\n")  # untracked

    files = rv.changed_files("HEAD", tmp_path)

    assert files == ["lambdas/shared/nouveauté.py", "lambdas/shared/été.py"]
    assert changed_packages(files) == {"shared": files}
