"""The job lifecycle: start, progress, finish and failure, for every kind of job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from garrison.ingest import engine as ingest_engine
from garrison.ingest.engine import IngestOptions, ingest_paths, ingest_sql
from garrison.pipeline import executor as pipeline_executor
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.jobs import JobSummary, job, mark_stale_jobs
from garrison.store.models import JobRow
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 0}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")


def _row(ws: Workspace, job_id: str) -> JobRow:
    with ws.catalog.transaction() as orm:
        row = orm.get(JobRow, job_id)
        assert row is not None
        return row


def _finish_event(ws: Workspace, job_id: str) -> tuple[str, str | None, dict[str, object]]:
    events = [e for e in ws.audit.tail(None) if e.action == "job.finish" and e.object_id == job_id]
    assert len(events) == 1
    return events[0].decision, events[0].reason, dict(events[0].details)


def test_a_job_completes_with_its_summary(ws: Workspace) -> None:
    session = ws.session()
    with job(session, "test", {"x": 1}) as running:
        running.set_total(3)
        running.progress(2)
        assert _row(ws, running.id).status == "running"
        assert (_row(ws, running.id).done, _row(ws, running.id).total) == (2, 3)
        running.summarize(lambda: JobSummary({"ok": 3}, 3, details={"ok": 3}))
    row = _row(ws, running.id)
    assert (row.status, row.done, row.total, row.counts, row.error) == (
        "completed",
        3,
        3,
        {"ok": 3},
        None,
    )
    assert row.finished_at is not None
    assert _finish_event(ws, running.id) == ("allow", None, {"status": "completed", "ok": 3})
    starts = [e for e in ws.audit.tail(None) if e.action == "job.start"]
    assert starts[-1].object_id == running.id and starts[-1].details["kind"] == "test"


def test_a_job_that_raises_is_failed_and_the_error_goes_on(ws: Workspace) -> None:
    session = ws.session()
    with pytest.raises(RuntimeError, match="disk on fire"), job(session, "test", {}) as running:
        raise RuntimeError("disk on fire")
    row = _row(ws, running.id)
    assert row.status == "failed" and row.error == "RuntimeError: disk on fire"
    decision, reason, details = _finish_event(ws, running.id)
    assert (decision, reason, details["status"]) == ("error", row.error, "failed")


def test_jobs_left_running_by_a_dead_process_are_interrupted(ws: Workspace) -> None:
    session = ws.session()
    with job(session, "test", {}) as running:
        with ws.catalog.transaction() as orm:
            stored = orm.get(JobRow, running.id)
            assert stored is not None
            stored.pid = 2**22 + 12345  # no such process
        assert mark_stale_jobs(session) == 1
        assert _row(ws, running.id).status == "interrupted"


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("writer crashed")


def test_ingest_paths_marks_its_job_failed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("(U) plain text for the test.\n")
    monkeypatch.setattr(ingest_engine._Batch, "commit", _boom)
    with pytest.raises(RuntimeError, match="writer crashed"):
        ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    with ws.catalog.transaction() as orm:
        rows = list(orm.query(JobRow).filter(JobRow.kind == "ingest"))
    assert [r.status for r in rows] == ["failed"]
    assert rows[0].total == 1 and "writer crashed" in (rows[0].error or "")


def test_ingest_sql_marks_its_job_failed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "src.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'hello')")
    conn.commit()
    conn.close()
    monkeypatch.setattr(ingest_engine._Batch, "commit", _boom)
    with pytest.raises(RuntimeError, match="writer crashed"):
        ingest_sql(ws.session(), f"sqlite:///{db}", IngestOptions(default_marking="UNCLASSIFIED"))
    with ws.catalog.transaction() as orm:
        rows = list(orm.query(JobRow).filter(JobRow.kind == "ingest"))
    assert [r.status for r in rows] == ["failed"]
    decision, _, details = _finish_event(ws, rows[0].id)
    assert decision == "error" and details["status"] == "failed"


def test_ingest_and_pipeline_jobs_complete(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("(U) plain text for the test, long enough to chunk.\n")
    system = ws.session()
    report = ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    row = _row(ws, report.job_id)
    assert (row.kind, row.status, row.done, row.total) == ("ingest", "completed", 1, 1)
    run = run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    row = _row(ws, run.job_id)
    assert (row.kind, row.status, row.total) == ("pipeline", "completed", 1)
    assert row.counts["documents"] == 1
    _, _, details = _finish_event(ws, run.job_id)
    assert details["documents"] == 1 and details["status"] == "completed"


def test_a_failed_pipeline_run_is_failed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("(U) plain text for the test.\n")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    monkeypatch.setattr(pipeline_executor, "_execute", _boom)
    with pytest.raises(RuntimeError, match="writer crashed"):
        run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    with ws.catalog.transaction() as orm:
        rows = list(orm.query(JobRow).filter(JobRow.kind == "pipeline"))
    assert [r.status for r in rows] == ["failed"]
