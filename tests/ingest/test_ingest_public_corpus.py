"""The public unstructured corpus (PDFs and images aside) ingested end to end in one workspace.

Every input must end parsed with some text, or quarantined for a reason listed, with a sentence
saying why, in ``expected_quarantine.json``; any other quarantine is a parser regression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from garrison.ingest.engine import IngestOptions, IngestReport, ingest_paths
from garrison.store.documents import Documents
from garrison.store.workspace import Workspace
from tests.conftest import SHARED, require

CORPUS = SHARED / "corpus/public/unstructured"
EXPECTED_QUARANTINE = Path(__file__).with_name("expected_quarantine.json")
EXCLUDE = (
    "pdf/*",
    "img/*",
    "*.pdf",
    "*.jpg",
    "*.jpeg",
    "*.png",
    "*.tif",
    "*.tiff",
    "*.bmp",
    "*.heic",
    "*.gif",
)
#: Parsed files that legitimately hold no text at all.
NO_TEXT = {
    "empty.xlsx": "a workbook whose only sheet is empty",
    "test-image-jpg-mime.pptx": "one slide holding only a picture",
}


@dataclass
class Ingested:
    report: IngestReport
    docs: Documents
    by_uri: dict[str, dict[str, Any]]  # every document, keyed by the path relative to CORPUS

    def show(self, rel: str) -> dict[str, Any]:
        return self.docs.show(self.by_uri[rel]["id"], elements=True)


def rel(uri: str) -> str:
    return Path(uri.split("#", 1)[0]).relative_to(CORPUS).as_posix() + (
        "#" + uri.split("#", 1)[1] if "#" in uri else ""
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    require(CORPUS.is_dir(), f"{CORPUS} is absent")
    ws = Workspace.init(tmp_path_factory.mktemp("corpus") / "ws", system_high="SECRET//NOFORN")
    session = ws.session()
    report = ingest_paths(
        session,
        [str(CORPUS)],
        IngestOptions(default_marking="UNCLASSIFIED", exclude=EXCLUDE, workers=2),
    )
    docs = Documents(session)
    by_uri = {rel(d["uri"]): d for d in docs.list()}
    return Ingested(report, docs, by_uri)


def test_every_input_is_accounted_for(ingested: Ingested) -> None:
    results = ingested.report.results
    inputs = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and not any(p.match(g) for g in EXCLUDE)
    }
    assert inputs, "the corpus holds no input"
    assert {rel(r.uri) for r in results} == inputs
    assert not any(rel(r.uri).startswith(("pdf/", "img/")) for r in results)
    counts = ingested.report.counts
    assert counts["files"] == len(inputs)
    assert counts["parsed"] + counts["quarantined"] + counts["unchanged"] == len(inputs)
    assert counts["spilled"] == 0
    for result in results:
        assert result.outcome in ("parsed", "quarantined", "unchanged"), result
        if result.outcome == "quarantined":
            assert result.reason, result
        if result.outcome == "parsed":
            assert result.elements > 0 or rel(result.uri) in NO_TEXT, result
        if result.outcome == "unchanged":
            # Byte-identical to another input (eng_spa_mult.md/.org/.rst): one document.
            twin = next(d for d in ingested.by_uri.values() if d["id"] == result.doc_id)
            assert twin["status"] == "parsed"


def test_parsed_documents_have_text(ingested: Ingested) -> None:
    parsed = [r for r, d in ingested.by_uri.items() if d["status"] == "parsed"]
    assert len(parsed) > 50
    for name in parsed:
        elements = ingested.show(name)["elements"]
        has_text = any(e["text"].strip() for e in elements)
        assert has_text or name in NO_TEXT, f"{name} parsed without any text"
        assert all(e["marking"] == "UNCLASSIFIED" for e in elements), name


def test_quarantine_is_exactly_the_expected_list(ingested: Ingested) -> None:
    expected = json.loads(EXPECTED_QUARANTINE.read_text(encoding="utf-8"))
    for name, entry in expected.items():
        assert entry["reason"] and entry["why"].strip(), name
    quarantined = {
        name: d["reason"] for name, d in ingested.by_uri.items() if d["status"] == "quarantined"
    }
    assert quarantined == {name: entry["reason"] for name, entry in expected.items()}
    for name in quarantined:
        assert ingested.by_uri[name].get("reason_detail"), name


def test_email_header_fields(ingested: Ingested) -> None:
    doc = ingested.show("fake-email.eml")
    headers = [e for e in doc["elements"] if e["type"] == "EmailHeader"]
    assert len(headers) == 1
    fields = headers[0]["fields"]
    assert fields["From"] == "Matthew Robinson <mrobinson@unstructured.io>"
    assert fields["To"] == "NotMatthew <NotMatthew@notunstructured.com>"
    assert fields["Subject"] == "Test Email"
    assert headers[0]["email"]["subject"] == "Test Email"
    assert any("test email to use for unit tests" in e["text"] for e in doc["elements"])


def test_email_attachment_is_a_child_document(ingested: Ingested) -> None:
    parent = ingested.by_uri["eml/fake-email-attachment.eml"]
    assert parent["status"] == "parsed"
    children = [d for d in ingested.by_uri.values() if d["parent_id"] == parent["id"]]
    assert [rel(c["uri"]) for c in children] == [
        "eml/fake-email-attachment.eml#fake-attachment.txt"
    ]
    child = ingested.docs.show(children[0]["id"], elements=True)
    assert child["status"] == "parsed"
    assert child["filename"] == "fake-attachment.txt"
    assert any(e["text"].strip() for e in child["elements"])


def test_csv_records_have_the_columns(ingested: Ingested) -> None:
    doc = ingested.show("stanley-cups-with-emoji.csv")
    records = [e for e in doc["elements"] if e["type"] == "Record"]
    assert records
    for record in records:
        assert {"Team", "Location", "Stanley Cups"} <= set(record["fields"])
    assert {"Team": "Blues", "Location": "STL", "Stanley Cups": 1} in [
        {k: r["fields"][k] for k in ("Team", "Location", "Stanley Cups")} for r in records
    ]


def test_xlsx_tables_have_cells(ingested: Ingested) -> None:
    doc = ingested.show("vodafone.xlsx")
    tables = [e for e in doc["elements"] if e["type"] == "Table"]
    assert tables
    for table in tables:
        cells = table["table_cells"]
        assert cells and all({"row", "col", "text"} <= set(c) for c in cells)
    assert any(c["text"] == "Financial performance" for c in tables[0]["table_cells"])


def test_pptx_table(ingested: Ingested) -> None:
    doc = ingested.show("fake-power-point-table.pptx")
    tables = [e for e in doc["elements"] if e["type"] == "Table"]
    assert len(tables) == 1
    assert "Red | Green | Blue" in tables[0]["text"]
    assert tables[0]["table_cells"]


def test_html_titles_without_script(ingested: Ingested) -> None:
    for name in ("example-10k-1p.html", "example-with-scripts.html"):
        elements = ingested.show(name)["elements"]
        assert any(e["type"] == "Title" for e in elements), name
        for element in elements:
            text = element["text"]
            for code in ("function(", "function (", "var ", "<script", "</script"):
                assert code not in text, (name, code, text[:200])


def test_password_protected_xlsx_is_encrypted(ingested: Ingested) -> None:
    doc = ingested.by_uri["password_protected.xlsx"]
    assert (doc["status"], doc["reason"]) == ("quarantined", "encrypted")
    assert doc["marking"] is None
    assert "elements" not in ingested.docs.show(doc["id"], elements=True)


def test_msg_sender_and_subject(ingested: Ingested) -> None:
    doc = ingested.show("fake-email.msg")
    headers = [e for e in doc["elements"] if e["type"] == "EmailHeader"]
    assert len(headers) == 1
    fields = headers[0]["fields"]
    assert "mrobinson@unstructured.io" in fields["From"]
    assert fields["Subject"] == "Test Email"
    assert "mrobinson@unstructured.io" in headers[0]["email"]["sender"]
