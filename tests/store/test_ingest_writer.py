"""The ingest catalog writer, fed decided trees directly (no files, no parsers): what it
writes for a parsed document, a spill inside a container and an unreadable input, and that an
audit failure leaves nothing of the batch behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from garrison.core.records import DocumentStatus
from garrison.security.markings import parse_marking
from garrison.store.audit_log import AuditLog
from garrison.store.ingest_writer import (
    DecidedDocument,
    NewElement,
    NewFinding,
    Unreadable,
    document_known,
    ensure_source,
    write_batch,
)
from garrison.store.jobs import job
from garrison.store.models import (
    DocumentLocation,
    DocumentRow,
    ElementRow,
    FindingRow,
    JobItemRow,
    SourceRow,
)
from garrison.store.workspace import Workspace

DEFAULT = parse_marking("UNCLASSIFIED")
SECRET = parse_marking("SECRET")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")


def _doc(data: bytes, uri: str, **kwargs: object) -> DecidedDocument:
    values: dict[str, object] = {
        "doc_id": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "filename": uri.rsplit("/", 1)[-1],
        "uri": uri,
        "data": data,
        "status": DocumentStatus.PARSED,
        "reason": None,
        "marking": DEFAULT,
        **kwargs,
    }
    return DecidedDocument(**values)  # type: ignore[arg-type]


def _elements(doc_id: str) -> tuple[NewElement, ...]:
    return (
        NewElement(f"{doc_id}-0", 0, "title", "Heading", None, DEFAULT, "portion", {}),
        NewElement(
            f"{doc_id}-1",
            1,
            "narrative_text",
            "Body text.",
            2,
            SECRET,
            "portion",
            {"section_path": ["Heading"], "parent_id": f"{doc_id}-0"},
            (SECRET,),
        ),
    )


def test_a_parsed_document_is_written_with_elements_findings_and_location(
    ws: Workspace,
) -> None:
    session = ws.session()
    ensure_source(session, "src", "files", "/in", DEFAULT)
    data = b"a parsed document"
    doc = _doc(data, "/in/a.txt", marking=SECRET, title="Heading")
    doc.elements = _elements(doc.doc_id)
    doc.findings = [NewFinding("active-content", "a script", 1), NewFinding("note", "whole")]
    with job(session, "ingest", {}) as running:
        written = write_batch(session, running.id, "src", DEFAULT, [doc])
    assert [(w.outcome, w.doc_id, w.elements, w.size) for w in written] == [
        ("parsed", doc.doc_id, 2, len(data))
    ]
    assert document_known(session, doc.doc_id) and ws.blobs.get(doc.doc_id) == data
    with ws.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc.doc_id)
        assert row is not None and row.title == "Heading" and row.source_name == "src"
        assert session.marking_of(orm, row.marking_id) == SECRET
        assert session.marking_of(orm, row.default_marking_id) == DEFAULT
        elements = list(orm.scalars(select(ElementRow).order_by(ElementRow.seq)))
        assert [e.id for e in elements] == [f"{doc.doc_id}-0", f"{doc.doc_id}-1"]
        # Each heading's marking id follows the section path.
        assert list(elements[1].data) == ["section_path", "section_marking_ids", "parent_id"]
        (heading_id,) = elements[1].data["section_marking_ids"]
        assert session.marking_of(orm, heading_id) == SECRET
        findings = {f.kind: f.element_id for f in orm.scalars(select(FindingRow))}
        assert findings == {"active-content": f"{doc.doc_id}-1", "note": None}
        locations = list(orm.scalars(select(DocumentLocation)))
        assert [(loc.doc_id, loc.uri) for loc in locations] == [(doc.doc_id, "/in/a.txt")]
        items = list(orm.scalars(select(JobItemRow)))
        assert [(i.uri, i.outcome) for i in items] == [("/in/a.txt", "parsed")]
        assert orm.scalar(select(SourceRow.kind).where(SourceRow.name == "src")) == "files"


def test_a_spill_keeps_only_hash_size_and_location(ws: Workspace) -> None:
    session = ws.session()
    inner = _doc(
        b"the spilled attachment",
        "/in/box.zip#s.txt",
        status=DocumentStatus.SPILLED,
        reason="spill",
        marking=None,
    )
    box = _doc(
        b"a container",
        "/in/box.zip",
        status=DocumentStatus.SPILLED,
        reason="spill",
        marking=None,
        children=[inner],
    )
    with job(session, "ingest", {}) as running:
        (written,) = write_batch(session, running.id, "src", DEFAULT, [box])
    assert (written.outcome, written.reason) == ("spilled", "spill")
    with ws.catalog.transaction() as orm:
        for doc in (box, inner):
            row = orm.get(DocumentRow, doc.doc_id)
            assert row is not None and row.status == "spilled" and not row.blob
            assert row.marking_id is None and row.filename is None and row.meta == {}
        assert orm.get(DocumentRow, inner.doc_id).parent_id == box.doc_id  # type: ignore[union-attr]
        assert list(orm.scalars(select(ElementRow))) == []
        assert set(orm.scalars(select(FindingRow.kind))) == {"spill"}
    assert not ws.blobs.exists(box.doc_id) and not ws.blobs.exists(inner.doc_id)


def test_an_unreadable_input_is_a_failed_job_item(ws: Workspace) -> None:
    session = ws.session()
    with job(session, "ingest", {}) as running:
        (written,) = write_batch(
            session, running.id, "src", DEFAULT, [Unreadable("/in/x", "cannot be read (no)")]
        )
    assert (written.outcome, written.doc_id, written.reason) == ("failed", None, "unreadable")
    with ws.catalog.transaction() as orm:
        (item,) = orm.scalars(select(JobItemRow))
        assert (item.outcome, item.reason, item.detail) == (
            "failed",
            "unreadable",
            "cannot be read (no)",
        )
        assert list(orm.scalars(select(DocumentRow))) == []


def test_an_audit_failure_leaves_nothing_of_the_batch(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ws.session()
    doc = _doc(b"never written", "/in/n.txt")
    doc.elements = _elements(doc.doc_id)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("the audit log is full")

    with job(session, "ingest", {}) as running:
        monkeypatch.setattr(AuditLog, "append_many", refuse)
        with pytest.raises(OSError, match="full"):
            write_batch(session, running.id, "src", DEFAULT, [doc])
        monkeypatch.undo()
    assert not document_known(session, doc.doc_id)
    with ws.catalog.transaction() as orm:
        assert list(orm.scalars(select(ElementRow))) == []
        assert list(orm.scalars(select(JobItemRow))) == []
