"""Reports as Markdown and JSON, and the facts every format shares (what was run, counts,
metric rows), so the HTML page, the Markdown and the JSON show the same figures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from garrison.datasets.card_style import banner_facts as _banner_facts
from garrison.datasets.card_style import md_banner, md_table, md_text
from garrison.evaluate._report_data import (
    DOWNGRADE_RULE,
    REPORT_FORMAT,
    CompareReport,
    MetricResult,
    RunReport,
    distribution,
    estimate_json,
)

if TYPE_CHECKING:
    from garrison.evaluate.stats import Comparison, Estimate, Verdict

__all__ = [
    "comparison_rows",
    "count_rows",
    "fmt",
    "interval",
    "metric_rows",
    "render_markdown",
    "report_json",
    "run_rows",
    "slice_rows",
    "stats_only",
    "verdict_for",
]

#: Column headings of the comparison table (Markdown and HTML).
COMPARISON_HEADERS = [
    "Metric",
    "A",
    "B",
    "Difference (B − A)",
    "n",
    "Test",
    "p",
    "Adjusted p",
    "Verdict",
]


def fmt(value: Any) -> str:
    """A fact as text: numbers with three decimals, mappings and lists as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False)
    return str(value)


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def interval(estimate: Estimate) -> str:
    """``95% [low, high]``."""
    confidence = float(getattr(estimate, "confidence", 0.95))
    return f"{confidence:.0%} [{estimate.low:.3f}, {estimate.high:.3f}]"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    banner = getattr(value, "banner", None)
    if callable(banner):  # a Marking
        return str(banner())
    return str(value)


_SUITE_KEYS = ("name", "ref", "id", "version", "kind", "count", "holdout")
_SYSTEM_KEYS = ("kind", "ref", "version", "parameters")


def _ordered(mapping: Mapping[str, Any], first: Sequence[str]) -> list[tuple[str, Any]]:
    keys = [k for k in first if k in mapping] + [k for k in mapping if k not in first]
    return [(k, mapping[k]) for k in keys]


def run_rows(report: RunReport) -> list[list[str]]:
    """What was run: suite version, system version and parameters, acting subject and ceiling,
    scorer versions, Garrison version, when."""
    rows = [["Run", report.run_id], ["Title", report.title]]
    rows += [[f"Suite {k}", fmt(v)] for k, v in _ordered(report.suite, _SUITE_KEYS)]
    system = {k: v for k, v in report.system.items() if k not in ("subject", "ceiling")}
    rows += [[f"System {k}", fmt(v)] for k, v in _ordered(system, _SYSTEM_KEYS)]
    # A run acts as the subject who started it unless it names one, and reads up to that
    # subject's clearance unless it names a lower ceiling.
    subject, ceiling = report.system.get("subject"), report.system.get("ceiling")
    rows.append(["Acting subject", fmt(subject) if subject else "the subject who started it"])
    rows.append(["Ceiling", fmt(ceiling) if ceiling else "the acting subject's clearance"])
    rows += [[f"Scorer {name}", fmt(version)] for name, version in sorted(report.scorers.items())]
    rows += [["Garrison version", report.garrison_version], ["Created", report.created]]
    return rows


_COUNT_KEYS = ("scored", "not-eligible", "error")


def count_rows(report: RunReport) -> list[list[Any]]:
    """Items scored, not eligible (never sent to the system) and in error, then the rest."""
    rows: list[list[Any]] = [[k, int(report.counts.get(k, 0))] for k in _COUNT_KEYS]
    rows += [[k, int(v)] for k, v in report.counts.items() if k not in _COUNT_KEYS]
    return rows


def metric_rows(report: RunReport) -> list[list[Any]]:
    """Each metric with its value, interval, n and method."""
    return [
        [m.name, f"{m.estimate.value:.3f}", interval(m.estimate), m.estimate.n, m.estimate.method]
        for m in report.metrics
    ]


