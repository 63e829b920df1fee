"""Helpers of the fault tests: small volumes that fill up, a corpus, workspace snapshots, and
killing a run (or one of its workers) mid-way.

A full disk is a real one: a tmpfs mounted (as root) over a directory of the workspace, so the
error comes from the kernel exactly as it would on a server. Without root or ``mount`` the
tests skip locally and fail in CI (:func:`tests.conftest.require`).

A killed process is killed for real (``SIGKILL``, no chance to clean up): :func:`wait_until`
watches a running command until the moment to strike, :func:`kill_session` kills a command and
everything it started.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, func, select

from garrison.store.models import DocumentRow, ElementRow, PipelineDoc
from garrison.store.workspace import Workspace
from tests.conftest import require
from tests.pipeline.test_incremental import derived_state

FILES = 12
T = TypeVar("T")

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


# -- killing runs ---------------------------------------------------------------------------------


def pipeline_docs(catalog: Path | str) -> int:
    """Documents a (possibly running) pipeline has finished, read from outside the run.

    ``catalog`` is a workspace's SQLite file (opened read-only) or a PostgreSQL URL.
    """
    if isinstance(catalog, Path):
        try:
            with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("select count(*) from pipeline_docs").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
    engine = create_engine(catalog)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(PipelineDoc)) or 0)
    except Exception:  # the table is not there yet: nothing finished
        return 0
    finally:
        engine.dispose()


def wait_until(
    proc: subprocess.Popen[Any], condition: Callable[[], T], timeout: float = 120
) -> T | None:
    """Poll ``condition`` every 10 ms while ``proc`` runs: its first truthy value, else None
    (``proc`` ended first, or ``timeout`` seconds went by)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    return None


def kill_session(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc`` and everything it started (its session: workers, a local Ray).

    ``proc`` must have been started with ``start_new_session=True``.
    """
    import psutil

    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.info["pid"]) == proc.pid:
                p.kill()
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
