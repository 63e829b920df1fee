"""Longer fuzzing runs than the tests' fixed budget (``python -m bench fuzz``).

The same harness and contracts as ``tests/fuzz/`` (:mod:`bench._fuzz`), with a fixed seed so a
run can be repeated, and many more inputs: generated marking and access-expression texts, every
small corpus file mutated (one to three stacked mutations) through ingest's isolated worker, and
generated files. The report counts the inputs tried per target, the outcomes by class and every
finding (with the seed file and mutation that produced it); a finding is a bug to fix in the
parser, with a regression test holding the minimal input.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from bench._fuzz import (
    EXPRESSION_ALPHABET,
    MARKING_TOKENS,
    IsolatedParser,
    Tally,
    check_expression,
    check_marking,
    corpus_seeds,
    generated_inputs,
    mutate,
)
from garrison.core.isolation import Limits
from garrison.parse import detect_media_type

SEED = 20260101
LIMITS = Limits(timeout_s=60.0, memory_mb=2048)


_LEVELS = ("TOP SECRET", "SECRET", "CONFIDENTIAL", "UNCLASSIFIED", "CUI", "TS", "S", "C", "U")
_CATEGORIES = (
    "NOFORN", "NF", "REL TO USA, GBR", "REL TO USA, FVEY", "REL", "RELIDO", "ORCON", "OC",
    "FOUO", "PROPIN", "IMCON", "FISA", "SI", "SI-G", "TK", "HCS", "SI/TK", "RD", "FRD",
    "RD-SIGMA 14", "RD-CNWDI", "SAR-BP", "HVSACO", "EXDIS", "NODIS", "SBU", "LES", "ACCM",
    "DISPLAY ONLY GBR", "FGI DEU", "DOD UCNI", "LIMDIS", "WAIVED",
)  # fmt: skip


def _marking_text(rng: random.Random) -> str:
    if rng.random() < 0.6:  # shaped like a marking: level, then a few categories
        parts = [rng.choice(_LEVELS), *rng.sample(_CATEGORIES, rng.randint(0, 3))]
        text = "//".join(parts)
        if rng.random() < 0.3:  # and a near miss
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(MARKING_TOKENS) + text[i + rng.randint(0, 3) :]
        return f"({text})" if rng.random() < 0.4 else text
    parts = [rng.choice(MARKING_TOKENS) for _ in range(rng.randint(0, 14))]
    joiner = rng.choice(["", " ", "//", "/", ", "])
    text = joiner.join(parts)
    if rng.random() < 0.3:
        text = f"({text})"
    if rng.random() < 0.2:
        text = text.lower()
    return text


def _expression_text(rng: random.Random) -> str:
    if rng.random() < 0.05:
        depth = rng.randint(1, 5000)
        return "(" * depth + "a" + ")" * rng.choice([depth, depth - 1, depth + 1])
    return "".join(rng.choice(EXPRESSION_ALPHABET) for _ in range(rng.randint(0, 40)))


def _texts(tally: Tally, rng: random.Random, n: int) -> None:
    for _ in range(n):
        for target, make, check in (
            ("marking", _marking_text, check_marking),
            ("access-expression", _expression_text, check_expression),
        ):
            text = make(rng)
            try:
                label = check(text)
            except Exception as exc:  # a finding: keep going, report it
                tally.add(target, "finding", f"{type(exc).__name__}: {text!r}: {exc}")
            else:
                tally.add(target, label)


def _files(tally: Tally, rng: random.Random, n: int, *, ocr: bool) -> Counter[str]:
    seeds = corpus_seeds(max_bytes=256 * 1024, per_suffix=4)
    if not seeds:
        raise SystemExit("../shared/corpus is absent: the file fuzzing needs its real files")
    bodies = {path: path.read_bytes() for path in seeds}
    kinds = {path: detect_media_type(body, path.name) for path, body in bodies.items()}
    reasons: Counter[str] = Counter()
    with IsolatedParser(LIMITS, options={"ocr": ocr}) as worker:
        for index in range(n):
            if index % 5 == 4:  # one in five generated from scratch
                kind, filename, data = generated_inputs(rng, list(bodies.values())[:16])
                target, what = f"generated {kind}", kind
            else:
                path, other = rng.choice(seeds), rng.choice(seeds)
                data, names = bodies[path], []
                for _ in range(rng.randint(1, 3)):
                    name, data = mutate(data, bodies[other], rng)
                    names.append(name)
                filename, target = path.name, kinds[path]
                what = f"{path.name} after {'+'.join(names)}"
            outcome = worker.parse(data, filename)
            finding = outcome.finding
            tally.add(target, outcome.status, None if finding is None else f"{what}: {finding}")
            if outcome.reason is not None:
                reasons[outcome.reason] += 1
    return reasons


def run(*, quick: bool = False) -> dict[str, Any]:
    rng = random.Random(SEED)
    n_texts = 2_000 if quick else 50_000
    n_files = 100 if quick else 1_500
    tally = Tally()
    start = time.perf_counter()
    _texts(tally, rng, n_texts)
    text_s = time.perf_counter() - start
    start = time.perf_counter()
    reasons = _files(tally, rng, n_files, ocr=False)
    file_s = time.perf_counter() - start
    findings = sum(len(found) for found in tally.findings.values())
    results: dict[str, Any] = {
        "seed": SEED,
        "marking and expression texts tried": 2 * n_texts,
        "text seconds": round(text_s, 1),
        "files tried": n_files,
        "file seconds": round(file_s, 1),
        "findings": findings,
        "quarantine reasons": dict(sorted(reasons.items())),
    }
    for target in sorted(tally.tried):
        outcomes = dict(sorted(tally.outcomes[target].items()))
        results[f"{target}: tried"] = tally.tried[target]
        results[f"{target}: outcomes"] = outcomes
    notes = [f"{target}: {found}" for target, items in tally.findings.items() for found in items]
    return {
        "title": "Fuzzing: marking, access-expression and file parsers",
        "what": (
            "Generated marking and access-expression texts, and mutated corpus files (bit flips, "
            "truncations, splices, duplicated ranges, a corrupted zip member; one to three "
            "stacked) and generated files, each file through ingest's isolated worker with a "
            f"{LIMITS.timeout_s:.0f} s timeout. Every input must parse, be rejected naming a "
            "marking rule, or be quarantined with a reason code; a finding is anything else "
            "(an untranslated library error, a crash, a timeout). OCR is off: Tesseract is a "
            "separate program with its own limits, and the image decoders are still fuzzed."
        ),
        "results": results,
        "notes": notes or ["No findings."],
    }
