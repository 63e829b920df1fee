"""PII detectors, actions and the ``pii`` stage, with a labeled-corpus quality floor.

The quality floor counts a prediction as correct only on an EXACT span match (same type, same
start and end) against ``data/pii_labeled.jsonl``; precision and recall must each reach 0.9 for
every type.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from garrison.core.errors import KeyFileError
from garrison.pipeline import STAGES, Item, PiiFinding
from garrison.pipeline.pii import (
    PII_TYPES,
    apply_actions,
    iban_valid,
    luhn_valid,
    pseudonym,
    scan,
)
from garrison.pipeline.stages.pii import PiiParams, PiiStage
from garrison.security.markings import parse_marking

DATA = Path(__file__).parent / "data" / "pii_labeled.jsonl"
KEY = b"k" * 32
FLOOR = 0.9


def found(text: str, type_: str) -> list[str]:
    """The texts of findings of ``type_`` (at the stage's default confidence floor)."""
    return [f.text for f in scan(text, types=[type_]) if f.confidence >= 0.5]


# --- detectors --------------------------------------------------------------------------------

POSITIVES = [
    ("email", "Mail j.doe@example.mil today.", "j.doe@example.mil"),
    ("email", "Contact hr@example.org.", "hr@example.org"),
    ("phone", "Call (703) 555-0142 now.", "(703) 555-0142"),
    ("phone", "Dial +1 202 555 0187.", "+1 202 555 0187"),
    ("phone", "UK office +44 20 7946 0958.", "+44 20 7946 0958"),
    ("ssn", "SSN 123-45-6789 on file.", "123-45-6789"),
    ("ssn", "social security number 123456789", "123456789"),
    ("credit_card", "Card 4111 1111 1111 1111.", "4111 1111 1111 1111"),
    ("credit_card", "Amex 378282246310005 used.", "378282246310005"),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "To DE89370400440532013000 now", "DE89370400440532013000"),
    ("ip_address", "Host 192.0.2.10 down.", "192.0.2.10"),
    ("ip_address", "Host 2001:db8::1 down.", "2001:db8::1"),
    ("mac_address", "MAC 00:1A:2B:3C:4D:5E.", "00:1A:2B:3C:4D:5E"),
    ("mac_address", "MAC 001a.2b3c.4d5e.", "001a.2b3c.4d5e"),
    ("url_credentials", "Use https://a:b@example.com/x.", "https://a:b@example.com"),
    ("date_of_birth", "DOB: 05/17/1980.", "05/17/1980"),
    ("date_of_birth", "She was born 12 March 1985 in Ohio.", "12 March 1985"),
    ("edipi", "EDIPI 1234567890.", "1234567890"),
    ("passport", "Passport No. X12345678.", "X12345678"),
    ("mgrs", "Grid 18S UJ 23480 06470.", "18S UJ 23480 06470"),
    ("mgrs", "At 4QFJ12345678 now.", "4QFJ12345678"),
    ("lat_lon", "At 38.8895, -77.0353.", "38.8895, -77.0353"),
    ("lat_lon", "At 38°53'22\"N 77°02'07\"W now.", "38°53'22\"N 77°02'07\"W"),
]


@pytest.mark.parametrize(("type_", "text", "expected"), POSITIVES)
def test_detector_finds(type_: str, text: str, expected: str) -> None:
    assert found(text, type_) == [expected]


NEGATIVES = [
    ("email", "Log in as admin@localhost."),
    ("email", "Clone ssh://git@code.example.mil/repo."),
    ("phone", "Order NSN 1005-01-100-0000."),
    ("phone", "Meeting on 2024-03-15, version 10.2.3."),
    ("ssn", "Bad 000-12-3456, 666-12-3456, 900-12-3456."),
    ("ssn", "Bad 123-00-4567 and 123-45-0000."),
    ("ssn", "Invoice 123456789 is due."),
    ("credit_card", "Order 4111-1111-1111-1112 (Luhn fails)."),
    ("credit_card", "Placeholder 0000 0000 0000 0000 (no issuer)."),
    ("iban", "GB82 WEST 1234 5698 7654 33 fails mod-97."),
    ("iban", "XX12 3456 7890 1234 has no country."),
    ("ip_address", "Version 2.10.3 and 300.1.2.3 and OID 1.3.6.1.4.1.311."),
    ("ip_address", "At 12:30:45 read John 3:16."),
    ("mac_address", "Five groups 00:1A:2B:3C:4D only."),
    ("mac_address", "Seven 00:1A:2B:3C:4D:5E:6F groups."),
    ("url_credentials", "See https://user@example.com and scheme://user:password@host."),
    ("date_of_birth", "The meeting on 1980-05-17 was moved."),
    ("edipi", "Invoice 1234567890 paid."),
    ("edipi", "EDIPI 12345678901 has eleven digits."),
    ("passport", "Part number X12345678 shipped."),
    ("mgrs", "Zone 61S UJ 23480 06470; band 18I UJ 2348 0647; odd 18S UJ 23480 0647."),
    ("lat_lon", "Lat 95.0000, -77.0353 and lon 38.8895, -190.5000; prices 12.50, 13.75."),
]


