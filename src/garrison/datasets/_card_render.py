"""Rendering a dataset card's facts (:func:`garrison.datasets.card.card_data`) as Markdown and
as a self-contained HTML page (inline CSS and SVG charts, no external resources, every piece of
data escaped). Both carry the version's banner at the top and bottom in the conventional colors.
"""

from __future__ import annotations

from typing import Any

from garrison.datasets.card_style import CARD_CSS as _CSS
from garrison.datasets.card_style import html_banner, md_banner
from garrison.datasets.card_style import html_table as _html_table
from garrison.datasets.card_style import html_text as _e
from garrison.datasets.card_style import md_table as _md_table
from garrison.datasets.card_style import md_text as _md

__all__ = ["render_html", "render_markdown"]


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


# -- markdown -------------------------------------------------------------------------------------


def _md_counts(title: str, key: str, counts: dict[str, int], total: int) -> list[str]:
    rows: list[list[Any]] = [[k, v, f"{_share(v, total):.1%}"] for k, v in counts.items()]
    return [
        f"### {title}",
        "",
        *_md_table([key, "Records", "Share"], rows or [["(none)", 0, "0.0%"]]),
    ]


def render_markdown(data: dict[str, Any]) -> str:
    """The card as Markdown; the banner is the first and last line."""
    banner = md_banner(data["banner"])
    ds, counts, total = data["dataset"], data["counts"], data["counts"]["records"]
    out = [banner, "", f"# Dataset card: {_md(ds['name'])}", ""]
    out += _md_table(
        ["Property", "Value"],
        [
            ["Version", ds["id"]],
            ["Created by", ds["created_by"]],
            ["Created at", ds["created_at"]],
            ["Records", total],
        ],
    )
    out += ["## Purpose", "", _md(data["purpose"]), ""]
    out += ["## Sources", ""]
    out += _md_counts("By source", "Source", data["sources"]["sources"], total)
    out += _md_counts("By media type", "Media type", data["sources"]["media_types"], total)
    out += ["## Counts", ""]
    out += _md_counts("By marking", "Marking", counts["by_marking"], total)
    out += _md_counts("By language", "Language", counts["by_language"], total)
    out += _md_counts("By split", "Split", counts["by_split"], total)
    sp = data["splits"]
    out += ["## Splits", ""]
    out += _md_table(
        ["Parameter", "Value"],
        [
            ["Ratios", ", ".join(f"{k} {v}" for k, v in sp["ratios"].items())],
            ["Seed", sp["seed"]],
            ["Stratify", sp["stratify"] or "(none)"],
        ],
    )
    out += [_md(sp["leakage_rule"]), ""]
    out += ["## Processing", ""]
    pii, dedup, quality = data["pii"], data["dedup"], data["quality"]
    out += _md_table(
        ["Step", "Applied", "Detail"],
        [
            ["PII", "yes" if pii["stage_ran"] else "no", _runs(pii["runs"])],
            [
                "Dedup",
                "yes" if dedup["stage_ran"] else "no",
                _runs(dedup["runs"]) + ("; canonical only" if dedup["canonical_only"] else ""),
            ],
            ["Quality", "yes" if quality["stage_ran"] else "no", _runs(quality["runs"])],
        ],
    )
    out += _md_counts("PII types seen", "PII type", pii["types_seen"], total)
    out += _md_counts("Quality flags", "Flag", quality["flags"], total)
    lin = data["lineage"]
    out += ["## Lineage", ""]
    out += _md_table(
        ["Stage", "Version", "Params hash"],
        [[p["stage"], p["version"], p["params_hash"]] for p in lin["pipelines"]]
        or [["(none)", "", ""]],
    )
    out += [
        f"{lin['records_with_lineage']} of {total} records "
        f"({lin['share_with_lineage']:.1%}) have lineage.",
        "",
    ]
    hist = data["text_length"]
    out += ["## Text length (characters)", ""]
    out += _md_table(
        ["Length", "Records"], [[f"{b['low']}-{b['high']}", b["count"]] for b in hist["bins"]]
    )
    out += [f"Min {hist['min']}, max {hist['max']}, mean {hist['mean']}.", ""]
    out += ["## Known limitations", ""]
    out += [f"- {_md(item)}" for item in data["limitations"]] + [""]
    vaultis = data["vaultis"]
    out += ["## VAULTIS readiness", "", f"Overall readiness: **{vaultis['overall']:.2f}**", ""]
    out += _md_table(
        ["Goal", "Score"],
        [[g.capitalize(), f"{v['score']:.2f}"] for g, v in vaultis["goals"].items()],
    )
    out += _md_table(
        ["Goal", "Check", "Passed", "Detail"],
        [
            [goal.capitalize(), c["name"], "yes" if c["passed"] else "no", c["detail"]]
            for goal, v in vaultis["goals"].items()
            for c in v["checks"]
        ],
    )
    out += ["## Record schema", ""]
    out += _md_table(["Field", "JSON type"], _schema_rows(data["schema"]))
    if data["export"]:
        ex = data["export"]
        out += ["## Export", ""]
        out += _md_table(
            ["Property", "Value"],
            [
                ["Format", ex["format"]],
                ["Files", ", ".join(ex["files"]) or "(none)"],
                ["Signed", "yes" if ex["signed"] else "no"],
                ["Key", ex["key_id"] or "(none)"],
            ],
        )
    out += [banner, ""]
    return "\n".join(out)


