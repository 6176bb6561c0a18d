"""The review: every section over two synthesized apps (``review``), and the report for two sets
of templates without git or the CLI (``markdown_for_templates``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.reviewing.access import AccessChange, access_changes, loosened
from tools.reviewing.changes import Assembly, Change, ResourceDiff, diff_stack, template_changes
from tools.reviewing.data import DataHandling, data_handling
from tools.reviewing.losses import Loss, StaleRead, losses, replacements, stale_reads
from tools.reviewing.render import render_report, render_sections
from tools.reviewing.sources import CodeChange, code_changes, is_asset_change
from tools.reviewing.values import Template


@dataclass(frozen=True)
class CdkDiff:
    """What ``cdk diff`` says about one stack: its text, whether access broadens, replacement verdicts."""

    stack: str
    text: str
    broadening: bool
    verdicts: Mapping[str, str] = field(default_factory=dict)  # logical id -> replace, may be replaced, ...


@dataclass(frozen=True)
class StackReview:
    stack: str
    status: str  # "added", "removed", "modified", "unchanged" or "moved from <stack>"
    diffs: tuple[ResourceDiff, ...]
    access: tuple[AccessChange, ...]
    losses: tuple[Loss, ...]
    template_changes: tuple[Change, ...]
    cdk: CdkDiff | None
    moved_from: str = ""
    # Whose authentication settings are judged: the resources that differ, or, of a stack under a new
    # name, every one as added (CloudFormation creates them anew).
    auth: tuple[ResourceDiff, ...] = ()

    @property
    def broadening(self) -> bool:
        """Access broadens by the structural comparison: a broadening grant or rule, or loosened auth
        (of a resource changed or added, or a Cedar permit opened to every tool)."""
        return any(c.broadens for c in self.access) or any(loosened(d) for d in self.auth)

    @property
    def cdk_unexplained(self) -> bool:
        """``cdk diff`` reports broadening the comparison cannot account for: it found no access
        change at all in the stack (a policy it could not read, say), so no narrowing that CDK lists
        as a rewritten statement explains CDK's verdict."""
        return bool(self.cdk and self.cdk.broadening) and not self.broadening and not self.access


@dataclass(frozen=True)
class Report:
    stacks: tuple[StackReview, ...]
    data: DataHandling
    code: tuple[CodeChange, ...]
    changed_files: tuple[str, ...]
    picture: str | None = None
    stale: tuple[StaleRead, ...] = ()  # other stacks reading a resource replaced under its logical id
    assets: tuple[str, ...] = ()  # "<stack>/<logical id>" whose code asset's hash changed

    @property
    def broadening(self) -> bool:
        """The structural comparison's verdict (IAM, network, authentication), or ``cdk diff``'s
        where the comparison found no access change to explain it (StackReview.cdk_unexplained);
        where the comparison found only narrowing, CDK's verdict is shown as its view."""
        return any(s.broadening or s.cdk_unexplained for s in self.stacks)

    @property
    def exit_code(self) -> int:
        return 2 if self.broadening else 0

    def sections(self) -> dict[str, str]:
        return render_sections(self)

    def markdown(self, header: Sequence[str] = ()) -> str:
        return render_report(self, header)


def _stack_status(base: Template | None, head: Template | None, diffs: Sequence[Any]) -> str:
    return "added" if base is None else "removed" if head is None else "modified" if diffs else "unchanged"


# A stack only in head that shares this share of its logical ids with a stack only in base is taken
# for that stack under a new name (a renamed stack id) and compared with it.
MOVE_SHARE = 0.8


def moves(base: Mapping[str, Template], head: Mapping[str, Template]) -> dict[str, str]:
    """Head stacks that look like base stacks under a new name: head stack -> base stack."""
    gone = {name: set(t.get("Resources", {})) for name, t in base.items() if name not in head}
    found: dict[str, str] = {}
    for name in (n for n in head if n not in base):
        ids = set(head[name].get("Resources", {}))
        like = [old for old, old_ids in gone.items() if len(ids & old_ids) >= MOVE_SHARE * max(len(ids), len(old_ids))]
        if ids and like and like[0] not in found.values():
            found[name] = like[0]
    return found


