"""An ingest killed with SIGKILL mid-run and started again ends with the same catalog."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.store.documents import Jobs
from garrison.store.models import DocumentLocation, DocumentRow, ElementRow, FindingRow
from garrison.store.workspace import Workspace

FILES = 300
DEFAULT = "CONFIDENTIAL//NOFORN"


def make_corpus(folder: Path) -> None:
    folder.mkdir()
    marks = ["(U)", "(C)", "(S//NF)", "", "(S/NF)"]  # the last one is invalid: quarantined
    for i in range(FILES):
        mark = marks[i % len(marks)]
        body = f"{mark} Report {i} on depot {i % 7}.\n\n(U) Routine line {i * 31}.\n"
        (folder / f"doc-{i:04d}.txt").write_text(body)


def catalog_state(root: Path) -> dict[str, object]:
    ws = Workspace.open(root)
    try:
        session = ws.session()
        with ws.catalog.transaction() as orm:

            def banner(marking_id: int | None) -> str | None:
                m = session.marking_of(orm, marking_id)
                return m.banner() if m is not None else None

            docs = sorted(
                (d.id, d.status, d.reason, banner(d.marking_id))
                for d in orm.scalars(select(DocumentRow))
            )
            elements = sorted(
                (e.id, e.doc_id, e.seq, e.text, banner(e.marking_id))
                for e in orm.scalars(select(ElementRow))
            )
            findings = sorted(
                (f.doc_id, f.kind, f.element_id or "") for f in orm.scalars(select(FindingRow))
            )
            locations = sorted(
                (loc.doc_id, loc.uri) for loc in orm.scalars(select(DocumentLocation))
            )
    finally:
        ws.close(checkpoint=False)
    return {"docs": docs, "elements": elements, "findings": findings, "locations": locations}


def count_documents(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from documents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_resume_gives_the_same_catalog(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)

    # Reference: one uninterrupted run.
    reference = Workspace.init(tmp_path / "reference", system_high="SECRET//NOFORN")
    try:
        ingest_paths(
            reference.session(), [str(corpus)], IngestOptions(default_marking=DEFAULT, workers=2)
        )
    finally:
        reference.close()
    expected = catalog_state(tmp_path / "reference")
    assert len(expected["docs"]) == FILES  # type: ignore[arg-type]

    victim = tmp_path / "victim"
    Workspace.init(victim, system_high="SECRET//NOFORN").close()
    command = [
        sys.executable,
        "-m",
        "garrison.cli.main",
        "ingest",
        str(corpus),
        "--default-marking",
        DEFAULT,
        "--workers",
        "2",
        "-w",
        str(victim),
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    partial = 0
    while time.monotonic() < deadline and proc.poll() is None:
        partial = count_documents(victim / "catalog.db")
        if partial >= 25:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    # SIGKILL the whole process group: the CLI and its parser workers, no clean-up at all.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The partial state: some documents written, not all; the job still says "running".
    partial = count_documents(victim / "catalog.db")
    assert 0 < partial < FILES
    state = catalog_state(victim)
    assert len(state["docs"]) == partial  # type: ignore[arg-type]
    assert state["docs"] != expected["docs"]
    # Every document that made it is complete: its elements came in the same transaction.
    complete = {d[0] for d in state["docs"]}  # type: ignore[union-attr]
    elements_by_doc = {e for e in expected["elements"] if e[1] in complete}  # type: ignore[union-attr]
    assert set(state["elements"]) == elements_by_doc  # type: ignore[arg-type]

    ws = Workspace.open(victim)
    try:
        jobs = Jobs(ws.session()).list()
        assert [j["status"] for j in jobs] == ["interrupted"]  # the killed run, detected as such
        report = ingest_paths(
            ws.session(), [str(corpus)], IngestOptions(default_marking=DEFAULT, workers=2)
        )
        outcomes = [r.outcome for r in report.results]
        assert outcomes.count("unchanged") == partial
        assert [j["status"] for j in Jobs(ws.session()).list()] == ["interrupted", "completed"]
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()

    # Nothing lost, nothing duplicated.
    assert catalog_state(victim) == expected
