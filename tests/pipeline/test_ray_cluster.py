"""The Ray engine on a cluster of two nodes, and what it does when the driver or a node dies.

One cluster serves the module (:mod:`tests.pipeline.ray_cluster`): a head and a worker node,
one CPU each, started with ``ray start`` as separate processes on loopback. Every workspace's
catalog is a fresh PostgreSQL database, written by several batches at once. The reference is
the local engine's catalog over the same documents (SQLite); each test's end state must equal
it -- documents, element states, chunks, findings, the chunk index and its vectors:

* a run with two workers, whose batches run on both nodes;
* ``kill -9`` of the driver (``garrison run``) mid-run, then ``garrison run`` again;
* ``kill -9`` of the worker node (raylet, object store, agents, actors) mid-run: the run
  finishes on the head or stops with a plain error, then ``garrison run`` again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.documents import Jobs
from garrison.store.workspace import Workspace
from tests.conftest import PgDatabase, one_at_a_time, require
from tests.faults.faults import kill_session, pipeline_docs, wait_until
from tests.pipeline.ray_cluster import RayCluster, RayNode
from tests.pipeline.test_incremental import (
    PIPELINE,
    SYSTEM_HIGH,
    assert_index_matches_catalog,
    derived_state,
    ingest,
)
from tests.pipeline.test_ray_engine import assert_same_catalog, catalog
from tests.pipeline.test_run_kill_resume import make_corpus

try:
    import ray
except ImportError:  # the ray extra is missing: the fixture says so (and fails in CI)
    ray = None

#: Five batches of the default 32 documents for ``garrison run``: work for both nodes, and
#: time to strike between the first batch written and the last.
FILES = 160
#: Bound on a killed run's aftermath (a run finishing on the nodes left, an error).
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """A head and a worker node; this process is connected to it as a driver too."""
    require(ray is not None, "ray is not installed: pip install 'garrison[ray]'")
    from garrison.pipeline.engines._ray import join_token_auth, worker_env

    assert not ray.is_initialized()
    with one_at_a_time("ray"):
        started = RayCluster.start(nodes=2)
        try:
            join_token_auth()
            ray.init(
                address=started.address,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level="WARNING",
                runtime_env={"env_vars": worker_env()},
            )
            yield started
        finally:
            ray.shutdown()
            started.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster") / "corpus"
    make_corpus(folder, FILES)
    return folder


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The local engine's end state over the corpus (SQLite catalog, one process)."""
    ws = Workspace.init(tmp_path_factory.mktemp("reference") / "ws", system_high=SYSTEM_HIGH)
    try:
        ingest(ws, corpus)
        run_pipeline(ws.session(), parse_pipeline(PIPELINE, source="fast.yaml"), workers=1)
        return end_state(ws)
    finally:
        ws.close()


def end_state(ws: Workspace) -> dict[str, Any]:
    state = {"catalog": catalog(ws), "derived": derived_state(ws)}
    assert_index_matches_catalog(state["derived"])  # every chunk indexed once
    return state


def assert_same_end_state(reference: dict[str, Any], ws: Workspace) -> None:
    state = end_state(ws)
    assert_same_catalog(reference["catalog"], state["catalog"])
    assert state["derived"] == reference["derived"]
    assert len(state["derived"]["live"]) == FILES


def pg_workspace(root: Path, corpus: Path, db: PgDatabase) -> Path:
    ws = Workspace.init(root, system_high=SYSTEM_HIGH, db_url=db.url)
    try:
        ingest(ws, corpus)
    finally:
        ws.close()
    (root.parent / "fast.yaml").write_text(PIPELINE)
    return root


def garrison_run(root: Path, cluster: RayCluster) -> list[str]:
    return [
        "run",
        str(root.parent / "fast.yaml"),
        "-w",
        str(root),
        "--engine",
        "ray",
        "--ray-address",
        cluster.address,
        "--workers",
        "2",
    ]


def start_garrison_run(root: Path, cluster: RayCluster) -> subprocess.Popen[bytes]:
    """``garrison run`` as a driver of its own, in a session of its own (so it can be killed);
    its standard error goes to ``run.err`` beside the workspace (:func:`said`)."""
    command = [sys.executable, "-m", "garrison.cli.main", *garrison_run(root, cluster)]
    with (root.parent / "run.err").open("wb") as err:
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def said(root: Path) -> str:
    """What the run started on ``root`` wrote to standard error."""
    return (root.parent / "run.err").read_text(errors="replace")


def pipeline_statuses(ws: Workspace) -> list[str]:
    return sorted(j["status"] for j in Jobs(ws.session()).list() if j["kind"] == "pipeline")


def no_actors_left(node: RayNode, timeout: float = 60) -> None:
    """Wait until the actors of earlier runs on ``node`` are gone (Ray ends them after a run)."""
    deadline = time.monotonic() + timeout
    while node.actors():
        assert time.monotonic() < deadline, f"actors of an earlier run still on {node.ip}"
        time.sleep(0.1)


