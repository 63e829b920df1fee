"""Helpers of the fault tests: small volumes that fill up, a corpus, workspace snapshots.

A full disk is a real one: a tmpfs mounted (as root) over a directory of the workspace, so the
error comes from the kernel exactly as it would on a server. Without root or ``mount`` the
tests skip locally and fail in CI (:func:`tests.conftest.require`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from garrison.store.models import DocumentRow, ElementRow
from garrison.store.workspace import Workspace
from tests.conftest import require
from tests.pipeline.test_incremental import derived_state

FILES = 12

PIPELINE = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 48, overlap_tokens: 8}
  - embed: {model: hashing}
"""


def write_corpus(folder: Path, files: int = FILES) -> Path:
    """``files`` small marked reports, each a few kilobytes (so a blob fills 4 KiB pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    marks = ["(U)", "(C)", "(S//NF)"]
    for i in range(files):
        body = " ".join(f"crate{i}-{j} counted at depot {j % 7}." for j in range(120))
        (folder / f"report-{i:02d}.txt").write_text(
            f"{marks[i % 3]} Report {i}: {body}\n\n(U) Routine line {i * 31} for the log.\n"
        )
    return folder


def _mount_works() -> bool:
    return (
        os.geteuid() == 0
        and subprocess.run(["which", "mount"], capture_output=True).returncode == 0
    )


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``64k``, ``8m``) mounted over ``where`` for the block's length."""
    require(_mount_works(), "a small full disk needs root and mount(8)")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def grow(where: Path, size: str) -> None:
    """Free space: make the tmpfs over ``where`` larger, keeping what it holds."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def fill(where: Path, leave_kib: int) -> Path:
    """Fill the volume holding ``where`` until ``leave_kib`` KiB are free; the filler's path."""
    stats = os.statvfs(where)
    free = stats.f_bavail * stats.f_frsize
    filler = where / "filler"
    with filler.open("wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(0, free - leave_kib * 1024))
    return filler


def catalog_state(ws: Workspace) -> dict[str, Any]:
    """What ingest leaves, as comparable values: documents (id = content hash), elements,
    and whether each document's original can be read back from the blob store."""
    with ws.catalog.transaction() as orm:
        docs = sorted(
            (d.id, d.status, d.reason or "", d.size)
            for d in orm.scalars(select(DocumentRow).where(DocumentRow.superseded_by.is_(None)))
        )
        elements = sorted((e.id, e.doc_id, e.seq, e.text) for e in orm.scalars(select(ElementRow)))
    blobs = ws.blobs
    originals = sorted(d[0] for d in docs if d[1] == "parsed" and blobs.get(d[0]) is not None)
    return {"documents": docs, "elements": elements, "originals": originals}


def full_state(ws: Workspace) -> dict[str, Any]:
    return {**catalog_state(ws), **derived_state(ws)}
