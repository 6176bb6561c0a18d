"""tools/review.py, the paths tests/tools/test_review.py leaves out: the Cedar permits' creation
chain (a group added or removed re-chains the next permit's DependsOn, folded into one line),
security-group rules, and the data-handling lines for encryption, retention and the guardrail.

The chain is read from the synthesized tools stack; the rest runs on small templates.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any

import pytest

from tests.infra.conftest import Assembly as Synthesized
from tools.reviewing.access import Rule
from tools.reviewing.changes import LEAF_LINES, Assembly
from tools.reviewing.data import CEDAR_POLICY, cedar_parts, cedar_summary
from tools.reviewing.report import Report, review

STACK = "genai-production-tools"
POLICY = CEDAR_POLICY


# --- The Cedar permits' creation chain, on the synthesized tools stack --------------------------


@pytest.fixture(scope="module")
def tools(assembly: Synthesized) -> dict[str, Any]:
    template: dict[str, Any] = assembly.template("-production-tools")
    return template


def permits_in_chain_order(template: dict[str, Any]) -> list[str]:
    """The permits' logical ids, first created first (each DependsOn the one before it)."""
    resources = template["Resources"]
    permits = {key for key, r in resources.items() if r["Type"] == POLICY}
    before = {key: [d for d in resources[key].get("DependsOn", []) if d in permits] for key in permits}
    roots = [key for key in permits if not before[key]]
    order = roots if len(roots) == 1 else []
    while order and len(order) < len(permits):
        following = [key for key in permits if before[key] == [order[-1]]]
        if len(following) != 1:
            break
        order += following
    assert len(order) == len(permits), f"not one chain: {before}"
    return order


def test_each_permit_waits_for_the_one_before_it(tools: dict[str, Any]) -> None:
    """CDK's PolicyEngine.add_policy makes each policy DependsOn the one added before it, so the
    policy engine creates them one at a time (its documentation: concurrent policy operations fail
    with "Resource stabilization failed"). The stack keeps that chain; the review folds it."""
    resources = tools["Resources"]
    order = permits_in_chain_order(tools)
    assert len(order) >= 2
    for earlier, later in itertools.pairwise(order):
        chained = [d for d in resources[later]["DependsOn"] if resources.get(d, {}).get("Type") == POLICY]
        assert chained == [earlier]


def with_group_after(template: dict[str, Any], first: str, group: str) -> dict[str, Any]:
    """The tools template as the stack makes it with one more group, whose permit falls after
    ``first`` in the chain (names sort so) and permits what ``first`` permits: the new permit waits
    for ``first``, and the permit that waited for ``first`` now waits for the new one."""
    changed = copy.deepcopy(template)
    resources = changed["Resources"]
    order = permits_in_chain_order(template)
    second = order[order.index(first) + 1]
    new = copy.deepcopy(resources[first])
    new["Properties"]["Name"] = f"permit_{group.replace('-', '_')}"
    parts = new["Properties"]["Definition"]["Cedar"]["Statement"]["Fn::Join"][1]
    parts[-1] = re.sub(r'== "[^"]+"', f'== "{group}"', parts[-1])
    new["DependsOn"] = list(resources[second]["DependsOn"])
    resources[NEW_PERMIT] = new
    resources[second]["DependsOn"] = sorted(NEW_PERMIT if d == first else d for d in resources[second]["DependsOn"])
    return changed


NEW_PERMIT = "PolicyEnginePermitCustomerSilver"


def review_of(base: dict[str, Any], head: dict[str, Any]) -> Report:
    return review(Assembly({STACK: base}), Assembly({STACK: head}), [])


def test_a_group_added_into_the_chain_is_its_permit_and_one_folded_line(tools: dict[str, Any]) -> None:
    """customer-silver sorts between customer-gold and the permit after it: one permit added, and
    the next one's DependsOn re-pointed, which says nothing about what it permits."""
    resources = tools["Resources"]
    gold = next(k for k, r in resources.items() if r["Type"] == POLICY and "customer-gold" in cedar_summary(r))
    head = with_group_after(tools, gold, "customer-silver")

    report = review_of(tools, head)
    data = report.sections()["data"]

    silver = cedar_summary(resources[gold]).replace("`customer-gold`", "`customer-silver`")
    assert silver.startswith("permit `")
    assert report.data.permits == [f"+ {silver} ({STACK}, `{NEW_PERMIT}`)"]
    assert len(report.data.rechained) == 1
    assert "- 1 other Cedar policy changed only its DependsOn (the creation chain), not what it permits" in data
    # Nowhere else: not as a change under "everything else", not as access.
    assert "DependsOn" not in report.sections()["other"]
    assert report.sections()["access"] == "No IAM statement or security-group rule changes."
    assert report.exit_code == 0
    assert "- data handling: 1 Cedar policy changes, 0 settings" in report.markdown()


