"""Legacy and OpenDocument office files: LibreOffice conversion + OOXML parse vs. the OOXML parse.

A DOCX (paragraphs and a table), an XLSX (rows of a sheet) and a PPTX (slides) are built, and
LibreOffice saves each in its legacy and OpenDocument formats (not timed). Then, interleaved,
``parse_bytes`` reads the converted file -- one LibreOffice start and conversion, then the OOXML
parser -- and the original OOXML file; the difference is the cost of going through LibreOffice.
Every parse must find the same last paragraph, row or slide (checked).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench._timing import interleaved
from garrison.parse import parse_bytes

FAMILIES = {"docx": ("doc", "odt", "rtf"), "xlsx": ("xls", "ods"), "pptx": ("ppt", "odp")}


def _docx(n: int) -> bytes:
    import docx

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = "SECRET//NOFORN"
    for i in range(n):
        d.add_paragraph(f"(U) Paragraph {i} about the depot and its trucks.")
    table = d.add_table(rows=20, cols=4)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"(U) cell {r}-{c}"
    d.add_paragraph(f"(S//NF) Last paragraph {n}.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _xlsx(n: int) -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Item", "Count", "Note"])
    for i in range(n):
        ws.append([f"item {i}", i, f"(U) note {i}"])
    ws.append(["last", n, f"(S//NF) Last row {n}."])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _pptx(n: int) -> bytes:
    import pptx

    prs = pptx.Presentation()
    for i in range(n):
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = f"(U) Slide {i}"
        slide.placeholders[1].text_frame.text = f"(U) Point {i} of the briefing."
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = f"(S//NF) Last slide {n}."
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def _save_as(soffice: str, folder: Path, source: Path, ext: str) -> bytes:
    out = folder / ext
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            ext,
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return (out / f"{source.stem}.{ext}").read_bytes()


def _reader(data: bytes, name: str, last: str) -> Any:
    def go() -> None:
        doc = parse_bytes(data, filename=name)
        assert any(last in e.text for e in doc.elements), name

    return go


def run(*, quick: bool = False) -> dict[str, Any]:
    soffice = shutil.which("soffice")
    if soffice is None:
        raise SystemExit("LibreOffice (soffice) is not installed")
    sizes = ({"docx": 100, "xlsx": 500, "pptx": 10}, {"docx": 1000, "xlsx": 5000, "pptx": 60})
    n = sizes[0] if quick else sizes[1]
    rounds = 2 if quick else 3
    builders = {"docx": _docx, "xlsx": _xlsx, "pptx": _pptx}
    last = {"docx": "Last paragraph", "xlsx": "Last row", "pptx": "Last slide"}
    results: dict[str, Any] = {"rounds": rounds, "load average at start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="garrison-bench-office-") as tmp:
        folder = Path(tmp)
        for family, formats in FAMILIES.items():
            original = builders[family](n[family])
            source = folder / f"bench.{family}"
            source.write_bytes(original)
            baseline = _reader(original, source.name, last[family])
            for ext in formats:
                converted = _save_as(soffice, folder, source, ext)
                through, direct = interleaved(
                    _reader(converted, f"bench.{ext}", last[family]), baseline, rounds
                )
                key = f"{ext} ({n[family]} {'rows' if family == 'xlsx' else 'items'})"
                results[f"{key}: s per file"] = round(through, 2)
                results[f"{key}: {family} s per file"] = round(direct, 2)
                results[f"{key}: LibreOffice overhead s"] = round(through - direct, 2)
    return {
        "title": "Office files through LibreOffice vs. OOXML",
        "what": __doc__.strip().splitlines()[0] if __doc__ else "",
        "results": results,
        "notes": [
            "One LibreOffice start per file: its start-up (about 1-2 s of CPU) dominates small "
            "files; on a shared machine the wall-clock seconds are much larger than the CPU.",
        ],
    }