@pytest.mark.parametrize(("type_", "text"), NEGATIVES)
def test_detector_rejects(type_: str, text: str) -> None:
    assert found(text, type_) == []


def test_luhn_and_mod97() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("123-45-6789", True),
        ("000-45-6789", False),
        ("666-45-6789", False),
        ("950-45-6789", False),
        ("123-00-6789", False),
        ("123-45-0000", False),
    ],
)
def test_ssn_validity_rules(ssn: str, valid: bool) -> None:
    assert bool(found(f"SSN {ssn}", "ssn")) is valid


@pytest.mark.parametrize(
    ("grid", "valid"),
    [
        ("18SUJ2348006470", True),
        ("60X AB 12 34", True),
        ("18S UJ 2348 064", False),  # uneven easting/northing
        ("18SUJ234806470", False),  # odd digit count
        ("18SUJ", False),  # no digits
        ("18SUJ234800647001", False),  # more than 10 digits
        ("18I UJ 1234 5678", False),  # band I
        ("18Y UJ 1234 5678", False),  # band outside C-X
    ],
)
def test_mgrs_format(grid: str, valid: bool) -> None:
    assert bool(found(f"Grid {grid} now", "mgrs")) is valid


@pytest.mark.parametrize(
    ("pair", "valid"),
    [
        ("90.0000, 180.0000", True),
        ("-90.0000, -180.0000", True),
        ("90.0001, 10.0000", False),
        ("10.0000, 180.0001", False),
        ("91°00'00\"N 77°02'07\"W", False),
        ("38°61'00\"N 77°02'07\"W", False),
    ],
)
def test_lat_lon_ranges(pair: str, valid: bool) -> None:
    assert bool(found(f"Location {pair} now", "lat_lon")) is valid


def test_dob_needs_context_before_the_date() -> None:
    text = "Born 1 May 1980; enlisted 2 June 1999."
    assert found(text, "date_of_birth") == ["1 May 1980"]


def test_person_from_gazetteer_only_case_sensitive_whole_word() -> None:
    names = ["John Smith", "Ann"]
    text = "John Smith met Ann, not ANN nor Annex; john smith is lowercase."
    people = [f.text for f in scan(text, types=["person"], gazetteer=names)]
    assert people == ["John Smith", "Ann"]
    assert scan(text, types=["person"]) == []


def test_scan_sorted_non_overlapping_with_fields() -> None:
    text = "Mail a@example.com; conn https://u:p@db.example.com; SSN 123-45-6789."
    findings = scan(text)
    assert [f.type for f in findings] == ["email", "url_credentials", "ssn"]
    for f in findings:
        assert text[f.start : f.end] == f.text
        assert 0 < f.confidence <= 1
        assert f.detector.startswith("regex:")
    assert findings[2].detector == "regex:ssn+validity"


def test_scan_unknown_type() -> None:
    with pytest.raises(ValueError, match="zipcode"):
        scan("x", types=["zipcode"])


def test_context_raises_confidence() -> None:
    (plain,) = scan("Value 123-45-6789.", types=["ssn"])
    (ctx,) = scan("SSN 123-45-6789.", types=["ssn"])
    assert ctx.confidence > plain.confidence


# --- actions ----------------------------------------------------------------------------------

TEXT = "Email John.Doe@example.mil or call (703) 555-0142."


def test_mask() -> None:
    out, drop = apply_actions(TEXT, scan(TEXT), {}, KEY)
    assert (out, drop) == ("Email [EMAIL] or call [PHONE].", False)


def test_keep_and_mixed_actions() -> None:
    out, _ = apply_actions(TEXT, scan(TEXT), {"email": "keep", "phone": "mask"}, KEY)
    assert out == "Email John.Doe@example.mil or call [PHONE]."


def test_pseudonymize_consistent_normalized_and_keyed() -> None:
    a, _ = apply_actions(TEXT, scan(TEXT), {"email": "pseudonymize"}, KEY, default="keep")
    token = pseudonym("email", "john.doe@example.mil", KEY)
    assert a == f"Email {token} or call (703) 555-0142."
    assert token.startswith("[EMAIL:") and len(token) == len("[EMAIL:12345678]")
    # Same value (after normalization) and key: same token; other key or type: different.
    assert pseudonym("email", "JOHN.DOE@EXAMPLE.MIL", KEY) == token
    assert pseudonym("phone", "+1 703-555-0142", KEY) == pseudonym("phone", "(703) 555-0142", KEY)
    assert pseudonym("email", "john.doe@example.mil", b"other") != token
    assert pseudonym("edipi", "1234567890", KEY) != pseudonym("phone", "1234567890", KEY)


def test_drop_returns_text_unchanged() -> None:
    assert apply_actions(TEXT, scan(TEXT), {"phone": "drop"}, KEY) == (TEXT, True)


def test_right_to_left_keeps_spans_valid() -> None:
    text = "a@example.com b@example.com c@example.com"
    out, _ = apply_actions(text, scan(text), {}, KEY)
    assert out == "[EMAIL] [EMAIL] [EMAIL]"


