"""Fixtures shared by the tools' tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools import diagram


@pytest.fixture
def drawn_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The files `make diagram` writes (docs/architecture.md, README.md), as copies it may write instead."""
    page, readme = tmp_path / "architecture.md", tmp_path / "README.md"
    shutil.copyfile(diagram.OUTPUT, page)
    shutil.copyfile(diagram.README, readme)
    monkeypatch.setattr(diagram, "OUTPUT", page)
    monkeypatch.setattr(diagram, "README", readme)
    return page, readme
