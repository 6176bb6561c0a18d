"""The versions a fresh machine installs are the versions that ship: a package pinned in more than
one requirements file (the venv the tests run in, the Lambda layer, the agents' asset) is pinned to
the same version everywhere, so no test passes against a version that is not deployed. ADOT pins
OpenTelemetry exactly; a clash there makes pip fall back to an ancient strands-agents."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(
    {*ROOT.glob("requirements*.txt"), ROOT / "lambdas" / "requirements.txt", *ROOT.glob("lambdas/*/requirements.txt")}
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line.strip()):
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_every_requirements_file_pins_exactly() -> None:
    loose = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in FILES
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith(("#", "-")) and not PIN.match(line.strip())
    ]
    assert loose == []


def test_a_package_pinned_twice_has_one_version() -> None:
    versions: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in FILES:
        for name, version in pins(path).items():
            versions[name][version].append(str(path.relative_to(ROOT)))
    clashes = {name: dict(by) for name, by in versions.items() if len(by) > 1}
    assert clashes == {}


def test_the_files_are_the_projects_own() -> None:
    """Guards the guard: the layer's and the agents' files are among those compared."""
    names = {str(path.relative_to(ROOT)) for path in FILES}
    assert {
        "requirements.txt",
        "requirements-dev.txt",
        "lambdas/requirements.txt",
        "lambdas/agent/requirements.txt",
    } <= names
    assert all(pins(ROOT / name) for name in names)
