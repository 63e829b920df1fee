"""Which files an ingest reads: the inputs given, walked recursively, filtered by globs.

Workspace material and links out of the given folders are refused or skipped by
:mod:`garrison.ingest._guard`.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from garrison.core.errors import InvalidInput
from garrison.ingest._guard import InputGuard, walk_inputs

__all__ = ["hash_file", "iter_files"]


def iter_files(
    paths: Sequence[str],
    include: Sequence[str],
    exclude: Sequence[str],
    *,
    guard: InputGuard | None = None,
    skipped: list[str] | None = None,
) -> Iterator[tuple[Path, str]]:
    """Every file under ``paths`` (recursively, sorted) that passes the include/exclude globs.

    Globs match the path relative to the directory given, or the file name. Symbolic links to
    directories are not followed (no loops); a link that leads out of the directory given is
    not followed either, and its own path goes to ``skipped``. ``guard`` refuses workspace
    material (InvalidInput); a folder holding a ``garrison.toml`` is refused in any case.
    """
    for raw in paths:
        root = Path(raw)
        if guard is not None:
            guard.check_path(root, raw)
        if root.is_file():
            candidates = [(root, root.name)]
        elif root.is_dir():
            candidates = sorted(
                ((p, p.relative_to(root).as_posix()) for p in _walk(root, skipped, guard)),
                key=lambda t: t[1],
            )
        else:
            raise InvalidInput(f"Nothing to ingest at {raw}: no such file or directory.")
        for path, rel in candidates:

            def hit(globs: Sequence[str], rel: str = rel, name: str = path.name) -> bool:
                return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in globs)

            if include and not hit(include):
                continue
            if exclude and hit(exclude):
                continue
            yield path, rel


def _walk(
    root: Path, skipped: list[str] | None = None, guard: InputGuard | None = None
) -> Iterator[Path]:
    yield from walk_inputs(root, skipped if skipped is not None else [], guard)


def hash_file(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (for files too large to hold)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
