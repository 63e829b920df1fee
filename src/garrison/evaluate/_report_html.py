"""Reports as one self-contained HTML page: inline CSS and SVG figures, no outside resources,
every piece of text escaped, the report's banner at the top and the bottom."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from garrison.datasets.card_style import CARD_CSS, banner_facts, html_banner, html_table
from garrison.datasets.card_style import html_text as _e
from garrison.evaluate._report_data import CompareReport, MetricResult, RunReport
from garrison.evaluate._report_figures import delta_svg, histogram_svg, slice_svg
from garrison.evaluate._report_text import (
    COMPARISON_HEADERS,
    comparison_rows,
    count_rows,
    metric_rows,
    run_rows,
    slice_rows,
)

__all__ = ["render_html", "report_body"]

_CSS = CARD_CSS + ".verdict-pass{color:#1b5e20;font-weight:bold}"
_CSS += ".verdict-fail{color:#b00020;font-weight:bold}"


_LABEL = re.compile(r'aria-label="([^"]*)"')


def _figure(svg: str, images: bool) -> str:
    """An SVG figure inline, or (``images``) as an ``<img>`` with a ``data:`` URI: a page whose
    Content-Security-Policy forbids inline styles still draws it (matplotlib styles its shapes
    with ``style`` attributes), and an image's SVG can run nothing."""
    if not images:
        return svg
    found = _LABEL.search(svg)
    alt = found.group(1) if found else "Figure"  # already escaped
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="figure" alt="{alt}" src="data:image/svg+xml;base64,{data}">'


def _list(items: Sequence[str]) -> str:
    if not items:
        return "<p>(none)</p>"
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _metric_figures(metric: MetricResult, heading: str, images: bool) -> str:
    parts = [f"<{heading}>{_e(metric.name)}</{heading}>"]
    if metric.values:
        parts.append(_figure(histogram_svg(metric), images))
    for dimension, slices in metric.slices.items():
        if not slices:
            continue
        if len(slices) > 1:  # one slice is the whole metric again: its table says enough
            parts.append(_figure(slice_svg(metric.name, dimension, slices), images))
        parts.append(
            html_table(
                f"{metric.name} by {dimension}",
                [dimension, "Value", "Interval", "n"],
                slice_rows(slices),
            )
        )
    return "".join(parts)


def _run_sections(report: RunReport, level: int, images: bool) -> str:
    h, sub = f"h{level}", f"h{level + 1}"
    parts = [
        f'<section aria-labelledby="run-{_e(report.run_id)}"><{h} id="run-{_e(report.run_id)}">'
        f"What was run</{h}>",
        html_table("Run", ["Property", "Value"], run_rows(report)),
        f"<{h}>Counts</{h}>",
        html_table("Items", ["Items", "Count"], count_rows(report)),
        f"<{h}>Metrics</{h}>",
        html_table("Metrics", ["Metric", "Value", "Interval", "n", "Method"], metric_rows(report)),
        f"<{h}>Score distributions and slices</{h}>",
        "".join(_metric_figures(m, sub, images) for m in report.metrics),
        f"<{h}>Power</{h}>",
        _list(report.power),
    ]
    if report.notes:
        parts += [f"<{h}>Notes</{h}>", _list(report.notes)]
    parts.append("</section>")
    return "".join(parts)


def _verdicts(report: CompareReport) -> str:
    if not report.verdicts:
        return ""
    items = []
    for v in report.verdicts:
        css = "verdict-pass" if v.passed else "verdict-fail"
        word = "PASS" if v.passed else "FAIL"
        items.append(f'<li><span class="{css}">{word}</span> {_e(v.rule)}: {_e(v.reason)}</li>')
    return "<h2>Verdicts</h2><ul>" + "".join(items) + "</ul>"


def _compare_sections(report: CompareReport, images: bool, runs: bool) -> str:
    parts = [
        f"<p>A is run {_e(report.a.run_id)} ({_e(report.a.title)}), B is run "
        f"{_e(report.b.run_id)} ({_e(report.b.title)}); differences are B minus A, paired on "
        "the items both runs scored.</p>",
        "<h2>Paired differences</h2>",
    ]
    if report.comparisons:
        parts.append(_figure(delta_svg(report.comparisons), images))
    parts.append(html_table("Paired differences", COMPARISON_HEADERS, comparison_rows(report)))
    parts.append(_verdicts(report))
    if not runs:
        return "".join(parts)
    for name, run in (("A", report.a), ("B", report.b)):
        parts.append(f"<h2>Run {name}: {_e(run.title)}</h2>")
        parts.append(_run_sections(run, 3, images))
    return "".join(parts)


def report_body(
    report: RunReport | CompareReport, *, images: bool = False, runs: bool = True
) -> str:
    """The report's sections as an HTML fragment (no banner, no page), every text escaped: the
    web UI shows it inside its own page, whose banner covers the report's marking. Figures are
    inline SVG, or ``<img>`` elements with ``data:`` URIs when ``images``. A comparison shows
    both runs' own sections after the differences unless ``runs`` is false."""
    if isinstance(report, CompareReport):
        return _compare_sections(report, images, runs)
    return _run_sections(report, 2, images)


def render_html(report: RunReport | CompareReport) -> str:
    """The report as a self-contained HTML page, banner top and bottom."""
    banner = html_banner(banner_facts(report.marking))
    if isinstance(report, CompareReport):
        title = f"Evaluation comparison: {report.a.title} vs {report.b.title}"
    else:
        title = f"Evaluation report: {report.title}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.marking.banner())} {_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{banner}<main><h1>{_e(title)}</h1>{report_body(report)}</main>{banner}"
        "</body></html>\n"
    )
