"""Fuzzing every file parser through ingest's isolated worker: parsed, or quarantined with a reason.

Inputs are mutated real files of ``../shared/corpus`` (every seed once, then hypothesis-chosen
mutations) and generated ones (a known magic number and noise, archives built on the fly). Each
goes through :func:`garrison.ingest._worker.parse_tree` in a reused worker of
:func:`garrison.core.isolation.run_isolated`, as ingest runs it; the outcome must honour the
contract of :mod:`bench._fuzz` (no untranslated library error, no crash, no timeout). The budget
is fixed and derandomized; ``python -m bench fuzz`` runs longer.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench._fuzz import (
    MUTATIONS,
    FileOutcome,
    IsolatedParser,
    corpus_seeds,
    generated_inputs,
    mutate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.isolation import Limits
from tests.conftest import require

#: Generous: a timeout here is a finding, and CI machines are shared.
LIMITS = Limits(timeout_s=60.0, memory_mb=2048)
#: OCR runs Tesseract, a separate program with its own limits; the image decoders are fuzzed.
OPTIONS: dict[str, object] = {"ocr": False}
FIXED = settings(max_examples=20, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def seeds() -> list[Path]:
    found = corpus_seeds(max_bytes=48 * 1024, per_suffix=2)
    require(bool(found), "../shared/corpus is absent (a user's fresh clone)")
    return found


@pytest.fixture(scope="module")
def worker() -> Iterator[IsolatedParser]:
    with IsolatedParser(LIMITS, options=OPTIONS) as parser:
        yield parser


def _check(outcome: FileOutcome, what: str) -> None:
    assert outcome.finding is None, f"{what}: {outcome.finding}"


def test_every_seed_mutated_once(seeds: list[Path], worker: IsolatedParser) -> None:
    # Every format and every mutation kind at least once, whatever hypothesis picks below.
    outcomes = set()
    for index, path in enumerate(seeds):
        rng = random.Random(index)
        data, other = path.read_bytes(), seeds[(index + 1) % len(seeds)].read_bytes()
        name, mutated = mutate(data, other, rng, MUTATIONS[index % len(MUTATIONS)])
        outcome = worker.parse(mutated, path.name)
        _check(outcome, f"{path.name} after {name}")
        outcomes.add(outcome.status)
    assert outcomes == {"parsed", "quarantined"}  # the mutations reach both sides


@FIXED
@given(st.data())
def test_mutated_corpus_files(
    seeds: list[Path], worker: IsolatedParser, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(seeds), label="seed")
    other = data.draw(st.sampled_from(seeds), label="other")
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="rng"))
    content = path.read_bytes()
    for _ in range(data.draw(st.integers(1, 3), label="rounds")):
        _, content = mutate(content, other.read_bytes(), rng)
    _check(worker.parse(content, path.name), f"{path.name} mutated")


@FIXED
@given(st.integers(0, 2**32 - 1))
def test_generated_inputs(seeds: list[Path], worker: IsolatedParser, seed: int) -> None:
    bodies = [path.read_bytes() for path in seeds[:8]]
    kind, filename, content = generated_inputs(random.Random(seed), bodies)
    _check(worker.parse(content, filename), kind)


def test_a_hang_in_a_parser_is_a_timeout_quarantine(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(data: bytes, filename: str | None = None, **options: object) -> None:
        time.sleep(60)

    monkeypatch.setattr("garrison.ingest._worker.parse_bytes", hang)
    with IsolatedParser(Limits(timeout_s=0.5, memory_mb=0)) as parser:
        outcome = parser.parse(b"hello", "hang.txt")
    assert (outcome.status, outcome.reason) == ("quarantined", "timeout")
    assert outcome.finding is not None  # the fuzzer reports it


def test_a_crash_and_an_untranslated_error_are_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(data: bytes, filename: str | None = None, **options: object) -> None:
        if data == b"exit":
            os._exit(3)  # as a C extension dying would, without a result
        raise KeyError("a parser bug")

    monkeypatch.setattr("garrison.ingest._worker.parse_bytes", crash)
    with IsolatedParser(Limits(timeout_s=30, memory_mb=0)) as parser:
        crashed = parser.parse(b"exit", "crash.txt")
        untranslated = parser.parse(b"other", "bug.txt")
    assert (crashed.status, crashed.reason) == ("quarantined", "corrupt")
    assert crashed.finding is not None and "crashed" in crashed.finding
    assert untranslated.reason == "corrupt"
    assert untranslated.finding is not None and "KeyError" in untranslated.finding