def test_unknown_action() -> None:
    with pytest.raises(ValueError, match="shred"):
        apply_actions(TEXT, [], {"email": "shred"}, KEY)


# --- stage ------------------------------------------------------------------------------------


def make_item(text: str, id_: str = "e1") -> Item:
    return Item(
        id=id_,
        doc_id="d1",
        kind="element",
        text=text,
        original_text=text,
        marking=parse_marking("UNCLASSIFIED"),
        element_ids=(id_,),
    )


def test_stage_registered() -> None:
    assert STAGES["pii"] is PiiStage
    assert PiiStage.name == "pii" and PiiStage.version == "1"


@pytest.mark.parametrize(
    "params", [{"types": ["email", "zipcode"]}, {"actions": {"zipcode": "mask"}}]
)
def test_params_name_the_unknown_type(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="zipcode"):
        PiiParams.model_validate(params)


def test_params_reject_unknown_action_and_keys() -> None:
    with pytest.raises(ValidationError):
        PiiParams.model_validate({"actions": {"email": "shred"}})
    with pytest.raises(ValidationError):
        PiiParams.model_validate({"type": ["email"]})


def test_default_types_exclude_person_unless_gazetteer() -> None:
    assert "person" not in PiiParams().effective_types()
    assert "person" in PiiParams(gazetteer=["Ann"]).effective_types()
    assert PiiParams(types=["ssn"]).effective_types() == ("ssn",)


def test_open_resources() -> None:
    stage = PiiStage(PiiParams())
    assert stage.open_resources({"pseudonym_key": KEY}) == KEY
    with pytest.raises(KeyFileError, match="pseudonymization key"):
        stage.open_resources({})


def test_stage_process_masks_records_lineage_and_drops() -> None:
    stage = PiiStage(PiiParams(actions={"ssn": "drop"}, gazetteer=["Jane Roe"]))
    items = [
        make_item(TEXT, "e1"),
        make_item("Jane Roe SSN 123-45-6789", "e2"),
        make_item("nothing here", "e3"),
    ]
    already = make_item("a@example.com", "e4")
    already.dropped = "quality"
    out = stage.process([*items, already], stage.open_resources({"pseudonym_key": KEY}))
    assert out[0].text == "Email [EMAIL] or call [PHONE]."
    assert [f.type for f in out[0].pii] == ["email", "phone"]
    assert all(isinstance(f, PiiFinding) for f in out[0].pii)
    assert out[0].original_text == TEXT
    assert out[1].dropped == "pii:ssn"
    assert out[1].text == "Jane Roe SSN 123-45-6789"
    assert [f.type for f in out[1].pii] == ["person", "ssn"]
    assert out[2].text == "nothing here" and out[2].pii == [] and out[2].dropped is None
    for item in out[:3]:
        assert item.lineage == [stage.lineage((item.id,))]
    assert out[3].lineage == [] and out[3].pii == [] and out[3].text == "a@example.com"


def test_stage_min_confidence_filters() -> None:
    stage = PiiStage(PiiParams(min_confidence=0.99))
    (item,) = stage.process([make_item(TEXT)], KEY)
    assert item.pii == [] and item.text == TEXT


# --- quality floor ----------------------------------------------------------------------------


def test_quality_floor_per_type() -> None:
    """Precision and recall >= 0.9 per type on the labeled corpus (exact span match)."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]
    assert len(rows) >= 300
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    errors: list[str] = []
    for row in rows:
        text = row["text"]
        gold = set()
        for ent in row["entities"]:
            start = text.index(ent["text"])
            gold.add((ent["type"], start, start + len(ent["text"])))
        pred = {(f.type, f.start, f.end) for f in scan(text) if f.confidence >= 0.5}
        for p in pred:
            (tp if p in gold else fp)[p[0]] += 1
            if p not in gold:
                errors.append(f"FP {p[0]}: {text[p[1] : p[2]]!r} in {text!r}")
        for g in gold - pred:
            fn[g[0]] += 1
            errors.append(f"FN {g[0]}: {text[g[1] : g[2]]!r} in {text!r}")

    lines = [f"{'type':16} {'tp':>4} {'fp':>4} {'fn':>4} {'prec':>6} {'recall':>6}"]
    failing = []
    for type_ in PII_TYPES:
        if type_ == "person":
            continue  # gazetteer-driven; covered by unit tests, not the corpus
        positives = tp[type_] + fn[type_]
        negatives = sum(1 for r in rows if not any(e["type"] == type_ for e in r["entities"]))
        assert positives >= 20, f"corpus has only {positives} {type_} positives"
        assert negatives >= 20
        precision = tp[type_] / (tp[type_] + fp[type_]) if tp[type_] + fp[type_] else 1.0
        recall = tp[type_] / positives
        lines.append(
            f"{type_:16} {tp[type_]:4} {fp[type_]:4} {fn[type_]:4} {precision:6.3f} {recall:6.3f}"
        )
        if precision < FLOOR or recall < FLOOR:
            failing.append(type_)
    report = "\n".join([*lines, "", *errors])
    print(report)
    assert not failing, f"below the {FLOOR} floor: {failing}\n{report}"