def review_stack(
    stack: str, base: Template | None, head: Template | None, cdk: CdkDiff | None, moved: tuple[str, str] = ("", "")
) -> StackReview:
    """One stack; ``moved``: (the base stack a moved head stack is compared with, the head stack a
    removed base stack moved to). A moved stack's access is compared with nothing: its resources,
    roles and policies are created anew, so every grant is added."""
    moved_from, moved_to = moved
    every = diff_stack(stack, base, head)
    diffs = [d for d in every if d.status != "unchanged"]
    # A stack under a new name is created anew: its access is compared with nothing.
    before, auth = (None, diff_stack(stack, None, head)) if moved_from else (base, diffs)
    reasons = replacements(every, cdk.verdicts if cdk else {})
    extra = template_changes(base, head)
    status = f"moved from {moved_from}" if moved_from else _stack_status(base, head, [*diffs, *extra])
    note = f"; {moved_to} makes a new, empty one" if moved_to else ""
    return StackReview(
        stack,
        status,
        tuple(diffs),
        tuple(access_changes(stack, before, head)),
        () if moved_from else tuple(losses(every, reasons, note, stack_removed=head is None)),
        tuple(extra),
        cdk,
        moved_from,
        tuple(auth),
    )


def review(
    base: Assembly,
    head: Assembly,
    changed_files: Sequence[str],
    cdk: Mapping[str, CdkDiff] | None = None,
    draw: Callable[[dict[str, dict[str, Any]], set[str]], str] | None = None,
) -> Report:
    """Compare two synthesized apps. ``changed_files``: repository paths changed between them (source);
    ``cdk``: ``cdk diff`` results by stack, when the CLI ran; ``draw``: a diagram of the head app with
    the changed resources highlighted (tools/diagram.py's ``mermaid``)."""
    names = [*base.templates, *(name for name in head.templates if name not in base.templates)]
    moved = moves(base.templates, head.templates)
    moved_to = {old: new for new, old in moved.items()}
    stacks = tuple(
        review_stack(
            name,
            base.templates.get(moved.get(name, name)),
            head.templates.get(name),
            (cdk or {}).get(name),
            (moved.get(name, ""), moved_to.get(name, "")),
        )
        for name in names
    )
    diffs = [d for s in stacks for d in s.diffs]
    assets = {d.key for d in diffs if any(is_asset_change(c) for c in d.changes)}
    highlight = {d.key for d in diffs if d.status != "removed"}
    picture = draw({k: dict(v) for k, v in head.templates.items()}, highlight) if draw and highlight else None
    code = tuple(code_changes(head, changed_files, assets))
    changing = {s.stack for s in stacks if s.status != "unchanged"}
    stale = stale_reads(head.templates, (x for s in stacks for x in s.losses), changing)
    return Report(
        stacks, data_handling(diffs), code, tuple(changed_files), picture, tuple(stale), tuple(sorted(assets))
    )


def markdown_for_templates(
    before: Mapping[str, Template],
    after: Mapping[str, Template],
    draw: Callable[[dict[str, dict[str, Any]], set[str]], str] | None = None,
) -> str:
    """The report for two sets of templates (by stack), without git or the CLI, its headings one level
    down and without a title: for a document that embeds it under its own heading (tools/promote.py).
    ``draw``: as for ``review``, the picture of ``after`` with what changed highlighted."""
    body = render_report(review(Assembly(before), Assembly(after), [], draw=draw)).split("\n", 1)[1]
    lines, fenced = [], False
    for line in body.splitlines():
        fenced ^= line.startswith("```")
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(lines).strip() + "\n"