def test_a_group_removed_from_the_chain_is_its_permit_gone_and_one_folded_line(tools: dict[str, Any]) -> None:
    order = permits_in_chain_order(tools)
    assert len(order) >= 3
    head = copy.deepcopy(tools)
    resources = head["Resources"]
    gone = order[1]
    del resources[gone]
    resources[order[2]]["DependsOn"] = sorted(order[0] if d == gone else d for d in resources[order[2]]["DependsOn"])

    report = review_of(tools, head)

    (line,) = report.data.permits
    assert line.startswith("− permit `")
    assert line.endswith(f"({STACK}, `{gone}`)")
    assert report.data.rechained == [f"{STACK}/{order[2]}"]
    assert report.exit_code == 0


def test_a_permit_that_changes_what_it_permits_and_its_chain_is_shown_not_folded(tools: dict[str, Any]) -> None:
    order = permits_in_chain_order(tools)
    head = copy.deepcopy(tools)
    last = head["Resources"][order[-1]]
    parts = last["Properties"]["Definition"]["Cedar"]["Statement"]["Fn::Join"][1]
    parts[0] = parts[0].replace("action in [\n", 'action in [\n    AgentCore::Action::"orders___cancel_order",\n')
    last["DependsOn"] = [d for d in last["DependsOn"] if d != order[-2]]

    report = review_of(tools, head)

    (line,) = report.data.permits
    assert line.startswith("~ permit group `")
    assert ": +`orders___cancel_order`" in line
    assert report.data.rechained == []
    assert "DependsOn" not in report.sections()["data"]


def permit_of(template: dict[str, Any], group: str) -> tuple[str, list[Any]]:
    """A group's permit: its logical id and the parts its statement's Fn::Join joins (the first holds
    the scope, the last the group's condition)."""
    for key, resource in template["Resources"].items():
        if resource["Type"] == POLICY and cedar_parts(resource)[1] == group:
            parts: list[Any] = resource["Properties"]["Definition"]["Cedar"]["Statement"]["Fn::Join"][1]
            return key, parts
    raise AssertionError(f"no permit for {group}")


def test_a_permit_whose_condition_opens_up_with_a_new_tool_shows_the_condition_too(tools: dict[str, Any]) -> None:
    """The tool list said as names hid every other change of the statement: here a `when` that
    became always true (every caller of the gateway). Only a change beyond the tools adds the
    statement, shown with its scope's action left out."""
    with_tool = copy.deepcopy(tools)
    key, parts = permit_of(with_tool, "customer-basic")
    parts[0] = parts[0].replace("action in [\n", 'action in [\n    AgentCore::Action::"orders___find_orders",\n')
    opened = copy.deepcopy(with_tool)
    parts = permit_of(opened, "customer-basic")[1]
    parts[-1] = parts[-1].replace('== "customer-basic"', '== "customer-basic" || true')

    tool_only = review_of(tools, with_tool).data.permits
    (line,) = review_of(tools, opened).data.permits

    assert tool_only == [f"~ permit group `customer-basic`: +`orders___find_orders` ({STACK}, `{key}`)"]
    assert line.startswith("~ permit group `customer-basic`: +`orders___find_orders`; `Definition.Cedar.Statement`: ")
    assert '== \\"customer-basic\\" || true' in line
    assert "orders___find_orders" not in line.split("; ", 1)[1]  # the tools only once


