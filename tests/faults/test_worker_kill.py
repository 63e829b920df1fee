"""``kill -9`` of a pipeline worker (local engine, 2 workers) mid-run: the batch it held is
recorded failed (or done by another worker), never lost or half-written, and running the
pipeline again ends with the catalog and index an uninterrupted run gives. (A killed driver is
covered by ``tests/pipeline/test_run_kill_resume.py``, on the local and the Ray engine; a killed
driver and a killed Ray worker node on a two-node cluster by
``tests/pipeline/test_ray_cluster.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from garrison.cli.main import main
from garrison.store.documents import Jobs
from garrison.store.workspace import Workspace
from tests.faults.faults import (
    PIPELINE,
    full_state,
    kill_session,
    pipeline_docs,
    wait_until,
    write_corpus,
)
from tests.pipeline.test_incremental import DEFAULT, SYSTEM_HIGH, assert_index_matches_catalog

FILES = 60


def workers_of(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The batch workers: children of the run's fork server."""
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            parent = child.parent()
            if parent is not None and "forkserver" in " ".join(parent.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_kill_9_of_a_worker_then_run_again_gives_the_same_catalog(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", files=FILES)
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(PIPELINE)
    reference, root = tmp_path / "reference", tmp_path / "ws"
    for where in (reference, root):
        Workspace.init(where, system_high=SYSTEM_HIGH).close()
        assert main(["ingest", str(corpus), "-w", str(where), "--default-marking", DEFAULT]) == 0
    assert main(["run", str(pipeline), "-w", str(reference)]) == 0
    ws = Workspace.open(reference)
    try:
        expected = full_state(ws)
    finally:
        ws.close()

    command = [sys.executable, "-m", "garrison.cli.main", "run", str(pipeline), "-w", str(root)]
    proc = subprocess.Popen(
        [*command, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        workers = wait_until(
            proc, lambda: workers_of(proc) if pipeline_docs(root / "catalog.db") >= 1 else []
        )
        assert workers, "the run finished before a worker could be killed"
        os.kill(workers[0].pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            kill_session(proc)
    assert proc.returncode in (0, 1), err
    assert "Traceback" not in err

    ws = Workspace.open(root)
    try:
        # Whatever the killed worker held is either recorded failed or was given to another:
        # never a torn index row.
        partial = full_state(ws)
        assert set(partial["index"]) <= {c[0] for c in partial["chunks"]}
        assert main(["run", str(pipeline), "-w", str(root)]) == 0
        state = full_state(ws)
        statuses = [j["status"] for j in Jobs(ws.session()).list() if j["kind"] == "pipeline"]
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()
    assert statuses and all(s == "completed" for s in statuses)
    assert_index_matches_catalog(state)
    assert state == expected
