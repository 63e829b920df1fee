"""Text-like parsers on small inline samples, hostile inputs included."""

from __future__ import annotations

import codecs

import pytest

from garrison.core.records import ElementType
from garrison.parse import ParseContext, ParseFailure, parse_bytes, parser_for
from garrison.parse._text import decode_text, sniff_delimiter
from garrison.parse.tabular import typed_value


def _types(doc: object) -> list[str]:
    return [e.type.value for e in doc.elements]  # type: ignore[attr-defined]


# -- decoding ------------------------------------------------------------------------------


def test_decode_boms_and_newlines() -> None:
    text = "line one\r\nline two\rline three"
    assert decode_text(codecs.BOM_UTF8 + text.encode()) == (
        "line one\nline two\nline three",
        "utf-8",
    )
    assert decode_text(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))[1] == "utf-16-le"
    assert decode_text(codecs.BOM_UTF32_LE + text.encode("utf-32-le"))[0].count("\n") == 2


def test_decode_invalid_utf8_falls_back_to_detection() -> None:
    data = "Café crème, déjà vu: naïve façade.\n".encode("cp1252") * 5
    text, encoding = decode_text(data)
    # Detection on a short sample may pick a sibling code page; the text still decodes.
    assert text.startswith("Café cr")
    assert encoding != "utf-8"


def test_decode_refuses_binary() -> None:
    with pytest.raises(ParseFailure) as info:
        decode_text(b"\x00\x01\x02\x03\xff\xfe\x00\x00\x10\x11" * 100)
    assert info.value.reason == "unsupported-type"


def test_huge_single_line_is_split() -> None:
    text, _ = decode_text(b"x" * 10_000, max_line_chars=1000)
    assert max(len(line) for line in text.split("\n")) == 1000
    doc = parse_bytes(b"word " * 5000, "big.txt", max_line_chars=2000)
    assert doc.elements  # no blow-up, text kept


def test_sniff_delimiter() -> None:
    assert sniff_delimiter("a;b;c\n1;2;3\n") == (";", 2, 3)
    assert sniff_delimiter("just one line") is None


# -- parse_bytes ---------------------------------------------------------------------------


def test_parse_bytes_empty_and_unknown() -> None:
    with pytest.raises(ParseFailure) as info:
        parse_bytes(b"")
    assert info.value.reason == "corrupt"
    with pytest.raises(ParseFailure) as info:
        parse_bytes(bytes(range(256)) * 8)
    assert info.value.reason == "unsupported-type"
    assert "application/octet-stream" in info.value.detail


def test_text_parsers_refuse_binary_garbage() -> None:
    garbage = b"\x00\xff\x13\x37" * 64
    for media_type in ("text/plain", "text/markdown", "text/csv", "application/json"):
        parser = parser_for(media_type)
        assert parser is not None
        with pytest.raises(ParseFailure):
            parser(garbage, ParseContext(media_type=media_type))


# -- plain text ----------------------------------------------------------------------------


def test_plain_text_structure() -> None:
    data = (
        b"QUARTERLY REPORT\n\n"
        b"(S//NF) The first paragraph\nwraps over two lines.\n\n"
        b"- first item\n* second item\n1. third item\n\n"
        b"Closing words.\n"
    )
    doc = parse_bytes(data, "r.txt")
    assert doc.media_type == "text/plain"
    assert doc.title == "QUARTERLY REPORT"
    assert _types(doc) == [
        "Title",
        "NarrativeText",
        "ListItem",
        "ListItem",
        "ListItem",
        "NarrativeText",
    ]
    para = doc.elements[1]
    assert para.text == "(S//NF) The first paragraph wraps over two lines."
    assert para.locator == {"line": 3}
    assert para.section_path == ("QUARTERLY REPORT",)
    assert doc.elements[4].text == "third item"
    assert doc.extraction.parser == "garrison.text"


def test_plain_text_utf16_with_bom() -> None:
    data = codecs.BOM_UTF16_LE + "Überschrift\n\nDer Text.\n".encode("utf-16-le")
    doc = parse_bytes(data)
    assert [e.text for e in doc.elements] == ["Überschrift", "Der Text."]
    assert doc.metadata["encoding"] == "utf-16-le"


# -- markdown ------------------------------------------------------------------------------

MARKDOWN = b"""# Guide

Intro with a [link](https://example.org).

## Setup

- step one
- step two

| Name | Qty |
|------|-----|
| A    | 1   |

```python
print("hi")
```
"""


def test_markdown_structure() -> None:
    doc = parse_bytes(MARKDOWN, "guide.md")
    assert doc.media_type == "text/markdown"
    assert doc.title == "Guide"
    assert _types(doc) == [
        "Title",
        "NarrativeText",
        "Title",
        "ListItem",
        "ListItem",
        "Table",
        "Code",
    ]
    setup = doc.elements[2]
    assert (setup.heading_level, setup.section_path) == (2, ("Guide",))
    assert doc.elements[1].links == ("https://example.org",)
    assert doc.elements[3].section_path == ("Guide", "Setup")
    table = doc.elements[5]
    assert {(c.row, c.col, c.text, c.is_header) for c in table.table_cells} == {
        (0, 0, "Name", True),
        (0, 1, "Qty", True),
        (1, 0, "A", False),
        (1, 1, "1", False),
    }
    assert table.text_html is not None and "<th>Name</th>" in table.text_html
    code = doc.elements[6]
    assert code.text == 'print("hi")'
    assert code.fields == {"language": "python"}


