"""Archives (zip, tar, gzip, bzip2, xz, optionally 7z): members become attachments.

Archives are the classic carrier of hostile input, so this parser never touches the file
system: every member is read into memory through a byte budget, and member names are only
ever strings (for display and locators), never paths on disk. Links and device entries are
listed but never followed or read. Nested archives are left to the ingest engine's recursion
(``IngestOptions.max_depth``); compression layers stacked in one stream (``.gz.gz``...) are
peeled here, all against the same budget.

Limits (each overridable through ``ParseContext.options`` / ``parse_bytes(**options)``):

``max_total_bytes``
    Bytes this parser materializes: each decompression layer's output plus every member's
    data (default 1 GiB).
``max_member_bytes``
    Bytes of one member, or of one decompressed stream handed out whole (default 512 MiB).
``max_members``
    Entries of any kind, directories and links included (default 10,000).
``max_ratio`` / ``ratio_floor_bytes``
    Inflated / compressed size past which an output over the floor is a bomb, checked per
    member, per compression layer and for the whole archive (defaults 100 and 1 MiB).
``max_layers``
    Compression layers peeled from one stream (default 4).

Any limit crossed raises ``ParseFailure("archive-limit", ...)``. Declared sizes are checked
first (so an honest bomb is refused without inflating anything), but they are never trusted:
every read streams in chunks and stops as soon as a limit is crossed.

An archive with any password-protected member is ``encrypted`` as a whole: a partial view of
it would be ingested as if it were complete, and its hidden members could carry anything.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedAttachment,
    ParsedDocument,
    ParsedElement,
)
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser

__all__ = ["ArchiveLimits", "parse_archive", "sanitize_member_name"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_CHUNK = 1 * MIB
#: Entries listed in metadata and names quoted in the summary element.
_MAX_LISTED = 1000
_MAX_SUMMARY_NAMES = 20
_MAX_LINK_ELEMENTS = 100
_PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
_INSTALL_7Z = "7z archives need `pip install 'garrison[archive7z]'`"

# Errors the stdlib readers raise on damaged input; all of them mean ``corrupt``.
_DAMAGED: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    UnicodeDecodeError,
)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ArchiveLimits:
    """The caps one archive parse runs under (see the module docstring)."""

    max_total_bytes: int = 1 * GIB
    max_member_bytes: int = 512 * MIB
    max_members: int = 10_000
    max_ratio: int = 100
    ratio_floor_bytes: int = 1 * MIB
    max_layers: int = 4

    @classmethod
    def from_options(cls, options: dict[str, object]) -> ArchiveLimits:
        """Defaults, overridden by any integer option of the same name."""
        values: dict[str, int] = {}
        for name in cls.__dataclass_fields__:
            value = options.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                values[name] = value
        return cls(**values)


def _limit(detail: str) -> ParseFailure:
    return ParseFailure("archive-limit", detail)


@dataclass
class _Budget:
    """Counts every byte the parse materializes and refuses past the limits."""

    limits: ArchiveLimits
    input_size: int
    used: int = 0
    members_total: int = 0

    def read(
        self,
        stream: _Readable,
        what: str,
        *,
        compressed: int | None,
        member: bool,
    ) -> bytes:
        """Read ``stream`` to its end in chunks, stopping as soon as a limit is crossed.

        ``compressed`` is the size the output came from (for the ratio check; None when the
        bytes were stored, not inflated). ``member`` counts the output as member data (the
        per-member cap and the whole-archive ratio apply).
        """
        limits = self.limits
        buf = bytearray()
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                return bytes(buf)
            buf += chunk
            self.used += len(chunk)
            size = len(buf)
            if self.used > limits.max_total_bytes:
                raise _limit(
                    f"the archive inflates past the total limit of {limits.max_total_bytes} bytes"
                )
            if member:
                self.members_total += len(chunk)
                if size > limits.max_member_bytes:
                    raise _limit(
                        f"{what} is larger than the member limit of {limits.max_member_bytes} bytes"
                    )
                self._check_ratio(self.members_total, self.input_size, "the archive")
            if compressed is not None:
                self._check_ratio(size, compressed, what)

    def take(self, data: bytes, what: str, *, counted: bool = False) -> bytes:
        """Count a member whose bytes are already in memory (a tar member, a 7z write).

        ``counted``: the bytes are a decompressed layer the budget has already paid for.
        """
        if not counted:
            self.used += len(data)
        self.members_total += len(data)
        limits = self.limits
        if len(data) > limits.max_member_bytes:
            raise _limit(
                f"{what} is larger than the member limit of {limits.max_member_bytes} bytes"
            )
        if self.used > limits.max_total_bytes:
            raise _limit(
                f"the archive inflates past the total limit of {limits.max_total_bytes} bytes"
            )
        self._check_ratio(self.members_total, self.input_size, "the archive")
        return data

    def _check_ratio(self, inflated: int, compressed: int, what: str) -> None:
        limits = self.limits
        if inflated > limits.ratio_floor_bytes and inflated > limits.max_ratio * max(compressed, 1):
            raise _limit(
                f"{what} has a compression ratio over {limits.max_ratio} "
                f"({inflated} bytes from {compressed})"
            )


@dataclass
class _Listing:
    """What one archive holds, as it is being read."""

    fmt: str
    budget: _Budget
    layers: list[str] = field(default_factory=list)
    count: int = 0
    attachments: list[ParsedAttachment] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: Members whose bytes could not be read (a bad checksum, a broken stream).
    unreadable: list[str] = field(default_factory=list)

    def entry(self) -> int:
        """Count one entry of any kind; refuse past ``max_members``."""
        self.count += 1
        if self.count > self.budget.limits.max_members:
            raise _limit(f"the archive has more than {self.budget.limits.max_members} members")
        return self.count - 1

    def add(self, index: int, path: str, data: bytes, compressed: int | None) -> None:
        name = sanitize_member_name(path, index)
        self.attachments.append(
            ParsedAttachment(
                filename=name,
                data=data,
                locator={"part": "member", "path": path, "index": index},
            )
        )
        self._list(path, len(data), compressed, "file")

    def skip(self, index: int, path: str, kind: str, target: str | None = None) -> None:
        self.skipped.append(
            {"path": sanitize_member_name(path, index), "type": kind, "target": target}
        )
        self._list(path, 0, None, kind)

    def _list(self, path: str, size: int, compressed: int | None, kind: str) -> None:
        if len(self.members) < _MAX_LISTED:
            self.members.append(
                {"path": path, "size": size, "compressed_size": compressed, "type": kind}
            )


def sanitize_member_name(path: str, index: int = 0) -> str:
    """A member's stored path made safe to show: no leading ``/``, ``..`` collapsed.

    The result is a display name only -- nothing is ever written under it. ``..`` climbs no
    higher than the archive's root (``a/../../b`` is ``b``); backslashes count as separators
    and control characters become ``?``. An empty result becomes ``member-<index>``.
    """
    cleaned = "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in path)
    parts: list[str] = []
    for part in cleaned.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or f"member-{index}"


# -- zip ----------------------------------------------------------------------------------------


def _zip_declared_entries(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile builds its
    (unbounded) member list; None when absent or zip64."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if at < 0 or at + 22 > len(data):
        return None
    total = int.from_bytes(data[at + 10 : at + 12], "little")
    return None if total == 0xFFFF else total


def _is_zip_link(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _read_zip(data: bytes, listing: _Listing) -> None:
    limits = listing.budget.limits
    declared = _zip_declared_entries(data)
    if declared is not None and declared > limits.max_members:
        raise _limit(f"the zip declares {declared} members, over the limit of {limits.max_members}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                raise _limit(
                    f"the zip has {len(infos)} members, over the limit of {limits.max_members}"
                )
            encrypted = sum(1 for i in infos if i.flag_bits & 0x1 or i.compress_type == 99)
            if encrypted:
                raise ParseFailure(
                    "encrypted", f"{encrypted} of {len(infos)} zip members are password-protected"
                )
            # Honest headers let a bomb be refused before anything is inflated.
            declared_total = sum(i.file_size for i in infos)
            if declared_total > limits.max_total_bytes:
                raise _limit(
                    f"the zip declares {declared_total} bytes, over the total limit of "
                    f"{limits.max_total_bytes}"
                )
            for info in infos:
                index = listing.entry()
                if info.is_dir():
                    continue
                if info.file_size > limits.max_member_bytes:
                    raise _limit(
                        f"a member declares {info.file_size} bytes, over the member limit of "
                        f"{limits.max_member_bytes}"
                    )
                if _is_zip_link(info):
                    # A zip symlink stores its target as content: read a little to show it.
                    with zf.open(info) as fh:
                        target = fh.read(1024).decode("utf-8", "replace")
                    listing.skip(index, info.filename, "symlink", target)
                    continue
                try:
                    with zf.open(info) as fh:
                        body = listing.budget.read(
                            fh, f"member {index}", compressed=info.compress_size, member=True
                        )
                except (zipfile.BadZipFile, zlib.error, EOFError):
                    # One damaged member (a bad CRC, a broken deflate stream): the others are
                    # still read; this one is named as unreadable content.
                    listing.skip(index, info.filename, "unreadable")
                    listing.unreadable.append(sanitize_member_name(info.filename, index))
                    continue
                listing.add(index, info.filename, body, info.compress_size)
    except NotImplementedError as exc:  # how zipfile says "unknown compression method"
        raise ParseFailure(
            "unsupported-type", "a zip member uses a compression method this version cannot read"
        ) from exc
    except RuntimeError as exc:  # zipfile's "password required" for a flag it missed
        raise ParseFailure("encrypted", "a zip member is password-protected") from exc
    except _DAMAGED as exc:
        raise ParseFailure("corrupt", "the zip archive is damaged or truncated") from exc


# -- tar ----------------------------------------------------------------------------------------


def _looks_like_tar(data: bytes) -> bool:
    if data[257:262] == b"ustar":
        return True
    # A pre-POSIX (v7) tar has no magic; its first header's checksum must still hold.
    try:
        tarfile.TarInfo.frombuf(data[:512], "utf-8", "replace")
    except (tarfile.TarError, ValueError):
        return False
    return True


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "fifo"
    return "other"


def _read_tar(data: bytes, listing: _Listing) -> None:
    try:
        # Plain "r:" mode: compression layers were already peeled through the budget. Nothing
        # is extracted (no extractall, no filters needed): members are only read as streams.
        with tarfile.open(
            fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="replace"
        ) as tf:
            while True:
                info = tf.next()
                if info is None:
                    return
                index = listing.entry()
                if info.isdir():
                    continue
                if not info.isreg():
                    # Links are never resolved, devices and FIFOs never opened.
                    target = info.linkname if info.issym() or info.islnk() else None
                    listing.skip(index, info.name, _tar_kind(info), target)
                    continue
                if info.size > listing.budget.limits.max_member_bytes:
                    raise _limit(
                        f"a member declares {info.size} bytes, over the member limit of "
                        f"{listing.budget.limits.max_member_bytes}"
                    )
                fh = tf.extractfile(info)
                body = b"" if fh is None else fh.read(info.size)
                if len(body) != info.size:
                    raise ParseFailure("corrupt", "the tar archive is truncated")
                listing.add(index, info.name, listing.budget.take(body, f"member {index}"), None)
    except _DAMAGED as exc:
        raise ParseFailure("corrupt", "the tar archive is damaged or truncated") from exc


# -- compression layers -------------------------------------------------------------------------


def _open_layer(kind: str, data: bytes) -> gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile:
    # These readers decompress in bounded steps (``max_length``), so a chunked read of a
    # bomb never holds more than one chunk of it.
    if kind == "gzip":
        return gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(io.BytesIO(data), mode="rb")
    return lzma.LZMAFile(io.BytesIO(data), mode="rb")


_SUFFIXES = {
    "gzip": ((".tgz", ".tar"), (".gz", ""), (".gzip", "")),
    "bzip2": ((".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", ""), (".bzip2", "")),
    "xz": ((".txz", ".tar"), (".xz", "")),
}


def _compression(data: bytes) -> str | None:
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"BZh") and data[3:4].isdigit():
        return "bzip2"
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _gzip_fname(data: bytes) -> str | None:
    """The FNAME field of a gzip header (RFC 1952), which gzip(1) fills with the input name."""
    if len(data) < 10 or not data[3] & 0x08:
        return None
    pos = 10
    if data[3] & 0x04:  # FEXTRA comes first
        if len(data) < 12:
            return None
        pos = 12 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 4096)
    if end < 0:
        return None
    name = data[pos:end].decode("latin-1").rsplit("/", 1)[-1]
    return name or None


def _inner_name(kind: str, data: bytes, name: str) -> str:
    if kind == "gzip":
        fname = _gzip_fname(data)
        if fname:
            return fname
    lower = name.lower()
    for suffix, replacement in _SUFFIXES[kind]:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + replacement
    return name


def _peel(data: bytes, name: str, listing: _Listing) -> tuple[bytes, str]:
    """Decompress stacked compression layers through the budget; the payload and its name."""
    limits = listing.budget.limits
    while (kind := _compression(data)) is not None:
        if len(listing.layers) >= limits.max_layers:
            raise _limit(f"the stream has more than {limits.max_layers} compression layers")
        name = _inner_name(kind, data, name)
        try:
            with _open_layer(kind, data) as stream:
                data = listing.budget.read(
                    stream, f"the {kind} stream", compressed=len(data), member=False
                )
        except _DAMAGED as exc:
            raise ParseFailure("corrupt", f"the {kind} stream is damaged or truncated") from exc
        listing.layers.append(kind)
    return data, name


# -- 7z (optional) ------------------------------------------------------------------------------


def _read_7z(data: bytes, listing: _Listing) -> None:
    try:
        import py7zr
        from py7zr.exceptions import (
            ArchiveError,
            PasswordRequired,
            UnsupportedCompressionMethodError,
        )
        from py7zr.io import Py7zIO, WriterFactory
    except ImportError as exc:
        raise ParseFailure("unsupported-type", _INSTALL_7Z) from exc

    budget = listing.budget

    class _Capped(Py7zIO):
        """An in-memory member that counts every write against the budget as it arrives."""

        def __init__(self) -> None:
            self.buffer = io.BytesIO()

        def write(self, s: bytes | bytearray) -> int:
            budget.take(bytes(s), "a member")  # raises as soon as a limit is crossed
            written = self.buffer.write(s)
            if self.buffer.tell() > budget.limits.max_member_bytes:
                raise _limit(
                    f"a member is larger than the member limit of "
                    f"{budget.limits.max_member_bytes} bytes"
                )
            return written

        def read(self, size: int | None = None) -> bytes:
            return self.buffer.read(size)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.buffer.seek(offset, whence)

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return self.buffer.getbuffer().nbytes

    class _Factory(WriterFactory):
        def __init__(self) -> None:
            self.products: list[tuple[str, _Capped]] = []

        def create(self, filename: str) -> Py7zIO:
            product = _Capped()
            self.products.append((filename, product))
            return product

    limits = budget.limits
    damaged: tuple[type[BaseException], ...] = (ArchiveError, *_DAMAGED)
    try:
        with py7zr.SevenZipFile(io.BytesIO(data), mode="r") as sz:
            if sz.needs_password():
                raise ParseFailure("encrypted", "the 7z archive is password-protected")
            infos = sz.list()
            if len(infos) > limits.max_members:
                raise _limit(
                    f"the 7z has {len(infos)} members, over the limit of {limits.max_members}"
                )
            declared = sum(i.uncompressed or 0 for i in infos)
            if declared > limits.max_total_bytes:
                raise _limit(
                    f"the 7z declares {declared} bytes, over the total limit of "
                    f"{limits.max_total_bytes}"
                )
            regular = [i.filename for i in infos if not (i.is_directory or i.is_symlink)]
            for info in infos:
                if info.is_symlink:
                    listing.skip(listing.entry(), info.filename, "symlink")
            factory = _Factory()
            # ``factory`` keeps every member in memory: py7zr writes nothing to disk with it.
            sz.extract(targets=regular, factory=factory)
    except ParseFailure:
        raise
    except PasswordRequired as exc:
        raise ParseFailure("encrypted", "the 7z archive is password-protected") from exc
    except UnsupportedCompressionMethodError as exc:
        raise ParseFailure(
            "unsupported-type", "the 7z archive uses a method this version cannot read"
        ) from exc
    except damaged as exc:
        raise ParseFailure("corrupt", "the 7z archive is damaged or truncated") from exc
    stored = {sanitize_member_name(n): n for n in regular}
    for filename, product in factory.products:
        index = listing.entry()
        listing.add(index, stored.get(filename, filename), product.buffer.getvalue(), None)


# -- the parser ---------------------------------------------------------------------------------


def _summary(listing: _Listing) -> str:
    files = len(listing.attachments)
    names = [a.filename or "" for a in listing.attachments[:_MAX_SUMMARY_NAMES]]
    head = f"Archive ({'+'.join([listing.fmt, *reversed(listing.layers)])}) with {files} "
    head += "member" if files == 1 else "members"
    if not names:
        return head + "."
    more = files - len(names)
    return head + ": " + ", ".join(names) + (f", and {more} more." if more else ".")


def _name_parts(path: str | None) -> list[str]:
    """A member path as its components: the marking rules read a mark at the start of each
    (``docs/(S) plan.txt`` names a SECRET file), so an element that lists names is marked
    with the join of the marks its names carry."""
    return [part for part in (path or "").replace("\\", "/").split("/") if part]


def _document(listing: _Listing, ctx: ParseContext, parser: str, version: str) -> ParsedDocument:
    listed = listing.attachments[:_MAX_SUMMARY_NAMES]
    elements = [
        ParsedElement(
            type=ElementType.NARRATIVE_TEXT,
            text=_summary(listing),
            locator={"part": "members"},
            fields={"members": [_name_parts(a.filename) for a in listed]},
        )
    ]
    for link in listing.skipped[:_MAX_LINK_ELEMENTS]:
        arrow = f" -> {link['target']}" if link["target"] is not None else ""
        elements.append(
            ParsedElement(
                type=ElementType.NARRATIVE_TEXT,
                text=f"{link['type']} {link['path']}{arrow} skipped",
                locator={"part": "member", "path": link["path"]},
                fields={"path": _name_parts(link["path"]), "target": _name_parts(link["target"])},
            )
        )
    return ParsedDocument(
        media_type=ctx.media_type,
        elements=tuple(elements),
        attachments=tuple(listing.attachments),
        metadata={
            "archive_format": listing.fmt,
            "compression": list(reversed(listing.layers)),
            "member_count": listing.count,
            "members": listing.members,
            "members_truncated": listing.count > len(listing.members),
            "skipped": listing.skipped[:_MAX_LISTED],
            "uncompressed_bytes": listing.budget.members_total,
        },
        extraction=Extraction(method="native", parser=parser, parser_version=version),
        warnings=tuple(f"unreadable-content: member {name}" for name in listing.unreadable),
    )


@register_parser(
    "application/zip",
    "application/x-tar",
    "application/gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
)
def parse_archive(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Members of an archive as attachments, with a summary element and a member list.

    Raises ``ParseFailure``: ``archive-limit`` past any limit (see the module docstring),
    ``encrypted`` if any member is password-protected, ``corrupt`` for damaged or truncated
    input, ``unsupported-type`` for 7z without the ``archive7z`` extra.
    """
    limits = ArchiveLimits.from_options(ctx.options)
    budget = _Budget(limits, len(data))
    if ctx.media_type == "application/x-7z-compressed":
        listing = _Listing("7z", budget)
        _read_7z(data, listing)
        return _document(listing, ctx, "garrison.archive", library_version("py7zr"))
    if ctx.media_type == "application/zip":
        listing = _Listing("zip", budget)
        _read_zip(data, listing)
        return _document(listing, ctx, "garrison.archive", _PY_VERSION)
    listing = _Listing("tar", budget)
    payload, name = _peel(data, ctx.filename or "member", listing)
    if _looks_like_tar(payload):
        _read_tar(payload, listing)
    else:
        # A compressed single file (``notes.txt.gz``): one member, named after the original.
        listing.fmt = "file"
        index = listing.entry()
        listing.add(
            index,
            name,
            listing.budget.take(payload, "the decompressed file", counted=True),
            len(data),
        )
    return _document(listing, ctx, "garrison.archive", _PY_VERSION)