def test_a_permit_opened_to_every_tool_says_so_and_loosens(tools: dict[str, Any]) -> None:
    """`action in [...]` become bare `action`: every tool on the gateway, not a tool taken away."""
    head = copy.deepcopy(tools)
    key, parts = permit_of(head, "customer-basic")
    listed = re.search(r"action in \[[^\]]*\]", parts[0])
    assert listed is not None
    parts[0] = parts[0].replace(listed[0], "action")

    report = review_of(tools, head)

    assert report.data.permits == [
        f"~ permit group `customer-basic`: every tool on the gateway (was `knowledge___knowledge_search`) "
        f"({STACK}, `{key}`) **loosens**"
    ]
    assert "permits every tool on the gateway (section 3) **loosens**" in report.sections()["access"]
    assert report.exit_code == 2
    # Back to naming its tools: said as such, and lets no one more in.
    back = review_of(head, tools)
    assert back.data.permits == [
        f"~ permit group `customer-basic`: `knowledge___knowledge_search` (was every tool on the gateway) "
        f"({STACK}, `{key}`)"
    ]
    assert back.exit_code == 0


def test_a_policy_in_the_schemas_other_form_is_read_and_one_without_a_statement_too(tools: dict[str, Any]) -> None:
    """AWS::BedrockAgentCore::Policy's Definition holds its statement under Cedar or under Policy;
    reading only Cedar crashed the report (TypeError) on the other."""
    head = copy.deepcopy(tools)
    key, _ = permit_of(tools, "customer-basic")
    permit = head["Resources"][key]
    permit["Properties"]["Definition"] = {"Policy": permit["Properties"]["Definition"]["Cedar"]}
    permit["Properties"]["Name"] = "permit_customer_silver"
    parts = permit["Properties"]["Definition"]["Policy"]["Statement"]["Fn::Join"][1]
    parts[-1] = parts[-1].replace('"customer-basic"', '"customer-silver"')
    head["Resources"][NEW_PERMIT] = head["Resources"].pop(key)

    report = review_of(tools, head)

    assert f"+ permit `knowledge___knowledge_search` to group `customer-silver` ({STACK}, `{NEW_PERMIT}`)" in (
        report.data.permits
    )
    assert cedar_parts({"Type": POLICY, "Properties": {"Definition": {}}}) == ("policy", None, [], "")


# --- Security-group rules --------------------------------------------------------------------------

NET = "genai-production-network"


def _group(ingress: list[dict[str, Any]] | None = None, egress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"GroupDescription": "tools", "VpcId": "vpc-1"}
    if ingress is not None:
        properties["SecurityGroupIngress"] = ingress
    if egress is not None:
        properties["SecurityGroupEgress"] = egress
    return {"Type": "AWS::EC2::SecurityGroup", "Properties": properties}


HTTPS_OUT = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}
FROM_PEER = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "SourceSecurityGroupId": {"Ref": "Peer"}}


def net(**resources: dict[str, Any]) -> Assembly:
    return Assembly({NET: {"Resources": resources}})


def test_an_ingress_rule_added_to_a_security_group_broadens_and_exits_2() -> None:
    base = net(Sg=_group(egress=[HTTPS_OUT]))
    head = net(Sg=_group(ingress=[FROM_PEER], egress=[HTTPS_OUT]))

    report = review(base, head, [])
    access = report.sections()["access"]

    (change,) = [c for s in report.stacks for c in s.access]
    assert change.item == Rule(NET, "Ingress", "${Sg}", "tcp", "5432-5432", "SourceSecurityGroupId=${Peer}")
    assert (change.added, change.broadens, change.source) == (True, True, "Sg")
    assert "| + **broadens** | Ingress | ${Sg} | `tcp 5432-5432` | SourceSecurityGroupId=${Peer} |" in access
    assert f"### {NET}: 1 permissions changed, 1 broadening" in access
    assert report.exit_code == 2
    # Shown here, so not again under "everything else".
    assert "SecurityGroupIngress" not in report.sections()["other"]


def test_a_rule_removed_narrows_and_a_port_change_is_one_removed_and_one_added() -> None:
    base = net(Sg=_group(egress=[HTTPS_OUT]))
    removed = review(base, net(Sg=_group(egress=[])), [])
    (change,) = [c for s in removed.stacks for c in s.access]
    assert (change.added, change.broadens) == (False, False)
    assert "| − | Egress | ${Sg} | `tcp 443-443` | CidrIp=0.0.0.0/0 |" in removed.sections()["access"]
    assert removed.exit_code == 0

    moved = review(base, net(Sg=_group(egress=[{**HTTPS_OUT, "FromPort": 80, "ToPort": 80}])), [])
    assert sorted((c.added, c.item.ports) for s in moved.stacks for c in s.access if isinstance(c.item, Rule)) == [
        (False, "443-443"),
        (True, "80-80"),
    ]
    assert moved.exit_code == 2