def slice_rows(slices: Mapping[str, Estimate]) -> list[list[Any]]:
    """One slice dimension's estimates as rows."""
    return [[k, f"{e.value:.3f}", interval(e), e.n] for k, e in slices.items()]


def verdict_for(report: CompareReport, index: int) -> Verdict | None:
    """The verdict of the ``index``-th comparison, when there is one verdict per comparison."""
    if len(report.verdicts) == len(report.comparisons):
        return report.verdicts[index]
    return None


def _verdict_text(verdict: Verdict | None) -> str:
    if verdict is None:
        return "—"
    return f"{'PASS' if verdict.passed else 'FAIL'}: {verdict.rule}"


def comparison_rows(report: CompareReport) -> list[list[Any]]:
    """Each metric's paired difference (B minus A) with its interval, test, p and verdict."""
    rows = []
    for i, c in enumerate(report.comparisons):
        d = c.difference
        rows.append(
            [
                c.metric,
                f"{c.a.value:.3f} {interval(c.a)}",
                f"{c.b.value:.3f} {interval(c.b)}",
                f"{d.value:+.3f} {interval(d)}",
                c.n,
                c.test,
                _p(c.p_value),
                _p(c.p_adjusted),
                _verdict_text(verdict_for(report, i)),
            ]
        )
    return rows


# -- markdown -------------------------------------------------------------------------------------


def _md_list(items: Sequence[str]) -> list[str]:
    return [*(f"- {md_text(item)}" for item in items), ""] if items else ["(none)", ""]


def _md_metric_figures(metric: MetricResult, level: str) -> list[str]:
    out: list[str] = []
    bins = distribution(metric.values, binary=metric.binary)
    if bins:
        out += [f"{level} Distribution of {md_text(metric.name)}", ""]
        rows = [[_bin_label(b, metric.binary), b["count"]] for b in bins]
        out += md_table(["Score", "Items"], rows)
    for dimension, slices in metric.slices.items():
        if slices:
            out += [f"{level} {md_text(metric.name)} by {md_text(dimension)}", ""]
            out += md_table([dimension, "Value", "Interval", "n"], slice_rows(slices))
    return out


def _bin_label(b: Mapping[str, Any], binary: bool) -> str:
    if binary:
        return "1 (pass)" if b["low"] >= 0.5 else "0 (fail)"
    return f"{b['low']:.2f}–{b['high']:.2f}"


def _md_run_body(report: RunReport, level: str = "##") -> list[str]:
    out = [f"{level} What was run", ""]
    out += md_table(["Property", "Value"], run_rows(report))
    out += [f"{level} Counts", ""]
    out += md_table(["Items", "Count"], count_rows(report))
    out += [f"{level} Metrics", ""]
    out += md_table(["Metric", "Value", "Interval", "n", "Method"], metric_rows(report))
    figures = [line for m in report.metrics for line in _md_metric_figures(m, level + "#")]
    if figures:
        out += [f"{level} Score distributions and slices", "", *figures]
    out += [f"{level} Power", "", *_md_list(report.power)]
    if report.notes:
        out += [f"{level} Notes", "", *_md_list(report.notes)]
    return out


def render_markdown(report: RunReport | CompareReport) -> str:
    """The report as Markdown: the banner is the first and the last line, figures are tables."""
    banner = md_banner(_banner_facts(report.marking))
    if isinstance(report, CompareReport):
        out = [
            banner,
            "",
            f"# Evaluation comparison: {md_text(report.a.title)} vs {md_text(report.b.title)}",
            "",
            f"A is run {md_text(report.a.run_id)}, B is run {md_text(report.b.run_id)}; "
            "differences are B minus A, paired on the items both runs scored.",
            "",
            "## Paired differences",
            "",
        ]
        out += md_table(COMPARISON_HEADERS, comparison_rows(report))
        if report.verdicts and verdict_for(report, 0) is None:
            out += ["## Verdicts", ""]
            out += md_table(
                ["Rule", "Passed", "Reason"],
                [[v.rule, "yes" if v.passed else "no", v.reason] for v in report.verdicts],
            )
        for name, run in (("A", report.a), ("B", report.b)):
            out += [f"## Run {name}: {md_text(run.title)}", ""]
            out += _md_run_body(run, "###")
    else:
        out = [banner, "", f"# Evaluation report: {md_text(report.title)}", ""]
        out += _md_run_body(report)
    return "\n".join([*out, banner, ""])