# -- HTML ----------------------------------------------------------------------------------

HTML = b"""<!DOCTYPE html><html lang="en"><head><title>Page</title>
<script>alert('steal')</script><style>p{}</style></head>
<body><nav><a href="/">Home</a></nav>
<h1>Main</h1><p>(U) First <b>para</b> with <a href="https://x.org/a">link</a>.</p>
<div>Loose div text<script>evil()</script></div>
<h2>Sub</h2><ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>
<table><tr><th>H1</th><th>H2</th></tr><tr><td rowspan="2">a</td><td>b</td></tr>
<tr><td>c</td></tr></table>
<noscript>enable js</noscript><footer>copyright</footer></body></html>"""


def test_html_structure() -> None:
    doc = parse_bytes(HTML)
    assert doc.media_type == "text/html"
    assert doc.title == "Page"
    texts = [e.text for e in doc.elements]
    joined = " ".join(texts)
    for banned in ("alert", "evil", "enable js", "copyright", "Home", "p{}"):
        assert banned not in joined
    assert _types(doc) == [
        "Title", "NarrativeText", "NarrativeText", "Title", "ListItem", "ListItem", "ListItem",
        "Table",
    ]  # fmt: skip
    assert doc.elements[0].heading_level == 1
    assert doc.elements[1].text == "(U) First para with link."
    assert doc.elements[1].links == ("https://x.org/a",)
    assert doc.elements[3].section_path == ("Main",)
    assert doc.elements[6].text == "nested"
    table = doc.elements[7]
    cells = {(c.row, c.col): c for c in table.table_cells}
    assert cells[(0, 0)].is_header and cells[(1, 0)].row_span == 2
    assert cells[(2, 1)].text == "c"  # placed after the spanning cell
    assert table.text_html is not None and "<script" not in table.text_html


def test_html_charset_from_meta() -> None:
    data = '<html><head><meta charset="iso-8859-1"></head><body><p>Grüße</p></body></html>'
    doc = parse_bytes(data.encode("latin-1"))
    assert doc.elements[0].text == "Grüße"


# -- XML -----------------------------------------------------------------------------------


def test_xml_elements_with_xpath() -> None:
    data = b"""<?xml version="1.0"?><doc><title>T</title><item id="1">a</item>
    <item>b <em>c</em> d</item></doc>"""
    doc = parse_bytes(data)
    assert doc.media_type == "application/xml"
    assert doc.title == "T"
    got = [(e.type.value, e.text, e.locator["xpath"]) for e in doc.elements]
    assert got == [
        ("Title", "T", "/doc/title"),
        ("NarrativeText", "a", "/doc/item[1]"),
        ("NarrativeText", "b c d", "/doc/item[2]"),
    ]
    assert doc.elements[1].fields == {"id": "1"}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_hostile_is_refused(data: bytes) -> None:
    with pytest.raises(ParseFailure) as info:
        parse_bytes(data)
    assert info.value.reason == "hostile-content"


def test_xml_malformed_is_corrupt() -> None:
    parser = parser_for("application/xml")
    assert parser is not None
    with pytest.raises(ParseFailure) as info:
        parser(b"<a><b></a>", ParseContext(media_type="application/xml"))
    assert info.value.reason == "corrupt"


# -- JSON ----------------------------------------------------------------------------------


def test_json_records_and_leaves() -> None:
    data = b'{"title": "Doc", "rows": [{"a": 1, "b": "x"}, {"a": 2, "b": null}], "tags": ["p/q"]}'
    doc = parse_bytes(data)
    got = [(e.type.value, e.locator["json_pointer"]) for e in doc.elements]
    assert got == [
        ("NarrativeText", "/title"),
        ("Record", "/rows/0"),
        ("Record", "/rows/1"),
        ("NarrativeText", "/tags/0"),
    ]
    assert doc.elements[1].fields == {"a": 1, "b": "x"}
    assert doc.elements[0].fields == {"key": "title"}


def test_json_pointer_escaping_and_jsonl() -> None:
    doc = parse_bytes(b'{"a/b": {"c~d": [{"x": {"deep": "v"}}]}}')
    assert doc.elements[0].locator["json_pointer"] == "/a~1b/c~0d/0/x"
    assert doc.elements[0].fields == {"deep": "v"}
    lines = parse_bytes(b'{"k": 1}\n\n{"k": 2}\n', "x.jsonl")
    assert lines.media_type == "application/x-ndjson"
    assert [e.locator for e in lines.elements] == [
        {"line": 1, "json_pointer": "/0"},
        {"line": 3, "json_pointer": "/1"},
    ]


