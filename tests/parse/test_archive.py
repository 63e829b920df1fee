"""Archive parser: members in memory only, links never followed, every limit enforced."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import lzma
import os
import struct
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.parse import ParseFailure, detect_media_type, parse_bytes
from garrison.parse.archive import ArchiveLimits, _Budget, sanitize_member_name
from tests.conftest import require

MIB = 1024 * 1024
TREE = {"a.txt": b"(U) alpha\n", "docs/b.txt": b"(U) bravo\n", "docs/deep/c.md": b"# charlie\n"}


def make_zip(members: dict[str, bytes], *, dirs: tuple[str, ...] = ("docs/",)) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(d, b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(
    members: dict[str, bytes], mode: str = "w", extra: tuple[tarfile.TarInfo, ...] = ()
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        d = tarfile.TarInfo("docs")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def zeros_zip(size: int, name: str = "zeros.bin") -> bytes:
    """A zip of ``size`` zero bytes, deflated in a streamed write (bounded memory)."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(name, "w", force_zip64=True) as fh,
    ):
        chunk = bytes(MIB)
        for _ in range(size // MIB):
            fh.write(chunk)
    return buf.getvalue()


def members(data: bytes, filename: str, **options: object) -> dict[str, bytes]:
    doc = parse_bytes(data, filename, **options)
    return {str(a.filename): a.data for a in doc.attachments}


def reason(data: bytes, filename: str, **options: object) -> str:
    with pytest.raises(ParseFailure) as info:
        parse_bytes(data, filename, **options)
    return info.value.reason


@pytest.mark.parametrize(
    ("filename", "build"),
    [
        ("t.zip", lambda: make_zip(TREE)),
        ("t.tar", lambda: make_tar(TREE)),
        ("t.tar.gz", lambda: make_tar(TREE, "w:gz")),
        ("t.tar.bz2", lambda: make_tar(TREE, "w:bz2")),
        ("t.tar.xz", lambda: make_tar(TREE, "w:xz")),
    ],
)
def test_round_trip_with_nested_folders(filename: str, build: object) -> None:
    data = build()  # type: ignore[operator]
    doc = parse_bytes(data, filename)
    assert {a.filename: a.data for a in doc.attachments} == TREE
    assert [a.locator["path"] for a in doc.attachments] == list(TREE)
    assert all(a.locator["part"] == "member" for a in doc.attachments)
    assert doc.elements[0].text.endswith("with 3 members: a.txt, docs/b.txt, docs/deep/c.md.")
    assert {m["path"] for m in doc.metadata["members"] if m["type"] == "file"} == set(TREE)


def test_detection_of_archive_types() -> None:
    assert detect_media_type(make_tar(TREE)) == "application/x-tar"
    assert detect_media_type(make_tar(TREE, "w:gz")) == "application/gzip"
    assert detect_media_type(make_tar(TREE, "w:bz2")) == "application/x-bzip2"
    assert detect_media_type(bz2.compress(b"")) == "application/x-bzip2"
    assert detect_media_type(make_tar(TREE, "w:xz")) == "application/x-xz"
    assert detect_media_type(b"BZh is how this line of text starts.\n") == "text/plain"
    # A tar whose first member is named like a PDF is still a tar.
    assert detect_media_type(make_tar({"%PDF-1.7.txt": b"x"})) == "application/x-tar"


def test_7z_round_trip() -> None:
    require(importlib.util.find_spec("py7zr") is not None, "py7zr (the archive7z extra) is absent")
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as sz:
        for name, data in TREE.items():
            sz.writestr(data, name)
    assert detect_media_type(buf.getvalue()) == "application/x-7z-compressed"
    assert members(buf.getvalue(), "t.7z") == TREE


def test_7z_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py7zr", None)  # importing it now raises ImportError
    with pytest.raises(ParseFailure) as info:
        parse_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64), "t.7z")
    assert info.value.reason == "unsupported-type"
    assert "pip install 'garrison[archive7z]'" in info.value.detail


def test_zip_bomb_is_refused() -> None:
    bomb = zeros_zip(50 * MIB)
    assert reason(bomb, "bomb.zip", max_total_bytes=10 * MIB) == "archive-limit"
    # Under every declared-size limit, the ratio check still stops it mid-stream.
    small = zeros_zip(5 * MIB)
    with pytest.raises(ParseFailure, match="compression ratio"):
        parse_bytes(small, "small.zip", max_total_bytes=10 * MIB)


def _lie_about_size(data: bytes, declared: int) -> bytes:
    """Rewrite the central directory's uncompressed size to ``declared`` (zipfile reads that)."""
    out = bytearray(data)
    at = out.rfind(b"PK\x01\x02")
    struct.pack_into("<I", out, at + 24, declared)
    return bytes(out)


def test_a_lying_zip_header_never_inflates_past_the_budget() -> None:
    # Declared 1 KiB, 50 MiB inside: zipfile stops at the declared size and the CRC then fails,
    # so the liar gets nothing at all -- never 50 MiB of memory; the member is named unreadable.
    liar = _lie_about_size(zeros_zip(50 * MIB), 1024)
    assert zipfile.ZipFile(io.BytesIO(liar)).infolist()[0].file_size == 1024
    doc = parse_bytes(liar, "liar.zip", max_total_bytes=10 * MIB)
    assert doc.attachments == ()
    assert doc.warnings == ("unreadable-content: member zeros.bin",)


