"""Parser warm-up: a job imports the libraries of the parsers its files need, not all of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from bench.pdf import write_pdf

from garrison.ingest import engine
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.parse.pdf import PDF
from garrison.store.workspace import Workspace


def test_warm_up_for_pdf_imports_pdfium_only() -> None:
    # A fresh interpreter: this one has imported whatever earlier tests needed.
    script = (
        "import sys\n"
        "from garrison.parse import warm_up\n"
        "warm_up(['application/pdf'])\n"
        "heavy = ('openpyxl', 'pptx', 'docx', 'pytesseract', 'pyarrow', 'py7zr', 'pypdf')\n"
        "print('pypdfium2' in sys.modules, [m for m in heavy if m in sys.modules])\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src},
        timeout=120,
    )
    assert out.stdout.strip() == "True []"


def test_a_job_warms_up_the_types_it_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = engine.warm_up

    def record(media_types: Iterable[str] | None = None) -> None:
        assert media_types is not None, "a job never imports every parser library"
        calls.append(list(media_types))
        real(media_types)

    monkeypatch.setattr(engine, "warm_up", record)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        lines = [(72.0, 700.0, 12.0, f"(U) Convoy report {i}")]
        (docs / f"report-{i}.pdf").write_bytes(write_pdf([lines]))
    (docs / "note.txt").write_text("(U) Fuel rose.\n")
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    try:
        report = ingest_paths(
            ws.session(), [str(docs)], IngestOptions(default_marking="CONFIDENTIAL//NOFORN")
        )
    finally:
        ws.close()
    assert report.counts["parsed"] == 4
    assert sorted(calls) == [[PDF], ["text/plain"]]