def batches_by_node(results: list[int]) -> Counter[str]:
    """How many batch results came from each node, by node id.

    Read from Ray's global state (the GCS actor table: a process id and a node for every actor,
    the finished ones too); ``ray.util.state`` would need the dashboard, which the cluster runs
    without.
    """
    node_of = {
        actor["Pid"]: actor["Address"]["NodeID"]
        for actor in ray._private.state.actors().values()
        if actor.get("Pid")
    }
    return Counter(node_of.get(pid, "unknown") for pid in results)


# -- the same records on two nodes ----------------------------------------------------------------


def test_two_nodes_compute_the_local_engines_catalog(
    cluster: RayCluster,
    corpus: Path,
    reference: dict[str, Any],
    pg_database: PgDatabase,
    tmp_path: Path,
    pids: list[int],
) -> None:
    root = pg_workspace(tmp_path / "ws", corpus, pg_database)
    ws = Workspace.open(root)
    try:
        report = run_pipeline(
            ws.session(),
            parse_pipeline(PIPELINE, source="fast.yaml"),
            engine="ray",
            address=cluster.address,
            workers=2,
            batch_docs=8,
            writers=4,
        ).to_dict()
        assert report["engine"]["address"] == cluster.address
        assert_same_end_state(reference, ws)
    finally:
        ws.close()
    # Two segments (before and after dedup) of 12 batches each.
    assert len(pids) == 2 * FILES // 8
    by_node = batches_by_node(pids)
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    assert set(by_node) <= nodes, by_node  # every batch from an actor of the cluster
    # The pools had an actor on each node (which actor takes how many batches is Ray Data's
    # choice: with millisecond batches one actor may take them all).
    pools = {
        actor["Address"]["NodeID"]
        for actor in ray._private.state.actors().values()
        if "MapWorker" in actor["ActorClassName"]
    }
    assert pools == nodes, pools
    assert ray.is_initialized(), "the engine stopped a Ray session it did not start"


# -- faults ---------------------------------------------------------------------------------------


def test_kill_9_of_the_driver_then_run_again_gives_the_same_catalog(
    cluster: RayCluster,
    corpus: Path,
    reference: dict[str, Any],
    pg_database: PgDatabase,
    tmp_path: Path,
) -> None:
    root = pg_workspace(tmp_path / "ws", corpus, pg_database)
    proc = start_garrison_run(root, cluster)
    try:
        started = wait_until(
            proc, lambda: pipeline_docs(pg_database.url) >= 1, timeout=RUN_TIMEOUT_S
        )
        assert started, f"the run ended before it could be killed: {said(root)[-2000:]}"
    finally:
        kill_session(proc)
    assert proc.returncode == -signal.SIGKILL
    done = pipeline_docs(pg_database.url)
    assert 0 < done < FILES
    # The cluster outlives its driver, and runs the next one.
    assert all(node.alive for node in cluster.nodes)
    assert main(garrison_run(root, cluster)) == 0
    ws = Workspace.open(root)
    try:
        assert pipeline_statuses(ws) == ["completed", "interrupted"]
        assert_same_end_state(reference, ws)
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()


def test_kill_9_of_a_worker_node_then_run_again_gives_the_same_catalog(
    cluster: RayCluster,
    corpus: Path,
    reference: dict[str, Any],
    pg_database: PgDatabase,
    tmp_path: Path,
) -> None:
    """Last in the module: the cluster has one node left afterwards."""
    root = pg_workspace(tmp_path / "ws", corpus, pg_database)
    worker = cluster.nodes[1]
    no_actors_left(worker)
    proc = start_garrison_run(root, cluster)
    try:
        # Strike while the worker node runs one of this run's actors.
        running = wait_until(proc, worker.actors, timeout=RUN_TIMEOUT_S)
        assert running, f"the run ended before the worker node ran a batch: {said(root)[-2000:]}"
        cluster.kill(worker)
        proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            kill_session(proc)
    err = said(root)
    assert not worker.alive and cluster.head.alive
    # The run finished on the head (exit 0), or stopped with one plain sentence (exit 5) that
    # says what Ray reported and that the batches not run stay pending: never a traceback, a
    # hang or a torn index.
    assert proc.returncode in (0, 5), err
    assert "Traceback" not in err
    if proc.returncode == 5:
        assert "garrison: The Ray cluster failed under the run" in err, err
        assert "stay pending" in err
    ws = Workspace.open(root)
    try:
        if proc.returncode == 0:  # finished on the head: nothing left to do
            assert_same_end_state(reference, ws)
        partial = derived_state(ws)
        assert set(partial["index"]) <= {c[0] for c in partial["chunks"]}
        print(f"worker node killed: the run exited {proc.returncode}; {err[-500:]}")
        assert main(garrison_run(root, cluster)) == 0
        statuses = pipeline_statuses(ws)
        assert statuses.count("completed") >= 1
        assert_same_end_state(reference, ws)
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()
