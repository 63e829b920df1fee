"""PDF heads from layout alone: recall of outline titles and precision of Title elements.

On every PDF of the shared corpus that has an outline (bookmarks), the parser runs with its
use of the outline switched off (``outline=False``), so the outline is an answer key it never
saw. Recall is the share of outline titles that occur in the text of their page and come out
as a Title element there (numbering and spacing ignored; titles that never occur in the text
do not count). Precision is the share of Title elements that are an outline title or a
numbered section head (``2.3 Scope``, ``4 Results``). Target: recall >= 0.8 overall.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from garrison.core.records import ElementType, ParsedDocument
from garrison.parse import ParseContext, ParseFailure
from garrison.parse.pdf import PDF, parse_pdf

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus"
TARGET_RECALL = 0.8
#: What opens a numbered head: ``1``, ``2.3``, ``A.1``, ``Chapter 3``, ``Annex B``.
_NUMBER = re.compile(
    r"^(?:(?:chapter|section|part|annex|appendix|article)\s+[\dIVXLC]+|[A-Z]\.\d|\d{1,3}(?:\.\d{1,3})*)"
    r"\.?\s+\S",
    re.IGNORECASE,
)


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _core(text: str) -> str:
    """Normalised text without a leading section number."""
    m = _NUMBER.match(text.strip())
    bare = text.strip()[m.end() - 1 :] if m else text
    return _norm(bare) or _norm(text)


def _outline(data: bytes) -> tuple[list[tuple[str, int | None]], dict[int, str]]:
    """The outline as (title, 1-based page or None), and each page's normalised text."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    pdf = pdfium.PdfDocument(data)
    try:
        entries: list[tuple[str, int | None]] = []
        for item in pdf.get_toc(max_depth=15):
            title = (item.get_title() or "").strip()
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if title:
                entries.append((title, index + 1 if isinstance(index, int) else None))
        texts: dict[int, str] = {}
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            texts[i + 1] = _norm(textpage.get_text_range())
            textpage.close()
            page.close()
        return entries, texts
    finally:
        pdf.close()


def _has_outline(path: Path) -> bool:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path.read_bytes())
    except pdfium.PdfiumError:
        return False
    try:
        return any(True for _ in pdf.get_toc(max_depth=15))
    finally:
        pdf.close()


def _score(data: bytes, doc: ParsedDocument) -> dict[str, Any]:
    entries, texts = _outline(data)
    titles = [e for e in doc.elements if e.type is ElementType.TITLE]
    found_on: dict[int | None, set[str]] = {}
    for t in titles:
        found_on.setdefault(t.page, set()).update({_core(t.text), _norm(t.text)})
    every = set().union(*found_on.values()) if found_on else set()
    present = found = 0
    missed: list[str] = []
    for title, page in entries:
        want, full = _core(title), _norm(title)
        text = texts.get(page, "") if page is not None else "".join(texts.values())
        if not want or (want not in text and full not in text):
            continue  # never in the text: nothing to find
        present += 1
        got = found_on.get(page, set()) if page is not None else every
        if want in got or full in got:
            found += 1
        else:
            missed.append(title)
    keys = {_core(t) for t, _ in entries} | {_norm(t) for t, _ in entries}
    good = sum(
        1 for t in titles if _core(t.text) in keys or _norm(t.text) in keys or _NUMBER.match(t.text)
    )
    return {
        "outline": len(entries),
        "in text": present,
        "found": found,
        "titles": len(titles),
        "good titles": good,
        "missed": missed[:5],
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    files = sorted(p for p in CORPUS.glob("**/*.pdf") if _has_outline(p))
    if quick:
        files = files[:3]
    results: dict[str, Any] = {}
    notes: list[str] = []
    totals = {"in text": 0, "found": 0, "titles": 0, "good titles": 0}
    ctx = ParseContext(media_type=PDF, options={"ocr": False, "outline": False})
    t0 = time.perf_counter()
    for path in files:
        data = path.read_bytes()
        try:
            doc = parse_pdf(data, ctx)
        except ParseFailure as exc:
            results[path.name] = f"not parsed ({exc.reason})"
            continue
        score = _score(data, doc)
        for key in totals:
            totals[key] += score[key]
        recall = score["found"] / score["in text"] if score["in text"] else None
        precision = score["good titles"] / score["titles"] if score["titles"] else None
        results[path.name] = (
            f"recall {_fmt(recall)} ({score['found']}/{score['in text']} of "
            f"{score['outline']} outline titles), precision {_fmt(precision)} "
            f"({score['good titles']}/{score['titles']} titles)"
        )
        if score["missed"]:
            notes.append(f"{path.name}: missed {', '.join(repr(m) for m in score['missed'])}")
    took = time.perf_counter() - t0
    recall = totals["found"] / totals["in text"] if totals["in text"] else None
    precision = totals["good titles"] / totals["titles"] if totals["titles"] else None
    results["files with an outline"] = len(files)
    results[f"overall recall (target >= {TARGET_RECALL})"] = _fmt(recall)
    results["overall precision"] = _fmt(precision)
    results["seconds (parse and score)"] = round(took, 1)
    met = recall is not None and recall >= TARGET_RECALL
    verdict = "met" if met else "MISSED"
    notes.insert(0, f"Recall target {TARGET_RECALL}: {verdict} (overall recall {_fmt(recall)}).")
    notes.insert(
        1,
        "Precision counts a Title as right only when it is an outline title or opens with a "
        "section number, so real heads that are neither (a preface, a bold run-in head, a "
        "paper's author line set large) count against it: it is a floor, not an exact figure. "
        "Files whose outline titles never occur in their text (mistitled bookmarks) add to "
        "precision only.",
    )
    return {
        "title": "PDF headings without the outline: recall and precision against the outline",
        "what": (__doc__ or "").strip().splitlines()[0],
        "notes": notes,
        "results": results,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
