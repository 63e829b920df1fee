"""The marked sample corpus (shared/corpus/marked/truth.json) and portion-mark recognition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    find_portion_mark,
    is_portion_candidate,
    join,
    leading_enumerator,
    parse_marking,
    system_high_dominates,
)


def _truth(shared_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "corpus/marked/truth.json").read_text())
    return data


def test_truth_portions_parse_to_their_markings(shared_dir: Path) -> None:
    checked = 0
    for doc in _truth(shared_dir)["docs"]:
        for para in doc.get("paragraphs") or []:
            if para.get("portion") is None or para.get("marking") is None:
                continue
            assert parse_marking(para["portion"]).banner() == para["marking"], doc["file"]
            assert parse_marking(f"({para['portion']})").banner() == para["marking"]
            checked += 1
    assert checked >= 15


def test_truth_documents(shared_dir: Path) -> None:
    truth = _truth(shared_dir)
    system_high = parse_marking(truth["system_high"])
    assert system_high.banner() == "SECRET//NOFORN"
    assert system_high_dominates(system_high, parse_marking(truth["default_marking"]))
    for doc in truth["docs"]:
        portions = [p["portion"] for p in doc.get("paragraphs") or [] if p.get("portion")]
        if doc["status"] == "spilled":
            rolled = join(*(parse_marking(p) for p in portions))
            assert not system_high_dominates(system_high, rolled), doc["file"]
        elif doc["status"] == "quarantined":
            rules = []
            for portion in portions:
                try:
                    parse_marking(portion)
                except MarkingError as exc:
                    rules.append(exc.rule)
            assert rules, doc["file"]
        elif portions and doc["marking"] is not None and not doc["findings"]:
            # Documents without findings: the banner is exactly the join of the portions.
            rolled = join(*(parse_marking(p) for p in portions))
            assert rolled.banner() == doc["marking"], doc["file"]


def test_bad_mark_names_the_rule() -> None:
    with pytest.raises(MarkingError) as info:
        parse_marking("S//REL TO USA")
    assert info.value.rule == "rel-to-needs-foreign"


# -- recognizing portion marks in text ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("(U) Fuel consumption rose.", "(U)"),
        ("(S//NF) Bulk fuel point", "(S//NF)"),
        ("  (TS//SI-G//OC/NF) text", "(TS//SI-G//OC/NF)"),
        ("(CUI) Personnel action", "(CUI)"),
        ("(CUI//SP-PRVCY) x", "(CUI//SP-PRVCY)"),
        ("(C) The team travels.", "(C)"),
        ("(s//nf) lower case with //", "(s//nf)"),
        ("(Secret//NoForn) mixed case", "(Secret//NoForn)"),
        ("(SECRET) word", "(SECRET)"),
        ("(TOP SECRET//NF) words", "(TOP SECRET//NF)"),
        ("(S/NF) single slash", "(S/NF)"),
        ("(TS/SI) single slash", "(TS/SI)"),
        ("(FOUO) legacy", "(FOUO)"),
        ("(//NS) NATO", "(//NS)"),
        ("(S // NF) spaced", "(S // NF)"),
        ("(S) after (R)? no previous given", "(S)"),
        ("(C) 2024 is not copyright without a year? it is", None),
        ("(C) Copyright 2024 Example Corp", None),
        ("(c) 2024", None),
        ("(a) first item", None),
        ("(c) third item", None),
        ("(s) item", None),
        ("(u) item", None),
        ("(c/o the embassy)", None),
        ("(s/he) will", None),
        ("(see below)", None),
        ("(USA) country", None),
        ("(SECRETARY) title", None),
        ("(Secret) mixed case without //", None),
        ("Plain paragraph (S) later", None),
        ("", None),
    ],
)
def test_find_portion_mark(text: str, mark: str | None) -> None:
    found = find_portion_mark(text)
    assert (found[0] if found else None) == mark
    assert is_portion_candidate(text) == (mark is not None)
    if found:
        assert text[: found[1]].rstrip().endswith(found[0])


def test_enumerated_run_needs_the_previous_enumerator() -> None:
    items = ["(A) first", "(B) second", "(C) third", "(D) fourth"]
    previous = None
    for item in items:
        assert find_portion_mark(item, previous_enumerator=previous) is None
        previous = leading_enumerator(item)
    assert find_portion_mark("(C) x", previous_enumerator="A") == ("(C)", 3)
    assert find_portion_mark("(S) x", previous_enumerator="R") is None
    assert find_portion_mark("(U) x", previous_enumerator="T") is None
    assert find_portion_mark("(S//NF) x", previous_enumerator="R") == ("(S//NF)", 7)
    assert leading_enumerator("(iv) roman") == "iv"
    assert leading_enumerator("no enumerator") is None


def test_unclosed_strong_candidate_fails_when_parsed() -> None:
    found = find_portion_mark("(S//NF the paren never closes\nnext line")
    assert found is not None
    with pytest.raises(MarkingError):
        parse_marking(found[0])
    assert find_portion_mark("(S the paren never closes") is None


@pytest.mark.parametrize("mark", ["(S/NF)", "(TS/SI)", "(C/O)"])
def test_single_slash_candidates_are_invalid(mark: str) -> None:
    found = find_portion_mark(mark + " text")
    assert found is not None
    with pytest.raises(MarkingError):
        parse_marking(found[0])