def _schema_rows(schema: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for name, spec in schema["properties"].items():
        kind = spec.get("type", "any")
        rows.append([name, " or ".join(kind) if isinstance(kind, list) else kind])
    return rows


def _runs(runs: list[dict[str, str]]) -> str:
    return "; ".join(f"version {r['version']}, params {r['params_hash']}" for r in runs) or "-"


# -- html -----------------------------------------------------------------------------------------


def _bar_chart(title: str, counts: dict[str, int]) -> str:
    """A horizontal bar chart as inline SVG; labels and values are text, so readable without
    color."""
    row, label_w, bar_w = 22, 200, 320
    items = list(counts.items()) or [("(none)", 0)]
    peak = max(v for _, v in items) or 1
    height = row * len(items) + 8
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" width="{label_w + bar_w + 80}" '
        f'height="{height}"><title>{_e(title)}</title>'
    ]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        width = round(bar_w * value / peak)
        shown = label if len(label) <= 28 else label[:27] + "\u2026"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="13" '
            f'fill="#1a1a1a">{_e(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{width}" height="{row - 6}" fill="#0033A0">'
            f"<title>{_e(label)}: {value}</title></rect>"
            f'<text x="{label_w + width + 6}" y="{y + 15}" font-size="13" '
            f'fill="#1a1a1a">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram_svg(hist: dict[str, Any]) -> str:
    """Vertical bars, one per length bin, as inline SVG."""
    bins = hist["bins"]
    col, plot_h, top = 48, 160, 20
    peak = max((b["count"] for b in bins), default=0) or 1
    width = max(col * len(bins), col) + 20
    label = "Histogram of text lengths in characters"
    parts = [
        f'<svg role="img" aria-label="{label}" width="{width}" height="{plot_h + top + 40}"'
        f"><title>{label}</title>"
    ]
    for i, b in enumerate(bins):
        x = 10 + i * col
        h = round(plot_h * b["count"] / peak)
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x}" y="{y}" width="{col - 6}" height="{h}" fill="#0033A0">'
            f"<title>{b['low']}-{b['high']}: {b['count']}</title></rect>"
            f'<text x="{x + (col - 6) / 2}" y="{y - 4}" text-anchor="middle" font-size="11" '
            f'fill="#1a1a1a">{b["count"]}</text>'
            f'<text x="{x + (col - 6) / 2}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'font-size="10" fill="#1a1a1a">{b["low"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict[str, Any]) -> str:
    """The card as one self-contained HTML page: inline CSS and SVG, nothing fetched."""
    banner = html_banner(data["banner"])
    ds, counts, total = data["dataset"], data["counts"], data["counts"]["records"]
    sp, pii, dedup, quality = data["splits"], data["pii"], data["dedup"], data["quality"]
    lin, hist, vaultis = data["lineage"], data["text_length"], data["vaultis"]

    def counts_section(title: str, values: dict[str, int]) -> str:
        rows = [[k, v, f"{_share(v, total):.1%}"] for k, v in values.items()]
        return (
            f"<h3>{_e(title)}</h3>"
            + _bar_chart(title, values)
            + _html_table(title, ["Value", "Records", "Share"], rows)
        )

    checks = "".join(
        f"<tr><td>{_e(goal.capitalize())}</td><td>{_e(c['name'])}</td>"
        f'<td class="{"pass" if c["passed"] else "fail"}">{"yes" if c["passed"] else "no"}</td>'
        f"<td>{_e(c['detail'])}</td></tr>"
        for goal, v in vaultis["goals"].items()
        for c in v["checks"]
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Dataset card: {_e(ds['name'])}</title><style>{_CSS}</style></head><body>",
        banner,
        "<main>",
        f"<h1>Dataset card: {_e(ds['name'])}</h1>",
        _html_table(
            "Version",
            ["Property", "Value"],
            [
                ["Version", ds["id"]],
                ["Created by", ds["created_by"]],
                ["Created at", ds["created_at"]],
                ["Records", total],
            ],
        ),
        f"<h2>Purpose</h2><p>{_e(data['purpose'])}</p>",
        "<h2>Sources</h2>",
        counts_section("Records by source", data["sources"]["sources"]),
        counts_section("Records by media type", counts["by_media_type"]),
        "<h2>Counts</h2>",
        counts_section("Records by marking", counts["by_marking"]),
        counts_section("Records by language", counts["by_language"]),
        counts_section("Records by split", counts["by_split"]),
        "<h2>Splits</h2>",
        _html_table(
            "Split parameters",
            ["Parameter", "Value"],
            [
                ["Ratios", ", ".join(f"{k} {v}" for k, v in sp["ratios"].items())],
                ["Seed", sp["seed"]],
                ["Stratify", sp["stratify"] or "(none)"],
            ],
        ),
        f"<p>{_e(sp['leakage_rule'])}</p>",
        "<h2>Processing</h2>",
        _html_table(
            "Processing applied",
            ["Step", "Applied", "Detail"],
            [
                ["PII", "yes" if pii["stage_ran"] else "no", _runs(pii["runs"])],
                [
                    "Dedup",
                    "yes" if dedup["stage_ran"] else "no",
                    _runs(dedup["runs"]) + ("; canonical only" if dedup["canonical_only"] else ""),
                ],
                ["Quality", "yes" if quality["stage_ran"] else "no", _runs(quality["runs"])],
            ],
        ),
        _html_table(
            "PII types seen", ["Type", "Records"], [[k, v] for k, v in pii["types_seen"].items()]
        ),
        _html_table(
            "Quality flags", ["Flag", "Records"], [[k, v] for k, v in quality["flags"].items()]
        ),
        "<h2>Lineage</h2>",
        _html_table(
            "Pipeline stages",
            ["Stage", "Version", "Params hash"],
            [[p["stage"], p["version"], p["params_hash"]] for p in lin["pipelines"]],
        ),
        f"<p>{lin['records_with_lineage']} of {total} records "
        f"({lin['share_with_lineage']:.1%}) have lineage.</p>",
        "<h2>Text length</h2>",
        _histogram_svg(hist),
        _html_table(
            "Text length in characters",
            ["Length", "Records"],
            [[f"{x['low']}-{x['high']}", x["count"]] for x in hist["bins"]],
        ),
        f"<p>Min {hist['min']}, max {hist['max']}, mean {hist['mean']}.</p>",
        "<h2>Known limitations</h2><ul>",
        "".join(f"<li>{_e(item)}</li>" for item in data["limitations"]),
        "</ul>",
        "<h2>VAULTIS readiness</h2>",
        f"<p>Overall readiness: <strong>{vaultis['overall']:.2f}</strong></p>",
        _html_table(
            "Goal scores",
            ["Goal", "Score"],
            [[g.capitalize(), f"{v['score']:.2f}"] for g, v in vaultis["goals"].items()],
        ),
        '<table><caption>Readiness checks</caption><thead><tr><th scope="col">Goal</th>'
        '<th scope="col">Check</th><th scope="col">Passed</th><th scope="col">Detail</th>'
        f"</tr></thead><tbody>{checks}</tbody></table>",
        "<h2>Record schema</h2>",
        _html_table("Record schema (JSON)", ["Field", "JSON type"], _schema_rows(data["schema"])),
    ]
    if data["export"]:
        ex = data["export"]
        parts += [
            "<h2>Export</h2>",
            _html_table(
                "Export",
                ["Property", "Value"],
                [
                    ["Format", ex["format"]],
                    ["Files", ", ".join(ex["files"]) or "(none)"],
                    ["Signed", "yes" if ex["signed"] else "no"],
                    ["Key", ex["key_id"] or "(none)"],
                ],
            ),
        ]
    parts += ["</main>", banner, "</body></html>", ""]
    return "\n".join(parts)
