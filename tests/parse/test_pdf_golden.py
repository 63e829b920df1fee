"""PDF parser output on real corpus PDFs, pinned: the elements' type, text, page, heading level
and the marking ingest gives them, against ``golden/pdf_elements.json``.

The layout code is tuned for speed; this says the tuning changed nothing a reader sees. After a
deliberate change of output, rewrite the file with
``PYTHONPATH=$PWD/src .venv/bin/python -m tests.parse.test_pdf_golden`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from garrison.ingest.marking import apply_markings
from garrison.parse import ParseContext
from garrison.parse.pdf import PDF, parse_pdf
from garrison.security.markings import parse_marking
from tests.conftest import require

SHARED = Path(__file__).resolve().parents[3] / "shared/corpus"
GOLDEN = Path(__file__).parent / "golden/pdf_elements.json"
#: Columns, tables, outlines, lists, headers, annotations, TeX fonts, marked documents.
FILES = (
    "public/unstructured/pdf/a1977-backus-p21.pdf",
    "public/unstructured/pdf/header-test-doc.pdf",
    "public/unstructured/pdf/layout-parser-paper-with-table.pdf",
    "public/unstructured/pdf/list-item-example.pdf",
    "public/unstructured/pdf/multi-column-2p.pdf",
    "public/unstructured/pdf/reliance.pdf",
    "public/pdf-samples/006-pdflatex-outline_pdflatex-outline.pdf",
    "public/pdf-samples/024-annotations_annotated_pdf.pdf",
    "public/pdf-samples/026-latex-multicolumn_multicolumn.pdf",
    "marked/docs/coalition-air.pdf",
    "marked/docs/sigint-excerpt.pdf",
)


def elements(path: Path) -> dict[str, Any]:
    """What the golden file holds of one PDF: banners, and per element its type, page,
    heading level, marking (as ingest decides it) and text."""
    parsed = parse_pdf(path.read_bytes(), ParseContext(media_type=PDF, options={"ocr": False}))
    marked = apply_markings(
        parsed,
        default=parse_marking("CONFIDENTIAL//NOFORN"),
        system_high=parse_marking("SECRET//NOFORN"),
    )
    return {
        "banners": list(parsed.banners),
        "elements": [
            [
                e.parsed.type.value,
                e.parsed.page,
                e.parsed.heading_level,
                e.marking.banner(),
                e.text,
            ]
            for e in marked.elements
        ],
    }


@pytest.mark.parametrize("name", FILES)
def test_elements_unchanged(name: str) -> None:
    path = SHARED / name
    require(path.is_file(), f"{path} is absent")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    got = elements(path)
    assert got["banners"] == want["banners"]
    # Element by element first, so a failure names the first element that differs.
    for k, (g, w) in enumerate(zip(got["elements"], want["elements"], strict=False)):
        assert g == w, f"element {k}"
    assert len(got["elements"]) == len(want["elements"])


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    # One element a line: a change of output reads as a diff of the lines that changed.
    parts = []
    for name in FILES:
        got = elements(SHARED / name)
        rows = ",\n".join(f"   {json.dumps(e, ensure_ascii=False)}" for e in got["elements"])
        banners = json.dumps(got["banners"], ensure_ascii=False)
        parts.append(f' "{name}": {{\n  "banners": {banners},\n  "elements": [\n{rows}\n  ]\n }}')
    GOLDEN.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")
