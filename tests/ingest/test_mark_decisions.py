"""Ingest decisions around marks: what cannot be read, and what the catalog keeps per element."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from garrison.core.records import DocumentStatus, ElementType, Extraction, ParsedDocument
from garrison.core.records import ParsedElement as Element
from garrison.ingest.engine import (
    WARNING_FINDINGS,
    IngestOptions,
    ParseNode,
    _decide,
    ingest_paths,
)
from garrison.security.markings import BUILTIN_REGISTRY, parse_marking
from garrison.store.models import DocumentRow, ElementRow, FindingRow
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT = "UNCLASSIFIED"
SESSION: Any = SimpleNamespace(workspace=SimpleNamespace(registry=BUILTIN_REGISTRY))


def _parsed(*texts: str, warnings: tuple[str, ...] = ()) -> ParsedDocument:
    return ParsedDocument(
        media_type="text/plain",
        elements=tuple(Element(type=ElementType.NARRATIVE_TEXT, text=t) for t in texts),
        warnings=warnings,
        extraction=Extraction(method="test", parser="test", parser_version="0"),
    )


def _node(parsed: ParsedDocument | None, failure: tuple[str, str] | None = None) -> ParseNode:
    return ParseNode("0" * 64, 10, "x.txt", "file:///x.txt", b"x", parsed, failure)


def test_unreadable_content_warnings_become_findings() -> None:
    assert "unreadable-content" in WARNING_FINDINGS
    parsed = _parsed("(U) Text.", warnings=("unreadable-content: embedded object 1",))
    decided = _decide(_node(parsed), parse_marking(DEFAULT), parse_marking(SYSTEM_HIGH), SESSION)
    assert decided.status is DocumentStatus.PARSED
    assert [(f.kind, f.detail) for f in decided.findings] == [
        ("unreadable-content", "embedded object 1")
    ]


@pytest.mark.parametrize("reason", ["corrupt", "archive-limit", "unsupported-type", "too-large"])
def test_a_child_that_cannot_be_read_makes_the_container_unreadable(reason: str) -> None:
    parent = _node(_parsed("(U) Text."))
    parent.children.append(_node(None, (reason, "it broke")))
    decided = _decide(parent, parse_marking(DEFAULT), parse_marking(SYSTEM_HIGH), SESSION)
    assert decided.status is DocumentStatus.PARSED  # the container stays parsed
    found = {f.kind: f.detail for f in decided.findings}
    assert found["attachment-quarantined"] == f"an attachment is {reason}"
    assert found["unreadable-content"] == f"attachment 1 could not be read ({reason})"


def test_a_child_with_an_invalid_marking_still_quarantines_the_container() -> None:
    parent = _node(_parsed("(U) Text."))
    parent.children.append(_node(_parsed("(S/NF) bad")))
    decided = _decide(parent, parse_marking(DEFAULT), parse_marking(SYSTEM_HIGH), SESSION)
    assert decided.reason == "invalid-marking"
    assert "unreadable-content" not in {f.kind for f in decided.findings}


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH, db_url=catalog_url)
    yield workspace
    workspace.close()


def test_catalog_keeps_heading_markings_cells_and_a_stripped_title(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ops.md").write_text(
        "# (S//NF) Operation GLASS\n\n(U) Intro.\n\n## Logistics\n\n(U) Fuel.\n\n"
        "| name | note |\n|---|---|\n| (U) alpha | (S//NF) bravo |\n"
    )
    (folder / "rows.json").write_text('[{"id": 1, "note": "(S//NF) hidden"}]')
    session = ws.session()
    ingest_paths(session, [str(folder)], IngestOptions(default_marking=DEFAULT))
    with ws.catalog.transaction() as orm:
        docs = {d.filename: d for d in orm.scalars(select(DocumentRow))}
        ops = docs["ops.md"]
        assert ops.title == "Operation GLASS"
        rows = list(
            orm.scalars(select(ElementRow).where(ElementRow.doc_id == ops.id).order_by("seq"))
        )
        by_text = {r.text: r for r in rows}
        fuel = by_text["Fuel."].data
        assert fuel["section_path"] == ["Operation GLASS", "Logistics"]
        secret = session.intern_marking(orm, parse_marking("SECRET//NOFORN"))
        unclassified = session.intern_marking(orm, parse_marking(DEFAULT))
        assert fuel["section_marking_ids"] == [secret, unclassified]
        table = next(r for r in rows if r.type == "Table")
        assert [c["marking"] for c in table.data["table_cells"]][2:] == [
            "UNCLASSIFIED",
            "SECRET//NOFORN",
        ]
        assert table.marking_id == secret
        assert "declared_marking" not in table.data
        record = orm.scalars(
            select(ElementRow).where(ElementRow.doc_id == docs["rows.json"].id)
        ).one()
        assert record.data["field_markings"] == {"/note": "SECRET//NOFORN"}
        assert record.data["fields"]["note"] == "hidden"


def test_an_attachment_that_cannot_be_read_is_a_finding_of_its_mail(
    ws: Workspace, tmp_path: Path
) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.mil", "b@example.mil", "(U) Files"
    msg.set_content("(U) Attached.")
    msg.add_attachment(
        b"%PDF-1.7\n garbage that is no PDF",
        maintype="application",
        subtype="pdf",
        filename="broken.pdf",
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mail.eml").write_bytes(bytes(msg))
    session = ws.session()
    report = ingest_paths(session, [str(tmp_path / "in")], IngestOptions(default_marking=DEFAULT))
    [result] = report.results
    assert result.outcome == "parsed"
    with ws.catalog.transaction() as orm:
        kinds = {
            f.kind: f.detail
            for f in orm.scalars(select(FindingRow).where(FindingRow.doc_id == result.doc_id))
        }
    assert kinds["unreadable-content"].startswith("attachment 1 could not be read")
