"""The Ray engine computes the same catalog as the local engine, on a real local Ray.

One Ray head serves the module: started with ``ray start`` (2 CPUs, loopback), with this
process connected to it as a driver; the engine reuses that session and leaves it up. Each
comparison ingests a corpus once, copies the workspace, and runs the same pipeline on each copy
with each engine: documents, element states, chunks, findings and embeddings must match
(CLI.md, "Identity of things"). The CLI tests run ``garrison run --engine ray`` in subprocesses:
one where the engine starts and stops its own Ray, one against the module's head at its address.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline import Item, Stage, StageParams, register_stage
from garrison.pipeline.engines._ray import RayEngine, worker_env
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import PipelineSpec, load_pipeline, parse_pipeline
from garrison.security.markings import parse_marking
from garrison.store.models import (
    ChunkRow,
    DocumentRow,
    ElementState,
    FindingRow,
    InternedMarking,
)
from garrison.store.workspace import Workspace
from tests.conftest import REPO, SHARED, one_at_a_time, require
from tests.pipeline.ray_cluster import RayCluster

try:
    import ray
except ImportError:  # the ray extra is missing: the fixtures say so (and fail in CI)
    ray = None

FAST = """
name: fast
stages:
  - normalize: {}
  - pii:
      default_action: mask
      actions: {ssn: drop}
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT_MARKING = "CONFIDENTIAL//NOFORN"


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """The module's Ray head (``ray start``, 2 CPUs, loopback), this process one of its drivers;
    its address. Stopped (only it) after the module."""
    require(ray is not None, "ray is not installed: pip install 'garrison[ray]'")
    from garrison.pipeline.engines._ray import join_token_auth

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    assert not ray.is_initialized()
    with one_at_a_time("ray"):
        cluster = RayCluster.start(nodes=1, num_cpus=2)
        try:
            join_token_auth()
            ray.init(
                address=cluster.address,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level="WARNING",
                runtime_env={"env_vars": worker_env()},
            )
            yield cluster.address
        finally:
            ray.shutdown()
            cluster.stop()


@pytest.fixture
def ray_session(ray_head: str) -> None:
    """This process connected to the module's Ray (the engine reuses it, never stops it)."""
    assert ray.is_initialized()


# -- corpora --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marked_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared marked corpus, ingested once (``shared_dir`` is function-scoped)."""
    marked = SHARED / "corpus" / "marked"
    require(marked.is_dir(), f"{marked} is absent (a user's fresh clone)")
    truth = json.loads((marked / "truth.json").read_text())
    root = tmp_path_factory.mktemp("marked") / "ws"
    ws = Workspace.init(root, system_high=truth["system_high"])
    try:
        ingest_paths(
            ws.session(),
            [str(marked / "docs")],
            IngestOptions(default_marking=truth["default_marking"], exclude=("*.sqlite",)),
        )
    finally:
        ws.close()
    return root


@pytest.fixture(scope="module")
def generated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred generated reports with near and exact duplicates, ingested once."""
    sys.path.insert(0, str(REPO))
    from bench.pipeline import make_corpus

    base = tmp_path_factory.mktemp("generated")
    corpus = base / "corpus"
    corpus.mkdir()
    kinds = make_corpus(corpus, 160, seed=11)
    assert kinds["near-duplicate"] and kinds["exact-duplicate"]
    ws = Workspace.init(base / "ws", system_high=SYSTEM_HIGH)
    try:
        ingest_paths(ws.session(), [str(corpus)], IngestOptions(default_marking=DEFAULT_MARKING))
    finally:
        ws.close()
    return base / "ws"


@pytest.fixture(scope="module")
def generated_local(
    generated_workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The local engine's report and catalog for the generated corpus (the reference)."""
    dest = tmp_path_factory.mktemp("generated-local") / "ws"
    spec = parse_pipeline(FAST, source="fast.yaml")
    return run_on_copy(generated_workspace, dest, spec, engine="local", workers=1, batch_docs=8)


