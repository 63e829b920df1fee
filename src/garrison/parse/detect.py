"""Media type detection from content.

Binary formats are recognized by their magic bytes (zip containers are opened to tell the
Office formats apart, OLE2 compound files are told apart by their stream names); text is
decoded and sniffed. The filename is only a tie-breaker among text types (``.md`` vs ``.txt``,
``.csv`` vs ``.txt``); it never overrides what the content says.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

from garrison.parse._registry import ParseFailure
from garrison.parse._text import decode_text, sniff_delimiter

__all__ = ["detect_media_type"]

OCTET_STREAM = "application/octet-stream"
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_SIMPLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"{\\rtf", "application/rtf"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE2_STREAMS = (
    ("WordDocument", "application/msword"),
    ("PowerPoint Document", "application/vnd.ms-powerpoint"),
    ("Workbook", "application/vnd.ms-excel"),
    ("Book", "application/vnd.ms-excel"),  # Excel 5/95
)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

_HTML_FIRST_TAGS = frozenset(
    [
        "html",
        "head",
        "body",
        "meta",
        "title",
        "link",
        "p",
        "div",
        "span",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "br",
        "ul",
        "ol",
        "section",
        "article",
        "main",
        "header",
        "nav",
        "form",
        "img",
    ]
)
_MAIL_HEADERS = frozenset(
    [
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "received",
        "mime-version",
        "message-id",
        "return-path",
        "content-type",
        "reply-to",
        "sender",
        "delivered-to",
        "x-mailer",
    ]
)
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]?")
_LEADING_MARKUP = re.compile(r"^(\s+|<\?xml[^>]*\?>|<!--.*?-->|<!doctype[^>]*>)", re.I | re.S)
_FIRST_TAG = re.compile(r"^<([A-Za-z_][\w:.-]*)[\s/>]")
_MD_HEADING = re.compile(r"^#{1,6}\s+\S", re.M)
_MD_FENCE = re.compile(r"^(```|~~~)", re.M)
_MD_LIST = re.compile(r"^\s{0,3}([-*+]|\d{1,3}[.)])\s+\S", re.M)
_MD_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.M)
_MD_LINK = re.compile(r"\[[^\]\n]+\]\([^)\s]+\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__)\S[^\n]*?\S\1")


def _ext(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].lower()


def _zip_type(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if "mimetype" in names:
                mimetype = zf.read("mimetype")[:200].decode("ascii", "replace").strip()
                if mimetype:
                    return mimetype
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, KeyError, EOFError):
        return "application/zip"
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return _DOCX
        if any(n.startswith("ppt/") for n in names):
            return _PPTX
        if any(n.startswith("xl/") for n in names):
            return _XLSX
    return "application/zip"


def _ole2_type(data: bytes) -> str:
    if b"__substg1.0_" in data or "__substg1.0_".encode("utf-16-le") in data:
        return "application/vnd.ms-outlook"
    if "EncryptionInfo".encode("utf-16-le") in data or b"EncryptionInfo" in data:
        return "application/x-ooxml-encrypted"
    for stream, media_type in _OLE2_STREAMS:
        if _has_ole2_entry(data, stream):
            return media_type
    return "application/x-ole-storage"


def _has_ole2_entry(data: bytes, name: str) -> bool:
    """Whether an OLE2 directory entry is named ``name`` (legacy Office files by their main stream).

    A directory entry is 128 bytes, aligned on 128 in the file, and opens with its name in
    UTF-16LE ended by a NUL: text that merely contains the word does not count.
    """
    needle = name.encode("utf-16-le") + b"\x00\x00"
    start = data.find(needle)
    while start != -1:
        if start % 128 == 0:
            return True
        start = data.find(needle, start + 1)
    return False


def _is_bzip2(head: bytes) -> bool:
    # "BZh" + block size digit, then a block magic (pi) or, for an empty stream, the end (sqrt pi).
    return (
        head.startswith(b"BZh")
        and head[3:4] in b"123456789"
        and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")
    )


def _binary_type(data: bytes) -> str | None:
    head = data[:64]
    # Checked first: a tar opens with a member name, which may look like anything (even text).
    if data[257:262] == b"ustar" and data[262:263] in (b"\x00", b" "):
        return "application/x-tar"
    if _is_bzip2(head):
        return "application/x-bzip2"
    for magic, media_type in _SIMPLE_MAGIC:
        if head.startswith(magic):
            return media_type
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_type(data)
    if head.startswith(_OLE2_MAGIC):
        return _ole2_type(data)
    if head.startswith(b"PAR1") and data.endswith(b"PAR1"):
        return "application/vnd.apache.parquet"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(data) > 26 and data[14] in (12, 40, 52, 56, 64, 108, 124):
        return "image/bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand in _AVIF_BRANDS:
            return "image/avif"
    if b"%PDF-" in data[:1024]:
        return "application/pdf"
    return None


def _markup_type(text: str) -> str | None:
    """HTML or XML, judged by what comes first after declarations and comments."""
    start = text.lstrip("\ufeff \t\n")
    if not start.startswith("<"):
        return None
    head = start[:4096]
    if re.match(r"<!doctype\s+html", head, re.I):
        return "text/html"
    rest = head
    while True:
        m = _LEADING_MARKUP.match(rest)
        if not m or not m.group(0):
            break
        if m.group(0).lower().startswith("<!doctype html"):
            return "text/html"
        rest = rest[m.end() :]
    tag = _FIRST_TAG.match(rest)
    if tag is None:
        return "application/xml" if head.startswith("<?xml") else None
    name = tag.group(1).lower()
    if name in _HTML_FIRST_TAGS and not head.startswith("<?xml"):
        return "text/html"
    if name == "html":
        return "text/html"
    return "application/xml"


def _mail_type(text: str) -> str | None:
    lines = text.split("\n", 60)[:60]
    if not lines:
        return None
    if lines[0].startswith("From ") and len(lines) > 1 and _HEADER_LINE.match(lines[1]):
        return "application/mbox"
    known = 0
    for line in lines:
        if not line.strip():
            break
        if line[0] in " \t":
            continue  # folded header continuation
        m = _HEADER_LINE.match(line)
        if m is None:
            return None
        if m.group(1).lower() in _MAIL_HEADERS:
            known += 1
    return "message/rfc822" if known >= 2 else None


def _json_type(text: str) -> str | None:
    start = text.lstrip()
    if not start or start[0] not in "[{":
        return None
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        return "application/json"
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return None
    try:
        values = [json.loads(line) for line in lines]
    except (ValueError, RecursionError):
        return None
    if all(isinstance(v, dict | list) for v in values):
        return "application/x-ndjson"
    return None


def _markdown_score(text: str) -> int:
    sample = text[:65536]
    patterns = (_MD_HEADING, _MD_FENCE, _MD_LIST, _MD_TABLE_RULE, _MD_LINK, _MD_EMPHASIS)
    return sum(1 for p in patterns if p.search(sample))


def _has_markings(text: str) -> bool:
    """Whether any of the first lines is a banner line or starts with a portion mark."""
    from garrison.parse._banner import is_banner_line
    from garrison.security.markings import find_portion_mark

    for line in text.splitlines()[:200]:
        stripped = line.strip()
        if stripped and (is_banner_line(stripped) or find_portion_mark(stripped) is not None):
            return True
    return False


def without_edge_banners(text: str) -> str:
    """``text`` without the banner lines at its top and bottom (a marked CSV's first/last rows).

    A banner row has one field, so it would make the rows of a small table look inconsistent.
    """
    from garrison.parse._banner import is_banner_line

    lines = text.split("\n")

    def banner(line: str) -> bool:
        bare = line.strip().strip('"').strip()
        return not bare or is_banner_line(bare) or is_banner_line(bare.rstrip(",;\t|").strip())

    start, end = 0, len(lines)
    while start < end and banner(lines[start]):
        start += 1
    while end > start and banner(lines[end - 1]):
        end -= 1
    return "\n".join(lines[start:end])


def _text_type(text: str, filename: str | None) -> str:
    ext = _ext(filename)
    markup = _markup_type(text)
    if markup is not None:
        return markup
    mail = _mail_type(text)
    if mail is not None:
        return mail
    as_json = _json_type(text)
    if as_json is not None:
        return as_json
    md_score = _markdown_score(text)
    if ext in {"md", "markdown", "mdown", "mkd"} and md_score >= 1:
        return "text/markdown"
    sniffed = sniff_delimiter(without_edge_banners(text))
    if sniffed is not None:
        delim, rows, _columns = sniffed
        # Marked prose is never a table: "SECRET//REL TO USA, GBR" banners and portion marks
        # carry commas, and reading them as CSV cells would lose the markings (fail open).
        strong = rows >= 3 and md_score == 0 and not _has_markings(text)
        if strong or ext in {"csv", "tsv", "tab"}:
            return "text/tab-separated-values" if delim == "\t" else "text/csv"
    if md_score >= 2 and (_MD_HEADING.search(text) or _MD_FENCE.search(text)):
        return "text/markdown"
    return "text/plain"


def detect_media_type(data: bytes, filename: str | None = None) -> str:
    """The media type of ``data``, judged from its content.

    ``filename`` only breaks ties among text types. Returns ``application/octet-stream`` for
    empty input and for binary data of no known kind.
    """
    if not data:
        return OCTET_STREAM
    binary = _binary_type(data)
    if binary is not None:
        return binary
    try:
        text, _encoding = decode_text(data[: 4 * 1024 * 1024])
    except ParseFailure:
        return OCTET_STREAM
    except UnicodeDecodeError:
        # Truncating the sample can cut a multi-byte character in half.
        return OCTET_STREAM
    return _text_type(text, filename)
