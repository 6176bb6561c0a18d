"""tools/tree_digest.py: the digest the stacks use as a built bundle's asset hash."""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.tree_digest import main, tree_digest


def a_tree(root: Path) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-314.pyc").write_bytes(b"\x2b\x0e\r\n compiled")
    (root / "top.py").write_text("y = 2\n")
    return root


def test_the_same_files_elsewhere_give_the_same_digest(tmp_path: Path) -> None:
    first = a_tree(tmp_path / "one")
    shutil.copytree(first, tmp_path / "two")
    assert tree_digest(first) == tree_digest(tmp_path / "two")


def test_any_change_of_content_name_or_place_changes_the_digest(tmp_path: Path) -> None:
    root = a_tree(tmp_path / "tree")
    seen = {tree_digest(root)}
    (root / "pkg" / "__pycache__" / "__init__.cpython-314.pyc").write_bytes(b"\x2b\x0e\r\n recompiled")
    seen.add(tree_digest(root))
    (root / "top.py").rename(root / "pkg" / "top.py")
    seen.add(tree_digest(root))
    (root / "pkg" / "top.py").rename(root / "pkg" / "other.py")
    seen.add(tree_digest(root))
    (root / "pkg" / "empty.txt").write_bytes(b"")
    seen.add(tree_digest(root))
    assert len(seen) == 5


def test_a_file_boundary_cannot_be_moved_without_changing_the_digest(tmp_path: Path) -> None:
    """Path and size go before each file's bytes: "ab" + "c" and "a" + "bc" differ."""
    one, two = tmp_path / "one", tmp_path / "two"
    for root, (first, second) in ((one, (b"ab", b"c")), (two, (b"a", b"bc"))):
        root.mkdir()
        (root / "1").write_bytes(first)
        (root / "2").write_bytes(second)
    assert tree_digest(one) != tree_digest(two)


def test_the_command_writes_the_digest_beside_the_tree(tmp_path: Path) -> None:
    root = a_tree(tmp_path / "layer")
    main([str(root), str(tmp_path / "layer.sha256")])
    assert (tmp_path / "layer.sha256").read_text() == tree_digest(root) + "\n"