def test_a_standalone_ingress_resource_is_a_rule_of_the_group_it_names() -> None:
    """AWS::EC2::SecurityGroupIngress (CDK writes one for a rule between two groups)."""
    rule = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {**FROM_PEER, "GroupId": {"Ref": "Sg"}}}
    base = net(Sg=_group())
    head = net(Sg=_group(), SgFromPeer=rule)

    report = review(base, head, [])

    (change,) = [c for s in report.stacks for c in s.access]
    assert change.item == Rule(NET, "Ingress", "${Sg}", "tcp", "5432-5432", "SourceSecurityGroupId=${Peer}")
    assert (change.source, change.broadens) == ("SgFromPeer", True)
    # Taking it away again narrows.
    back = review(head, base, [])
    assert [(c.added, c.broadens) for s in back.stacks for c in s.access] == [(False, False)]
    assert back.exit_code == 0


# --- Data handling: encryption, retention, the guardrail -----------------------------------------

DATA = "genai-production-knowledge"


def bucket(algorithm: str = "aws:kms", **top: Any) -> dict[str, Any]:
    encryption = {"ServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}
    properties = {"BucketEncryption": {"ServerSideEncryptionConfiguration": [encryption]}}
    return {"Type": "AWS::S3::Bucket", "Properties": properties, **top}


def log_group(days: int | None = 30) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "Properties": {} if days is None else {"RetentionInDays": days}}


PII = [{"Action": "BLOCK", "Type": "CREDIT_DEBIT_CARD_NUMBER"}, {"Action": "ANONYMIZE", "Type": "EMAIL"}]


def guardrail(pii: list[dict[str, str]] = PII, **more: Any) -> dict[str, Any]:
    properties = {"Name": "gateway", "SensitiveInformationPolicyConfig": {"PiiEntitiesConfig": pii}, **more}
    return {"Type": "AWS::Bedrock::Guardrail", "Properties": properties}


