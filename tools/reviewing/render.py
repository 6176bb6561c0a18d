"""The report as Markdown: a summary, the five sections most important first, the picture and
``cdk diff``'s text."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tools.reviewing.access import AUTH_PATH, AccessChange, Grant, auth_changes, loosens, shown_as_access
from tools.reviewing.changes import Change, ResourceDiff
from tools.reviewing.data import CEDAR_POLICY, EVERY_TOOL, DataHandling, is_data_handling, opens_every_tool
from tools.reviewing.losses import Loss
from tools.reviewing.sources import changed_packages, is_asset_change, other_files

if TYPE_CHECKING:
    from tools.reviewing.report import Report  # which renders itself with these


SECTION_TITLES = {
    "access": "1. IAM and network access",
    "losses": "2. Replaced or removed resources",
    "data": "3. Data handling",
    "code": "4. Code",
    "other": "5. Everything else",
}


def render_sections(report: Report) -> dict[str, str]:
    return {
        "access": _access_section(report),
        "losses": _losses_section(report),
        "data": _data_section(report.data),
        "code": _code_section(report),
        "other": _other_section(report),
    }


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ") or " "


def _access_rows(changes: Iterable[AccessChange]) -> list[str]:
    """One row per statement-like group: the grants that share everything but action and resource are
    folded back into the actions and resources they came from (rules stay one per row)."""
    resources: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for c in changes:
        item = c.item
        if isinstance(item, Grant):
            resources[(c.added, c.broadens, c.source, item.effect, item.principal, item.condition, item.action)].append(
                item.resource
            )
        else:
            ports = f"{item.protocol} {item.ports}"
            resources[(c.added, c.broadens, c.source, item.direction, item.group, "", ports)].append(item.peer)
    actions: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for (*key, action), targets in resources.items():
        actions[(*key, tuple(sorted(targets)))].append(action)
    return [_access_row(key, names) for key, names in actions.items()]


def _access_row(key: tuple[Any, ...], actions: list[str]) -> str:
    added, broadens, source, effect, principal, condition, targets = key
    sign = ("+" if added else "−") + (" **broadens**" if broadens else "")
    cells = [effect, principal, "<br>".join(f"`{a}`" for a in sorted(actions)), "<br>".join(targets), condition]
    return "| " + " | ".join([sign, *map(_cell, cells), f"`{source}`"]) + " |"


def _auth_lines(diffs: Iterable[ResourceDiff]) -> list[str]:
    lines = []
    for d in diffs:
        subject = f"{d.stack}: {'new ' if d.status == 'added' else ''}{d}"
        for change in auth_changes(d):
            mark = " **loosens**" if loosens(change) else ""
            lines += [f"- {subject}: {line}{mark}" for line in change.lines()]
        if opens_every_tool(d):
            lines.append(f"- {subject}: its permit names no tool, so it permits {EVERY_TOOL} (section 3) **loosens**")
    return lines


def _access_section(report: Report) -> str:
    lines = []
    for stack in (s for s in report.stacks if s.access):
        broad = sum(c.broadens for c in stack.access)
        since = f" ({stack.moved_from} under a new name: created anew, every grant added)" if stack.moved_from else ""
        lines += [f"### {stack.stack}{since}: {len(stack.access)} permissions changed, {broad} broadening", ""]
        lines += [
            "| | Effect / direction | Principal / group | Actions / ports | Resources / peers | Condition | From |"
        ]
        lines += ["|---|---|---|---|---|---|---|", *_access_rows(stack.access), ""]
    auth = [line for s in report.stacks for line in _auth_lines(s.auth)]
    if auth:
        lines += [
            "**Authentication and authorization settings** (those marked **loosens** let more callers in and "
            "count as broadening; read the others)",
            "",
            *auth,
            "",
        ]
    for stack in report.stacks:
        if stack.status == "removed" and stack.stack not in _moved_to(report):
            lines.append(
                f"- {stack.stack} is no longer in the app: it stays deployed, with the permissions it gives, "
                "until deleted with `aws cloudformation delete-stack`."
            )
        elif stack.cdk_unexplained:
            lines.append(
                f"- `cdk diff` reports broadened access in {stack.stack} (see the appendix) and the "
                "statement-by-statement comparison finds no access change there to explain it: it calls for "
                "a second approval."
            )
        elif stack.cdk and stack.cdk.broadening and not stack.broadening:
            lines.append(
                f"- CDK's view: `cdk diff` reports broadened access in {stack.stack} (see the appendix); the "
                "statement-by-statement comparison above finds none there (an action or resource taken away "
                "rewrites the statement, which `cdk diff` lists as added), so it does not call for a second approval."
            )
        elif stack.cdk and not stack.cdk.broadening and stack.broadening:
            lines.append(
                f"- CDK's view: `cdk diff` reports no broadened access in {stack.stack}; the comparison above "
                "finds some, and that sets the exit code."
            )
    return "\n".join(lines).strip() or "No IAM statement or security-group rule changes."


def _loss_row(loss: Loss) -> str:
    change = "replaced" if loss.replaced else "removed"
    risk = f"**{loss.at_risk}**" if loss.at_risk and "retained" not in loss.fate else loss.at_risk or "—"
    cells = [loss.diff.stack, str(loss.diff), change, "; ".join(loss.reasons) or "—", loss.fate, risk]
    return "| " + " | ".join(map(_cell, cells)) + " |"


def _moved_to(report: Report) -> dict[str, str]:
    return {s.moved_from: s.stack for s in report.stacks if s.moved_from}


def _losses_section(report: Report) -> str:
    """Data stores first; of a removed stack, only its data stores one by one, the rest counted."""
    removed = {s.stack for s in report.stacks if s.status == "removed"}
    rows = sorted(
        (x for s in report.stacks for x in s.losses if x.at_risk or x.diff.stack not in removed),
        key=lambda x: (not x.at_risk, "retained" in x.fate, x.diff.stack, x.diff.logical_id),
    )
    lines = ["| Stack | Resource | Change | Why | What happens | Data at risk |", "|---|---|---|---|---|---|"]
    lines += map(_loss_row, rows)
    for s in (s for s in report.stacks if s.status == "removed"):
        rest = [x.diff for x in s.losses if not x.at_risk]
        moved = f" (moved to {_moved_to(report)[s.stack]})" if s.stack in _moved_to(report) else ""
        lines.append(
            f"| {s.stack} | {len(rest)} other resources | stack no longer in the app{moved} | — | "
            "they stay deployed until the stack is deleted with `aws cloudformation delete-stack` | — |"
        )
    if report.stale:
        lines += ["", "Read by other stacks (weak references resolve when the reader is deployed):", ""]
        lines += [f"- {read.describe()}" for read in report.stale]
    return "\n".join(lines) if len(lines) > 2 else "No resource is replaced or removed."


def _data_section(data: DataHandling) -> str:
    lines = []
    if data.permits or data.rechained:
        lines += ["**Tool bindings (Cedar policies)**", "", *(f"- {p}" for p in data.permits)]
        if data.rechained:
            count = len(data.rechained)
            what = "policies changed only their" if count > 1 else "policy changed only its"
            lines.append(f"- {count} other Cedar {what} DependsOn (the creation chain), not what it permits")
        lines.append("")
    if data.settings:
        lines += ["**Encryption, retention, guardrail, classifications and bindings**", ""]
        lines += [f"- {setting}" for setting in data.settings]
    return "\n".join(lines).strip() or "No data-handling changes."


def _code_section(report: Report) -> str:
    packages = changed_packages(report.changed_files)
    lines = []
    if packages:
        counted = (f"`lambdas/{package}` ({len(files)})" for package, files in sorted(packages.items()))
        lines.append("Changed in source: " + ", ".join(counted))
    others = other_files(packages, report.changed_files)
    # Under lambdas/ but in no package (the Lambda layer's requirements.txt): each file by its path.
    loose = sorted(path for path in others if path.startswith("lambdas/"))
    folders = Counter(path.split("/")[0] for path in others if not path.startswith("lambdas/"))
    shown = [*(f"`{top}` ({n})" for top, n in sorted(folders.items())), *(f"`{path}`" for path in loose)]
    if shown:
        lines.append("Other changed files: " + ", ".join(shown))
    if report.code:
        lines += ["", "| Package | Changed code it carries | Deployed as | Asset hash changed |", "|---|---|---|---|"]
        for c in report.code:
            deployed = ", ".join(f"`{key}`" for key in c.resources)
            asset = "yes" if c.asset_changed else "no"
            lines.append(f"| **{c.package}** | {', '.join(c.changed)} | {deployed} | {asset} |")
    undeployed = sorted(set(packages) - {p for c in report.code for p in c.changed})
    if undeployed:
        lines.append(f"\nChanged but deployed by no resource: {', '.join(undeployed)}")
    # A new code asset no changed source explains (a dependency, a build step, or no file list:
    # two template sets compared): its code changed all the same.
    explained = {key for c in report.code for key in c.resources}
    unexplained = [key for key in report.assets if key not in explained]
    if unexplained:
        lines.append(
            f"\nCode changed (new asset hash) with no changed source listed: {', '.join(f'`{k}`' for k in unexplained)}"
        )
    return "\n".join(lines).strip() or "No source changes under lambdas/."


def _shown_elsewhere(diff: ResourceDiff, change: Change) -> bool:
    """Whether an earlier section shows the change (of section 1, only the parts of statements and
    rules it renders: ``_other_lines`` asks that of each leaf value)."""
    return (
        diff.type == CEDAR_POLICY
        or is_data_handling(diff, change)
        or bool(AUTH_PATH.search(" ".join(change.path)))
        or is_asset_change(change)
    )


def _other_lines(diff: ResourceDiff) -> list[str]:
    """A modified resource's changes that no earlier section shows."""
    return [
        line
        for change in diff.changes
        if not _shown_elsewhere(diff, change)
        for line in change.lines(lambda leaf: not shown_as_access(diff.type, leaf.path))
    ]


