"""The per-page char index answers exactly what PDFium's per-run scans answer.

:func:`garrison.parse._pdf_chars.locate_runs` replaces ``FPDFText_GetBoundedText`` and
``FPDFText_GetCharIndexAtPos`` for the runs it can vouch for; on every page of the corpus PDFs
each such run's text and centre char must be PDFium's own, and it must vouch for most runs of
word-per-object pages (else it only costs time).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as raw  # type: ignore[import-untyped]
import pytest

from garrison.parse._pdf_chars import locate_runs
from tests.conftest import require
from tests.parse.test_pdf_golden import FILES, SHARED


def _rects(handle: object) -> list[tuple[float, float, float, float]]:
    left, top, right, bottom = (ctypes.c_double() for _ in range(4))
    out = []
    for i in range(raw.FPDFText_CountRects(handle, 0, -1)):
        assert raw.FPDFText_GetRect(handle, i, left, top, right, bottom)
        out.append((left.value, top.value, right.value, bottom.value))
    return out


def _pdfium(handle: object, rect: tuple[float, float, float, float]) -> tuple[str, int]:
    left, top, right, bottom = rect
    cap = 4 * raw.FPDFText_CountChars(handle) + 16
    buf = (ctypes.c_ushort * cap)()
    got = raw.FPDFText_GetBoundedText(handle, left, top, right, bottom, buf, cap)
    text = ctypes.string_at(buf, 2 * got).decode("utf-16-le", "ignore") if got > 0 else ""
    at = raw.FPDFText_GetCharIndexAtPos(handle, (left + right) / 2, (bottom + top) / 2, 0.0, 0.0)
    return text.rstrip("\x00"), at


@pytest.mark.parametrize("name", FILES)
def test_runs_located_as_pdfium_scans_them(name: str) -> None:
    path = SHARED / name
    require(path.is_file(), f"{path} is absent")
    pdf = pdfium.PdfDocument(Path(path).read_bytes())
    answered = total = 0
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            try:
                rects = _rects(textpage.raw)
                located = locate_runs(textpage, raw, rects) if rects else None
                total += len(rects)
                for k, found in enumerate(located or ()):
                    if found is None:
                        continue
                    answered += 1
                    text, at = _pdfium(textpage.raw, rects[k])
                    assert found[0] == text, f"page {index + 1} run {k}"
                    assert (found[1] if found[1] is not None else -1) == at, f"page {index + 1}"
            finally:
                textpage.close()
                page.close()
    finally:
        pdf.close()
    if "backus" in name or "list-item" in name:  # one object per word or per char
        assert answered >= 0.8 * total
