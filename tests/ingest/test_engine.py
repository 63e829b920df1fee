"""The ingest engine end to end: truth of the marked corpus, idempotency, spills, access."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.ingest.engine import IngestOptions, ingest_paths, ingest_sql
from garrison.store.documents import Documents, Jobs
from garrison.store.models import DocumentLocation, DocumentRow, ElementRow, FindingRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT = "CONFIDENTIAL//NOFORN"
SPILL_CANARY = "Collection shows the tanker BLUEHERON 4417 turned north at dawn."
PARSED_CANARY = "The motor pool KESTREL 9931 services twelve trucks a week."


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH, db_url=catalog_url)
    yield workspace
    workspace.close()


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fuel.txt").write_text(
        f"SECRET//NOFORN\n\n(U) Fuel rose.\n\n(S//NF) {PARSED_CANARY}\n\nSECRET//NOFORN\n"
    )
    (folder / "spill.txt").write_text(f"TOP SECRET//SI//NOFORN\n\n(TS//SI//NF) {SPILL_CANARY}\n")
    (folder / "plain.md").write_text("# Notes\n\nNothing marked here.\n")
    (folder / "bad.md").write_text("(S/NF) A mark with one slash.\n")
    return folder


def test_marked_corpus_matches_truth_via_the_cli(
    tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marked = shared_dir / "corpus" / "marked"
    truth = json.loads((marked / "truth.json").read_text())
    ws = str(tmp_path / "ws")
    assert main(["init", ws, "--system-high", truth["system_high"]]) == 0
    code = main(
        [
            "ingest",
            str(marked / "docs"),
            "--exclude",
            "*.sqlite",
            "--default-marking",
            truth["default_marking"],
            "-w",
            ws,
            "--json",
        ]
    )
    assert code == 0
    code = main(
        [
            "ingest",
            f"sqlite:///{marked / 'docs' / 'legacy-shipments.sqlite'}",
            "--table",
            "shipments",
            "--default-marking",
            truth["default_marking"],
            "-w",
            ws,
            "--json",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["docs", "ls", "-w", ws, "--json"]) == 0
    docs = {Path(d["uri"].split("#")[0]).name: d for d in json.loads(capsys.readouterr().out)}
    checked = 0
    for expected in truth["docs"]:  # every format, PDFs included
        doc = docs[expected["file"]]
        name = expected["file"]
        assert doc["status"] == expected["status"], name
        assert doc["marking"] == expected["marking"], name
        assert {f["kind"] for f in doc["findings"]} == set(expected["findings"]), name
        if expected["status"] == "parsed":
            assert main(["docs", "show", doc["id"], "--elements", "-w", ws, "--json"]) == 0
            elements = json.loads(capsys.readouterr().out)["elements"]
            by_text = {e["text"].strip(): e["marking"] for e in elements}
            for para in expected["paragraphs"]:
                if para["marking"] is not None:
                    assert by_text.get(para["text"]) == para["marking"], (name, para["text"])
            if "rows" in expected:
                assert [e["type"] for e in elements] == ["Record"] * expected["rows"]
        checked += 1
    assert checked == len(truth["docs"]) == 12
    # The PDFs are among them: one parsed with its paragraph markings, one a spill.
    assert (docs["coalition-air.pdf"]["status"], docs["sigint-excerpt.pdf"]["status"]) == (
        "parsed",
        "spilled",
    )


def test_spills_keep_nothing_and_originals_are_encrypted(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_docs(tmp_path / "in")
    report = ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking=DEFAULT))
    outcomes = {Path(r.uri).name: (r.outcome, r.reason) for r in report.results}
    assert outcomes == {
        "fuel.txt": ("parsed", None),
        "spill.txt": ("spilled", "spill"),
        "plain.md": ("parsed", None),
        "bad.md": ("quarantined", "invalid-marking"),
    }
    spilled = next(r for r in report.results if r.outcome == "spilled")
    with ws.catalog.transaction() as orm:
        row = orm.get(DocumentRow, spilled.doc_id)
        assert row is not None
        assert (row.marking_id, row.media_type, row.title, row.blob) == (None, None, None, False)
        assert orm.scalar(select(func.count()).where(ElementRow.doc_id == row.id)) == 0
    assert not ws.blobs.exists(spilled.doc_id)
    # Neither canary is readable anywhere under the workspace's blob store; the spilled text is
    # nowhere at all: not in the catalog, the audit log, or any command's output.
    spill_bytes, parsed_bytes = SPILL_CANARY.encode(), PARSED_CANARY.encode()
    for path in ws.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert spill_bytes not in data, path
            if path.is_relative_to(ws.root / "blobs"):
                assert parsed_bytes not in data, path
    assert main(["docs", "ls", "-w", str(ws.root), "--json"]) == 0
    assert main(["docs", "findings", "-w", str(ws.root), "--json"]) == 0
    assert main(["docs", "show", spilled.doc_id, "-w", str(ws.root), "--json"]) == 0
    assert main(["audit", "tail", "-w", str(ws.root), "--json"]) == 0
    out, err = capsys.readouterr()
    assert SPILL_CANARY not in out + err and "BLUEHERON" not in out + err
    shown = Documents(ws.session()).show(spilled.doc_id)
    assert shown["marking"] is None and shown["status"] == "spilled"


def test_reingest_is_idempotent_and_records_new_locations(ws: Workspace, tmp_path: Path) -> None:
    folder = write_docs(tmp_path / "in")
    session = ws.session()
    first = ingest_paths(session, [str(folder)], IngestOptions(default_marking=DEFAULT))

    def snapshot() -> tuple[list[tuple[str, str, int | None]], list[tuple[str, str, str]]]:
        with ws.catalog.transaction() as orm:
            docs = [
                (d.id, d.status, d.marking_id)
                for d in orm.scalars(select(DocumentRow).order_by(DocumentRow.id))
            ]
            elements = [
                (e.id, e.text, e.doc_id)
                for e in orm.scalars(select(ElementRow).order_by(ElementRow.id))
            ]
        return docs, elements

    before = snapshot()
    again = ingest_paths(session, [str(folder)], IngestOptions(default_marking=DEFAULT))
    assert {r.outcome for r in again.results} == {"unchanged"}
    assert snapshot() == before
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    ingest_paths(session, [str(copy)], IngestOptions(default_marking=DEFAULT))
    assert snapshot() == before
    with ws.catalog.transaction() as orm:
        fuel = next(r for r in first.results if r.uri.endswith("fuel.txt"))
        uris = set(
            orm.scalars(select(DocumentLocation.uri).where(DocumentLocation.doc_id == fuel.doc_id))
        )
    assert uris == {str(folder / "fuel.txt"), str(copy / "fuel.txt")}


def test_same_bytes_under_another_default_take_the_join(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "note.txt").write_text("An unmarked note about the motor pool.\n")
    session = ws.session()
    ingest_paths(session, [str(folder)], IngestOptions(default_marking="CONFIDENTIAL//NOFORN"))
    ingest_paths(session, [str(folder)], IngestOptions(default_marking="SECRET"))
    doc = Documents(session).list()[0]
    assert doc["marking"] == "SECRET//NOFORN"
    assert {f["kind"] for f in doc["findings"]} == {"default-marking-conflict"}
    shown = Documents(session).show(doc["id"], elements=True)
    assert {e["marking"] for e in shown["elements"]} == {"SECRET//NOFORN"}


def test_mail_attachments_become_child_documents(ws: Workspace, tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.mil", "b@example.mil", "(U) Roster"
    msg.set_content("(U) The roster is attached.")
    msg.add_attachment(
        b"(S//NF) Night shift names.\n", maintype="text", subtype="plain", filename="roster.txt"
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mail.eml").write_bytes(bytes(msg))
    session = ws.session()
    report = ingest_paths(session, [str(tmp_path / "in")], IngestOptions(default_marking=DEFAULT))
    [result] = report.results
    docs = {d["id"]: d for d in Documents(session).list()}
    parent = docs[result.doc_id]
    [child] = [d for d in docs.values() if d["parent_id"] == result.doc_id]
    assert child["marking"] == "SECRET//NOFORN"
    # The container is marked with the join of its own marking and its children's.
    assert parent["marking"] == "SECRET//NOFORN"


def test_a_spilled_attachment_makes_its_container_a_spill(ws: Workspace, tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.mil", "b@example.mil", "(U) Notes"
    msg.set_content("(U) See attached.")
    msg.add_attachment(
        f"(TS//SI//NF) {SPILL_CANARY}\n".encode(),
        maintype="text",
        subtype="plain",
        filename="x.txt",
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mail.eml").write_bytes(bytes(msg))
    report = ingest_paths(
        ws.session(), [str(tmp_path / "in")], IngestOptions(default_marking=DEFAULT)
    )
    assert [r.outcome for r in report.results] == ["spilled"]
    with ws.catalog.transaction() as orm:
        statuses = set(orm.scalars(select(DocumentRow.status)))
        assert statuses == {"spilled"}
        assert orm.scalar(select(func.count()).select_from(ElementRow)) == 0
    assert not any(p.is_file() for p in (ws.root / "blobs").rglob("*"))


def test_reads_are_filtered_by_marking_and_denials_audited(ws: Workspace, tmp_path: Path) -> None:
    folder = write_docs(tmp_path / "in")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking=DEFAULT))
    system.add_user("cora", SubjectSpec(clearance="C", roles=("viewer",)))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("steward",)))
    cora = Documents(ws.session("cora"))
    listed = cora.list()
    # Only the CONFIDENTIAL//NOFORN default document; no quarantined or spilled ones.
    assert [d["marking"] for d in listed] == ["CONFIDENTIAL//NOFORN"]
    secret = next(d for d in Documents(system).list() if d["marking"] == "SECRET//NOFORN")
    with pytest.raises(NotFound) as forbidden:
        cora.show(secret["id"])
    with pytest.raises(NotFound) as missing:
        cora.show("0" * 64)
    assert str(forbidden.value).replace(secret["id"], "X") == str(missing.value).replace(
        "0" * 64, "X"
    )
    denial = ws.audit.tail(2)[0]
    assert (denial.actor, denial.action, denial.decision, denial.reason) == (
        "cora",
        "doc.read",
        "deny",
        "not readable by the subject",
    )
    assert all(f["doc_id"] != secret["id"] for f in cora.findings())
    # A steward sees quarantined and spilled documents, never their markings.
    sam = Documents(ws.session("sam"))
    hidden = [d for d in sam.list() if d["status"] != "parsed"]
    assert {d["status"] for d in hidden} == {"quarantined", "spilled"}
    assert all(d["marking"] is None for d in hidden)
    with pytest.raises(NotPermitted):
        Jobs(ws.session("cora")).list()


def test_findings_are_resolved_and_markings_downgraded_by_stewards(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = write_docs(tmp_path / "in")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking=DEFAULT))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("val", SubjectSpec(clearance="S", roles=("viewer",)))
    sam = Documents(ws.session("sam"))
    finding = sam.findings(kind="invalid-marking")[0]
    with pytest.raises(NotPermitted):
        Documents(ws.session("val")).resolve(finding["id"], "looked at it")
    resolved = sam.resolve(finding["id"], "Source re-marked by originator.")
    assert resolved["resolved_by"] == "sam"
    assert ws.audit.tail(1)[0].action == "finding.resolve"

    doc = next(d for d in sam.list() if d["marking"] == "SECRET//NOFORN")
    element = next(
        e
        for e in sam.show(doc["id"], elements=True)["elements"]
        if e["marking"] == "SECRET//NOFORN"
    )
    with pytest.raises(InvalidInput, match="only lowers"):
        sam.downgrade(element["id"], "TOP SECRET//NOFORN", "no")
    sam.downgrade(element["id"], "CONFIDENTIAL//NOFORN", "Sanitized per review 12.")
    after = sam.show(doc["id"], elements=True)
    changed = next(e for e in after["elements"] if e["id"] == element["id"])
    assert changed["marking"] == "CONFIDENTIAL//NOFORN"
    assert changed["original_marking"] == "SECRET//NOFORN"
    event = ws.audit.tail(2)[0]
    assert event.action == "marking.downgrade"
    assert event.details["from"] == "SECRET//NOFORN"
    # The banner still says SECRET//NOFORN, so the document stays there.
    assert after["marking"] == "SECRET//NOFORN"
    sam.downgrade(doc["id"], "CONFIDENTIAL//NOFORN", "Whole memo released lower.")
    assert sam.show(doc["id"])["marking"] == "CONFIDENTIAL//NOFORN"


def test_database_tables_are_documents_of_records(ws: Workspace, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table parts (id integer primary key, name text, qty integer)")
        conn.executemany("insert into parts values (?, ?, ?)", [(1, "bolt", 5), (2, "nut", 7)])
    session = ws.session()
    report = ingest_sql(
        session, f"sqlite:///{db}", IngestOptions(default_marking=DEFAULT), tables=["parts"]
    )
    [result] = report.results
    assert result.outcome == "parsed" and result.elements == 2
    shown = Documents(session).show(str(result.doc_id), elements=True)
    assert shown["marking"] == DEFAULT
    assert [e["locator"]["pk"] for e in shown["elements"]] == [{"id": 1}, {"id": 2}]
    assert shown["elements"][0]["fields"] == {"id": 1, "name": "bolt", "qty": 5}
    again = ingest_sql(
        session, f"sqlite:///{db}", IngestOptions(default_marking=DEFAULT), tables=["parts"]
    )
    assert [r.outcome for r in again.results] == ["unchanged"]


def test_jobs_record_runs(ws: Workspace, tmp_path: Path) -> None:
    folder = write_docs(tmp_path / "in")
    session = ws.session()
    report = ingest_paths(session, [str(folder)], IngestOptions(default_marking=DEFAULT))
    job = Jobs(session).show(report.job_id)
    assert job["status"] == "completed"
    assert (job["done"], job["total"]) == (4, 4)
    assert job["counts"]["spilled"] == 1
    assert sorted(i["outcome"] for i in job["items"]) == [
        "parsed",
        "parsed",
        "quarantined",
        "spilled",
    ]
    with ws.catalog.transaction() as orm:
        kinds = set(orm.scalars(select(FindingRow.kind)))
    assert kinds == {"spill", "invalid-marking"}


def test_parse_options_reach_the_parsers(ws: Workspace, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    folder = tmp_path / "scan"
    folder.mkdir()
    page = Image.new("L", (1400, 300), 255)
    ImageDraw.Draw(page).text(
        (40, 100),
        "(U) Weather is clear over the range.",
        fill=0,
        font=ImageFont.load_default(size=44),
    )
    page.save(folder / "page.png")
    report = ingest_paths(
        ws.session(),
        [str(folder)],
        IngestOptions(default_marking=DEFAULT, parse_options={"ocr": False}),
    )
    [result] = report.results
    doc = Documents(ws.session()).show(str(result.doc_id), elements=True)
    assert [e["type"] for e in doc["elements"]] == ["Image"]
    kinds = {f["kind"] for f in doc["findings"]}  # unreadable-content too, once it is reported
    assert "no-text-layer" in kinds and kinds <= {"no-text-layer", "unreadable-content"}


def test_a_batch_is_all_or_nothing_when_the_audit_fails(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.core.errors import AuditWriteError
    from garrison.store.audit_log import AuditLog

    corpus = tmp_path / "batch"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"doc-{i}.txt").write_text(f"(U) Report {i}.\n")
    (corpus / "copy.txt").write_text("(U) Report 0.\n")  # same bytes, same batch

    def refuse(self: AuditLog, actor: str, events: object) -> None:
        raise AuditWriteError("disk full")

    monkeypatch.setattr(AuditLog, "append_many", refuse)
    with pytest.raises(AuditWriteError):
        ingest_paths(ws.session(), [str(corpus)], IngestOptions(default_marking=DEFAULT))
    with ws.catalog.transaction() as orm:
        assert orm.scalar(select(func.count()).select_from(DocumentRow)) == 0
        assert orm.scalar(select(func.count()).select_from(ElementRow)) == 0
        assert orm.scalar(select(func.count()).select_from(DocumentLocation)) == 0
    monkeypatch.undo()

    report = ingest_paths(ws.session(), [str(corpus)], IngestOptions(default_marking=DEFAULT))
    assert report.counts["files"] == 7
    assert report.counts["parsed"] == 6
    assert report.counts["unchanged"] == 1
    with ws.catalog.transaction() as orm:
        assert orm.scalar(select(func.count()).select_from(DocumentRow)) == 6
        assert orm.scalar(select(func.count()).select_from(DocumentLocation)) == 7
    events = [e for e in ws.audit.events() if e.action == "ingest.document"]
    assert len(events) == 6
    assert ws.audit.verify(ws.audit.public_key).ok
