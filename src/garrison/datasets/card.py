"""Dataset cards: what a version holds, how it was made, and how ready it is for AI use.

:func:`build_card` computes every fact once into :attr:`Card.data` (JSON-safe, the source of
truth, here) and renders it twice (``_card_render``): Markdown (readable tables) and a
self-contained HTML page. Both carry the version's banner at the top and bottom in the
conventional colors. The facts cover exactly the records the card describes, and the card is
marked with the version's marking.

Only aggregates are shown -- counts, distributions, hashes -- never record texts, so a card
cannot leak a record's content beyond its statistics, and hostile texts never reach the HTML.

VAULTIS readiness (the DoD data goals: Visible, Accessible, Understandable, Linked,
Trustworthy, Interoperable, Secure) is scored from checks run on the data; each check is listed
with its outcome so a reader can see why a goal is short of 1.0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from garrison.datasets._card_render import render_html, render_markdown
from garrison.datasets._versions import DatasetVersion, SnapshotRecord
from garrison.datasets.banner_colors import banner_style
from garrison.security.markings import Marking, dominates

__all__ = ["CARD_FORMAT", "Card", "banner_colors", "build_card"]

CARD_FORMAT = 1

#: Export formats readers can open without Garrison.
OPEN_FORMATS = frozenset({"parquet", "jsonl", "hf", "chat"})
#: Formats whose files embed their own schema; the others rely on the JSON schema in the card.
SELF_DESCRIBING_FORMATS = frozenset({"parquet", "hf"})
#: Matches ``LanguageParams.min_chars``: shorter texts get no language.
LANGUAGE_MIN_CHARS = 20
HISTOGRAM_BINS = 10

#: JSON types of the fields a record may carry, for the record schema.
_FIELD_TYPES: dict[str, Any] = {
    "doc_id": {"type": "string"},
    "language": {"type": ["string", "null"]},
    "media_type": {"type": ["string", "null"]},
    "source": {"type": ["string", "null"]},
    "uri": {"type": ["string", "null"]},
    "title": {"type": ["string", "null"]},
    "section_path": {"type": ["array", "string", "null"]},
    "token_count": {"type": ["integer", "null"]},
    "element_ids": {"type": ["array", "null"], "items": {"type": "string"}},
    "type": {"type": ["string", "null"]},
    "quality_flags": {"type": ["array", "null"], "items": {"type": "string"}},
    "pii_types": {"type": ["array", "null"], "items": {"type": "string"}},
    "fields": {"type": ["object", "null"]},
}


@dataclass(frozen=True)
class Card:
    """A dataset card in three forms carrying the same facts; ``data`` is the source of truth."""

    markdown: str
    html: str
    data: dict[str, Any]


def banner_colors(marking: Marking) -> tuple[str, str]:
    """Background and text color of ``marking``'s banner (the table shared with the web UI)."""
    style = banner_style(marking)
    return style.background, style.color


def build_card(
    version: DatasetVersion,
    records: list[SnapshotRecord],
    *,
    export: dict[str, Any] | None = None,
) -> Card:
    """The card of ``version`` whose frozen records are ``records``.

    ``export``, when the card goes with an export, is ``{"format", "files", "signed",
    "key_id"}``; it feeds the Accessible, Interoperable, Trustworthy and Secure checks.
    """
    data = card_data(version, records, export=export)
    return Card(markdown=render_markdown(data), html=render_html(data), data=data)


# -- facts ----------------------------------------------------------------------------------------


def _counts(values: Iterable[Any]) -> dict[str, int]:
    """Counts by value, most common first then by name, so cards are deterministic."""
    counter = Counter("(none)" if v is None or v == "" else str(v) for v in values)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _share(part: int, whole: int) -> float:
    # An empty dataset has nothing wrong with it, but nothing right either: score it 0.
    return round(part / whole, 4) if whole else 0.0


