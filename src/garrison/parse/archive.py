"""Zip containers that are not an Office document: damaged ones are told apart from the rest."""

from __future__ import annotations

import io
import zipfile

from garrison.core.records import ParsedDocument
from garrison.parse._registry import ParseContext, ParseFailure, register_parser


@register_parser("application/zip")
def parse_zip(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """A truncated or damaged zip (a cut-off DOCX, say) is ``corrupt``; a sound one is an
    archive, which this version does not unpack (``unsupported-type``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ParseFailure("corrupt", "the zip container is damaged or truncated") from exc
    raise ParseFailure("unsupported-type", "zip archives are not unpacked by this version")