class Endless(io.RawIOBase):
    """A stream that never ends, the way a lying header's data would look to a trusting reader."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = MIB if size < 0 else size
        self.served += size
        return b"x" * size


def test_the_streaming_budget_stops_whatever_the_headers_say() -> None:
    limits = ArchiveLimits(max_total_bytes=4 * MIB, max_member_bytes=3 * MIB)
    stream = Endless()
    with pytest.raises(ParseFailure, match="member limit of 3145728") as info:
        _Budget(limits, 100 * MIB).read(stream, "member 0", compressed=None, member=True)
    assert info.value.reason == "archive-limit" and stream.served <= 4 * MIB
    stream = Endless()
    with pytest.raises(ParseFailure, match="total limit of 4194304"):
        _Budget(limits, 100 * MIB).read(stream, "a layer", compressed=None, member=False)
    assert stream.served <= 5 * MIB


def test_gzip_with_a_lying_size_trailer_is_capped() -> None:
    data = bytearray(gzip.compress(bytes(20 * MIB)))
    data[-4:] = (100).to_bytes(4, "little")  # ISIZE claims 100 bytes
    assert reason(bytes(data), "z.gz", max_total_bytes=2 * MIB) == "archive-limit"


def test_too_many_members() -> None:
    many = {f"f{i}.txt": b"x" for i in range(20)}
    assert reason(make_zip(many, dirs=()), "m.zip", max_members=10) == "archive-limit"
    assert reason(make_tar(many), "m.tar", max_members=10) == "archive-limit"
    assert len(members(make_zip(many, dirs=()), "m.zip", max_members=20)) == 20


@pytest.fixture
def untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in an empty cwd; fail if the cwd or the temp dir gain anything."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = set(os.listdir(tempfile.gettempdir()))
    yield cwd
    assert list(cwd.iterdir()) == []
    assert set(os.listdir(tempfile.gettempdir())) - before == set()


def test_path_traversal_names_are_only_names(untouched: Path) -> None:
    evil = {"../../etc/passwd": b"one", "/abs/path": b"two", "a/../../b": b"three"}
    for filename, data in (("e.zip", make_zip(evil, dirs=())), ("e.tar", make_tar(evil))):
        doc = parse_bytes(data, filename)
        got = {a.filename: (a.data, a.locator["path"]) for a in doc.attachments}
        assert got == {
            "etc/passwd": (b"one", "../../etc/passwd"),
            "abs/path": (b"two", "/abs/path"),
            "b": (b"three", "a/../../b"),
        }


def test_sanitize_member_name() -> None:
    assert sanitize_member_name("..\\..\\win\\x.txt") == "win/x.txt"
    assert sanitize_member_name("a\nb") == "a?b"
    assert sanitize_member_name("../..", 7) == "member-7"


def test_tar_links_and_devices_are_listed_never_followed(untouched: Path) -> None:
    sym = tarfile.TarInfo("docs/passwd-link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("docs/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    fifo = tarfile.TarInfo("docs/pipe")
    fifo.type = tarfile.FIFOTYPE
    doc = parse_bytes(make_tar(TREE, extra=(sym, hard, fifo)), "l.tar")
    assert {a.filename for a in doc.attachments} == set(TREE)
    texts = [e.text for e in doc.elements]
    assert "symlink docs/passwd-link -> /etc/passwd skipped" in texts
    assert "hardlink docs/hard -> /etc/passwd skipped" in texts
    assert "fifo docs/pipe skipped" in texts
    assert {s["type"] for s in doc.metadata["skipped"]} == {"symlink", "hardlink", "fifo"}
    passwd = Path("/etc/passwd")
    if passwd.is_file():
        secret = passwd.read_bytes()[:64]
        assert not any(secret in a.data for a in doc.attachments if a.data)


def test_corrupt_and_truncated_archives() -> None:
    z = make_zip(TREE)
    assert reason(z[: len(z) // 2], "t.zip") == "corrupt"
    tgz = make_tar({"big.bin": os.urandom(200_000)}, "w:gz")
    assert reason(tgz[: len(tgz) // 2], "t.tar.gz") == "corrupt"
    tar = make_tar({"big.bin": os.urandom(200_000)})
    assert reason(tar[:100_000], "t.tar") == "corrupt"
    assert reason(b"\x1f\x8b\x08\x00" + os.urandom(200), "g.gz") == "corrupt"
    assert reason(lzma.compress(b"x" * 1000)[:-20], "x.xz") == "corrupt"


def test_encrypted_zip_member_quarantines_the_archive() -> None:
    data = bytearray(make_zip(TREE, dirs=()))
    for magic, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(magic)
        data[at + offset] |= 0x1  # the "encrypted" general-purpose flag, on the first member
    with pytest.raises(ParseFailure, match="1 of 3") as info:
        parse_bytes(bytes(data), "enc.zip")
    assert info.value.reason == "encrypted"


def test_gzip_of_a_plain_file_is_one_member() -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="notes.txt", fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(b"(U) plain notes\n")
    assert members(buf.getvalue(), "whatever.gz") == {"notes.txt": b"(U) plain notes\n"}
    assert members(gzip.compress(b"hello"), "report.txt.gz") == {"report.txt": b"hello"}
    assert members(bz2.compress(b"hello"), "report.txt.bz2") == {"report.txt": b"hello"}
    assert members(lzma.compress(b"hello"), "report.txt.xz") == {"report.txt": b"hello"}
    doc = parse_bytes(gzip.compress(b"hello"), None)
    assert [a.filename for a in doc.attachments] == ["member"]


def test_stacked_compression_layers_share_one_budget() -> None:
    twice = gzip.compress(make_tar(TREE, "w:gz"))
    doc = parse_bytes(twice, "t.tar.gz.gz")
    assert {a.filename: a.data for a in doc.attachments} == TREE
    assert doc.metadata["compression"] == ["gzip", "gzip"]
    deep = b"x"
    for _ in range(6):
        deep = gzip.compress(deep)
    assert reason(deep, "deep.gz") == "archive-limit"
