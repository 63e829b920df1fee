"""PDF heads from layout alone: recall of outline titles and precision of Title elements.

On every PDF of the shared corpus that has an outline (bookmarks), the parser runs with its
use of the outline switched off (``outline=False``), so the outline is an answer key it never
saw. Recall is the share of outline titles that occur in the text of their page and come out
as a Title element there (numbering and spacing ignored; titles that never occur in the text
do not count). Precision is the share of Title elements that are an outline title or a
numbered section head (``2.3 Scope``, ``4 Results``). Target: recall >= 0.8 overall.

A generated corpus adds what the public one lacks: marked reports whose heads are set in
body-size bold or numbered in body style (only larger heads are found by size), with a banner,
a running header and a ``Page N of M`` footer on every page. On it the benchmark also counts
running lines that leak into body elements (target 0) and banners read (one per file).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bench.pdf import Text, write_styled_pdf
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


_TOPICS = (
    "Movement",
    "Supply",
    "Fuel stocks",
    "Medical support",
    "Signals",
    "Engineering",
    "Relief in place",
    "Maintenance",
)
_FILLER = [
    "convoy",
    "depot",
    "route",
    "bridge",
    "patrol",
    "checkpoint",
    "battalion",
    "survey",
    "schedule",
    "inventory",
    "transfer",
    "weather",
    "relief",
    "sector",
    "signal",
    "unit",
]


def _generated(doc: int, pages: int) -> tuple[bytes, list[str], list[str]]:
    """A marked report with body-size heads and an outline; its heads and running lines."""
    lines_of: list[list[Text]] = []
    outline: list[tuple[int, str, int]] = []
    heads: list[str] = []
    k = doc * 31
    section = 0
    for p in range(pages):
        lines = [
            Text(250, 770, 10, "SECRET//NOFORN"),
            Text(72, 748, 9, f"Report {doc} - Northern Sector"),
        ]
        y = 715.0
        if p == 0:
            lines.append(Text(72, y, 18, f"Logistics Report {doc}"))
            heads.append(f"Logistics Report {doc}")
            outline.append((0, f"Logistics Report {doc}", 0))
            y -= 35
        for _ in range(2):
            section += 1
            topic = _TOPICS[(doc + section) % len(_TOPICS)]
            style = (doc + section) % 3
            if style == 0:  # bold, body size, numbered "N."
                head = Text(72, y, 10, f"{section}. {topic}", bold=True)
            elif style == 1:  # numbered in body style, two levels
                head = Text(72, y, 10, f"{doc % 9 + 1}.{section} {topic}")
            else:  # bold, body size, no number
                head = Text(72, y, 10, f"{topic} and readiness", bold=True)
            lines.append(head)
            heads.append(head.text)
            outline.append((1, head.text, p))
            y -= 20
            for para in range(3):
                for ln in range(4):
                    words = [_FILLER[(k + 3 * ln + w * w) % len(_FILLER)] for w in range(11)]
                    k += 1
                    text = " ".join(words)
                    if ln == 0:
                        text = f"({'U' if para % 2 else 'S//NF'}) {text.capitalize()}"
                    lines.append(Text(72, y, 10, text + ("." if ln == 3 else "")))
                    y -= 13
                y -= 9
            y -= 12
        lines.append(Text(280, 40, 9, f"Page {p + 1} of {pages}"))
        lines.append(Text(250, 22, 10, "SECRET//NOFORN"))
        lines_of.append(lines)
    running = [f"Report {doc} - Northern Sector"] + [
        f"Page {p + 1} of {pages}" for p in range(pages)
    ]
    return write_styled_pdf(lines_of, outline), heads, running


def _generated_scores(count: int, pages: int) -> dict[str, Any]:
    ctx = ParseContext(media_type=PDF, options={"ocr": False, "outline": False})
    heads = found = titles = good = leaked = running_total = banners = 0
    for doc in range(count):
        data, want, running = _generated(doc, pages)
        parsed = parse_pdf(data, ctx)
        got = [e.text for e in parsed.elements if e.type is ElementType.TITLE]
        heads += len(want)
        found += sum(1 for h in want if h in got)
        titles += len(got)
        good += sum(1 for t in got if t in want)
        body = [
            e.text
            for e in parsed.elements
            if e.type not in (ElementType.HEADER, ElementType.FOOTER)
        ]
        running_total += len(running)
        leaked += sum(1 for r in running if any(r in t for t in body))
        banners += parsed.banners == ("SECRET//NOFORN",)
    return {
        "generated: files, pages each": f"{count}, {pages}",
        "generated: head recall without the outline": _fmt(found / heads),
        "generated: head precision": _fmt(good / titles if titles else None),
        "generated: running lines leaked into the body (target 0)": f"{leaked}/{running_total}",
        "generated: files whose banner was read": f"{banners}/{count}",
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
    results.update(_generated_scores(*((5, 3) if quick else (40, 4))))
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
    notes.insert(
        2,
        "For comparison, the parser before heads were read from weight, numbering and the "
        "outline (heads by size alone, running lines on any two pages) scored, on the same "
        "files: public recall 0.911 and precision 0.319 (GeoTopo: 0.882 and 0.229, its "
        "equations and theorem labels taken for heads); generated recall 0.111 (only the "
        "larger report titles) and precision 1.000, no running line leaked, every banner read.",
    )
    return {
        "title": "PDF headings without the outline: recall and precision against the outline",
        "what": (__doc__ or "").strip().splitlines()[0],
        "notes": notes,
        "results": results,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
