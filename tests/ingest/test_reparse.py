"""A document whose marking rises takes its derived records along at once; re-parsing stored
originals under the current rules applies what changed (raise, restructure, spill)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

import garrison.ingest.reparse as reparse_module
from garrison.cli.main import app
from garrison.core.errors import NotFound, NotPermitted
from garrison.core.records import DocumentStatus
from garrison.ingest.engine import IngestOptions, ParseNode, ingest_paths, ingest_sql
from garrison.ingest.marking import Finding
from garrison.ingest.reparse import reparse
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.markings import Marking, parse_marking
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.index import ChunkIndex
from garrison.store.models import (
    ChunkRow,
    DocumentRow,
    ElementRow,
    ElementState,
    FindingRow,
    PipelineDoc,
)
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""


def _run(session: Session) -> None:
    run_pipeline(session, parse_pipeline(FAST, source="fast.yaml"))


def _workspace(tmp_path: Path, db_url: str | None = None) -> Workspace:
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=db_url)
    system = ws.session()
    system.add_user("low", SubjectSpec(clearance="U", citizenship="USA", roles=("viewer",)))
    system.add_user("high", SubjectSpec(clearance="S", citizenship="USA", roles=("viewer",)))
    system.add_user("stew", SubjectSpec(clearance="S", citizenship="USA", roles=("steward",)))
    return ws


def _found(session: Session, word: str) -> dict[str, object]:
    result = search(session, word).to_dict()
    return {
        "hits": [h for h in result["hits"] if word in h["snippet"]],
        "total": result["total"],
        "facets": result["facets"],
    }


# -- a raise by a second location ------------------------------------------------------------------


def test_ingest_under_a_higher_default_remarks_chunks_at_once(
    tmp_path: Path, catalog_url: str | None
) -> None:
    ws = _workspace(tmp_path, catalog_url)
    try:
        text = "The depot canarydepot moves on Monday with the cranes.\n"
        for name in ("open", "closed"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "note.txt").write_text(text)
        system = ws.session()
        ingest_paths(
            system, [str(tmp_path / "open")], IngestOptions(default_marking="UNCLASSIFIED")
        )
        _run(system)
        low = ws.session("low")
        before = _found(low, "canarydepot")
        assert before["total"] == 1 and len(before["hits"]) == 1  # type: ignore[arg-type]
        ingest_paths(system, [str(tmp_path / "closed")], IngestOptions(default_marking="SECRET"))
        # No pipeline run in between: the catalog moved in the ingest's transaction.
        with ws.catalog.transaction() as orm:
            secret = system.intern_marking(orm, parse_marking("SECRET"))
            assert {c.marking_id for c in orm.scalars(select(ChunkRow))} == {secret}
            assert {s.marking_id for s in orm.scalars(select(ElementState))} == {secret}
        after = _found(low, "canarydepot")
        assert after == {
            "hits": [],
            "total": 0,
            "facets": {"marking": {}, "language": {}, "source": {}, "media_type": {}},
        }
        assert Chunks(low).list() == []
        high = _found(ws.session("high"), "canarydepot")
        assert high["total"] == 1
        assert high["facets"]["marking"] == {"SECRET": 1}  # type: ignore[index]
        assert [h["marking"] for h in high["hits"]] == ["SECRET"]  # type: ignore[attr-defined]
        # The next run re-indexes the document under its new marking.
        _run(system)
        index = ChunkIndex(ws.root / "index")
        assert set(index.values("marking_id", "true")) == {secret}
        assert _found(low, "canarydepot")["total"] == 0
    finally:
        ws.close()


# -- reparse --------------------------------------------------------------------------------------


def _memo(tmp_path: Path, db_url: str | None = None) -> tuple[Workspace, str]:
    ws = _workspace(tmp_path, db_url)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "memo.txt").write_text(
        "SECRET\n\n(S) The canaryvault cache moves to the eastern depot.\n\n"
        "(S) The second paragraph talks about the cranes.\n\nSECRET\n"
    )
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    (doc,) = Documents(system).list()
    return ws, str(doc["id"])


def _store_wrongly(ws: Workspace, doc_id: str) -> None:
    """As if older rules had marked the document and its elements UNCLASSIFIED."""
    system = ws.session()
    with ws.catalog.transaction() as orm:
        low = system.intern_marking(orm, parse_marking("UNCLASSIFIED"))
        for element in orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id)):
            element.marking_id = low
        doc = orm.get(DocumentRow, doc_id)
        assert doc is not None
        doc.marking_id = doc.banner_marking_id = low


def test_reparse_raises_a_document_stored_with_a_wrong_marking(
    tmp_path: Path, catalog_url: str | None
) -> None:
    ws, doc_id = _memo(tmp_path, catalog_url)
    try:
        _store_wrongly(ws, doc_id)
        system = ws.session()
        _run(system)
        low = ws.session("low")
        assert _found(low, "canaryvault")["total"] == 1  # the spill the old rules made
        report = reparse(ws.session("stew"))
        (moved,) = report.moved
        assert (moved.change, moved.doc_id, moved.elements) == ("raised", doc_id, 2)
        assert moved.chunks >= 1 and moved.marking == "SECRET"
        assert report.counts["raised"] == 1
        assert _found(low, "canaryvault") == {
            "hits": [],
            "total": 0,
            "facets": {"marking": {}, "language": {}, "source": {}, "media_type": {}},
        }
        assert Chunks(low).list() == [] and Documents(low).list() == []
        assert Documents(system).show(doc_id)["marking"] == "SECRET"
        with ws.catalog.transaction() as orm:
            assert not orm.get(PipelineDoc, doc_id).indexed  # type: ignore[union-attr]
        events = [e for e in system.audit_tail(50) if e.action == "ingest.reparse"]
        assert [e.object_id for e in events] == [doc_id]
        # A second reparse finds nothing more to move.
        assert reparse(ws.session("stew")).moved == []
    finally:
        ws.close()


def test_reparse_restructures_what_older_parsers_cut_differently(tmp_path: Path) -> None:
    ws, doc_id = _memo(tmp_path)
    try:
        system = ws.session()
        _run(system)
        with ws.catalog.transaction() as orm:
            # As if an older parser had not seen the second paragraph.
            last = orm.scalars(
                select(ElementRow).where(ElementRow.doc_id == doc_id).order_by(ElementRow.seq)
            ).all()[-1]
            orm.execute(delete(ElementState).where(ElementState.element_id == last.id))
            orm.delete(last)
        report = reparse(ws.session("stew"), [str(tmp_path / "in")])
        (moved,) = report.moved
        assert moved.change == "restructured" and moved.elements == 2 and moved.chunks >= 1
        with ws.catalog.transaction() as orm:
            assert orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == doc_id)).all() == []
            assert orm.get(PipelineDoc, doc_id) is None
        _run(system)
        texts = " ".join(c["text"] for c in Chunks(ws.session("high")).list())
        assert "cranes" in texts
    finally:
        ws.close()


def test_reparse_spills_what_is_now_above_system_high(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, doc_id = _memo(tmp_path)
    try:
        _run(ws.session())
        assert ws.blobs.get(doc_id)
        # The current rules put the document above system high (decided as if system high
        # were CONFIDENTIAL; what the steward may read is unchanged).
        real = reparse_module._decide
        monkeypatch.setattr(
            reparse_module,
            "_decide",
            lambda node, default, _high, session: real(
                node, default, parse_marking("CONFIDENTIAL"), session
            ),
        )
        report = reparse(ws.session("stew"))
        assert report.counts["documents"] == 1, report.to_dict()
        (moved,) = report.moved
        assert moved.change == "spilled" and moved.marking is None
        system = ws.session()
        with ws.catalog.transaction() as orm:
            doc = orm.get(DocumentRow, doc_id)
            assert doc is not None and doc.status == "spilled" and not doc.blob
            assert doc.marking_id is None and doc.title is None
            assert orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id)).all() == []
            assert orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == doc_id)).all() == []
            kinds = set(orm.scalars(select(FindingRow.kind).where(FindingRow.doc_id == doc_id)))
        assert kinds == {"spill"}
        with pytest.raises(NotFound):
            ws.blobs.get(doc_id)
        assert ChunkIndex(ws.root / "index").values("chunk_id", "true") == []
        assert _found(system, "canaryvault")["total"] == 0
    finally:
        ws.close()


def test_reparse_is_for_stewards(tmp_path: Path) -> None:
    ws, _ = _memo(tmp_path)
    try:
        with pytest.raises(NotPermitted):
            reparse(ws.session("high"))
    finally:
        ws.close()


def test_cli_reparse_reports_what_moved(tmp_path: Path) -> None:
    ws, doc_id = _memo(tmp_path)
    try:
        _store_wrongly(ws, doc_id)
    finally:
        ws.close()
    runner = CliRunner()
    out = runner.invoke(
        app, ["ingest", "--reparse", str(tmp_path / "in"), "-w", str(ws.root), "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["raised"] == 1 and [m["id"] for m in data["moved"]] == [doc_id]
    again = runner.invoke(app, ["docs", "reparse", "-w", str(ws.root)])
    assert again.exit_code == 0, again.output
    assert "0 raised" in again.output and "1 unchanged" in again.output


def test_a_raise_takes_headings_along(tmp_path: Path) -> None:
    """A heading that took the old default rises with the document, in element data and in
    the chunks' section markings."""
    ws = _workspace(tmp_path)
    try:
        for name in ("open", "closed"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "plan.md").write_text(
                "# Depot plans canaryhead\n\nThe depot moves on Monday with the cranes.\n"
            )
        system = ws.session()
        ingest_paths(
            system, [str(tmp_path / "open")], IngestOptions(default_marking="UNCLASSIFIED")
        )
        with ws.catalog.transaction() as orm:
            low = system.intern_marking(orm, parse_marking("UNCLASSIFIED"))
            for element in orm.scalars(select(ElementRow)):
                path = (element.data or {}).get("section_path")
                if path:
                    element.data = {**element.data, "section_marking_ids": [low] * len(path)}
        _run(system)
        shown = [c for c in Chunks(ws.session("low")).list() if "cranes" in c["text"]]
        assert shown and "canaryhead" in " ".join(shown[0]["section_path"])
        ingest_paths(system, [str(tmp_path / "closed")], IngestOptions(default_marking="SECRET"))
        with ws.catalog.transaction() as orm:
            secret = system.intern_marking(orm, parse_marking("SECRET"))
            chunks = [c for c in orm.scalars(select(ChunkRow)) if c.section_path]
            assert chunks and all(set(c.section_marking_ids or []) == {secret} for c in chunks)
            heads = [
                e.data["section_marking_ids"]
                for e in orm.scalars(select(ElementRow))
                if "section_marking_ids" in (e.data or {})
            ]
            assert heads and all(set(h) == {secret} for h in heads)
        assert Chunks(ws.session("low")).list() == []
    finally:
        ws.close()