# A change made identically to at least this many resources of a stack is listed once.
COLLAPSE_AT = 3


def _modified_lines(diffs: Sequence[ResourceDiff]) -> list[str]:
    """Per modified resource, its changes not shown in an earlier section (one made identically to
    COLLAPSE_AT resources or more is listed once, with the count)."""
    kept = [(d, lines) for d in diffs if d.status == "modified" and (lines := _other_lines(d))]
    repeated = Counter(line for _, lines in kept for line in lines)
    out = [f"- {n} resources: {line}" for line, n in repeated.items() if n >= COLLAPSE_AT]
    for diff, lines in kept:
        own = [line for line in lines if repeated[line] < COLLAPSE_AT]
        out += [f"- {diff}:", *(f"  - {line}" for line in own)] if own else []
    return out


def _by_type(diffs: Iterable[ResourceDiff]) -> str:
    grouped: dict[str, list[str]] = defaultdict(list)
    for diff in diffs:
        grouped[diff.type].append(f"`{diff.logical_id}`")
    return "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in sorted(grouped.items()))


def _other_section(report: Report) -> str:
    lines = ["| Stack | Status | Added | Removed | Modified |", "|---|---|---|---|---|"]
    for s in report.stacks:
        counts = Counter(d.status for d in s.diffs)
        lines.append(f"| {s.stack} | {s.status} | {counts['added']} | {counts['removed']} | {counts['modified']} |")
    for s in (s for s in report.stacks if s.status != "unchanged"):
        body = _modified_lines(s.diffs) + [f"- template: {line}" for c in s.template_changes for line in c.lines()]
        added = _by_type(d for d in s.diffs if d.status == "added")
        if added:
            body.insert(0, f"- added: {added}")
        if body:
            lines += ["", f"### {s.stack}", "", *body]
    return "\n".join(lines)


