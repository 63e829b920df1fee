"""Media type detection: content decides, the filename only breaks ties among text types."""

from __future__ import annotations

import codecs
import io
import zipfile

import pytest

from garrison.parse import detect_media_type


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, "<x/>")
    return buf.getvalue()


OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 20, "image/gif"),
        (b"II*\x00" + b"\x00" * 20, "image/tiff"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"{\\rtf1\\ansi hello}", "application/rtf"),
        (b"PAR1" + b"\x00" * 16 + b"PAR1", "application/vnd.apache.parquet"),
        (OLE2 + "__substg1.0_0037001F".encode("utf-16-le"), "application/vnd.ms-outlook"),
        (OLE2 + "EncryptionInfo".encode("utf-16-le"), "application/x-ooxml-encrypted"),
        (OLE2 + b"WordDocument", "application/x-ole-storage"),
        (b"", "application/octet-stream"),
        (bytes(range(256)) * 4, "application/octet-stream"),
    ],
)
def test_binary_magic(data: bytes, expected: str) -> None:
    assert detect_media_type(data) == expected


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("word/document.xml", "wordprocessingml.document"),
        ("ppt/presentation.xml", "presentationml.presentation"),
        ("xl/workbook.xml", "spreadsheetml.sheet"),
    ],
)
def test_ooxml_told_apart_by_parts(part: str, expected: str) -> None:
    data = _zip(["[Content_Types].xml", part])
    assert detect_media_type(data, "misleading.txt").endswith(expected)


def test_plain_zip_and_broken_zip() -> None:
    assert detect_media_type(_zip(["a.txt"])) == "application/zip"
    assert detect_media_type(b"PK\x03\x04garbage") == "application/zip"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!DOCTYPE html><html><body><p>x</p></body></html>", "text/html"),
        ("<html><body>x</body></html>", "text/html"),
        ('<?xml version="1.0"?>\n<!-- c -->\n<html><body>x</body></html>', "text/html"),
        ("<p>Just a fragment</p>", "text/html"),
        ('<?xml version="1.0"?><root><a>1</a></root>', "application/xml"),
        ('<?xml version="1.0"?><xsl:stylesheet><html/></xsl:stylesheet>', "application/xml"),
        ("<catalog><book>x</book></catalog>", "application/xml"),
        ("From: a@b.c\nTo: d@e.f\nSubject: hi\n\nbody\n", "message/rfc822"),
        ("Received: from x\n\tby y\nMIME-Version: 1.0\n\nbody", "message/rfc822"),
        ("From a@b.c Mon Jan 1 00:00:00 2024\nFrom: a@b.c\n\nbody\n", "application/mbox"),
        ('{"a": [1, 2]}', "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('{"a": 1}\n{"a": 2}\n', "application/x-ndjson"),
        ("a,b,c\n1,2,3\n4,5,6\n", "text/csv"),
        ("a\tb\tc\n1\t2\t3\n4\t5\t6\n", "text/tab-separated-values"),
        ("x;y;z\n1;2;3\n4;5;6\n", "text/csv"),
        ("# Title\n\nSome *text* and a [link](http://x).\n\n- item\n", "text/markdown"),
        ("Hello, world.\nThis is plain text, with commas, here and there.\n", "text/plain"),
    ],
)
def test_text_sniffing(text: str, expected: str) -> None:
    assert detect_media_type(text.encode()) == expected


def test_filename_breaks_ties_only_among_text_types() -> None:
    weak_md = b"## Heading\n\nplain words\n"
    assert detect_media_type(weak_md, "notes.md") == "text/markdown"
    assert detect_media_type(weak_md, "notes.txt") == "text/plain"
    two_rows = b"a,b\n1,2\n"
    assert detect_media_type(two_rows, "x.csv") == "text/csv"
    assert detect_media_type(two_rows, "x.txt") == "text/plain"
    # The extension never overrides content.
    assert detect_media_type(b"%PDF-1.4\n", "report.txt") == "application/pdf"
    assert detect_media_type(b'{"a": 1}', "data.csv") == "application/json"


def test_unicode_encodings_are_text() -> None:
    text = "Grüße aus Köln, plain text.\n"
    assert detect_media_type(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == "text/plain"
    assert detect_media_type(codecs.BOM_UTF32_BE + text.encode("utf-32-be")) == "text/plain"
    assert detect_media_type(text.encode("utf-16-be")) == "text/plain"  # no BOM
    assert detect_media_type(text.encode("latin-1")) == "text/plain"
