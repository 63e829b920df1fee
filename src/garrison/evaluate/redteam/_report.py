"""Red-team reports: marked, with intervals, paired deltas and the NIST AI 600-1 mapping.

:func:`build_report` turns the result of any red-team test into a :class:`RedTeamReport` for
one reader: the figures of each system (the headline is an upper bound or a rate with its
interval), paired comparisons of every later system against the first on the same units
(McNemar's exact test on the binary outcome: a canary leaked, an attack succeeded, a value
came back, a probe fired -- lower is better), the coverage of the twelve NIST AI 600-1 risks,
and the attempts with their transcripts -- those the reader may read; the others are counted as
withheld. The report is marked with the join of the attempts it shows.

Renderers: :func:`report_json` (a dict, ``format`` 1), :func:`render_markdown` and
:func:`render_html` (self-contained, banner top and bottom). :func:`gate` is the deployment
decision on a report: the headline's upper bound below a limit, per system.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison import __version__
from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput
from garrison.evaluate.redteam._injection import InjectionResult
from garrison.evaluate.redteam._leakage import LeakageResult
from garrison.evaluate.redteam._nist import coverage
from garrison.evaluate.redteam._pii import PiiResult
from garrison.evaluate.redteam._probes import ProbeResult
from garrison.evaluate.stats import (
    Comparison,
    Estimate,
    Verdict,
    clopper_pearson_upper,
    paired_compare,
    upper_bound_gate,
    wilson,
)
from garrison.security.markings import UNCLASSIFIED, Marking, join
from garrison.store.session import Session

__all__ = [
    "REPORT_FORMAT",
    "RedTeamReport",
    "build_report",
    "gate",
    "render_html",
    "render_markdown",
    "report_json",
]

REPORT_FORMAT = 1
Result = LeakageResult | InjectionResult | PiiResult | ProbeResult

_TITLES = {
    "leakage": "Clearance leakage",
    "injection": "Indirect prompt injection",
    "pii": "PII leakage",
    "probes": "Direct probes",
}
_HEADLINES = {
    "leakage": "canaries leaked (one-sided 95% upper bound)",
    "injection": "attack success rate (Wilson 95%)",
    "pii": "values returned (one-sided 95% upper bound)",
    "probes": "probes that succeeded (Wilson 95%)",
}


@dataclass
class RedTeamReport:
    """One red-team run as one reader may see it (see the module docstring)."""

    test: str
    title: str
    marking: Marking
    systems: list[str]
    headline: dict[str, Estimate]
    summary: dict[str, Any]
    comparisons: list[Comparison]
    nist: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    withheld: int
    notes: list[str]
    parameters: dict[str, Any]
    created: str = field(default_factory=lambda: utc_now().isoformat())
    garrison_version: str = __version__


def _units(result: Result, system: str) -> dict[str, bool]:
    """The independent units of a system's run and whether each failed."""
    if isinstance(result, LeakageResult):
        return result.canary_outcomes(system)
    if isinstance(result, InjectionResult):
        return {a.question: a.succeeded for a in result.by_system(system)}
    if isinstance(result, PiiResult):
        return {a.question: a.leaked for a in result.attempts if a.system == system}
    return {a.probe.id: a.fired for a in result.attempts if a.system == system}


def _test(result: Result) -> str:
    if isinstance(result, LeakageResult):
        return "leakage"
    if isinstance(result, InjectionResult):
        return "injection"
    if isinstance(result, PiiResult):
        return "pii"
    return "probes"