def _summary(report: Report) -> list[str]:
    access = [c for s in report.stacks for c in s.access]
    lost = [loss for s in report.stacks for loss in s.losses]
    verdict = (
        "**Access broadens: exit code 2, a second approval is needed.**"
        if report.broadening
        else ("No IAM or network access broadens (exit code 0).")
    )
    return [
        verdict,
        "",
        f"- IAM / network: {sum(c.added for c in access)} added, {sum(not c.added for c in access)} removed, "
        f"{sum(c.broadens for c in access)} broadening",
        f"- replaced or removed: {len(lost)}, of which data stores at risk: "
        f"{sum(bool(x.at_risk) and 'retained' not in x.fate for x in lost)}"
        + (f"; read by other stacks: {len(report.stale)} (section 2)" if report.stale else ""),
        f"- data handling: {len(report.data.permits)} Cedar policy changes, {len(report.data.settings)} settings",
        f"- code: {', '.join(c.package for c in report.code) or 'no deployed package changed'}",
        *(
            f"- {new} has the logical ids of {old}, which is no longer in the app: a stack under a new name, "
            f"compared with it in sections 3 to 5. CloudFormation makes {new}'s resources anew, so every "
            f"permission and authentication setting it has counts as added (section 1); {old} stays deployed "
            "until deleted with `aws cloudformation delete-stack`, and then its data stores go, or stay per their "
            "retention (section 2)"
            for old, new in _moved_to(report).items()
        ),
    ]


def _appendix(report: Report) -> list[str]:
    ran = [s for s in report.stacks if s.cdk]
    same = [s.stack for s in ran if s.cdk and "There were no differences" in s.cdk.text]
    lines = ["## Appendix: `cdk diff` per stack", ""]
    if same:
        lines += [f"No differences: {', '.join(same)}.", ""]
    for s in ran:
        if s.cdk and s.stack not in same:
            since = " (against an empty template: a stack under a new name is created anew)" if s.moved_from else ""
            text = s.cdk.text.strip()
            lines += [f"<details><summary>{s.stack}{since}</summary>", "", "```text", text, "```", "", "</details>", ""]
    return lines if ran else []


def render_report(report: Report, header: Sequence[str] = ()) -> str:
    lines = ["# Infrastructure review", "", *header, "", *_summary(report), ""]
    for key, body in render_sections(report).items():
        lines += [f"## {SECTION_TITLES[key]}", "", body, ""]
    if report.picture:
        lines += ["## Picture", "", "The app after the change; changed resources highlighted.", "", "```mermaid"]
        lines += [report.picture.rstrip(), "```", ""]
    return "\n".join(lines + _appendix(report)).rstrip() + "\n"
