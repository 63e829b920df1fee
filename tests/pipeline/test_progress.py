"""Pipeline progress: the model load is announced, embedded chunks count up with a rate and an
ETA, on the driver's own process and from workers elsewhere; the CLI draws it on stderr only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from garrison.cli import _progress
from garrison.cli.main import main
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.progress import LOADING_MODEL, ProgressEvent, Tracker
from garrison.pipeline.spec import parse_pipeline
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 16, overlap_tokens: 2}
  - embed: {model: hashing, batch_size: 2}
"""
NO_EMBED = """
name: chunks-only
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 16, overlap_tokens: 2}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET")
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(4):
        words = " ".join(f"word{n}x{k}" for k in range(60))
        (folder / f"doc{n}.txt").write_text(f"(U) Report {n} says {words}.\n")
    ingest_paths(workspace.session(), [str(folder)], IngestOptions(default_marking="U"))
    yield workspace
    workspace.close()


def _embed_events(events: list[ProgressEvent]) -> list[ProgressEvent]:
    return [e for e in events if e.phase == "embed"]


def _check_embed(events: list[ProgressEvent]) -> None:
    phases = [e.phase for e in events]
    assert LOADING_MODEL in phases and "embed" in phases
    assert phases.index(LOADING_MODEL) < phases.index("embed")
    embed = _embed_events(events)
    counts = [e.done for e in embed]
    assert counts == sorted(counts) and counts[-1] > counts[0] >= 0 and counts[-1] > 0
    assert any(e.rate is not None and e.rate > 0 for e in embed)
    assert all(e.unit == "chunks" for e in embed)
    # No frozen "write N/M" phase any more.
    assert "write" not in phases


def test_in_process_run_reports_loading_then_moving_chunk_counts(ws: Workspace) -> None:
    events: list[ProgressEvent] = []
    report = run_pipeline(
        ws.session(), parse_pipeline(FAST, source="fast.yaml"), batch_docs=2, progress=events.append
    )
    _check_embed(events)
    embed = _embed_events(events)
    assert embed[-1].done == report.chunks
    # Inside one batch the count moves too (slices of 4 * batch_size texts): more embed events
    # than batches.
    assert len(embed) > 2
    assert embed[-1].total == report.chunks and embed[-1].eta_s == 0


def test_worker_run_reports_from_the_driver_as_batches_complete(ws: Workspace) -> None:
    events: list[ProgressEvent] = []
    report = run_pipeline(
        ws.session(),
        parse_pipeline(FAST, source="fast.yaml"),
        batch_docs=1,
        workers=2,
        progress=events.append,
    )
    _check_embed(events)
    embed = _embed_events(events)
    # Forked workers cannot report inside a batch: one event per completed batch.
    assert len(embed) == 4 and embed[-1].done == report.chunks


def test_pipeline_without_embed_counts_documents(ws: Workspace) -> None:
    events: list[ProgressEvent] = []
    run_pipeline(
        ws.session(),
        parse_pipeline(NO_EMBED, source="c.yaml"),
        batch_docs=1,
        progress=events.append,
    )
    chunk = [e for e in events if e.phase == "chunk"]
    assert [e.done for e in chunk] == [0, 1, 2, 3, 4]
    assert {e.total for e in chunk} == {4} and LOADING_MODEL not in {e.phase for e in events}


def test_tracker_rate_and_eta_with_a_fake_clock() -> None:
    now = [100.0]
    events: list[ProgressEvent] = []
    tracker = Tracker(events.append, clock=lambda: now[0])
    tracker.start_tail(10, embeds=True)
    assert events[-1].phase == LOADING_MODEL and events[-1].total is None
    # A worker elsewhere: the first batch (which loaded the model) starts the clock.
    tracker.batch_done(2, 40)
    assert events[-1].done == 40 and events[-1].total == 200 and events[-1].rate is None
    now[0] += 4.0
    tracker.batch_done(2, 40)
    last = events[-1]
    assert last.done == 80 and last.rate == pytest.approx(10.0)
    assert last.total == 200 and last.eta_s == pytest.approx(12.0)


def test_view_draws_loading_count_rate_and_eta() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=160)
    with _progress.PipelineProgressView(console, enabled=True) as view:
        view(ProgressEvent(LOADING_MODEL, 0, None, unit="model"))
        view(ProgressEvent("embed", 64, 640, "chunks", rate=32.0, eta_s=18.0))
        view(ProgressEvent("embed", 128, 640, "chunks", rate=32.5, eta_s=15.6))
    text = buffer.getvalue()
    assert LOADING_MODEL in text
    assert text.index(LOADING_MODEL) < text.index("64/~640 chunks")
    assert "128/~640 chunks" in text and "32.5 chunks/s" in text and "ETA 0:00:16" in text


def test_cli_progress_goes_to_stderr_and_json_stays_one_document(
    ws: Workspace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(FAST)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=160)
    monkeypatch.setattr(_progress, "err_console", console)
    monkeypatch.setenv("GARRISON_PROGRESS", "1")
    ws.close()
    assert main(["run", str(pipeline), "-w", str(ws.root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["embeddings"] > 0
    drawn = buffer.getvalue()
    assert LOADING_MODEL in drawn and "chunks/s" in drawn
    assert drawn.index(LOADING_MODEL) < drawn.index(" chunks")


def test_progress_is_off_without_a_terminal_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GARRISON_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not _progress.progress_enabled()
    monkeypatch.setenv("GARRISON_PROGRESS", "1")
    assert _progress.progress_enabled()
    monkeypatch.setenv("GARRISON_PROGRESS", "0")
    assert not _progress.progress_enabled()


def test_forced_progress_draws_on_a_stderr_that_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_progress, "err_console", Console(file=io.StringIO()))
    monkeypatch.setenv("GARRISON_PROGRESS", "1")
    assert _progress.progress_console().is_terminal
    monkeypatch.delenv("GARRISON_PROGRESS")
    assert not _progress.progress_console().is_terminal
