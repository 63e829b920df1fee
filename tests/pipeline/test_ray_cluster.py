"""The Ray engine on a cluster of two nodes.

One cluster serves the module (:mod:`tests.pipeline.ray_cluster`): a head and a worker node,
one CPU each, started with ``ray start`` as separate processes on loopback. Every workspace's
catalog is a fresh PostgreSQL database, written by several batches at once. The reference is
the local engine's catalog over the same documents (SQLite); each test's end state must equal
it -- documents, element states, chunks, findings, the chunk index and its vectors -- after a
run with two workers whose batches ran on both nodes. :class:`RayCluster` can also kill a node
(``kill -9`` of its whole session) for fault tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.workspace import Workspace
from tests.conftest import PgDatabase, one_at_a_time, require
from tests.pipeline.ray_cluster import RayCluster
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

#: Three batches of the default 32 documents for ``garrison run``: work for both nodes.
FILES = 96


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