def test_reparse_quarantines_what_the_current_rules_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, doc_id = _memo(tmp_path)
    try:
        _run(ws.session())
        real = reparse_module._decide

        def rejecting(node: ParseNode, default: Marking, high: Marking, session: Session) -> Any:
            decided = real(node, default, high, session)
            decided.status, decided.reason, decided.marking = (
                DocumentStatus.QUARANTINED,
                "invalid-marking",
                None,
            )
            decided.findings = [Finding("invalid-marking", "a portion or banner mark is invalid")]
            return decided

        monkeypatch.setattr(reparse_module, "_decide", rejecting)
        (moved,) = reparse(ws.session("stew")).moved
        assert (moved.change, moved.reason, moved.findings) == (
            "quarantined",
            "invalid-marking",
            ["invalid-marking"],
        )
        with ws.catalog.transaction() as orm:
            doc = orm.get(DocumentRow, doc_id)
            assert doc is not None and doc.status == "quarantined" and doc.marking_id is None
            assert doc.blob  # the original stays for a steward
            assert orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id)).all() == []
            assert orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == doc_id)).all() == []
        assert ChunkIndex(ws.root / "index").values("chunk_id", "true") == []
        assert Documents(ws.session("high")).list() == []
        # Quarantined stays quarantined on the next reparse.
        monkeypatch.setattr(reparse_module, "_decide", real)
        assert reparse(ws.session("stew")).counts["unchanged"] == 1
    finally:
        ws.close()


def test_reparse_leaves_database_tables_alone(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "legacy.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table depots (id integer primary key, name text)")
        conn.execute("insert into depots values (1, 'harrow'), (2, 'kestrel')")
    ws = _workspace(tmp_path)
    try:
        system = ws.session()
        ingest_sql(
            system,
            f"sqlite:///{db}",
            IngestOptions(default_marking="UNCLASSIFIED"),
            tables=("depots",),
        )
        before = Documents(system).list()
        assert len(before) == 1
        report = reparse(ws.session("stew"))
        assert report.counts["documents"] == 0 and report.moved == []
        assert Documents(system).list() == before
    finally:
        ws.close()