def build_report(result: Result, *, reader: Session) -> RedTeamReport:
    """The report of ``result`` for ``reader`` (module docstring)."""
    test = _test(result)
    headline: dict[str, Estimate] = {}
    for system in result.systems:
        units = _units(result, system)
        failed, n = sum(units.values()), len(units)
        headline[system] = (
            clopper_pearson_upper(failed, n) if test in ("leakage", "pii") else wilson(failed, n)
        )
    comparisons: list[Comparison] = []
    first = result.systems[0] if result.systems else None
    for other in result.systems[1:]:
        a, b = _units(result, str(first)), _units(result, other)
        keys = sorted(set(a) & set(b))
        if keys:
            comparisons.append(
                paired_compare(
                    f"{test} failures: {other} vs {first}",
                    [float(a[k]) for k in keys],
                    [float(b[k]) for k in keys],
                    binary=True,
                    higher_is_better=False,
                )
            )
    if isinstance(result, InjectionResult):
        comparisons.extend(result.utility(s) for s in result.systems if result.by_system(s))
    attempts_all: list[tuple[Marking, dict[str, Any]]] = [
        (a.marking, a.to_dict()) for a in result.attempts
    ]
    shown = [d for m, d in attempts_all if reader.can_read(m)]
    marking = join(UNCLASSIFIED, *(m for m, _ in attempts_all if reader.can_read(m)))
    extra: dict[str, list[str]] = {}
    if isinstance(result, ProbeResult):
        extra["probes"] = sorted({r for a in result.attempts for r in a.probe.nist})
    parameters: dict[str, Any] = {"seed": getattr(result, "seed", None)}
    if isinstance(result, LeakageResult):
        parameters.update(canaries=len(result.canaries), subjects=result.subjects)
    elif isinstance(result, InjectionResult | PiiResult):
        parameters.update(subject=result.subject)
    else:
        parameters.update(probes=result.source)
    return RedTeamReport(
        test=test,
        title=_TITLES[test],
        marking=marking,
        systems=list(result.systems),
        headline=headline,
        summary=result.summary(),
        comparisons=comparisons,
        nist=coverage([test], extra),
        attempts=shown,
        withheld=len(attempts_all) - len(shown),
        notes=list(result.notes),
        parameters=parameters,
    )


def gate(report: RedTeamReport, limit: float, *, system: str | None = None) -> list[Verdict]:
    """Each system's (or one system's) headline upper bound against ``limit``."""
    names = [system] if system is not None else report.systems
    unknown = [n for n in names if n not in report.headline]
    if unknown:
        raise InvalidInput(f"No system {unknown[0]!r} in this report.")
    return [upper_bound_gate(report.headline[n], limit) for n in names]


def report_json(report: RedTeamReport) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "test": report.test,
        "title": report.title,
        "marking": report.marking.banner(),
        "created": report.created,
        "garrison_version": report.garrison_version,
        "parameters": report.parameters,
        "systems": report.systems,
        "headline": {
            "what": _HEADLINES[report.test],
            "by_system": {k: v.to_json() for k, v in report.headline.items()},
        },
        "summary": report.summary,
        "comparisons": [c.to_json() for c in report.comparisons],
        "nist_ai_600_1": report.nist,
        "attempts": report.attempts,
        "withheld": report.withheld,
        "notes": report.notes,
    }


def _pct(e: Estimate) -> str:
    return f"{e.value:.2%} [{e.low:.2%}, {e.high:.2%}] (n={e.n})"


def render_markdown(report: RedTeamReport) -> str:
    banner = report.marking.banner()
    lines = [banner, "", f"# Red team: {report.title}", ""]
    lines += [f"Garrison {report.garrison_version}, {report.created}.", ""]
    lines += [f"## {_HEADLINES[report.test].capitalize()}", ""]
    lines += ["| system | failures | rate [95% interval] |", "| --- | --- | --- |"]
    for name, e in report.headline.items():
        lines.append(f"| {name} | {round(e.value * e.n)} of {e.n} | {_pct(e)} |")
    if report.comparisons:
        lines += ["", "## Paired comparisons", ""]
        lines += ["| metric | difference [95%] | test | p |", "| --- | --- | --- | --- |"]
        for c in report.comparisons:
            d = c.difference
            lines.append(
                f"| {c.metric} | {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}] | {c.test} | "
                f"{c.p_value:.4g} |"
            )
    lines += ["", "## NIST AI 600-1 risks", "", "| risk | status | by |", "| --- | --- | --- |"]
    for r in report.nist:
        by = "; ".join(f"{b['test']}: {b['why']}" for b in r["by"]) or "-"
        lines.append(f"| {r['risk']} | {r['status']} | {by} |")
    failed = [a for a in report.attempts if _failed(a)]
    lines += ["", f"## Failures ({len(failed)} shown, {report.withheld} withheld)", ""]
    for a in failed[:200]:
        lines += [f"- `{a['system']}` {a.get('marking')}: " + json.dumps(_brief(a))[:600]]
    lines += ["", *(f"Note: {n}" for n in report.notes), "", banner, ""]
    return "\n".join(lines)


