"""``garrison ingest --marking-column``: the option reaches the tabular parsers and ingest_sql."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.ingest.engine import IngestOptions

CSV = b"name,note,classification\nalpha,grid 7,SECRET\nbeta,plain,UNCLASSIFIED\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "ws")
    code, _, err = run(capsys, "init", path, "--system-high", "SECRET//NOFORN")
    assert code == 0, err
    return path


def test_parser_options_carry_the_marking_column() -> None:
    options = IngestOptions(default_marking="UNCLASSIFIED", parse_options={"ocr": False})
    assert options.parser_options() == {"ocr": False}
    options = IngestOptions(
        default_marking="UNCLASSIFIED", parse_options={"ocr": False}, marking_column="cls"
    )
    assert options.parser_options() == {"ocr": False, "marking_column": "cls"}


def _ingest(capsys: pytest.CaptureFixture[str], ws: str, *args: str) -> dict[str, object]:
    code, out, err = run(
        capsys, "ingest", *args, "--default-marking", "UNCLASSIFIED", "-w", ws, "--json"
    )
    assert code == 0, err
    report: dict[str, object] = json.loads(out)
    return report


def test_csv_without_the_named_column_is_quarantined(
    tmp_path: Path, ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"name,note\nalpha,x\nbeta,y\n")
    report = _ingest(capsys, ws, str(path), "--marking-column", "classification")
    assert (report["parsed"], report["quarantined"]) == (0, 1)
    (doc,) = report["documents"]  # type: ignore[misc]
    assert doc["reason"] == "corrupt"


def test_csv_marking_column_is_left_out_of_stored_records(
    tmp_path: Path, ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(CSV)
    report = _ingest(capsys, ws, str(path), "--marking-column", "classification")
    assert report["quarantined"] == 0
    code, out, err = run(capsys, "docs", "ls", "-w", ws, "--json")
    assert code == 0, err
    (doc,) = json.loads(out)
    code, out, err = run(capsys, "docs", "show", doc["id"], "--elements", "-w", ws, "--json")
    assert code == 0, err
    elements = json.loads(out)["elements"]
    assert [e["fields"] for e in elements] == [
        {"name": "alpha", "note": "grid 7"},
        {"name": "beta", "note": "plain"},
    ]


def test_sql_marking_column_must_exist(
    tmp_path: Path, ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "rows.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'x')")
    conn.commit()
    conn.close()
    code, _, err = run(
        capsys,
        "ingest",
        f"sqlite:///{db}",
        "--marking-column",
        "classification",
        "--default-marking",
        "UNCLASSIFIED",
        "-w",
        ws,
    )
    assert code == 2
    assert "no column 'classification'" in err