# -- json -----------------------------------------------------------------------------------------


def _metric_json(metric: MetricResult, *, with_values: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": metric.name,
        "binary": metric.binary,
        "estimate": estimate_json(metric.estimate),
        "distribution": distribution(metric.values, binary=metric.binary),
        "slices": {
            dim: {k: estimate_json(e) for k, e in slices.items()}
            for dim, slices in metric.slices.items()
        },
    }
    if with_values:
        data["values"] = [float(v) for v in metric.values]
    return data


def _marking_json(report: RunReport | CompareReport) -> dict[str, Any]:
    return {"marking": report.marking.banner(), "portion": report.marking.portion()}


def _run_json(report: RunReport, *, with_values: bool) -> dict[str, Any]:
    suite, system = _jsonable(report.suite), _jsonable(report.system)
    return {
        "format": REPORT_FORMAT,
        "kind": "run",
        **_marking_json(report),
        "run_id": report.run_id,
        "title": report.title,
        "created": report.created,
        "versions": {
            "garrison": report.garrison_version,
            "suite": suite.get("ref") or suite.get("version") or suite.get("id"),
            "system": system.get("ref") or system.get("version"),
            "scorers": {str(k): str(v) for k, v in report.scorers.items()},
        },
        "suite": suite,
        "system": system,
        "counts": {str(k): int(v) for k, v in report.counts.items()},
        "metrics": [_metric_json(m, with_values=with_values) for m in report.metrics],
        "power": [str(p) for p in report.power],
        "notes": [str(n) for n in report.notes],
    }


def _comparison_json(c: Comparison, verdict: Verdict | None) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "a": estimate_json(c.a),
        "b": estimate_json(c.b),
        "difference": estimate_json(c.difference),
        "test": c.test,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "n": int(c.n),
        "higher_is_better": bool(c.higher_is_better),
        "verdict": _verdict_json(verdict) if verdict is not None else None,
    }


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return {"passed": bool(v.passed), "rule": v.rule, "reason": v.reason}


def _compare_json(report: CompareReport, *, with_values: bool) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "kind": "compare",
        **_marking_json(report),
        "a": _run_json(report.a, with_values=with_values),
        "b": _run_json(report.b, with_values=with_values),
        "comparisons": [
            _comparison_json(c, verdict_for(report, i)) for i, c in enumerate(report.comparisons)
        ],
        "verdicts": [_verdict_json(v) for v in report.verdicts],
    }


def report_json(report: RunReport | CompareReport) -> dict[str, Any]:
    """The whole report as JSON: versions, counts, every figure with its interval and n, the
    per-item score values, marked like the report."""
    if isinstance(report, CompareReport):
        return _compare_json(report, with_values=True)
    return _run_json(report, with_values=True)


def stats_only(report: RunReport | CompareReport) -> dict[str, Any]:
    """The report's figures without per-item values, transcripts or any item text.

    It is marked like the report: a statistics-only export is not lower than what it
    summarizes, and sharing it lower is a downgrade (MARKINGS.md section 6), never automatic.
    """
    if isinstance(report, CompareReport):
        data = _compare_json(report, with_values=False)
    else:
        data = _run_json(report, with_values=False)
    data["statistics_only"] = True
    data["downgrade"] = DOWNGRADE_RULE
    return data
