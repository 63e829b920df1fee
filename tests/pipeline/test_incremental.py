"""Incremental runs: a re-run redoes only what changed, and ends with the catalog a fresh run
over the same inputs would give (CLI.md, "Identity of things").

Each scenario changes something -- a file's bytes, a stage's parameters, a near duplicate, a
removal -- re-runs, and compares the workspace with a reference workspace that ingested the
final inputs and ran once from scratch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import plan_run, run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.documents import Documents
from garrison.store.index import ChunkIndex
from garrison.store.models import (
    ChunkRow,
    DocumentLocation,
    DocumentRow,
    ElementRow,
    ElementState,
    FindingRow,
    PipelineDoc,
)
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: fast
stages:
  - normalize: {}
  - pii:
      default_action: mask
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 48, overlap_tokens: 8}
  - embed: {model: hashing}
"""
SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT = "CONFIDENTIAL//NOFORN"
DOCS = 24


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marks = ["(U)", "(C)", "(S//NF)"]
    for i in range(DOCS):
        mark = marks[i % len(marks)]
        (folder / f"report-{i:02d}.txt").write_text(
            f"{mark} Report {i} covers the convoy schedule for depot {i % 5} and the spare "
            f"parts that moved in week {i}.\n\n(U) Contact desk{i}@example.mil for the "
            f"annex on trailer number {i * 17}.\n"
        )


def spec(text: str = PIPELINE) -> Any:
    return parse_pipeline(text, source="fast.yaml")


def run(ws: Workspace, text: str = PIPELINE, **kwargs: Any) -> dict[str, Any]:
    return run_pipeline(ws.session(), spec(text), **kwargs).to_dict()


def ingest(ws: Workspace, folder: Path) -> None:
    ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking=DEFAULT))


