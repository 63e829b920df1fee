"""``garrison run`` killed with SIGKILL mid-run, on either engine, and started again ends with
the catalog (and chunk index) an uninterrupted run gives: no duplicates, no gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.documents import Jobs
from garrison.store.workspace import Workspace
from tests.conftest import one_at_a_time, require
from tests.faults.faults import kill_session, pipeline_docs, wait_until
from tests.pipeline.test_incremental import (
    PIPELINE,
    SYSTEM_HIGH,
    assert_index_matches_catalog,
    derived_state,
    ingest,
)

#: Eight batches of the default 32 documents: time to strike between the first written and the
#: last, on either engine.
FILES = 240


def make_corpus(folder: Path, files: int = FILES) -> None:
    """``files`` short reports, a third each at U, C and S//NF."""
    folder.mkdir()
    marks = ["(U)", "(C)", "(S//NF)"]
    for i in range(files):
        mark = marks[i % len(marks)]
        (folder / f"doc-{i:04d}.txt").write_text(
            f"{mark} Field report {i} on depot {i % 11}: {i * 7} crates of spares counted and "
            f"{i % 13} trailers waiting for tyres.\n\n(U) Routine line {i * 31} for the log.\n"
        )


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_kill_9_during_run_then_run_again_gives_the_same_catalog(
    tmp_path: Path, engine: str
) -> None:
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            require(False, "ray is not installed: pip install 'garrison[ray]'")
        with one_at_a_time("ray"):
            kill_then_run_again(tmp_path, engine)
    else:
        kill_then_run_again(tmp_path, engine)


def kill_then_run_again(tmp_path: Path, engine: str) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(PIPELINE)

    reference = Workspace.init(tmp_path / "reference", system_high=SYSTEM_HIGH)
    try:
        ingest(reference, corpus)
        run_pipeline(reference.session(), parse_pipeline(PIPELINE, source="fast.yaml"))
        expected = derived_state(reference)
    finally:
        reference.close()
    assert len(expected["live"]) == FILES

    victim = tmp_path / "victim"
    ws = Workspace.init(victim, system_high=SYSTEM_HIGH)
    try:
        ingest(ws, corpus)
    finally:
        ws.close()
    command = [sys.executable, "-m", "garrison.cli.main", "run", str(pipeline), "-w", str(victim)]
    command += ["--engine", engine, "--workers", "2"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    err = tmp_path / "run.err"
    with err.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=out, start_new_session=True, env=env
        )
    try:
        started = wait_until(proc, lambda: pipeline_docs(victim / "catalog.db") >= 2, timeout=240)
        said = err.read_text(errors="replace")[-2000:]
        assert started, f"the run ended (exit {proc.poll()}) before it could be killed: {said}"
    finally:
        kill_session(proc)
    assert proc.returncode == -signal.SIGKILL

    done = pipeline_docs(victim / "catalog.db")
    assert 0 < done < FILES
    ws = Workspace.open(victim)
    try:
        partial = derived_state(ws)
        assert partial != expected
        report: dict[str, Any] = run_pipeline(
            ws.session(), parse_pipeline(PIPELINE, source="fast.yaml"), engine=engine, workers=2
        ).to_dict()
        # The documents the killed run finished are reused, not redone.
        assert report["processed"] <= FILES - done + 1
        assert report["reused"] >= done - 1
        statuses = sorted(j["status"] for j in Jobs(ws.session()).list() if j["kind"] == "pipeline")
        assert statuses == ["completed", "interrupted"]
        state = derived_state(ws)
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()
    assert_index_matches_catalog(state)
    assert state == expected