def _stages(pipelines: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    by_stage: dict[str, list[dict[str, str]]] = {}
    for step in pipelines:
        stage = str(step.get("stage", ""))
        by_stage.setdefault(stage, []).append(
            {
                "version": str(step.get("version", "")),
                "params_hash": str(step.get("params_hash", "")),
            }
        )
    return by_stage


def _complete_step(step: Any) -> bool:
    return isinstance(step, dict) and all(
        step.get(key) not in (None, "") for key in ("stage", "version", "params_hash")
    )


def _histogram(lengths: list[int]) -> dict[str, Any]:
    """Equal-width bins over [min, max] of text lengths; the counts sum to the record count."""
    if not lengths:
        return {"unit": "characters", "bins": [], "min": 0, "max": 0, "mean": 0.0}
    low, high = min(lengths), max(lengths)
    width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
    nbins = math.ceil((high - low + 1) / width)
    counts = [0] * nbins
    for n in lengths:
        counts[(n - low) // width] += 1
    bins = [
        {"low": low + i * width, "high": low + (i + 1) * width - 1, "count": c}
        for i, c in enumerate(counts)
    ]
    return {
        "unit": "characters",
        "bins": bins,
        "min": low,
        "max": high,
        "mean": round(sum(lengths) / len(lengths), 1),
    }


def _purpose(selection: dict[str, Any], count: int, splits: dict[str, int]) -> str:
    kind = str(selection.get("kind") or "records")
    filters: list[str] = []
    if selection.get("source"):
        filters.append(f"from source {selection['source']}")
    if selection.get("media_type"):
        filters.append(f"of media type {selection['media_type']}")
    if selection.get("language"):
        filters.append(f"in language {selection['language']}")
    if selection.get("max_marking"):
        filters.append(f"marked at most {selection['max_marking']}")
    if selection.get("quality_ok"):
        filters.append("without quality flags")
    if selection.get("canonical_only"):
        filters.append("keeping only the canonical record of each duplicate cluster")
    if selection.get("date_from") or selection.get("date_to"):
        filters.append(
            f"ingested between {selection.get('date_from') or 'the start'}"
            f" and {selection.get('date_to') or 'now'}"
        )
    sentence = f"A dataset of {count} {kind}"
    if filters:
        sentence += " " + ", ".join(filters)
    split_text = ", ".join(f"{name} {n}" for name, n in splits.items())
    sentence += f", split for training and evaluation ({split_text})." if splits else "."
    return sentence


def _record_schema(selected: list[str]) -> dict[str, Any]:
    """The JSON schema of an exported record: id, text, marking, split and selected fields."""
    properties: dict[str, Any] = {
        "id": {"type": "string"},
        "text": {"type": "string"},
        "marking": {"type": "string", "description": "banner of the record's marking"},
        "marking_detail": {
            "type": ["object", "string"],
            "description": "the record's full structured marking (a JSON string in columnar "
            "formats); it keeps what the banner drops",
        },
        "split": {"type": "string"},
    }
    for name in selected:
        properties[name] = _FIELD_TYPES.get(name, {})
    return {
        "type": "object",
        "properties": properties,
        "required": ["id", "text", "marking", "marking_detail", "split"],
    }


def _check(name: str, passed: bool, detail: str, score: float | None = None) -> dict[str, Any]:
    """One VAULTIS check; ``score`` is a share for graded checks, else 1.0/0.0 from ``passed``."""
    value = (1.0 if passed else 0.0) if score is None else score
    return {"name": name, "passed": passed, "score": round(value, 4), "detail": detail}


def _goal(checks: list[dict[str, Any]]) -> dict[str, Any]:
    score = sum(c["score"] for c in checks) / len(checks)
    return {"score": round(score, 4), "checks": checks}


def card_data(
    version: DatasetVersion,
    records: list[SnapshotRecord],
    *,
    export: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every fact of the card as JSON-safe data (see :func:`build_card`)."""
    manifest = version.manifest
    selection: dict[str, Any] = dict(manifest.get("selection") or {})
    selected = [str(f) for f in selection.get("fields") or []]
    split_params: dict[str, Any] = dict(manifest.get("split") or {})
    pipelines: list[dict[str, Any]] = list(manifest.get("pipelines") or [])
    stages = _stages(pipelines)
    total = len(records)
    background, foreground = banner_colors(version.marking)

    by_split = _counts(r.split for r in records)
    sources = _counts(r.fields.get("source") for r in records)
    media_types = _counts(r.fields.get("media_type") for r in records)
    languages = _counts(r.fields.get("language") for r in records)
    purpose = _purpose(selection, total, by_split)

    pii_types = _counts(t for r in records for t in r.fields.get("pii_types") or [])
    flags = _counts(f for r in records for f in r.fields.get("quality_flags") or [])
    flagged = sum(1 for r in records if r.fields.get("quality_flags"))

    with_lineage = sum(1 for r in records if r.lineage)
    linked = sum(1 for r in records if r.lineage and all(_complete_step(s) for s in r.lineage))

    # A field counts as present when the record has it and it is not None (an empty list of
    # flags is a real answer: "no flags").
    missing = {name: sum(1 for r in records if r.fields.get(name) is None) for name in selected}
    complete = sum(1 for r in records if all(r.fields.get(n) is not None for n in selected))

    # A record is marked when its banner is the one its full marking writes; coverage is judged
    # on the full marking (the banner may drop attributes the record still requires).
    marked = sum(1 for r in records if r.marking.strip() and r.marking == r.detail.banner())
    covered = sum(1 for r in records if dominates(version.marking, r.detail))

    manifest_ids = {str(r.get("id")) for r in manifest.get("records") or []}
    record_ids = {r.id for r in records}

    export_format = str(export["format"]) if export else None
    signed = bool(export and export.get("signed"))
    schema = _record_schema(selected)

    limitations = [
        f"Language detection needs at least {LANGUAGE_MIN_CHARS} characters; shorter texts "
        "have no language.",
        "PII detection is pattern-based; person names are found only from a gazetteer, so "
        "other names and free-text personal details may remain.",
        "Near-duplicate detection uses MinHash similarity and clusters only records of the "
        "same marking.",
    ]
    if "language" in selected and missing.get("language"):
        limitations.append(f"{missing['language']} of {total} records have no language.")
    for name, n in missing.items():
        if n and name != "language":
            limitations.append(f"{n} of {total} records lack the field {name}.")
    if "pii" not in stages:
        limitations.append("No pii stage ran: texts may contain personal data.")
    if "dedup" not in stages:
        limitations.append("No dedup stage ran: the dataset may hold duplicates.")
    elif not selection.get("canonical_only"):
        limitations.append(
            "Duplicates are kept (canonical_only is off); each cluster stays in one split."
        )
    if "quality" not in stages:
        limitations.append("No quality stage ran: texts were not screened for quality.")
    elif flagged and not selection.get("quality_ok"):
        limitations.append(f"{flagged} of {total} records carry quality flags.")
    if with_lineage < total:
        limitations.append(f"{total - with_lineage} of {total} records have no lineage.")
    if len(_counts(r.marking for r in records)) > 1:
        limitations.append(
            "Records carry different markings; the dataset is marked with their join, "
            f"{version.marking.banner()}, so some records are marked below the dataset."
        )

    vaultis_goals = {
        "visible": _goal(
            [
                _check("catalog id", bool(version.id), f"version {version.id or '(none)'}"),
                _check("card exists", True, "this card"),
            ]
        ),
        "accessible": _goal(
            [
                _check(
                    "open format",
                    export_format is None or export_format in OPEN_FORMATS,
                    f"exported as {export_format}" if export_format else "not exported yet",
                ),
                _check("API", True, "versions are served by the CLI and the REST API"),
            ]
        ),
        "understandable": _goal(
            [
                _check(
                    "selected fields present",
                    complete == total and total > 0,
                    f"{complete} of {total} records have every selected field",
                    _share(complete, total),
                ),
                _check("purpose stated", bool(purpose), purpose),
                _check(
                    "sources listed",
                    any(k != "(none)" for k in sources),
                    f"{sum(1 for k in sources if k != '(none)')} distinct sources",
                ),
            ]
        ),
        "linked": _goal(
            [
                _check(
                    "complete lineage",
                    linked == total and total > 0,
                    f"{linked} of {total} records have lineage with stage, version and "
                    "params hash on every step",
                    _share(linked, total),
                )
            ]
        ),
        "trustworthy": _goal(
            [
                _check("quality stage ran", "quality" in stages, _ran("quality", stages)),
                _check("dedup stage ran", "dedup" in stages, _ran("dedup", stages)),
                _check("pii stage ran", "pii" in stages, _ran("pii", stages)),
                _check(
                    "manifest signed",
                    signed,
                    f"signed with key {export.get('key_id')}" if signed and export else "unsigned",
                ),
                _check(
                    "snapshot matches manifest",
                    manifest_ids == record_ids and total == version.record_count,
                    f"{len(record_ids & manifest_ids)} of {len(manifest_ids)} manifest records "
                    f"in the snapshot; {total} records, {version.record_count} recorded",
                ),
            ]
        ),
        "interoperable": _goal(
            [
                _check(
                    "format with schema",
                    export_format is None or export_format in OPEN_FORMATS,
                    _schema_detail(export_format),
                ),
            ]
        ),
        "secure": _goal(
            [
                _check(
                    "every record marked",
                    marked == total and total > 0,
                    f"{marked} of {total} records carry a valid marking",
                    _share(marked, total),
                ),
                _check(
                    "dataset marking covers records",
                    covered == total and total > 0,
                    f"{covered} of {total} records are dominated by {version.marking.banner()}",
                    _share(covered, total),
                ),
                _check("access enforced", True, "reads are filtered by the subject's clearance"),
                _check(
                    "export audited",
                    export is not None,
                    "the export is in the audit log" if export else "not exported yet",
                ),
            ]
        ),
    }
    overall = round(sum(g["score"] for g in vaultis_goals.values()) / len(vaultis_goals), 4)

    return {
        "card_format": CARD_FORMAT,
        "banner": {
            "text": version.marking.banner(),
            "background": background,
            "foreground": foreground,
        },
        "dataset": {
            "id": version.id,
            "name": version.name,
            "created_by": version.created_by,
            "created_at": version.created_at,
            "records": version.record_count,
        },
        "purpose": purpose,
        "selection": selection,
        "sources": {"sources": sources, "media_types": media_types},
        "counts": {
            "records": total,
            "by_marking": _counts(r.marking for r in records),
            "by_language": languages,
            "by_media_type": media_types,
            "by_split": by_split,
        },
        "splits": {
            "ratios": split_params.get("ratios") or {},
            "seed": split_params.get("seed"),
            "stratify": split_params.get("stratify"),
            "leakage_rule": "Records of one document, and of one duplicate cluster, are always "
            "in the same split; no document or cluster straddles splits.",
        },
        "pii": {
            "stage_ran": "pii" in stages,
            "runs": stages.get("pii", []),
            "types_seen": pii_types,
            "records_with_pii": sum(1 for r in records if r.fields.get("pii_types")),
            "types_field_selected": "pii_types" in selected,
        },
        "dedup": {
            "stage_ran": "dedup" in stages,
            "runs": stages.get("dedup", []),
            "canonical_only": bool(selection.get("canonical_only")),
        },
        "quality": {
            "stage_ran": "quality" in stages,
            "runs": stages.get("quality", []),
            "flags": flags,
            "records_flagged": flagged,
            "flags_field_selected": "quality_flags" in selected,
        },
        "lineage": {
            "pipelines": [
                {
                    "stage": str(p.get("stage", "")),
                    "version": str(p.get("version", "")),
                    "params_hash": str(p.get("params_hash", "")),
                }
                for p in pipelines
            ],
            "records_with_lineage": with_lineage,
            "records_with_complete_lineage": linked,
            "share_with_lineage": _share(with_lineage, total),
        },
        "fields": {"selected": selected, "missing": missing},
        "limitations": limitations,
        "text_length": _histogram([len(r.text) for r in records]),
        "schema": schema,
        "export": (
            {
                "format": export_format,
                "files": [str(f) for f in export.get("files") or []],
                "signed": signed,
                "key_id": export.get("key_id"),
            }
            if export
            else None
        ),
        "vaultis": {"goals": vaultis_goals, "overall": overall},
    }


def _ran(stage: str, stages: dict[str, list[dict[str, str]]]) -> str:
    runs = stages.get(stage)
    if not runs:
        return f"no {stage} stage in the lineage"
    return "; ".join(f"{stage} {r['version']} params {r['params_hash']}" for r in runs)


def _schema_detail(export_format: str | None) -> str:
    if export_format is None:
        return "not exported yet; the record schema is listed in this card"
    if export_format in SELF_DESCRIBING_FORMATS:
        return f"{export_format} files embed their schema"
    if export_format in OPEN_FORMATS:
        return f"{export_format} records follow the JSON schema listed in this card"
    return f"{export_format} has no known schema"
