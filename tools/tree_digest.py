"""The SHA-256 of a directory tree's contents: every file's path (relative, sorted) and bytes.

    python tools/tree_digest.py DIR OUT     # writes the hex digest to OUT

`make layer` and `make agent-deps` write one for what they built (build/layer.sha256,
build/agent-deps.sha256), once per build: the stacks use it as the asset's hash, so a synth does not
read the whole tree again, and any change of content (a version, a platform tag, a compile flag)
changes it. The same files give the same digest on any machine, so a rebuild elsewhere does not
publish a new layer.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not Path(argv[0]).is_dir():
        sys.exit("usage: python tools/tree_digest.py DIR OUT")
    Path(argv[1]).write_text(tree_digest(Path(argv[0])) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