def run_on_copy(
    source: Path, dest: Path, spec: PipelineSpec, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``spec`` on a copy of the workspace at ``source``: the report and the catalog."""
    shutil.copytree(source, dest)
    ws = Workspace.open(dest)
    try:
        report = run_pipeline(ws.session(), spec, **kwargs).to_dict()
        return report, catalog(ws)
    finally:
        ws.close()


# -- what "the same catalog" means ----------------------------------------------------------------


def catalog(ws: Workspace) -> dict[str, Any]:
    """Everything CLI.md's "Identity of things" compares, keyed by id, markings as banners."""
    with ws.catalog.transaction() as orm:
        banner = {m.id: m.banner for m in orm.scalars(select(InternedMarking))}
        documents = {
            d.id: (d.status, banner.get(d.marking_id)) for d in orm.scalars(select(DocumentRow))
        }
        elements = {
            e.element_id: (
                e.doc_id,
                e.text,
                banner[e.marking_id],
                e.dup_of,
                e.dup_kind,
                e.dropped,
                e.failed,
                json.dumps(e.pii, sort_keys=True),
                e.flags,
            )
            for e in orm.scalars(select(ElementState))
        }
        chunks = {
            c.id: (c.doc_id, c.seq, c.text, banner[c.marking_id], c.element_ids)
            for c in orm.scalars(select(ChunkRow))
        }
        findings = sorted(
            (f.kind, f.doc_id, f.element_id or "") for f in orm.scalars(select(FindingRow))
        )
    return {
        "documents": documents,
        "elements": elements,
        "chunks": chunks,
        "findings": findings,
        "vectors": vectors(ws.root / "index"),
    }


def vectors(index: Path) -> dict[str, np.ndarray]:
    import lancedb

    from garrison.store.index import TABLE

    db = lancedb.connect(str(index))
    if TABLE not in db.list_tables().tables:
        return {}
    table = db.open_table(TABLE).to_arrow()
    ids = table.column("chunk_id").to_pylist()
    return {
        i: np.asarray(v, dtype=np.float64)
        for i, v in zip(ids, table.column("vector").to_pylist(), strict=True)
    }


def assert_same_catalog(local: dict[str, Any], other: dict[str, Any]) -> None:
    for key in ("documents", "elements", "chunks", "findings"):
        assert local[key] == other[key], f"{key} differ between engines"
    assert local["vectors"].keys() == other["vectors"].keys() == local["chunks"].keys()
    for chunk_id, a in local["vectors"].items():
        b = other["vectors"][chunk_id]
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert cosine >= 0.9999, f"embedding of chunk {chunk_id}: cosine {cosine}"


def assert_ray_workers(pids: list[int], batches: int) -> None:
    """Every batch ran in a Ray worker, at least two distinct ones, never the driver."""
    assert len(pids) == batches
    assert os.getpid() not in pids
    assert 0 not in pids
    assert len(set(pids)) >= 2, f"all batches ran in one process: {set(pids)}"


# -- equivalence ----------------------------------------------------------------------------------


def test_generated_corpus_same_catalog_as_local(
    ray_session: None,
    generated_workspace: Path,
    generated_local: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
    pids: list[int],
) -> None:
    from garrison.pipeline.progress import LOADING_MODEL, ProgressEvent

    spec = parse_pipeline(FAST, source="fast.yaml")
    report_local, local = generated_local
    events: list[ProgressEvent] = []
    report_ray, on_ray = run_on_copy(
        generated_workspace,
        tmp_path / "ray",
        spec,
        engine="ray",
        workers=2,
        batch_docs=8,
        progress=events.append,
    )
    # Progress from the driver as Ray's tasks complete: the model load, then chunks counting up.
    phases = [e.phase for e in events]
    embedded = [e.done for e in events if e.phase == "embed"]
    assert phases.index(LOADING_MODEL) < phases.index("embed")
    assert embedded == sorted(embedded) and embedded[-1] == report_ray["chunks"] > embedded[0]
    assert local["chunks"] and report_local["duplicates"]["near"] >= 1
    assert_same_catalog(local, on_ray)
    for key in ("documents", "elements", "chunks", "embeddings", "pii_by_type", "duplicates"):
        assert report_local[key] == report_ray[key]
    batches = -(-report_ray["documents"] // 8)
    # Two batch segments (before and after dedup): every batch ran twice.
    assert_ray_workers(pids, 2 * batches)
    assert ray.is_initialized(), "the engine stopped a Ray it did not start"


def test_marked_corpus_same_catalog_as_local_with_minilm(
    ray_session: None, marked_workspace: Path, tmp_path: Path, pids: list[int]
) -> None:
    """The default pipeline, MiniLM embeddings included (loaded once per actor)."""
    spec = load_pipeline(None)
    report_local, local = run_on_copy(
        marked_workspace, tmp_path / "local", spec, engine="local", workers=1, batch_docs=2
    )
    report_ray, on_ray = run_on_copy(
        marked_workspace, tmp_path / "ray", spec, engine="ray", workers=2, batch_docs=2
    )
    assert report_local["embeddings"] >= 5
    assert len({m for _, m in local["documents"].values()}) >= 2  # several markings
    assert_same_catalog(local, on_ray)
    assert_ray_workers(pids, 2 * -(-report_ray["documents"] // 2))


# -- failures -------------------------------------------------------------------------------------


class _BoomParams(StageParams):
    word: str = "HARROW"


@register_stage
class _Boom(Stage[_BoomParams]):
    """Raises on a batch holding ``word``, and kills its process on one holding ``CRASH``."""

    name = "test-ray-boom"
    version = "1"
    Params = _BoomParams

    def process(self, items: list[Item], resource: object) -> list[Item]:
        if any("CRASH" in item.text for item in items):
            os._exit(3)  # a native crash, an OOM kill
        if any(self.params.word in item.text for item in items):
            raise RuntimeError(f"test-ray-boom: {self.params.word} in this batch")
        return items


def _items(texts: list[str]) -> list[list[Item]]:
    marking = parse_marking("UNCLASSIFIED")
    return [
        [Item(f"e{n}", f"d{n}", "element", text, text, marking, (f"e{n}",))]
        for n, text in enumerate(texts)
    ]


def test_a_batch_that_raises_or_kills_its_worker_fails_alone(ray_session: None) -> None:
    import cloudpickle

    # Ray workers cannot import this test module: ship the stage class by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        spec = parse_pipeline("stages: [{test-ray-boom: {}}]", source="boom.yaml")
        # Few batches: each try of a lost one starts a fresh actor pool (seconds apiece).
        texts = ["fine", "HARROW here", "CRASH here", "last"]
        with RayEngine({}, workers=2) as engine:
            results = list(engine.map_batches(spec.stages, _items(texts)))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert sorted(i.text for r in results for i in r.elements) == sorted(texts)
    failed = {i.text: i.failed or "" for r in results for i in r.elements if i.failed}
    assert sorted(failed) == ["CRASH here", "HARROW here"]
    assert "RuntimeError: test-ray-boom: HARROW" in failed["HARROW here"]
    assert "died" in failed["CRASH here"]
    ok = [r for r in results if not any(i.failed for i in r.elements)]
    assert len(ok) == 2 and all(r.pid and r.stats for r in ok)
    assert ray.is_initialized(), "the engine stopped a Ray it did not start"


def _failing_runs(fail_after: list[int]) -> tuple[Any, list[list[int]]]:
    """A stand-in for ``RayEngine._run`` whose n-th call hands back ``fail_after[n]`` batches,
    then raises what Ray Data raises when a node dies under a segment (later calls: all)."""
    calls: list[list[int]] = []

    def run(
        engine: RayEngine, specs: Any, batches: Any, indexes: list[int]
    ) -> Iterator[tuple[int, Any]]:
        from garrison.pipeline._run import BatchResult

        calls.append(list(indexes))
        limit = fail_after[len(calls) - 1] if len(calls) <= len(fail_after) else None
        for n, index in enumerate(indexes):
            if n == limit:
                raise ray.exceptions.ActorDiedError()
            yield index, BatchResult(list(batches[index]), pid=12345)

    return run, calls


def test_a_segment_ray_fails_under_reruns_what_is_pending_on_a_fresh_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lost node (Ray Data ends the segment with ActorDiedError): the batches already back
    are kept, the others run once more on a fresh pool, and the run goes on."""
    require(ray is not None, "ray is not installed: pip install 'garrison[ray]'")
    run, calls = _failing_runs([1])
    monkeypatch.setattr(RayEngine, "_connect", lambda self: None)
    monkeypatch.setattr(RayEngine, "_run", run)
    batches = _items(["a", "b", "c", "d"])
    results = list(RayEngine({}, workers=2).map_batches([], batches))
    assert calls == [[0, 1, 2, 3], [1, 2, 3]]
    assert sorted(i.text for r in results for i in r.elements) == ["a", "b", "c", "d"]
    assert not any(i.failed for r in results for i in r.elements)


def test_ray_failing_under_a_segment_twice_stops_the_run_leaving_the_rest_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from garrison.core.errors import EnvironmentProblem
    from garrison.pipeline.engines._ray import RayClusterFailure

    require(ray is not None, "ray is not installed: pip install 'garrison[ray]'")
    run, calls = _failing_runs([1, 1])
    monkeypatch.setattr(RayEngine, "_connect", lambda self: None)
    monkeypatch.setattr(RayEngine, "_run", run)
    batches = _items(["a", "b", "c", "d", "e"])
    handed: list[str] = []

    def consume() -> None:
        for result in RayEngine({}, workers=2).map_batches([], batches):
            handed.extend(i.text for i in result.elements)

    with pytest.raises(RayClusterFailure) as caught:
        consume()
    # What came back before each failure was handed on (and is written); nothing else was.
    assert handed == ["a", "b"] and calls == [[0, 1, 2, 3, 4], [1, 2, 3, 4]]
    failure = caught.value
    assert isinstance(failure, EnvironmentProblem) and failure.exit_code == 5
    assert (failure.ray_error, failure.pending, failure.batches) == ("ActorDiedError", 3, 5)
    assert failure.message.startswith("The Ray cluster failed under the run (ActorDiedError")
    assert "3 of 5 batches were not run and stay pending" in failure.message
    assert isinstance(failure.__cause__, ray.exceptions.ActorDiedError)


def test_describe_and_missing_extra(ray_session: None, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RayEngine({}, workers=2)
    assert engine.describe() == {
        "engine": "ray",
        "workers": 2,
        "address": "local",
        "ray": ray.__version__,
    }
    from garrison.core.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtra, match=r"pip install 'garrison\[ray\]'"):
        RayEngine({})


# -- the CLI, with a Ray of its own and at an address ---------------------------------------------


def _garrison(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("garrison")), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def _cli_workspace(source: Path, dest: Path, pipeline: Path) -> None:
    shutil.copytree(source, dest)
    pipeline.write_text(FAST)


def test_cli_engine_ray_starts_and_stops_its_own_ray(
    generated_workspace: Path,
    generated_local: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    require(ray is not None, "ray is not installed: pip install 'garrison[ray]'")
    pipeline = tmp_path / "fast.yaml"
    _cli_workspace(generated_workspace, tmp_path / "ws", pipeline)
    _, local = generated_local
    done = _garrison(
        "run",
        str(pipeline),
        "--engine",
        "ray",
        "--workers",
        "1",
        "-w",
        str(tmp_path / "ws"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chunks"] == len(local["chunks"])
    # Ray's own chatter stays off the terminal (a line or two of warnings at most).
    assert len(done.stderr.splitlines()) <= 3, done.stderr
    ws = Workspace.open(tmp_path / "ws")
    try:
        assert_same_catalog(local, catalog(ws))
    finally:
        ws.close()


def test_cli_engine_ray_at_an_address(
    generated_workspace: Path,
    generated_local: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
    ray_head: str,
) -> None:
    pipeline = tmp_path / "fast.yaml"
    _cli_workspace(generated_workspace, tmp_path / "ws", pipeline)
    _, local = generated_local
    done = _garrison(
        "run",
        str(pipeline),
        "--engine",
        "ray",
        "--address",
        ray_head,
        "-w",
        str(tmp_path / "ws"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    ws = Workspace.open(tmp_path / "ws")
    try:
        assert_same_catalog(local, catalog(ws))
    finally:
        ws.close()