def settings_of(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    report = review(Assembly({DATA: {"Resources": base}}), Assembly({DATA: {"Resources": head}}), [])
    assert report.exit_code == 0
    return report.data.settings


def test_an_encryption_change_is_a_data_handling_line() -> None:
    (line,) = settings_of({"Docs": bucket()}, {"Docs": bucket("AES256")})
    assert line == (
        f"{DATA}: `Docs` (AWS::S3::Bucket): "
        "`BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm`: "
        '`"aws:kms"` → `"AES256"`'
    )


def test_retention_changes_are_data_handling_lines() -> None:
    assert settings_of({"Logs": log_group(30)}, {"Logs": log_group(7)}) == [
        f"{DATA}: `Logs` (AWS::Logs::LogGroup): `RetentionInDays`: `30` → `7`"
    ]
    assert settings_of({"Logs": log_group(30)}, {"Logs": log_group(None)}) == [
        f"{DATA}: `Logs` (AWS::Logs::LogGroup): `RetentionInDays`: `30` → (absent)"
    ]
    # What happens to the data when the resource goes is data handling too.
    assert settings_of({"Docs": bucket(DeletionPolicy="Retain")}, {"Docs": bucket(DeletionPolicy="Delete")}) == [
        f'{DATA}: `Docs` (AWS::S3::Bucket): `DeletionPolicy`: `"Retain"` → `"Delete"`'
    ]


def test_a_guardrail_change_is_a_data_handling_line_per_entity_by_its_type() -> None:
    """Every guardrail setting is data handling; its PII entities are matched by type, so one
    added in the middle of the sorted list is one line, not a shift of every later one."""
    stronger = [{"Action": "BLOCK", "Type": "CREDIT_DEBIT_CARD_NUMBER"}, {"Action": "BLOCK", "Type": "EMAIL"}]
    assert settings_of({"Guardrail": guardrail()}, {"Guardrail": guardrail(stronger)}) == [
        f"{DATA}: `Guardrail` (AWS::Bedrock::Guardrail): "
        '`SensitiveInformationPolicyConfig.PiiEntitiesConfig[Type=EMAIL].Action`: `"ANONYMIZE"` → `"BLOCK"`'
    ]
    more = [PII[0], {"Action": "ANONYMIZE", "Type": "ADDRESS"}, PII[1]]
    assert settings_of({"Guardrail": guardrail()}, {"Guardrail": guardrail(more)}) == [
        f"{DATA}: `Guardrail` (AWS::Bedrock::Guardrail): "
        f'`SensitiveInformationPolicyConfig.PiiEntitiesConfig[Type=ADDRESS].{key}`: (absent) → `"{value}"`'
        for key, value in (("Action", "ANONYMIZE"), ("Type", "ADDRESS"))
    ]
    # Its messages too (the guardrail's every setting), but not its tags or description.
    assert settings_of(
        {"Guardrail": guardrail(BlockedInputMessaging="No.")},
        {"Guardrail": guardrail(BlockedInputMessaging="Refused.")},
    ) == [f'{DATA}: `Guardrail` (AWS::Bedrock::Guardrail): `BlockedInputMessaging`: `"No."` → `"Refused."`']
    assert settings_of({"Guardrail": guardrail(Description="a")}, {"Guardrail": guardrail(Description="b")}) == []


def test_new_and_removed_data_resources_are_listed_with_their_settings() -> None:
    assert settings_of({}, {"Docs": bucket(), "Logs": log_group(None)}) == [
        f"{DATA}: new `Docs` (AWS::S3::Bucket): "
        "`BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm` = "
        '`"aws:kms"`',
        f"{DATA}: new `Logs` (AWS::Logs::LogGroup): no encryption or retention settings",
    ]
    assert settings_of({"Guardrail": guardrail()}, {}) == [f"{DATA}: removed `Guardrail` (AWS::Bedrock::Guardrail)"]


def processor(policies: dict[str, str]) -> dict[str, Any]:
    """The ingestion processor as the knowledge stack writes it: each classification's policy for
    personal data in its environment (CLASSIFICATION_POLICIES, JSON)."""
    variables = {"CLASSIFICATION_POLICIES": json.dumps(policies), "DEFAULT_CLASSIFICATION": "internal"}
    return {"Type": "AWS::Lambda::Function", "Properties": {"Environment": {"Variables": variables}}}


def readers(readers: dict[str, list[str]]) -> dict[str, Any]:
    """The ClassificationReaders runtime document (AppConfig): which groups may retrieve each classification."""
    content = json.dumps({"classification_readers": readers}, separators=(",", ":"))
    return {"Type": "AWS::AppConfig::HostedConfigurationVersion", "Properties": {"Content": content}}


def test_a_classification_policy_or_its_readers_changed_in_config_is_a_data_handling_line() -> None:
    """`production.ingestion.classifications.<c>.on_pii` reaches the processor's environment and a
    group's `data_classifications` the readers document: each change is listed under data handling,
    by the key that changed inside the JSON."""
    policies = {"customer": "mask", "public": "quarantine"}
    assert settings_of(
        {"Processor": processor(policies)}, {"Processor": processor({**policies, "customer": "quarantine"})}
    ) == [
        f"{DATA}: `Processor` (AWS::Lambda::Function): `Environment.Variables.CLASSIFICATION_POLICIES (JSON) customer`: "
        '`"mask"` → `"quarantine"`'
    ]
    before = {"customer": ["customer-gold"], "public": ["customer-gold"]}
    after = {"customer": ["customer-gold", "customer-basic"], "public": ["customer-gold"]}
    assert settings_of({"Readers": readers(before)}, {"Readers": readers(after)}) == [
        f"{DATA}: `Readers` (AWS::AppConfig::HostedConfigurationVersion): "
        '`Content (JSON) classification_readers.customer`: + `"customer-basic"`'
    ]


def test_a_change_outside_data_handling_is_not_listed_there() -> None:
    """A bucket's new tag is no data handling: it is under "everything else" only."""
    tagged = bucket()
    tagged["Properties"]["Tags"] = [{"Key": "team", "Value": "support"}]
    before, after = ({DATA: {"Resources": {"Docs": b}}} for b in (bucket(), tagged))

    report = review(Assembly(before), Assembly(after), [])

    assert report.data.settings == []
    assert report.sections()["data"] == "No data-handling changes."
    assert (
        '- `Docs` (AWS::S3::Bucket):\n  - `Tags[Key=team].Key`: (absent) → `"team"`\n'
        '  - `Tags[Key=team].Value`: (absent) → `"support"`' in (report.sections()["other"])
    )


# --- Everything else: what no earlier section shows, each value whole ------------------------------

IDENTITY = "genai-production-identity"


def other_of(base: dict[str, Any], head: dict[str, Any]) -> str:
    return review(Assembly({IDENTITY: {"Resources": base}}), Assembly({IDENTITY: {"Resources": head}}), []).sections()[
        "other"
    ]


def user_pool(minimum: int) -> dict[str, Any]:
    policy = {"MinimumLength": minimum, "RequireSymbols": True}
    return {"Type": "AWS::Cognito::UserPool", "Properties": {"Policies": {"PasswordPolicy": policy}}}


def function_in(group: str) -> dict[str, Any]:
    vpc = {"SecurityGroupIds": [group], "SubnetIds": ["subnet-1"]}
    return {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "x.handler", "VpcConfig": vpc}}


