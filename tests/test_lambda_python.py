"""tools/lambda_python.sh: the CPython that byte-compiles the Lambda layer and the agents'
dependencies is this machine's own when it has one of the runtime's version (a Mac or an Ubuntu
machine has no Debian archive to fetch one from), and one asked for by name is that one or none."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "tools" / "lambda_python.sh"
# The runtime's CPython `make setup` unpacked (Makefile: LAMBDA_PY): a real 3.14 to find on PATH.
RUNTIME_PYTHON = ROOT / "build" / "python3.14" / "python"


def run(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), **environment}
    return subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out"), "3.14"], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_cpython_of_the_runtimes_version_on_path_is_used_as_it_is(tmp_path: Path) -> None:
    assert RUNTIME_PYTHON.exists(), "run `make setup` first: it unpacks the runtime's CPython"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.14").symlink_to(RUNTIME_PYTHON)
    done = run(tmp_path, PATH=f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert "this machine's" in done.stdout  # found here, nothing downloaded
    wrapper = tmp_path / "out" / "python"
    version = subprocess.run(
        [str(wrapper), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    assert version.stdout.strip() == "(3, 14)"


def test_one_named_by_lambda_python_bin_must_be_that_version(tmp_path: Path) -> None:
    other = tmp_path / "python3.13"  # answers as a Python 3.13 would
    other.write_text("#!/usr/bin/env bash\necho 3.13\n")
    other.chmod(0o755)
    done = run(tmp_path, LAMBDA_PYTHON_BIN=str(other))
    assert done.returncode == 1
    assert f"LAMBDA_PYTHON_BIN={other} is Python 3.13, not 3.14" in done.stderr  # never another one instead
    assert not (tmp_path / "out").exists()
