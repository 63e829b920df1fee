"""Typed records that flow through Garrison: documents, elements and their parts.

These are the stored/sent forms (pydantic, with a format version). A parser produces
:class:`ParsedElement` values -- text, structure and location, with the portion mark as it was
found -- and ingest turns them into marked :class:`Element` records once the document's banner
and the marking rules have been applied.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BBox",
    "DocumentStatus",
    "ElementType",
    "EmailFields",
    "Extraction",
    "ImageFields",
    "MarkingSource",
    "ParsedAttachment",
    "ParsedDocument",
    "ParsedElement",
    "TableCell",
    "element_id",
    "sha256_hex",
]


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256: the id of a document is the hash of its original bytes."""
    return hashlib.sha256(data).hexdigest()


def element_id(doc_id: str, seq: int, text: str) -> str:
    """Deterministic element id from the document id, reading order and content."""
    digest = hashlib.sha256(f"{doc_id}\x00{seq}\x00{text}".encode()).hexdigest()
    return digest[:32]


class ElementType(StrEnum):
    TITLE = "Title"
    NARRATIVE_TEXT = "NarrativeText"
    LIST_ITEM = "ListItem"
    TABLE = "Table"
    IMAGE = "Image"
    CAPTION = "Caption"
    HEADER = "Header"
    FOOTER = "Footer"
    FORMULA = "Formula"
    CODE = "Code"
    EMAIL_HEADER = "EmailHeader"
    KEY_VALUE = "KeyValue"
    RECORD = "Record"


class DocumentStatus(StrEnum):
    PARSED = "parsed"
    QUARANTINED = "quarantined"
    SPILLED = "spilled"
    #: Its original no longer matches its hash (found on read): nothing of it is served.
    DAMAGED = "damaged"


class MarkingSource(StrEnum):
    PORTION = "portion"
    BANNER = "banner"
    SOURCE_DEFAULT = "source-default"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableCell(_Record):
    row: int
    col: int
    text: str
    row_span: int = 1
    col_span: int = 1
    is_header: bool = False
    #: The cell's own marking (canonical banner form), set by the marking rules at ingest from a
    #: portion mark at the start of the cell (its text then no longer holds the mark) or
    #: inherited from the document; ``None`` as a parser hands it over.
    marking: str | None = None


class BBox(_Record):
    x0: float
    y0: float
    x1: float
    y1: float
    #: ``pdf-points`` (origin bottom-left), ``pixels`` (origin top-left)...
    coordinate_system: str = "pdf-points"


class Extraction(_Record):
    method: str
    parser: str
    parser_version: str
    confidence: float | None = None


class EmailFields(_Record):
    sender: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str | None = None
    message_id: str | None = None
    sent_at: datetime | None = None


class ImageFields(_Record):
    width: int | None = None
    height: int | None = None
    exif_time: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None


class ParsedElement(_Record):
    """One element as a parser found it, before marking rules are applied.

    ``text`` still holds a leading portion mark if the document had one; ingest strips it
    (``garrison.security.markings.find_portion_mark``) and records it as the element's marking.
    """

    type: ElementType
    text: str
    heading_level: int | None = None
    section_path: tuple[str, ...] = ()
    text_html: str | None = None
    table_cells: tuple[TableCell, ...] = ()
    page: int | None = None
    bbox: BBox | None = None
    #: Where it came from inside the document: ``{"page": 3}``, ``{"sheet": "S1", "row": 4}``,
    #: ``{"json_pointer": "/a/0"}``, ``{"db": "x", "table": "t", "pk": {...}}``,
    #: ``{"part": "body"}``.
    locator: dict[str, Any] = Field(default_factory=dict)
    #: Typed fields: a record's columns, an e-mail header's name/value, key/value pairs.
    fields: dict[str, Any] = Field(default_factory=dict)
    links: tuple[str, ...] = ()
    email: EmailFields | None = None
    image: ImageFields | None = None
    #: Index (in the parser's output) of the parent element, if nested.
    parent: int | None = None
    #: A marking the source states in structure rather than in text -- IC-ISM attributes on an
    #: XML element, a tabular or SQL source's marking column -- in banner or portion spelling.
    #: The marking rules read it as the element's portion mark (an invalid value quarantines the
    #: document); an empty string means "stated as unmarked" (``unmarked-portion``).
    declared_marking: str | None = None


class ParsedAttachment(_Record):
    """An embedded file (mail attachment, archive member) to ingest as a child document."""

    filename: str | None
    data: bytes
    locator: dict[str, Any] = Field(default_factory=dict)


class ParsedDocument(_Record):
    """What a parser returns for one file."""

    format: int = 1
    media_type: str
    elements: tuple[ParsedElement, ...]
    title: str | None = None
    author: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    #: Banner lines found (top/bottom of the document or of pages, headers/footers), as text.
    banners: tuple[str, ...] = ()
    attachments: tuple[ParsedAttachment, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    extraction: Extraction
    #: Problems that did not stop parsing (``active-content``, ``no-text-layer``...).
    warnings: tuple[str, ...] = ()
    kind: Literal["document"] = "document"
