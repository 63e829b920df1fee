"""The ``classify`` stage: predictions stored, marked with the join, redone incrementally, and
removed with their items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from garrison.core.errors import InvalidInput, NotFound
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models
from garrison.pipeline.executor import plan_run, run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import dominates, join
from garrison.store.models import ChunkRow, ElementState, PipelineDoc, PredictionRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer
from tests.pipeline.classified import (
    LABELS,
    classified_workspace,
    classify_stages,
    make_head,
    run,
)

BOTH = classify_stages("{model: topic-s}", "{model: topic-u, over: elements}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture
def setup(
    tmp_path: Path, tiny: Path, catalog_url: str | None
) -> Iterator[tuple[Workspace, dict[str, Any]]]:
    ws, ids = classified_workspace(tmp_path, tiny, catalog_url)
    yield ws, ids
    ws.close()


def predictions(ws: Workspace) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stored prediction by (item id, name), with its marking's banner."""
    session = ws.session()
    with ws.catalog.transaction() as orm:
        return {
            (p.item_id, p.name): {
                "kind": p.item_kind,
                "doc_id": p.doc_id,
                "model_id": p.model_id,
                "label": p.label,
                "probability": p.probability,
                "probabilities": dict(p.probabilities),
                "marking": session.marking_of(orm, p.marking_id),
                "run_id": p.run_id,
            }
            for p in orm.scalars(select(PredictionRow))
        }


def item_markings(ws: Workspace) -> dict[str, Any]:
    session = ws.session()
    with ws.catalog.transaction() as orm:
        out = {c.id: session.marking_of(orm, c.marking_id) for c in orm.scalars(select(ChunkRow))}
        for s in orm.scalars(select(ElementState)):
            if s.dropped is None:
                out[s.element_id] = session.marking_of(orm, s.marking_id)
        return out


def test_every_item_gets_a_prediction_marked_with_the_join(setup: Any) -> None:
    ws, ids = setup
    report = run(ws, BOTH)
    stored = predictions(ws)
    markings = item_markings(ws)
    chunks = [p for p in stored.values() if p["kind"] == "chunk"]
    elements = [p for p in stored.values() if p["kind"] == "element"]
    assert report["predictions"] == len(stored) == len(chunks) + len(elements)
    with ws.catalog.transaction() as orm:
        chunk_ids = set(orm.scalars(select(ChunkRow.id)))
    assert {k[0] for k, p in stored.items() if p["kind"] == "chunk"} == chunk_ids
    assert {k[0] for k, p in stored.items() if p["kind"] == "element"} == {
        i for i in markings if i not in chunk_ids
    }
    secret = ws.session().parse_marking("SECRET")
    for (item_id, name), p in stored.items():
        assert p["label"] in LABELS
        assert abs(sum(p["probabilities"].values()) - 1.0) < 1e-4
        assert p["probability"] == max(p["probabilities"].values())
        if name == "topic-s":
            # A SECRET classifier's prediction is SECRET even on an UNCLASSIFIED chunk.
            assert p["model_id"] == ids["topic-s"] and p["marking"] == join(
                markings[item_id], secret
            )
            assert p["marking"].banner().startswith("SECRET")
        else:
            assert p["model_id"] == ids["topic-u"] and p["marking"] == markings[item_id]
    banners = {p["marking"].banner() for p in chunks}
    assert banners == {"SECRET"}
    assert {p["marking"].banner() for p in elements} == {"UNCLASSIFIED", "SECRET"}


def test_a_new_classifier_version_repredicts_and_redoes_nothing_else(
    setup: Any, tiny: Path, tmp_path: Path
) -> None:
    ws, ids = setup
    first = run(ws, BOTH)
    before = predictions(ws)
    with ws.catalog.transaction() as orm:
        chunk_runs = {c.id: c.run_id for c in orm.scalars(select(ChunkRow))}
    again = run(ws, BOTH)
    assert again["written"] == again["repredicted"] == again["predictions"] == 0
    assert predictions(ws) == before
    # A new version of topic-s, its head flipped: every label it gave turns over.
    flipped = Models(ws.session("stew")).register(
        kind="classifier",
        name="topic-s",
        folder=make_head(tmp_path / "flipped", tiny, ids["embedder"], flip=True),
        base=ids["embedder"],
        marking=ws.session().parse_marking("SECRET"),
    )
    plan = plan_run(ws.session(), parse_pipeline(BOTH, source="classify.yaml"))
    assert len(plan.repredict) == first["documents"] and not plan.head
    report = run(ws, BOTH)
    assert report["written"] == 0 and report["processed"] == 0
    assert report["repredicted"] == first["documents"]
    after = predictions(ws)
    assert after.keys() == before.keys()
    for key, p in after.items():
        if key[1] == "topic-s":
            assert p["model_id"] == flipped.id
            other = [label for label in LABELS if label != before[key]["label"]]
            assert p["label"] == other[0]
            assert p["marking"] == before[key]["marking"]
        else:
            # The other classifier's predictions are made again, the same.
            assert {k: v for k, v in p.items() if k != "run_id"} == {
                k: v for k, v in before[key].items() if k != "run_id"
            }
    with ws.catalog.transaction() as orm:
        assert {c.id: c.run_id for c in orm.scalars(select(ChunkRow))} == chunk_runs
    # Pinning the first version goes back to its predictions.
    pinned = classify_stages(
        f"{{model: 'topic-s@{ids['topic-s'][:12]}'}}", "{model: topic-u, over: elements}"
    )
    pinned_report = run(ws, pinned)
    assert pinned_report["repredicted"] == first["documents"]
    restored = predictions(ws)
    for key, p in before.items():
        assert restored[key]["label"] == p["label"] and restored[key]["model_id"] == p["model_id"]


