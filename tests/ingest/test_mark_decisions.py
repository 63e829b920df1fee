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


CANARY_TS = "Collection shows OSPREY 5521 at the northern pier."
CANARY_S = "Convoy HALCYON 3308 leaves at dusk."

#: One document per place a mark hides in, each hiding a canary above the UNCLASSIFIED default.
HIDDEN: dict[str, tuple[str, str]] = {
    "spaced.txt": (f"(U) Intro.\n\n(TOP\u00a0 SECRET//SI//NF) {CANARY_TS}\n", "ts"),
    "mixed-banner.md": (f"Top Secret//SI//NoForn\n\n{CANARY_TS}\n\nTop Secret//SI//NoForn\n", "ts"),
    "zero-width.txt": (f"(U) Intro.\n\n\u200b**(S//NF)** {CANARY_S}\n", "s"),
    "quote.md": (f"# (U) Notes\n\n> (S//NF) {CANARY_S}\n", "s"),
    "inside.txt": (f"(U) first line\n(TS//SI//NF) {CANARY_TS}\n", "ts"),
    "pages.txt": (
        f"UNCLASSIFIED\n\n(U) one\n\fSECRET//NOFORN\n\n{CANARY_S}\n\nSECRET//NOFORN\n",
        "s",
    ),
    "middle.txt": (f"Intro.\n\nSECRET//NOFORN\n\n{CANARY_S}\n", "s"),
    "cells.csv": (f"name,note\nalpha,(TS//SI//NF) {CANARY_TS}\n", "ts"),
    "table.md": (f"# Ops\n\n| a | b |\n|---|---|\n| x | (S//NF) {CANARY_S} |\n", "s"),
    "deep.json": ('{"a": {"b": [{"note": "(TS//SI//NF) ' + CANARY_TS + '"}]}}', "ts"),
    "heading.md": (f"# (S//NF) {CANARY_S}\n\n(U) Under it.\n", "s"),
    "invalid-banner.txt": (
        f"SECRET//RD-SIGMA 100//NOFORN\n\n{CANARY_S}\n\nSECRET//RD-SIGMA 100//NOFORN\n",
        "s",
    ),
}
FLOORS = {"ts": "TOP SECRET//SI//NOFORN", "s": "SECRET//NOFORN"}


def test_generated_documents_never_store_a_canary_below_its_level(
    tmp_path: Path, catalog_url: str | None
) -> None:
    from garrison.security.markings import dominates

    workspace = Workspace.init(
        tmp_path / "ws", system_high="TOP SECRET//SI/TK//NOFORN", db_url=catalog_url
    )
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        for name, (text, _) in HIDDEN.items():
            (folder / name).write_text(text, encoding="utf-8")
        msg = EmailMessage()
        msg["From"], msg["To"] = "a@example.mil", "b@example.mil"
        msg["Subject"] = f"(S//NF) {CANARY_S}"
        msg.set_content("(U) See the subject.")
        (folder / "subject.eml").write_bytes(bytes(msg))
        session = workspace.session()
        report = ingest_paths(session, [str(folder)], IngestOptions(default_marking=DEFAULT))
        outcomes = {Path(r.uri).name: r for r in report.results}
        assert outcomes["invalid-banner.txt"].reason == "invalid-marking"
        levels = {name: FLOORS[level] for name, (_, level) in HIDDEN.items()}
        levels["subject.eml"] = FLOORS["s"]
        with workspace.catalog.transaction() as orm:
            for name, floor_text in levels.items():
                floor = parse_marking(floor_text)
                doc = orm.get(DocumentRow, outcomes[name].doc_id)
                assert doc is not None, name
                if doc.status != "parsed":
                    assert doc.status == "quarantined", name
                    continue
                marking = session.marking_of(orm, doc.marking_id)
                assert marking is not None and dominates(marking, floor), name
                for row in orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc.id)):
                    shown = row.text + " ".join(row.data.get("section_path", []))
                    if CANARY_TS in shown or CANARY_S in shown:
                        element_marking = session.marking_of(orm, row.marking_id)
                        assert element_marking is not None
                        if CANARY_TS in row.text or CANARY_S in row.text:
                            assert dominates(element_marking, floor), (name, row.text)
                    for heading, mid in zip(
                        row.data.get("section_path", []),
                        row.data.get("section_marking_ids", []),
                        strict=True,
                    ):
                        if CANARY_S in heading or CANARY_TS in heading:
                            heading_marking = session.marking_of(orm, mid)
                            assert heading_marking is not None
                            assert dominates(heading_marking, floor), name
    finally:
        workspace.close()


def test_a_mark_in_a_folder_or_file_name_raises_the_document(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "(S) Harbor plans"  # a POSIX name cannot hold "//"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("Plain notes.\n")
    (tmp_path / "in" / "(c) 2024 brochure.txt").write_text("Plain brochure.\n")
    session = ws.session()
    report = ingest_paths(session, [str(tmp_path / "in")], IngestOptions(default_marking=DEFAULT))
    with ws.catalog.transaction() as orm:
        markings = {
            Path(r.uri).name: session.marking_of(orm, orm.get(DocumentRow, r.doc_id).marking_id)
            for r in report.results
        }
    assert markings["notes.txt"] == parse_marking("SECRET")
    assert markings["(c) 2024 brochure.txt"] == parse_marking(DEFAULT)