def test_json_invalid_and_deep() -> None:
    parser = parser_for("application/json")
    assert parser is not None
    ctx = ParseContext(media_type="application/json")
    with pytest.raises(ParseFailure) as info:
        parser(b'{"a": ', ctx)
    assert info.value.reason == "corrupt"
    with pytest.raises(ParseFailure) as info:
        parser(b"[" * 100_000 + b"]" * 100_000, ctx)
    assert info.value.reason == "hostile-content"


# -- CSV / Parquet -------------------------------------------------------------------------


def test_typed_values() -> None:
    assert typed_value("42") == 42
    assert typed_value("-1.5e3") == -1500.0
    assert typed_value("TRUE") is True
    assert typed_value("  ") is None
    assert typed_value("007") == "007"
    assert typed_value("143,1", decimal_comma=True) == 143.1
    assert typed_value("143,1") == "143,1"


def test_csv_title_row_and_typed_records() -> None:
    data = b"Sales 2024,,\nName,Count,Active\nA,3,true\nB,,false\n"
    doc = parse_bytes(data, "s.csv")
    assert doc.media_type == "text/csv"
    assert _types(doc) == ["Title", "Record", "Record"]
    assert doc.title == "Sales 2024"
    first, second = doc.elements[1], doc.elements[2]
    assert first.fields == {"Name": "A", "Count": 3, "Active": True}
    assert second.fields == {"Name": "B", "Count": None, "Active": False}
    assert first.locator == {"row": 3}
    assert first.section_path == ("Sales 2024",)


def test_tsv_and_ragged_rows() -> None:
    parser = parser_for("text/tab-separated-values")
    assert parser is not None
    ctx = ParseContext(media_type="text/tab-separated-values")
    doc = parser(b"a\tb\n1\t2\t3\n4\n", ctx)
    assert doc.media_type == "text/tab-separated-values"
    assert doc.elements[0].fields == {"a": 1, "b": 2, "column_3": 3}
    assert doc.elements[1].fields == {"a": 4, "b": None, "column_3": None}


def test_parquet_rows() -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": [1, 2], "name": ["x", None]}), sink)
    doc = parse_bytes(sink.getvalue().to_pybytes())
    assert doc.media_type == "application/vnd.apache.parquet"
    assert [e.fields for e in doc.elements] == [{"id": 1, "name": "x"}, {"id": 2, "name": None}]
    assert all(e.type is ElementType.RECORD for e in doc.elements)
    with pytest.raises(ParseFailure) as info:
        parse_bytes(b"PAR1" + b"\x00" * 32 + b"PAR1")
    assert info.value.reason == "corrupt"


# -- marks and banners in plain text and Markdown --------------------------------------------


def test_plain_text_pages_and_banner_lines() -> None:
    text = (
        "SECRET//NOFORN\nFirst page body.\nSECRET//NOFORN\n"
        "\fTop Secret//SI//NoForn\nSecond page body.\n\nMiddle SECRET//NOFORN stays prose.\n"
        "SECRET//RD//NOFORN\nTop Secret//SI//NoForn\n"
    )
    doc = parse_bytes(text.encode(), "pages.txt")
    assert doc.banners == (
        "SECRET//NOFORN",
        "SECRET//NOFORN",
        "Top Secret//SI//NoForn",
        "SECRET//RD//NOFORN",  # a banner line with an atomic energy marking
        "Top Secret//SI//NoForn",
    )
    assert [(e.text, e.page) for e in doc.elements] == [
        ("First page body.", 1),
        ("Second page body.", 2),
        ("Middle SECRET//NOFORN stays prose.", 2),
    ]
    assert [e.locator["line"] for e in doc.elements] == [2, 5, 7]


def test_plain_text_without_form_feeds_has_no_pages() -> None:
    doc = parse_bytes(b"One.\n\nTwo.\n", "a.txt")
    assert [e.page for e in doc.elements] == [None, None] and doc.banners == ()


def test_plain_text_comment_lines_are_not_banners() -> None:
    doc = parse_bytes(b"//ACCORDION BUTTON ACTION\nx = 1 // note\n", "a.txt")
    assert doc.banners == ()


def test_plain_text_marked_line_starts_a_paragraph() -> None:
    doc = parse_bytes(b"(U) first line\nwraps here\n(S//NF) second\n(c) 2024 stays\n", "a.txt")
    assert [e.text for e in doc.elements] == [
        "(U) first line wraps here",
        "(S//NF) second (c) 2024 stays",  # not a mark: the paragraph goes on
    ]


def test_plain_text_other_line_breaks_are_lines() -> None:
    doc = parse_bytes("(U) one\u2028(S//NF) two\vthree".encode(), "a.txt")
    assert [e.text for e in doc.elements] == ["(U) one", "(S//NF) two three"]


def test_markdown_soft_break_before_a_mark_stays_a_line_break() -> None:
    doc = parse_bytes(b"# Notes\n\n(U) first line\n(S//NF) second\nand (a) more\n", "a.md")
    assert doc.media_type == "text/markdown"
    assert [e.text for e in doc.elements][1:] == ["(U) first line\n(S//NF) second and (a) more"]
