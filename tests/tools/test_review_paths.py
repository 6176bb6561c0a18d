"""tools/review.py, the paths tests/tools/test_review.py leaves out: the Cedar permits' creation
chain (a group added or removed re-chains the next permit's DependsOn, folded into one line).

The chain is read from the synthesized tools stack.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

import pytest

from tests.infra.conftest import Assembly as Synthesized
from tools import review as rv

STACK = "genai-production-tools"
POLICY = rv.CEDAR_POLICY


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


def review_of(base: dict[str, Any], head: dict[str, Any]) -> rv.Report:
    return rv.review(rv.Assembly({STACK: base}), rv.Assembly({STACK: head}), [])


def test_a_group_added_into_the_chain_is_its_permit_and_one_folded_line(tools: dict[str, Any]) -> None:
    """customer-silver sorts between customer-gold and the permit after it: one permit added, and
    the next one's DependsOn re-pointed, which says nothing about what it permits."""
    resources = tools["Resources"]
    gold = next(k for k, r in resources.items() if r["Type"] == POLICY and "customer-gold" in rv.cedar_summary(r))
    head = with_group_after(tools, gold, "customer-silver")

    report = review_of(tools, head)
    data = report.sections()["data"]

    silver = rv.cedar_summary(resources[gold]).replace("`customer-gold`", "`customer-silver`")
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