def derived_state(ws: Workspace) -> dict[str, Any]:
    """What a pipeline run leaves, as comparable values (no run ids, no timestamps)."""
    session = ws.session()
    with ws.catalog.transaction() as orm:

        def banner(marking_id: int | None) -> str | None:
            marking = session.marking_of(orm, marking_id)
            return marking.banner() if marking is not None else None

        states = sorted(
            (
                s.element_id,
                s.doc_id,
                s.text,
                banner(s.marking_id),
                s.dropped,
                s.dup_of,
                s.dup_kind,
                json.dumps(s.pii, sort_keys=True),
                json.dumps(s.lineage, sort_keys=True),
                s.failed,
            )
            for s in orm.scalars(select(ElementState))
        )
        chunks = sorted(
            (c.id, c.doc_id, c.text, banner(c.marking_id), tuple(c.element_ids))
            for c in orm.scalars(select(ChunkRow))
        )
        findings = sorted(
            (f.doc_id, f.kind, f.element_id or "", banner(f.marking_id))
            for f in orm.scalars(
                select(FindingRow).where(
                    FindingRow.kind.in_(("stage-failed", "duplicate-marked-differently"))
                )
            )
        )
        live = set(
            orm.scalars(
                select(DocumentRow.id).where(
                    DocumentRow.status == "parsed", DocumentRow.superseded_by.is_(None)
                )
            )
        )
    index = ChunkIndex(ws.root / "index")
    index_rows = sorted(index.values("chunk_id", "true")) if index.count() else []
    return {
        "states": states,
        "chunks": chunks,
        "findings": findings,
        "index": index_rows,
        "live": sorted(live),
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    write_corpus(folder)
    return folder


@pytest.fixture
def ws(tmp_path: Path, corpus: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH, db_url=catalog_url)
    ingest(workspace, corpus)
    yield workspace
    workspace.close()


def reference(tmp_path: Path, corpus: Path, text: str = PIPELINE) -> dict[str, Any]:
    """The state of a fresh workspace that ingested ``corpus`` and ran once."""
    ref = Workspace.init(tmp_path / f"ref-{len(list(tmp_path.iterdir()))}", system_high=SYSTEM_HIGH)
    try:
        ingest(ref, corpus)
        run(ref, text)
        return derived_state(ref)
    finally:
        ref.close()


def assert_index_matches_catalog(state: dict[str, Any]) -> None:
    chunk_ids = [c[0] for c in state["chunks"]]
    assert state["index"] == sorted(chunk_ids)  # every chunk indexed once: no gap, no duplicate
    assert {c[1] for c in state["chunks"]} <= set(state["live"])


def test_a_rerun_with_nothing_changed_redoes_nothing(ws: Workspace) -> None:
    first = run(ws)
    assert first["processed"] == first["written"] == DOCS
    before = derived_state(ws)
    plan = plan_run(ws.session(), spec()).to_dict()
    assert (plan["new"], plan["changed"], plan["unchanged"], plan["remove"]) == (0, 0, DOCS, 0)
    second = run(ws)
    assert (second["processed"], second["reused"], second["written"]) == (0, DOCS, 0)
    assert derived_state(ws) == before
    assert_index_matches_catalog(before)


def test_new_bytes_at_a_known_location_supersede_the_old_document(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    run(ws)
    target = corpus / "report-03.txt"
    with ws.catalog.transaction() as orm:
        old_id = orm.scalar(
            select(DocumentLocation.doc_id).where(DocumentLocation.uri == str(target.absolute()))
        )
    assert old_id is not None
    target.write_text("(U) Report 3 was rewritten: the convoy now leaves from depot 9.\n")
    ingest(ws, corpus)
    with ws.catalog.transaction() as orm:
        old = orm.get(DocumentRow, old_id)
        assert old is not None and old.superseded_by is not None
        new_id = old.superseded_by
        assert orm.get(DocumentRow, new_id) is not None
    plan = plan_run(ws.session(), spec()).to_dict(ids=True)
    assert plan["ids"]["new"] == [new_id] and plan["ids"]["remove"] == [old_id]
    report = run(ws)
    assert report["processed"] == 1 and report["removed"] == 1
    # Only the new document, plus any whose duplicate status it changed, is rewritten.
    assert report["written"] == 1
    state = derived_state(ws)
    assert old_id not in {c[1] for c in state["chunks"]}
    assert old_id not in {s[1] for s in state["states"]}
    assert not ChunkIndex(ws.root / "index").values("chunk_id", f"doc_id = '{old_id}'")
    assert_index_matches_catalog(state)
    assert state == reference(tmp_path, corpus)
    # The superseding is audited, and reverting the file makes the old bytes current again.
    assert any(e.action == "ingest.supersede" for e in ws.audit.events())
    write_corpus(corpus)
    ingest(ws, corpus)
    with ws.catalog.transaction() as orm:
        assert orm.get(DocumentRow, old_id).superseded_by is None  # type: ignore[union-attr]
        assert orm.get(DocumentRow, new_id).superseded_by == old_id  # type: ignore[union-attr]
    run(ws)
    assert derived_state(ws) == reference(tmp_path, corpus)


def test_a_new_near_duplicate_rewrites_only_the_documents_it_touches(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    run(ws)
    source = (corpus / "report-05.txt").read_text()
    # Same marking, one word added: a near duplicate of report 5 (and of nothing else).
    (corpus / "report-05-copy.txt").write_text(source.replace("week 5.", "week 5. Done."))
    ingest(ws, corpus)
    report = run(ws)
    assert report["processed"] == 1
    assert report["written"] <= 2  # the new document and, at most, the one it duplicates
    state = derived_state(ws)
    assert any(s[6] == "near" for s in state["states"])
    assert state == reference(tmp_path, corpus)


def test_signatures_cached_under_other_algorithms_are_made_again_from_the_text(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    run(ws)
    # As an older release left them: another key, another layout. An unchanged element is read
    # back without its text, so a stale signature must send it to be read in full.
    with ws.catalog.transaction() as orm:
        orm.execute(update(ElementState).values(minhash_key="0" * 32, minhash=b"\x01" * 40))
    source = (corpus / "report-05.txt").read_text()
    (corpus / "report-05-copy.txt").write_text(source.replace("week 5.", "week 5. Done."))
    ingest(ws, corpus)
    report = run(ws)
    assert report["processed"] == 1
    state = derived_state(ws)
    assert sum(s[6] == "near" for s in state["states"]) == 1
    assert state == reference(tmp_path, corpus)


def test_changing_a_tail_stage_rewrites_every_document_but_reuses_the_head(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    run(ws)
    changed = PIPELINE.replace("max_tokens: 48", "max_tokens: 32")
    plan = plan_run(ws.session(), spec(changed)).to_dict()
    assert plan["unchanged"] == DOCS and plan["tail_stages_changed"]
    report = run(ws, changed)
    assert (report["processed"], report["reused"], report["written"]) == (0, DOCS, DOCS)
    assert report["stages"] and {s["stage"] for s in report["stages"]} == {
        "dedup",
        "chunk",
        "embed",
    }
    assert derived_state(ws) == reference(tmp_path, corpus, changed)


def test_changing_a_head_stage_reprocesses_every_document(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    run(ws)
    # (Not pseudonymize: its key differs from workspace to workspace, by design.)
    changed = PIPELINE.replace(
        "default_action: mask", "default_action: mask\n      actions: {email: keep}"
    )
    plan = plan_run(ws.session(), spec(changed)).to_dict()
    assert plan["changed"] == DOCS
    report = run(ws, changed)
    assert report["processed"] == report["written"] == DOCS
    assert derived_state(ws) == reference(tmp_path, corpus, changed)


def test_a_downgraded_element_is_reprocessed(ws: Workspace) -> None:
    run(ws)
    session = ws.session()
    with ws.catalog.transaction() as orm:
        element = orm.scalars(
            select(ElementRow).where(
                ElementRow.marking_id
                == session.intern_marking(orm, session.parse_marking("SECRET//NOFORN"))
            )
        ).first()
        assert element is not None
        element_id, doc_id = element.id, element.doc_id
    Documents(session).downgrade(element_id, "CONFIDENTIAL//NOFORN", "reviewed: over-marked")
    plan = plan_run(ws.session(), spec()).to_dict(ids=True)
    assert plan["ids"]["changed"] == [doc_id]
    report = run(ws)
    assert report["processed"] == 1


def test_docs_rm_removes_a_document_and_everything_derived(
    ws: Workspace, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ws)
    session = ws.session()
    target = str((corpus / "report-07.txt").absolute())
    with ws.catalog.transaction() as orm:
        doc_id = orm.scalar(select(DocumentLocation.doc_id).where(DocumentLocation.uri == target))
    assert doc_id is not None and ws.blobs.exists(doc_id)
    session.add_user("vera", SubjectSpec(clearance="SECRET", citizenship="USA", roles=("viewer",)))
    session.add_user("cory", SubjectSpec(clearance="U", citizenship="USA", roles=("steward",)))
    with pytest.raises(NotPermitted):
        Documents(ws.session("vera")).remove(doc_id, "not hers to remove")
    with pytest.raises(InvalidInput):
        Documents(session).remove(doc_id, "  ")
    # report-07 is (C): a steward cleared only for U is told it does not exist.
    with pytest.raises(NotFound):
        Documents(ws.session("cory")).remove(doc_id, "cleanup")

    rc = main(
        ["docs", "rm", doc_id[:12], "--reason", "duplicate upload", "-w", str(ws.root), "--json"]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["id"] == doc_id and out["documents"] == 1 and out["chunks"] >= 1
    with ws.catalog.transaction() as orm:
        for model, column in (
            (DocumentRow, DocumentRow.id),
            (ElementRow, ElementRow.doc_id),
            (ElementState, ElementState.doc_id),
            (ChunkRow, ChunkRow.doc_id),
            (FindingRow, FindingRow.doc_id),
            (DocumentLocation, DocumentLocation.doc_id),
            (PipelineDoc, PipelineDoc.doc_id),
        ):
            assert orm.scalar(select(column).where(column == doc_id)) is None, model
    assert not ChunkIndex(ws.root / "index").values("chunk_id", f"doc_id = '{doc_id}'")
    assert not ws.blobs.exists(doc_id)
    removal = [e for e in ws.audit.events() if e.action == "document.remove"]
    assert [(e.object_id, e.decision) for e in removal][-1] == (doc_id, "allow")
    assert {e.decision for e in removal} == {"allow", "deny"}
    with pytest.raises(NotFound):
        Documents(session).show(doc_id)
    # The next run has nothing to redo, and matches a corpus that never had the file.
    assert run(ws)["processed"] == 0
    (corpus / "report-07.txt").unlink()
    assert derived_state(ws) == reference(tmp_path, corpus)


def test_dry_run_changes_nothing_and_says_what_would_be_redone(
    ws: Workspace, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = corpus.parent / "fast.yaml"
    pipeline.write_text(PIPELINE)
    rc = main(["run", str(pipeline), "--dry-run", "--json", "-w", str(ws.root)])
    assert rc == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["new"] == DOCS and plan["changed"] == 0 and len(plan["ids"]["new"]) == DOCS
    assert derived_state(ws)["states"] == []
    assert main(["run", str(pipeline), "-w", str(ws.root), "--json"]) == 0
    capsys.readouterr()
    (corpus / "report-11.txt").write_text("(U) A new text for report eleven.\n")
    ingest(ws, corpus)
    assert main(["run", str(pipeline), "--dry-run", "-w", str(ws.root)]) == 0
    text = capsys.readouterr().out
    assert "dry run" in text and "new" in text and "removed or superseded" in text
    plan = plan_run(ws.session(), spec()).to_dict()
    assert (plan["new"], plan["unchanged"], plan["remove"]) == (1, DOCS - 1, 1)
    assert main(["run", str(pipeline), "--full", "--dry-run", "--json", "-w", str(ws.root)]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["changed"] == DOCS - 1 and full["tail_stages_changed"]


def test_postgresql_batches_are_written_concurrently_sqlite_by_one_writer(
    ws: Workspace, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import garrison.pipeline.executor as executor

    active: list[int] = [0]
    most: list[int] = [0]
    threads: set[str] = set()
    lock = threading.Lock()
    real = executor.write_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # long enough for writes of several batches to overlap
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(executor, "write_batch", spy)
    report = run(ws, batch_docs=2, writers=3)
    assert report["written"] == DOCS
    postgres = ws.catalog.engine.dialect.name == "postgresql"
    if postgres:
        assert most[0] > 1 and len(threads) > 1
        assert all(t.startswith("garrison-sink") for t in threads)
    else:
        # One writer thread, overlapping the driver's work but never another write.
        assert most[0] == 1 and len(threads) == 1
        assert threads != {threading.current_thread().name}
        assert all(t.startswith("garrison-sink") for t in threads)
    state = derived_state(ws)
    assert_index_matches_catalog(state)
    assert state == reference(tmp_path, corpus)
