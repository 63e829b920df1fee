"""Dataset cards: banners, counts, histogram, VAULTIS scores and safe, self-contained HTML."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from garrison.datasets._versions import DatasetVersion, SnapshotRecord
from garrison.datasets.card import Card, banner_colors, build_card
from garrison.security.markings import parse_marking

FIELDS = ["doc_id", "language", "media_type", "source", "quality_flags", "pii_types"]
PIPELINES = [
    {"stage": "dedup", "version": "1", "params_hash": "d1"},
    {"stage": "language", "version": "1", "params_hash": "l1"},
    {"stage": "pii", "version": "2", "params_hash": "p2"},
    {"stage": "quality", "version": "1", "params_hash": "q1"},
]
HOSTILE = "<script>alert(1)</script>"


def _lineage() -> list[dict[str, Any]]:
    return [dict(step, parents=[]) for step in PIPELINES]


def _records() -> list[SnapshotRecord]:
    out = []
    for i in range(10):
        out.append(
            SnapshotRecord(
                id=f"r{i:02d}",
                kind="chunks",
                doc_id=f"d{i // 2}",
                text=(HOSTILE if i == 0 else "x" * (10 * i + 5)),
                marking="SECRET" if i < 3 else "UNCLASSIFIED",
                split="train" if i < 8 else "test",
                fields={
                    "doc_id": f"d{i // 2}",
                    "language": "en" if i < 7 else "fr",
                    "media_type": "text/plain" if i % 2 else "application/pdf",
                    "source": "reports" if i < 6 else "cables",
                    "quality_flags": ["short"] if i < 2 else [],
                    "pii_types": ["email"] if i == 4 else [],
                },
                lineage=_lineage(),
                detail=parse_marking("SECRET" if i < 3 else "UNCLASSIFIED"),
            )
        )
    return out


def _version(records: list[SnapshotRecord], banner: str = "SECRET") -> DatasetVersion:
    manifest = {
        "format": 1,
        "name": "demo",
        "marking": banner,
        "selection": {"kind": "chunks", "source": None, "canonical_only": True, "fields": FIELDS},
        "split": {"ratios": {"test": 0.2, "train": 0.8}, "seed": 7, "stratify": None},
        "pipelines": PIPELINES,
        "records": [
            {"id": r.id, "sha256": "0" * 64, "split": r.split, "marking": r.marking}
            for r in records
        ],
    }
    return DatasetVersion(
        id="v" * 64,
        name="demo",
        marking=parse_marking(banner),
        manifest=manifest,
        record_count=len(records),
        snapshot="blob",
        created_by="steward",
        created_at="2024-05-01T00:00:00+00:00",
    )


SIGNED = {"format": "parquet", "files": ["data/train.parquet"], "signed": True, "key_id": "k1"}


@pytest.fixture
def card() -> Card:
    records = _records()
    return build_card(_version(records), records, export=SIGNED)


def test_banner_top_and_bottom_in_every_form(card: Card) -> None:
    md_lines = card.markdown.strip().splitlines()
    assert md_lines[0] == md_lines[-1] == "**SECRET**"
    body = card.html.split("<body>", 1)[1]
    first, last = body.index('class="banner"'), body.rindex('class="banner"')
    assert first < body.index("<main>") < body.index("</main>") < last
    assert card.data["banner"]["text"] == "SECRET"
    assert card.data["banner"]["background"] == "#C8102E"


@pytest.mark.parametrize(
    ("banner", "colors"),
    [
        ("UNCLASSIFIED", ("#007A33", "#FFFFFF")),
        ("CONFIDENTIAL", ("#0033A0", "#FFFFFF")),
        ("SECRET", ("#C8102E", "#FFFFFF")),
        ("TOP SECRET", ("#FF8C00", "#000000")),
        ("TOP SECRET//SI", ("#FCE83A", "#000000")),
        ("CUI", ("#502B85", "#FFFFFF")),
    ],
)
def test_banner_colors(banner: str, colors: tuple[str, str]) -> None:
    assert banner_colors(parse_marking(banner)) == colors
    records = _records()
    card = build_card(_version(records, banner), records)
    style = f"background:{colors[0]};color:{colors[1]}"
    assert card.html.count(style) == 2
    text = parse_marking(banner).banner()
    assert card.markdown.startswith(f"**{text}**")
    assert card.markdown.rstrip().endswith(f"**{text}**")


def test_counts(card: Card) -> None:
    counts = card.data["counts"]
    assert counts["records"] == 10
    assert counts["by_marking"] == {"UNCLASSIFIED": 7, "SECRET": 3}
    assert counts["by_language"] == {"en": 7, "fr": 3}
    assert counts["by_media_type"] == {"application/pdf": 5, "text/plain": 5}
    assert counts["by_split"] == {"train": 8, "test": 2}
    assert card.data["sources"]["sources"] == {"reports": 6, "cables": 4}
    assert card.data["quality"]["flags"] == {"short": 2}
    assert card.data["pii"]["types_seen"] == {"email": 1}
    assert card.data["pii"]["runs"] == [{"version": "2", "params_hash": "p2"}]
    assert card.data["dedup"]["canonical_only"] is True
    assert card.data["splits"]["seed"] == 7
    assert "straddle" in card.data["splits"]["leakage_rule"]
    assert card.data["purpose"].startswith("A dataset of 10 chunks")


def test_histogram_bins_sum_to_record_count(card: Card) -> None:
    bins = card.data["text_length"]["bins"]
    assert 1 <= len(bins) <= 10
    assert sum(b["count"] for b in bins) == 10
    assert bins[0]["low"] == card.data["text_length"]["min"]
    assert bins[-1]["high"] >= card.data["text_length"]["max"]


def test_histogram_of_equal_lengths_and_of_nothing() -> None:
    records = [dataclasses.replace(r, text="abc") for r in _records()]
    bins = build_card(_version(records), records).data["text_length"]["bins"]
    assert bins == [{"low": 3, "high": 3, "count": 10}]
    empty = build_card(_version([]), [])
    assert empty.data["text_length"]["bins"] == []
    assert empty.data["vaultis"]["goals"]["linked"]["score"] == 0.0


def test_vaultis_goals_are_computed(card: Card) -> None:
    vaultis = card.data["vaultis"]
    goals = vaultis["goals"]
    assert list(goals) == [
        "visible",
        "accessible",
        "understandable",
        "linked",
        "trustworthy",
        "interoperable",
        "secure",
    ]
    for goal in goals.values():
        assert 0.0 <= goal["score"] <= 1.0
        assert goal["checks"]
        for check in goal["checks"]:
            assert set(check) == {"name", "passed", "score", "detail"}
            assert isinstance(check["passed"], bool)
    assert goals["linked"]["score"] == 1.0
    assert goals["trustworthy"]["score"] == 1.0
    assert vaultis["overall"] == pytest.approx(sum(g["score"] for g in goals.values()) / 7)


def test_linked_drops_when_one_record_lacks_lineage() -> None:
    records = _records()
    records[3] = dataclasses.replace(records[3], lineage=[])
    card = build_card(_version(records), records, export=SIGNED)
    linked = card.data["vaultis"]["goals"]["linked"]
    assert linked["score"] < 1.0
    assert linked["checks"][0]["passed"] is False
    assert any("no lineage" in item for item in card.data["limitations"])


def test_linked_drops_when_a_step_lacks_its_params_hash() -> None:
    records = _records()
    records[5] = dataclasses.replace(records[5], lineage=[{"stage": "pii", "version": "2"}])
    card = build_card(_version(records), records)
    assert card.data["vaultis"]["goals"]["linked"]["score"] < 1.0


def test_trustworthy_lower_without_signed_export() -> None:
    records = _records()
    signed = build_card(_version(records), records, export=SIGNED)
    unsigned = build_card(_version(records), records, export=dict(SIGNED, signed=False))
    bare = build_card(_version(records), records)
    score = signed.data["vaultis"]["goals"]["trustworthy"]["score"]
    assert unsigned.data["vaultis"]["goals"]["trustworthy"]["score"] < score
    assert bare.data["vaultis"]["goals"]["trustworthy"]["score"] < score


def test_trustworthy_lower_without_pii_stage() -> None:
    records = _records()
    version = _version(records)
    manifest = dict(version.manifest, pipelines=[p for p in PIPELINES if p["stage"] != "pii"])
    card = build_card(dataclasses.replace(version, manifest=manifest), records, export=SIGNED)
    assert card.data["vaultis"]["goals"]["trustworthy"]["score"] < 1.0
    assert card.data["pii"]["stage_ran"] is False
    assert any("No pii stage" in item for item in card.data["limitations"])


def test_understandable_and_secure_follow_the_data() -> None:
    records = _records()
    records[0] = dataclasses.replace(records[0], fields={**records[0].fields, "language": None})
    records[1] = dataclasses.replace(records[1], marking="")
    card = build_card(_version(records), records, export=SIGNED)
    goals = card.data["vaultis"]["goals"]
    assert goals["understandable"]["score"] < 1.0
    assert goals["secure"]["score"] < 1.0
    assert any("have no language" in item for item in card.data["limitations"])


def test_interoperable_lists_schema_for_jsonl() -> None:
    records = _records()
    export = {"format": "jsonl", "files": ["train.jsonl"], "signed": True, "key_id": "k1"}
    card = build_card(_version(records), records, export=export)
    check = card.data["vaultis"]["goals"]["interoperable"]["checks"][0]
    assert check["passed"] is True
    assert "JSON schema" in check["detail"]
    assert set(FIELDS) <= set(card.data["schema"]["properties"])


def test_html_is_self_contained_and_escaped(card: Card) -> None:
    page = card.html
    for forbidden in ("http://", "https://", "<script", "<link", "<img", "@import", "url("):
        assert forbidden not in page
    # Texts are never rendered: only aggregates.
    assert "alert(1)" not in page
    assert "alert(1)" not in card.markdown
    assert page.count("<svg") >= 5
    assert page.count('aria-label="') >= 5
    assert "<caption>" in page


def test_html_escapes_hostile_values() -> None:
    records = [
        dataclasses.replace(r, fields={**r.fields, "source": HOSTILE, "language": '"><b>x'})
        for r in _records()
    ]
    version = dataclasses.replace(_version(records), name=HOSTILE)
    card = build_card(version, records)
    assert "<script" not in card.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card.html
    assert '"><b>x' not in card.html
    # Markdown may be rendered to HTML later: raw tags must not survive there either.
    assert "<script" not in card.markdown
    assert "&lt;script&gt;" in card.markdown


def test_data_is_json_serializable(card: Card) -> None:
    assert json.loads(json.dumps(card.data)) == card.data


def test_card_is_frozen(card: Card) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.markdown = ""  # type: ignore[misc]
