"""The fuzzing harness shared by ``tests/fuzz/`` (fixed budget) and ``bench/fuzz.py`` (longer runs).

Three kinds of target, each with one contract:

marking parser (``parse_marking``, ``find_portion_mark``, ``is_banner_candidate``)
    Every text either parses to a :class:`~garrison.security.markings.Marking` whose banner
    spelling (and, for a portion, its portion spelling) parses back to the same marking and
    compiles to an access expression that parses, or raises
    :class:`~garrison.core.errors.MarkingError` naming a rule of
    :data:`~garrison.security.markings.MARKING_RULES`. Nothing else.
access-expression parser (``parse_expression``)
    Every text parses (and its canonical form is a fixed point that parses again) or raises
    :class:`~garrison.core.errors.AccessExpressionError` with an offset inside the text.
file parsers (every registered media type)
    Every byte string is parsed, or refused with a :class:`~garrison.parse.ParseFailure` whose
    reason is a quarantine code. Inputs go through :func:`~garrison.ingest._worker.parse_tree`
    in a reused worker of :func:`~garrison.core.isolation.run_isolated`, exactly as ingest runs
    them, so a hang or a crash inside a parser becomes a ``timeout`` or ``crashed`` quarantine.

What counts as a finding (a bug to fix in the parser): any other exception from the marking or
expression parsers; a file-parser failure whose detail says a library raised something the
parser did not translate (``the parser failed (KeyError)``), a crashed worker, or a timeout.

Inputs to the file parsers are mutated real files of ``../shared/corpus`` (bit flips,
truncations, splices of two files, duplicated ranges, a corrupted member of a zip container)
and generated ones (random bytes behind a known magic number, archives built on the fly).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import tarfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from garrison.core.errors import AccessExpressionError, MarkingError
from garrison.core.isolation import Limits, Outcome, run_isolated
from garrison.ingest._worker import ParseNode, ParseTask, node_from_outcome, parse_tree
from garrison.parse import warm_up
from garrison.security.access import normalize as normalize_expression
from garrison.security.access import parse_expression
from garrison.security.markings import (
    MARKING_RULES,
    access_expression,
    find_portion_mark,
    is_banner_candidate,
    parse_marking,
)

__all__ = [
    "CORPUS",
    "MUTATIONS",
    "QUARANTINE_REASONS",
    "FileOutcome",
    "IsolatedParser",
    "Tally",
    "check_expression",
    "check_marking",
    "corpus_seeds",
    "generated_inputs",
    "mutate",
]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

#: Every reason a parse may be quarantined with (CLI.md, "Quarantine reason codes").
QUARANTINE_REASONS = frozenset(
    {
        "encrypted",
        "corrupt",
        "unsupported-type",
        "too-large",
        "timeout",
        "memory-limit",
        "archive-limit",
        "hostile-content",
    }
)

#: Detail prefixes of failures that are the isolation layer's safety net, not a parser's answer.
_UNTRANSLATED = "the parser failed ("
_CRASHED = "the parser crashed ("

#: Vocabulary for generated marking text: real tokens, separators and near misses.
MARKING_TOKENS = (
    "TOP SECRET", "SECRET", "CONFIDENTIAL", "UNCLASSIFIED", "CUI", "TS", "S", "C", "U", "//",
    "/", "REL TO", "REL", "USA", ",", "GBR", "AUS", "FVEY", "NOFORN", "NF", "SI", "TK", "HCS",
    "SI-G", "-G", "ORCON", "OC", "ORCON-USGOV", "RELIDO", "DISPLAY ONLY", "FGI", "NATO",
    "COSMIC TOP SECRET", "NATO SECRET", "ATOMAL", "JOINT", "DEU", "RD", "FRD", "SIGMA", "14",
    "0", "99", "100", "CNWDI", "SAR-", "SAR-BP", "SAR-MULTIPLE PROGRAMS",
    "SPECIAL ACCESS REQUIRED-", "HVSACO", "WAIVED", "EXDIS", "NODIS", "SBU", "SBU NOFORN",
    "LES", "ACCM", "PROPIN", "PR", "FOUO", "IMCON", "FISA", "LIMDIS", "DOD UCNI", "COMINT",
    "KDK", "RSV", "(", ")", " ", "-", "\u00a0", "\u2010", "\t", "\n",
)  # fmt: skip

#: Vocabulary for generated access expressions.
EXPRESSION_ALPHABET = 'abAB09_-.:/"\\()&| \u00e9'


def check_marking(text: str) -> str:
    """Run the marking entry points on ``text``; return ``"parsed"`` or ``"rule:<id>"``.

    Raises AssertionError (a finding) when the contract in the module docstring is broken.
    """
    find_portion_mark(text)
    is_banner_candidate(text)
    try:
        marking = parse_marking(text)
    except MarkingError as exc:
        if exc.rule not in MARKING_RULES:
            raise AssertionError(f"unknown rule {exc.rule!r} for {text!r}") from exc
        return f"rule:{exc.rule}"
    banner = marking.banner()
    assert parse_marking(banner) == marking, f"{text!r}: banner {banner!r} reads differently"
    if text.strip().startswith("("):
        # Only a portion's portion spelling must read back: a banner may hold what no single
        # portion can (RELIDO beside FGI is valid on a roll-up, never on one part).
        portion = marking.portion()
        assert parse_marking(portion, banner_rel_to=marking) == marking, (
            f"{text!r}: portion {portion!r} reads differently"
        )
    parse_expression(access_expression(marking))
    return "parsed"


def check_expression(text: str) -> str:
    """Parse ``text`` as an access expression; return ``"parsed"`` or ``"rejected"``."""
    try:
        expr = parse_expression(text)
    except AccessExpressionError as exc:
        if not 0 <= exc.offset <= len(text):
            raise AssertionError(f"offset {exc.offset} outside {text!r}") from exc
        return "rejected"
    canonical = normalize_expression(expr)
    assert normalize_expression(canonical) == canonical, f"{text!r}: normal form moves"
    assert parse_expression(str(expr)).root == expr.root, f"{text!r}: rendering reads differently"
    return "parsed"


# --- inputs for the file parsers -------------------------------------------------------------


def corpus_seeds(max_bytes: int = 64 * 1024, per_suffix: int = 3) -> list[Path]:
    """Small real files of the corpus, at most ``per_suffix`` of each extension (sorted)."""
    if not CORPUS.is_dir():
        return []
    taken: Counter[str] = Counter()
    seeds = []
    for path in sorted(CORPUS.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file() or suffix == ".sqlite" or path.parent == CORPUS:
            continue  # the corpus's own README, and SQLite tables (ingested by SQL, not parsed)
        if path.name in {"truth.json", "files.json"}:
            continue
        if path.stat().st_size > max_bytes or taken[suffix] >= per_suffix:
            continue
        taken[suffix] += 1
        seeds.append(path)
    return seeds


def _flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    if not out:
        return bytes(out)
    how = rng.randrange(3)
    if how == 0:
        _flip(out, rng)
    elif how == 1:
        del out[rng.randrange(len(out)) :]
    else:
        i = rng.randrange(len(out))
        out[i:i] = out[i : i + rng.randint(1, 512)] * rng.randint(1, 4)
    return bytes(out)


def _zip_member(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """Rewrite a zip with one member corrupted (or swapped for another file's bytes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zin:
            members = [(info.filename, zin.read(info)) for info in zin.infolist()]
    except Exception:  # not a readable zip: fall back to corrupting the raw bytes
        return _corrupt(data, rng)
    if not members:
        return _corrupt(data, rng)
    victim = rng.randrange(len(members))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for index, (name, body) in enumerate(members):
            if index == victim:
                body = other if rng.random() < 0.2 else _corrupt(body, rng)
            zout.writestr(name, body)
    return out.getvalue()


def mutate(
    data: bytes, other: bytes, rng: random.Random, name: str | None = None
) -> tuple[str, bytes]:
    """One mutation of ``data`` (``other`` is a second file, for splices): (name, bytes).

    ``name`` picks the mutation (one of :data:`MUTATIONS`); by default ``rng`` does.
    """
    name = name or rng.choice(MUTATIONS)
    buf = bytearray(data)
    if name == "bit-flip" and buf:
        _flip(buf, rng)
    elif name == "truncate" and buf:
        del buf[rng.randrange(len(buf)) :]
    elif name == "splice":
        cut = rng.randrange(len(buf) + 1)
        buf[cut:] = other[rng.randrange(len(other) + 1) :]
    elif name == "duplicate" and buf:
        i = rng.randrange(len(buf))
        j = min(len(buf), i + rng.randint(1, 4096))
        buf[j:j] = buf[i:j] * rng.randint(1, 8)
    elif name == "zip-member":
        return name, _zip_member(data, rng, other)
    return name, bytes(buf)


MUTATIONS = ("bit-flip", "truncate", "splice", "duplicate", "zip-member")

_MAGICS = (
    ("pdf", b"%PDF-1.7\n"),
    ("zip", b"PK\x03\x04"),
    ("gzip", b"\x1f\x8b\x08\x00"),
    ("bzip2", b"BZh9"),
    ("xz", b"\xfd7zXZ\x00"),
    ("7z", b"7z\xbc\xaf\x27\x1c"),
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("jpeg", b"\xff\xd8\xff\xe0"),
    ("gif", b"GIF89a"),
    ("tiff", b"II*\x00"),
    ("bmp", b"BM"),
    ("ole", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
    ("html", b"<!DOCTYPE html><html><body>"),
    ("xml", b"<?xml version='1.0'?>"),
    ("json", b'{"a": ['),
    ("mail", b"From: a@b\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"),
    ("mbox", b"From a@b Mon Jan  1 00:00:00 2024\n"),
    ("parquet", b"PAR1"),
)


_TEXT_KINDS = {"html", "xml", "json", "mail", "mbox"}
_TEXT_NOISE = 'abc XYZ019<>/="{}[]:,&;#!-\n\r\t\u00e9\u4e2d(S//NF)SECRET'


def _archive(rng: random.Random, members: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    out = io.BytesIO()
    if rng.random() < 0.5:
        # Duplicate member names are part of the point: zipfile's warning about them is not.
        with warnings.catch_warnings(), zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
            warnings.simplefilter("ignore", UserWarning)
            for name, body in members:
                zout.writestr(name, body)
        return "zip", out.getvalue()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    codecs: list[Callable[[bytes], bytes]] = [bytes, gzip.compress, bz2.compress, lzma.compress]
    compress = rng.choice(codecs)
    return "tar", compress(out.getvalue())


def generated_inputs(rng: random.Random, seeds: list[bytes]) -> tuple[str, str, bytes]:
    """One generated input: (kind, filename, bytes) -- magic plus noise, or a built archive."""
    if seeds and rng.random() < 0.3:
        names = ["../../etc/passwd", "a/b/c.txt", "\u00e9t\u00e9.docx", "x" * 300, "/abs.pdf"]
        members = [(rng.choice(names), rng.choice(seeds)) for _ in range(rng.randint(1, 4))]
        kind, data = _archive(rng, members)
        if rng.random() < 0.5:
            data = _corrupt(data, rng)
        return f"archive-{kind}", f"generated.{kind}", data
    kind, magic = rng.choice(_MAGICS)
    size = rng.randint(0, 2048)
    if kind in _TEXT_KINDS:  # noise a text detector still takes for text, markup included
        noise = "".join(rng.choice(_TEXT_NOISE) for _ in range(size)).encode()
    else:
        noise = rng.randbytes(size)
    return f"magic-{kind}", f"generated.{kind}", magic + noise


# --- running file inputs the way ingest does -------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """How one input went: ``parsed``, or ``quarantined`` with a reason and detail."""

    status: str
    reason: str | None = None
    detail: str | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return self.status if self.reason is None else f"{self.status}:{self.reason}"

    @property
    def finding(self) -> str | None:
        """Why this outcome is a bug, or None when it honours the contract."""
        if self.status == "parsed":
            return None
        if self.reason not in QUARANTINE_REASONS:
            return f"unknown quarantine reason {self.reason!r}"
        detail = self.detail or ""
        if self.reason == "timeout" or detail.startswith((_UNTRANSLATED, _CRASHED)):
            return f"{self.reason}: {detail}"
        return None


def _outcome(node: ParseNode, seconds: float) -> FileOutcome:
    """The first failure in ``node``'s tree (attachments included), or parsed."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.failure is not None:
            reason, detail = current.failure
            return FileOutcome("quarantined", reason, detail, seconds)
        stack.extend(current.children)
    return FileOutcome("parsed", seconds=seconds)


class IsolatedParser:
    """One reused isolated worker, fed one file at a time through ingest's ``parse_tree``.

    Use as a context manager; :meth:`parse` returns the input's :class:`FileOutcome`.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        options: dict[str, object] | None = None,
        max_depth: int = 5,  # as ingest (IngestOptions.max_depth)
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._limits = limits
        self._options = tuple(sorted((options or {}).items()))
        self._max_depth = max_depth
        self._max_bytes = max_bytes
        self._queue: list[ParseTask] = []
        self._results: Iterator[tuple[ParseTask, Outcome[ParseNode]]] | None = None

    def _pending(self) -> Iterator[ParseTask]:
        while self._queue:
            yield self._queue.pop()

    def __enter__(self) -> IsolatedParser:
        warm_up()  # as ingest does: import the parser libraries once, before forking
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._results is not None:
            self._results.close()  # type: ignore[attr-defined]
            self._results = None

    def parse(self, data: bytes, filename: str | None) -> FileOutcome:
        task = ParseTask(
            f"fuzz://{filename}", filename, data, self._max_depth, self._max_bytes, self._options
        )
        self._queue.append(task)
        for _ in range(2):  # once more if the generator had ended (the queue was empty)
            if self._results is None:
                self._results = run_isolated(self._pending(), parse_tree, limits=self._limits)
            try:
                done, outcome = next(self._results)
            except StopIteration:
                self._results = None
                continue
            assert done is task
            return _outcome(node_from_outcome(task, outcome), outcome.seconds)
        raise AssertionError("the isolated worker returned no outcome")  # pragma: no cover


@dataclass
class Tally:
    """Counts per target: inputs tried, outcomes by class, and findings with an example."""

    tried: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)

    def add(self, target: str, label: str, finding: str | None = None) -> None:
        self.tried[target] += 1
        self.outcomes.setdefault(target, Counter())[label] += 1
        if finding is not None:
            self.findings.setdefault(target, []).append(finding)