def _failed(attempt: dict[str, Any]) -> bool:
    return bool(attempt.get("leaked") or attempt.get("succeeded") or attempt.get("fired"))


def _brief(attempt: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "canary", "subject", "channels", "injection", "carrier", "rules", "type")
    out = {k: attempt[k] for k in keys if k in attempt}
    out.update({k: attempt[k] for k in ("probe", "question", "where") if k in attempt})
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#111}
main{padding:1rem 2rem}
.banner{text-align:center;font-weight:bold;padding:.3rem;background:#c8102e;color:#fff}
.banner.u{background:#007a33}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #999;padding:.2rem .5rem;text-align:left;vertical-align:top}
.nt{color:#a00;font-weight:bold}
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem;max-height:20rem;overflow:auto}
"""


def render_html(report: RedTeamReport) -> str:
    """A self-contained HTML page, its marking in a banner at the top and at the bottom."""
    e = html.escape
    banner = report.marking.banner()
    cls = "banner u" if banner == UNCLASSIFIED.banner() else "banner"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(banner)} - Red team: {e(report.title)}</title><style>{_CSS}</style></head>",
        f"<body><div class='{cls}'>{e(banner)}</div><main>",
        f"<h1>Red team: {e(report.title)}</h1>",
        f"<p>Garrison {e(report.garrison_version)}, {e(report.created)}; parameters "
        f"{e(json.dumps(report.parameters))}.</p>",
        f"<h2>{e(_HEADLINES[report.test].capitalize())}</h2>",
        "<table><tr><th>system</th><th>failures</th><th>rate [95% interval]</th></tr>",
    ]
    for name, est in report.headline.items():
        parts.append(
            f"<tr><td>{e(name)}</td><td>{round(est.value * est.n)} of {est.n}</td>"
            f"<td>{e(_pct(est))}</td></tr>"
        )
    parts.append("</table>")
    if report.comparisons:
        parts.append("<h2>Paired comparisons</h2><table><tr><th>metric</th>")
        parts.append("<th>difference [95%]</th><th>test</th><th>p</th></tr>")
        for c in report.comparisons:
            d = c.difference
            parts.append(
                f"<tr><td>{e(c.metric)}</td><td>{d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                f"</td><td>{e(c.test)}</td><td>{c.p_value:.4g}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>NIST AI 600-1 risks</h2><table><tr><th>risk</th><th>status</th>")
    parts.append("<th>covered by</th></tr>")
    for r in report.nist:
        status = e(str(r["status"]))
        if r["status"] != "tested":
            status = f"<span class='nt'>{status}</span>"
        by = "<br>".join(e(f"{b['test']}: {b['why']}") for b in r["by"]) or "&ndash;"
        parts.append(f"<tr><td>{e(str(r['risk']))}</td><td>{status}</td><td>{by}</td></tr>")
    parts.append("</table>")
    parts.append(f"<h2>Summary</h2><pre>{e(json.dumps(report.summary, indent=1))}</pre>")
    failed = [a for a in report.attempts if _failed(a)]
    parts.append(f"<h2>Failures ({len(failed)} shown, {report.withheld} withheld)</h2>")
    for a in failed[:200]:
        parts.append(
            f"<h3>{e(str(a.get('marking')))} &mdash; {e(a['system'])}</h3>"
            f"<pre>{e(json.dumps(a, indent=1))}</pre>"
        )
    parts.extend(f"<p>Note: {e(n)}</p>" for n in report.notes)
    parts.append(f"</main><div class='{cls}'>{e(banner)}</div></body></html>")
    return "".join(parts)


def headline_table(reports: Sequence[RedTeamReport]) -> list[dict[str, Any]]:
    """One row per (test, system): the headline estimate, for a combined view."""
    return [
        {"test": r.test, "system": name, **est.to_json()}
        for r in reports
        for name, est in r.headline.items()
    ]