def inline_policy(name: str, sid: str, version: str, action: str) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": "*"}
    document = {"Version": version, "Statement": [statement]}
    principal = {"Service": "lambda.amazonaws.com"}
    trust = {"Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}
    policies = [{"PolicyName": name, "PolicyDocument": document}]
    return {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust, "Policies": policies}}


def test_a_change_named_like_a_policy_or_a_security_group_but_not_shown_in_section_1_is_listed() -> None:
    """Section 1 shows the parts of statements that make grants (and rules' ports and peers): a
    password policy, a function's security groups, a statement's Sid, a document's Version or a
    policy's name are listed under "everything else"; a statement's action is not (it is in section 1)."""
    pool = other_of({"UserPool": user_pool(14)}, {"UserPool": user_pool(6)})
    assert "`Policies.PasswordPolicy.MinimumLength`: `14` → `6`" in pool

    vpc = other_of({"Fn": function_in("sg-1")}, {"Fn": function_in("sg-2")})
    assert '`VpcConfig.SecurityGroupIds`: + `"sg-2"`, − `"sg-1"`' in vpc

    role = other_of(
        {"Role": inline_policy("read", "Read", "2012-10-17", "s3:GetObject")},
        {"Role": inline_policy("reader", "Reading", "2008-10-17", "s3:PutObject")},
    )
    assert '`Policies[0].PolicyName`: `"read"` → `"reader"`' in role
    assert '`Policies[0].PolicyDocument.Version`: `"2012-10-17"` → `"2008-10-17"`' in role
    assert 'Statement[Sid=Reading].Sid`: (absent) → `"Reading"`' in role
    assert "s3:PutObject" not in role
    assert "Statement[Sid=Reading].Action" not in role


def runtime_document(outputs: dict[str, Any] | None) -> dict[str, Any]:
    content = json.dumps({} if outputs is None else {"outputs": outputs}, separators=(",", ":"))
    return {"Type": "AWS::AppConfig::HostedConfigurationVersion", "Properties": {"Content": content}}


def test_a_new_object_is_listed_a_value_a_line_not_cut_at_100_characters() -> None:
    """A new output type in the gateway's runtime document is one new key: each of its values on its
    own line, so its price and token limit show however long its instructions are."""
    answer = {"instructions": "Answer from the documents. " * 5, "max_tokens": 800, "unit_price_usd": 0.01, "units": 1}

    other = other_of({"Config": runtime_document({})}, {"Config": runtime_document({"policy_answer": answer})})

    assert "  - `Content (JSON) outputs.policy_answer.max_tokens`: (absent) → `800`" in other
    assert "  - `Content (JSON) outputs.policy_answer.unit_price_usd`: (absent) → `0.01`" in other
    assert "  - `Content (JSON) outputs.policy_answer.units`: (absent) → `1`" in other
    # and taken away, each value it had
    gone = other_of({"Config": runtime_document({"policy_answer": answer})}, {"Config": runtime_document({})})
    assert "  - `Content (JSON) outputs.policy_answer.unit_price_usd`: `0.01` → (absent)" in gone


def test_a_new_object_with_very_many_values_is_listed_up_to_a_bound() -> None:
    many = {f"output_{n:02}": {"units": n} for n in range(LEAF_LINES + 5)}

    other = other_of({"Config": runtime_document(None)}, {"Config": runtime_document(many)})

    assert other.count("(absent) →") == LEAF_LINES
    assert "  - `Content (JSON) outputs`: 5 more values not listed" in other
