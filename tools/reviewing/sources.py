"""4. Code: source changes mapped to the packages and resources that deploy them (asset hashes
say only "changed")."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tools.reviewing.changes import Assembly, Change
from tools.reviewing.values import at

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def is_asset_change(change: Change) -> bool:
    """A change of an asset's hash only (S3 key of a Lambda function's, a layer's or an agent's code)."""
    old, new = change.old, change.new
    return isinstance(old, str) and isinstance(new, str) and ASSET_HASH.sub("#", old) == ASSET_HASH.sub("#", new)


@dataclass(frozen=True)
class CodeChange:
    package: str
    changed: tuple[str, ...]  # the changed packages it is deployed with (itself, shared ones)
    resources: tuple[str, ...]  # "<stack>/<logical id>" deployed with its code
    asset_changed: bool  # whether the head template's asset hash differs for every one of them


def changed_packages(changed_files: Iterable[str]) -> dict[str, list[str]]:
    """Changed files under lambdas/<package>/, by package."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in changed_files:
        parts = path.split("/")
        if len(parts) > 2 and parts[0] == "lambdas" and "__pycache__" not in parts:
            found[parts[1]].append(path)
    return dict(found)


def other_files(packages: Mapping[str, Sequence[str]], changed_files: Iterable[str]) -> list[str]:
    """Changed files in no package of ``packages`` (``changed_packages``): elsewhere in the repository,
    or under lambdas/ outside a package (``lambdas/requirements.txt``, the Lambda layer's input)."""
    packaged = {path for paths in packages.values() for path in paths}
    return [path for path in changed_files if path not in packaged and "__pycache__" not in path.split("/")]


def owners(head: Assembly) -> dict[str, frozenset[str]]:
    """The package each code asset is deployed as: a function's handler package, else the packages of
    its bundle that the fewest bundles carry (``shared`` travels with every one)."""
    counts = Counter(package for bundle in set(head.bundles.values()) for package in bundle)
    found = {}
    for key, bundle in head.bundles.items():
        stack, logical_id = key.split("/", 1)
        handler = at(head.templates.get(stack, {}), ("Resources", logical_id, "Properties", "Handler"))
        own = str(handler).split(".")[0] if isinstance(handler, str) else ""
        fewest = min(counts[p] for p in bundle)
        found[key] = frozenset([own]) if own in bundle else frozenset(p for p in bundle if counts[p] == fewest)
    return found


def code_changes(head: Assembly, changed_files: Iterable[str], asset_changes: set[str]) -> list[CodeChange]:
    packages = changed_packages(changed_files)
    deployed: dict[str, list[str]] = defaultdict(list)
    via: dict[str, set[str]] = defaultdict(set)
    for key, own in owners(head).items():
        hit = head.bundles[key] & packages.keys()
        for package in own if hit else ():
            deployed[package].append(key)
            via[package] |= hit
    return [
        CodeChange(p, tuple(sorted(via[p])), tuple(sorted(deployed[p])), all(k in asset_changes for k in deployed[p]))
        for p in sorted(deployed)
    ]
