"""The text-like parsers over the public corpus: elements with text, or a quarantine reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.core.records import ElementType
from garrison.parse import ParseFailure, detect_media_type, parse_bytes

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/public/unstructured"
TEXT_TYPES = frozenset(
    {
        "text/plain",
        "text/markdown",
        "text/html",
        "application/xml",
        "text/xml",
        "application/json",
        "application/x-ndjson",
        "text/csv",
        "text/tab-separated-values",
        "application/vnd.apache.parquet",
    }
)
REASONS = frozenset({"encrypted", "corrupt", "unsupported-type", "too-large", "hostile-content"})
MAX_BYTES = 2_000_000  # keep in-process parses small and quick


def _corpus() -> Path:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the public corpus is missing at {CORPUS}")
        pytest.skip(f"the public corpus is not present at {CORPUS}")
    return CORPUS


def _text_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    found = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        if detect_media_type(path.read_bytes(), path.name) in TEXT_TYPES:
            found.append(path)
    return found


FILES = _text_files()


def test_corpus_has_text_files() -> None:
    _corpus()
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_parses_or_quarantines(path: Path) -> None:
    reason = None
    try:
        doc = parse_bytes(path.read_bytes(), path.name)
    except ParseFailure as exc:
        reason = exc.reason
    if reason is not None:
        assert reason in REASONS
    else:
        assert any(e.text.strip() for e in doc.elements)


def _find(name: str) -> Path:
    matches = sorted(_corpus().rglob(name))
    assert matches, f"{name} is missing from the corpus"
    return matches[0]


def test_10k_html_titles_and_no_script() -> None:
    path = _find("example-10k-1p.html")
    doc = parse_bytes(path.read_bytes(), path.name)
    assert any(e.type is ElementType.TITLE for e in doc.elements)
    text = " ".join(e.text for e in doc.elements)
    assert "<script" not in text and "function(" not in text


def test_scripts_html_drops_script_text() -> None:
    path = _find("example-with-scripts.html")
    doc = parse_bytes(path.read_bytes(), path.name)
    text = " ".join(e.text for e in doc.elements)
    assert "function" not in text and "var " not in text


def test_stanley_cups_csv_title_row() -> None:
    path = _find("stanley-cups-with-emoji.csv")
    doc = parse_bytes(path.read_bytes(), path.name)
    assert doc.elements[0].type is ElementType.TITLE
    assert doc.elements[0].text == "Stanley Cups"
    records = [e for e in doc.elements if e.type is ElementType.RECORD]
    assert records
    assert all(set(r.fields) == {"Team", "Location", "Stanley Cups"} for r in records)
    assert records[0].fields == {"Team": "Blues", "Location": "STL", "Stanley Cups": 1}
