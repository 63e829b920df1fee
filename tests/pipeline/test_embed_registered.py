"""The embed stage with registered embedders: resolved by the runner, verified in the workers,
vectors marked with the join of chunk and model, and re-embedding incremental on a model change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from garrison.cli.main import main
from garrison.core.errors import CheckFailed, InvalidInput, NotFound
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, write_classifier
from garrison.pipeline._models import RESOURCE, resolve_models
from garrison.pipeline.executor import RunReport, plan_run, run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.pipeline.stages.embed import EmbedParams, EmbedStage
from garrison.security.audit import AuditAction, AuditEvent
from garrison.security.markings import parse_marking
from garrison.store.index import ChunkIndex
from garrison.store.models import ChunkRow, ElementState
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer

PIPELINE = """
name: registered
stages:
  - normalize: {{}}
  - dedup: {{}}
  - chunk: {{model: hashing, max_tokens: 48, overlap_tokens: 0}}
  - embed: {{model: {model}}}
"""

#: file name -> text: UNCLASSIFIED and SECRET documents over the tiny tokenizer's words.
DOCS = {
    "u-convoy.txt": "(U) The convoy report lists fuel supply at the northern depot.",
    "u-harbor.txt": "(U) The harbor vessel cargo manifest is due on the schedule.",
    "u-weather.txt": "(U) A weather storm closed the runway for aircraft maintenance.",
    "s-radar.txt": "SECRET\n\n(S) The radar intercept signal came from sector bravo.\n\nSECRET\n",
    "s-patrol.txt": "SECRET\n\n(S) The patrol crossed the river bridge at grid delta.\n\nSECRET\n",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture(scope="module")
def tiny_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny2") / "st", seed=1)


@pytest.fixture
def ws(tmp_path: Path, tiny: Path) -> Iterator[Workspace]:
    workspace = _workspace(tmp_path, tiny)
    yield workspace
    workspace.close()


def _workspace(tmp_path: Path, tiny: Path, db_url: str | None = None) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=db_url)
    system = workspace.session()
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text + "\n")
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    models = Models(workspace.session("stew"))
    models.register(kind="embedder", name="tiny-u", folder=tiny, marking=parse_marking("U"))
    models.register(kind="embedder", name="tiny-s", folder=tiny, marking=parse_marking("S"))
    return workspace


def _ref(ws: Workspace, name: str) -> str:
    version = Models(ws.session("stew")).resolve(name)
    return f"{name}@{version.id[:8]}"


def _run(ws: Workspace, model: str, user: str = "stew", **kwargs: Any) -> RunReport:
    spec = parse_pipeline(PIPELINE.format(model=model), source="registered.yaml")
    return run_pipeline(ws.session(user), spec, **kwargs)


def _index_rows(ws: Workspace) -> list[dict[str, Any]]:
    index = ChunkIndex(ws.root / "index")
    rows = index._table(None).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: r["chunk_id"])


def _banner(ws: Workspace, marking_id: int) -> str:
    system = ws.session()
    with ws.catalog.transaction() as orm:
        marking = system.marking_of(orm, marking_id)
    assert marking is not None
    return marking.banner()


def _state(ws: Workspace) -> dict[str, Any]:
    """Element states and chunks as stored (without the run that wrote them)."""
    with ws.catalog.transaction() as orm:
        states = {
            r.element_id: (r.text, r.marking_id, str(r.lineage), r.dup_of)
            for r in orm.scalars(select(ElementState))
        }
        chunks = {
            r.id: (r.text, r.marking_id, r.embedding_model, str(r.lineage))
            for r in orm.scalars(select(ChunkRow))
        }
    return {"states": states, "chunks": chunks}


def _audits(ws: Workspace, action: AuditAction, actor: str) -> list[AuditEvent]:
    return [e for e in ws.audit.events() if e.action == action.value and e.actor == actor]


def test_vectors_of_unclassified_chunks_from_a_secret_model_are_secret(ws: Workspace) -> None:
    ref = _ref(ws, "tiny-s")
    report = _run(ws, ref)
    assert report.embeddings == report.chunks == len(DOCS)
    version = Models(ws.session("stew")).resolve("tiny-s")
    rows = _index_rows(ws)
    assert len(rows) == len(DOCS)
    chunk_banners = sorted(_banner(ws, r["marking_id"]) for r in rows)
    # The chunks keep their own markings (their text is no higher) ...
    assert chunk_banners == ["SECRET"] * 2 + ["UNCLASSIFIED"] * 3
    # ... while every vector is marked with the join of its chunk and the SECRET model.
    assert {_banner(ws, r["vector_marking_id"]) for r in rows} == {"SECRET"}
    assert {r["model"] for r in rows} == {version.ref}
    assert {len(r["vector"]) for r in rows} == {32}
    with ws.catalog.transaction() as orm:
        models = {c.embedding_model for c in orm.scalars(select(ChunkRow))}
    assert models == {version.ref}
    # The runner's use of the model is audited, once for the run.
    uses = _audits(ws, AuditAction.MODEL_USE, "stew")
    assert [u.object_id for u in uses] == [version.id]
    assert uses[0].details["purpose"] == "embed"


def test_every_catalog_and_writer_count_marks_vectors_alike(
    tmp_path: Path, tiny: Path, catalog_url: str | None
) -> None:
    # With PostgreSQL, batches are written by concurrent writers (markings interned first).
    workspace = _workspace(tmp_path, tiny, catalog_url)
    try:
        report = _run(workspace, "tiny-s", batch_docs=1, writers=4)
        assert report.embeddings == len(DOCS)
        rows = _index_rows(workspace)
        assert {_banner(workspace, r["vector_marking_id"]) for r in rows} == {"SECRET"}
        assert sorted(_banner(workspace, r["marking_id"]) for r in rows) == (
            ["SECRET"] * 2 + ["UNCLASSIFIED"] * 3
        )
    finally:
        workspace.close()


def test_a_model_marked_unclassified_leaves_vectors_marked_like_their_chunks(
    ws: Workspace,
) -> None:
    _run(ws, "tiny-u")
    for row in _index_rows(ws):
        assert row["vector_marking_id"] == row["marking_id"]


def test_changing_the_model_re_embeds_incrementally(ws: Workspace) -> None:
    s_ref, u_ref = _ref(ws, "tiny-s"), _ref(ws, "tiny-u")
    first = _run(ws, s_ref)
    assert first.processed == len(DOCS) and first.written == len(DOCS)
    vectors_s = {r["chunk_id"]: r["vector"] for r in _index_rows(ws)}
    before = _state(ws)

    again = _run(ws, s_ref)
    assert (again.processed, again.written, again.embeddings) == (0, 0, 0)
    spec = parse_pipeline(PIPELINE.format(model=u_ref), source="registered.yaml")
    plan = plan_run(ws.session("stew"), spec)
    assert plan.tail_changed and plan.head == [] and len(plan.unchanged) == len(DOCS)

    switched = _run(ws, u_ref)
    # The head is reused for every document; only the tail (chunk, embed) is redone.
    assert switched.processed == 0 and switched.reused == len(DOCS)
    assert switched.written == len(DOCS) and switched.embeddings == len(DOCS)
    assert switched.stages["embed"].items_in > 0 and "normalize" not in switched.stages
    after = _state(ws)
    # Element states are those of the first run; the chunks are the same chunks, re-embedded.
    assert after["states"] == before["states"]
    assert set(after["chunks"]) == set(before["chunks"])
    for chunk_id, (text, marking_id, model, lineage) in after["chunks"].items():
        old = before["chunks"][chunk_id]
        assert (text, marking_id) == old[:2]
        assert model.startswith("tiny-u@") and old[2].startswith("tiny-s@")
        assert lineage != old[3]  # the embed step names another model version
    rows = _index_rows(ws)
    assert all(r["vector_marking_id"] == r["marking_id"] for r in rows)
    assert {r["model"].split("@")[0] for r in rows} == {"tiny-u"}

    back = _run(ws, s_ref)
    assert back.processed == 0 and back.written == len(DOCS)
    assert {r["chunk_id"]: r["vector"] for r in _index_rows(ws)} == vectors_s
    assert {_banner(ws, r["vector_marking_id"]) for r in _index_rows(ws)} == {"SECRET"}


def test_a_new_version_of_a_named_model_re_embeds(ws: Workspace, tiny_other: Path) -> None:
    _run(ws, "tiny-u")
    assert _run(ws, "tiny-u").written == 0
    newer = Models(ws.session("stew")).register(
        kind="embedder", name="tiny-u", folder=tiny_other, marking=parse_marking("U")
    )
    report = _run(ws, "tiny-u")  # the name now means the newer version
    assert report.processed == 0 and report.written == len(DOCS)
    assert {r["model"] for r in _index_rows(ws)} == {newer.ref}


def test_a_model_the_runner_may_not_read_fails_as_a_missing_one(ws: Workspace) -> None:
    ref = _ref(ws, "tiny-s")
    with pytest.raises(NotFound) as hidden:
        _run(ws, ref, user="ustew")
    with pytest.raises(NotFound) as missing:
        _run(ws, "tiny-x@0123abcd", user="ustew")
    assert str(hidden.value).replace(ref, "X") == str(missing.value).replace("tiny-x@0123abcd", "X")
    assert "embed stage" in str(hidden.value) and ref in str(hidden.value)
    denied = _audits(ws, AuditAction.MODEL_READ, "ustew")
    assert [d.decision for d in denied] == ["deny", "deny"]
    assert not _audits(ws, AuditAction.MODEL_USE, "ustew")
    # Nothing ran: no chunk, no index.
    with ws.catalog.transaction() as orm:
        assert orm.scalar(select(ChunkRow).limit(1)) is None
    assert not ChunkIndex(ws.root / "index").columns()
    # The dry run refuses it the same way.
    spec = parse_pipeline(PIPELINE.format(model=ref), source="registered.yaml")
    with pytest.raises(NotFound):
        plan_run(ws.session("ustew"), spec)


def test_cli_run_exits_3_for_an_unreadable_or_unknown_model_and_2_for_a_classifier(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    head = tmp_path / "clf"
    write_classifier(
        head,
        trainer="logreg",
        labels=["a", "b"],
        weight=np.zeros((2, 32), dtype=np.float32),
        bias=np.zeros(2, dtype=np.float32),
        embedder={"id": Models(ws.session("stew")).resolve("tiny-u").id},
    )
    Models(ws.session("stew")).register(kind="classifier", name="clf", folder=head)
    cases = [(_ref(ws, "tiny-s"), "ustew", 3), ("no-such-model", "stew", 3), ("clf", "stew", 2)]
    for model, user, code in cases:
        path = tmp_path / f"{user}-{code}.yaml"
        path.write_text(PIPELINE.format(model=model))
        got = main(["run", str(path), "--workspace", str(ws.root), "--as", user])
        err = capsys.readouterr().err
        assert got == code, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert model in err


def test_workers_load_only_verified_files(ws: Workspace) -> None:
    ref = _ref(ws, "tiny-u")
    spec = parse_pipeline(PIPELINE.format(model=ref), source="registered.yaml")
    resolved_spec, embedders = resolve_models(ws.session("stew"), spec)
    embed_spec = next(s for s in resolved_spec.stages if s.name == "embed")
    assert embed_spec.resolved == Models(ws.session("stew")).resolve("tiny-u").id
    assert "resolved" in embed_spec.to_dict() and resolved_spec.digest != spec.digest
    resolved = embedders[ref]
    stage = EmbedStage(EmbedParams(model=ref))
    opened = stage.open_resources({RESOURCE: embedders})
    assert opened.version_id == resolved.id and opened.model.name == resolved.name
    # Without the run's resolution, a registered model is not loaded at all.
    with pytest.raises(CheckFailed):
        stage.open_resources({})
    # A pinned SHA-256 is checked against the version's manifest too.
    weights = dict(resolved.files)["model.safetensors"]
    pinned = EmbedStage(EmbedParams(model=ref, expected_sha256=weights.upper()))
    assert pinned.open_resources({RESOURCE: embedders}).version_id == resolved.id
    with pytest.raises(CheckFailed, match="pinned"):
        EmbedStage(EmbedParams(model=ref, expected_sha256="0" * 64)).open_resources(
            {RESOURCE: embedders}
        )
    # A file changed after the driver verified the folder is refused by the worker.
    config = Path(resolved.folder) / "config.json"
    config.write_text(config.read_text() + " ")
    with pytest.raises(CheckFailed):
        resolved.load()
    with pytest.raises(CheckFailed):
        EmbedStage(EmbedParams(model=ref)).open_resources({RESOURCE: embedders})


def test_forked_workers_embed_exactly_like_the_driver(ws: Workspace) -> None:
    ref = _ref(ws, "tiny-s")
    _run(ws, ref, workers=1)
    inline = {r["chunk_id"]: (r["vector"], r["vector_marking_id"]) for r in _index_rows(ws)}
    report = _run(ws, ref, workers=2, batch_docs=1, full=True)
    assert report.failed == 0 and report.embeddings == len(DOCS)
    forked = {r["chunk_id"]: (r["vector"], r["vector_marking_id"]) for r in _index_rows(ws)}
    assert forked.keys() == inline.keys()
    for chunk_id, (vector, marking_id) in forked.items():
        assert marking_id == inline[chunk_id][1]
        assert vector == pytest.approx(inline[chunk_id][0], abs=1e-5)


def test_a_model_of_another_vector_size_rebuilds_the_index(ws: Workspace) -> None:
    hashed = _run(ws, "hashing")
    assert {len(r["vector"]) for r in _index_rows(ws)} == {384}
    assert hashed.embeddings == len(DOCS)
    report = _run(ws, "tiny-u")
    assert report.written == len(DOCS)
    rows = _index_rows(ws)
    assert len(rows) == len(DOCS) and {len(r["vector"]) for r in rows} == {32}


def test_documents_dropped_with_an_index_of_another_size_are_indexed_again(
    ws: Workspace,
) -> None:
    _run(ws, "hashing")
    with ws.catalog.transaction() as orm:
        first = sorted(orm.scalars(select(ChunkRow.doc_id)))[0]
    # Only one document goes through the new model: the others' rows cannot stay.
    _run(ws, "tiny-u", doc_ids=[first])
    assert {r["doc_id"] for r in _index_rows(ws)} == {first}
    report = _run(ws, "tiny-u")
    assert report.written == len(DOCS) - 1
    assert len(_index_rows(ws)) == len(DOCS)


def test_the_shipped_model_keeps_its_name_and_marks_vectors_like_chunks(ws: Workspace) -> None:
    # ``all-MiniLM-L6-v2`` (and ``hashing``, ``local:``) load as before, under the same name.
    spec = parse_pipeline(PIPELINE.format(model="hashing"), source="registered.yaml")
    resolved_spec, embedders = resolve_models(ws.session("stew"), spec)
    assert embedders == {} and resolved_spec == spec
    _run(ws, "hashing")
    rows = _index_rows(ws)
    assert {r["model"] for r in rows} == {"hashing"}
    assert all(r["vector_marking_id"] == r["marking_id"] for r in rows)


def test_a_classifier_is_not_an_embedder(ws: Workspace, tmp_path: Path) -> None:
    import numpy as np

    head = tmp_path / "clf"
    write_classifier(
        head,
        trainer="logreg",
        labels=["a", "b"],
        weight=np.zeros((2, 32), dtype=np.float32),
        bias=np.zeros(2, dtype=np.float32),
        embedder={"id": Models(ws.session("stew")).resolve("tiny-u").id},
    )
    Models(ws.session("stew")).register(kind="classifier", name="clf", folder=head)
    with pytest.raises(InvalidInput, match="not an embedder"):
        _run(ws, "clf")


def test_chunk_never_sizes_with_a_registered_model(ws: Workspace) -> None:
    # Chunk boundaries shape text lower readers see: they never depend on a marked model.
    text = PIPELINE.format(model="tiny-u").replace("model: hashing,", "model: tiny-u,")
    spec = parse_pipeline(text, source="registered.yaml")
    with pytest.raises(InvalidInput, match="Unknown embedding model"):
        run_pipeline(ws.session("stew"), spec)


def test_an_optimized_int8_embedder_runs_in_the_pipeline_and_searches(ws: Workspace) -> None:
    """Optimize the UNCLASSIFIED embedder to int8 ONNX, name it in the embed stage: the
    pipeline re-embeds with the ONNX graph, and a reader's search embeds its query with it."""
    from garrison.models import optimize_embedder
    from garrison.search import search

    texts = [text for text in DOCS.values()] * 5
    texts = [f"{t} ({i})" for i, t in enumerate(texts)]
    optimized = optimize_embedder(ws.session("stew"), "tiny-u", name="tiny-u8", check_set=texts)
    assert optimized.version.manifest["parameters"]["format"] == "onnx"
    ref = f"tiny-u8@{optimized.version.id[:8]}"
    report = _run(ws, ref)
    assert report.embeddings > 0
    rows = _index_rows(ws)
    assert rows and {r["model"] for r in rows} == {optimized.version.ref}
    hits = search(ws.session("ustew"), "convoy fuel depot", k=3)
    assert hits.mode == "hybrid" and hits.hits