def test_incremental_predictions_equal_a_full_run(setup: Any) -> None:
    ws, _ = setup
    run(ws, classify_stages("{model: topic-u}"))
    run(ws, BOTH)  # adds a stage: re-predicts every document
    incremental = predictions(ws)
    run(ws, BOTH, full=True)
    full = predictions(ws)
    assert incremental.keys() == full.keys()
    for key, p in full.items():
        assert incremental[key]["label"] == p["label"]
        assert incremental[key]["marking"] == p["marking"]
        assert abs(incremental[key]["probability"] - p["probability"]) < 1e-4


def test_removing_the_stage_removes_the_predictions(setup: Any) -> None:
    ws, _ = setup
    run(ws, BOTH)
    assert predictions(ws)
    report = run(ws, classify_stages())
    assert report["repredicted"] == report["documents"] and report["written"] == 0
    assert predictions(ws) == {}
    with ws.catalog.transaction() as orm:
        assert set(orm.scalars(select(PipelineDoc.predict_key))) == {None}
    assert run(ws, classify_stages())["repredicted"] == 0


def test_predictions_go_with_their_document(setup: Any, tmp_path: Path) -> None:
    ws, _ = setup
    run(ws, BOTH)
    stored = predictions(ws)
    target = tmp_path / "corpus" / "report-01.txt"
    before_docs = {p["doc_id"] for p in stored.values()}
    target.write_text("(S) Report 1 was rewritten: radar signal intercept patrol.\n")
    ingest_paths(
        ws.session(), [str(tmp_path / "corpus")], IngestOptions(default_marking="UNCLASSIFIED")
    )
    run(ws, BOTH)
    after = predictions(ws)
    gone = before_docs - {p["doc_id"] for p in after.values()}
    assert len(gone) == 1  # the superseded document's predictions are gone
    assert len({p["doc_id"] for p in after.values()}) == len(before_docs)


def test_a_raised_element_raises_its_predictions(tmp_path: Path, tiny: Path) -> None:
    ws, _ = classified_workspace(tmp_path, tiny)
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "note.txt").write_text("Convoy fuel supply depot cargo manifest logistics.\n")
    ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run(ws, classify_stages("{model: topic-u, over: elements}"))
    ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking="CONFIDENTIAL"))
    confidential = ws.session().parse_marking("CONFIDENTIAL")
    plain = [p for p in predictions(ws).values() if not p["marking"].banner().startswith("SECRET")]
    raised = [p for p in plain if dominates(p["marking"], confidential)]
    assert raised, "the prediction on the re-marked element rose with it"
    ws.close()


def test_the_running_subject_must_dominate_the_classifier(setup: Any) -> None:
    ws, _ = setup
    ws.session().add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    spec = parse_pipeline(classify_stages("{model: topic-s}"), source="classify.yaml")
    with pytest.raises(NotFound):
        run_pipeline(ws.session("ustew"), spec)
    assert predictions(ws) == {}
    run_pipeline(ws.session("ustew"), parse_pipeline(classify_stages("{model: topic-u}")))
    uses = [e for e in ws.audit.tail(200) if e.action == "model.use"]
    assert any(e.details.get("purpose") == "classify" for e in uses)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            """
stages:
  - chunk: {model: hashing}
  - classify: {model: topic-u}
  - embed: {model: hashing}
""",
            "after every other stage",
        ),
        (
            """
stages:
  - normalize: {}
  - classify: {model: topic-u}
""",
            "add a 'chunk' stage",
        ),
        (
            """
stages:
  - chunk: {model: hashing}
  - classify: {model: topic-u}
  - classify: {model: topic-u, over: elements}
""",
            "as another classify stage does",
        ),
        (
            """
stages:
  - chunk: {model: hashing}
  - classify: {model: topic-u, over: sentences}
""",
            "over",
        ),
        (
            """
stages:
  - chunk: {model: hashing}
  - classify: {over: chunks}
""",
            "model",
        ),
    ],
)
def test_bad_classify_stages_are_refused_before_anything_runs(stages: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_pipeline(stages, source="bad.yaml")


def test_a_model_that_is_not_a_classifier_is_refused(setup: Any) -> None:
    ws, _ = setup
    with pytest.raises(InvalidInput, match="not a classifier"):
        run(ws, classify_stages("{model: tiny}"))
    assert predictions(ws) == {}


def test_workers_load_the_resolved_classifier_and_agree_with_in_process(
    tmp_path: Path, tiny: Path
) -> None:
    ws, _ = classified_workspace(tmp_path, tiny)
    run(ws, BOTH)
    alone = predictions(ws)
    report = run(ws, BOTH, full=True, workers=2, batch_docs=2)
    assert report["failed"] == 0
    forked = predictions(ws)
    assert forked.keys() == alone.keys()
    for key, p in forked.items():
        assert p["label"] == alone[key]["label"] and p["marking"] == alone[key]["marking"]
    ws.close()


def test_a_cached_file_changed_after_resolution_is_never_loaded(tmp_path: Path, tiny: Path) -> None:
    from garrison.core.errors import CheckFailed
    from garrison.models import resolve_classifier

    ws, _ = classified_workspace(tmp_path, tiny)
    resolved = resolve_classifier(ws.session(), "topic-s")
    assert resolved.load().labels == LABELS
    head = resolved.folder / "head.safetensors"
    head.write_bytes(head.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckFailed, match="do not match its manifest"):
        resolved.load()
    ws.close()
