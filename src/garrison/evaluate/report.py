"""Evaluation reports: what a run measured, every figure with its interval and n, marked.

A :class:`RunReport` is built by the runs code from one run: its marking is given (the join of
the items and of the responses the report speaks of -- a response is marked like an assistant
answer, the join of its context, which can be higher than its item). A :class:`CompareReport`
pairs two runs on the same items and carries the paired comparisons and the gate's verdicts; it
is marked with the join of both runs.

Formats (each carries the report's marking; a renderer never lowers it)::

    render_html(report)      one self-contained page: banner top and bottom, inline SVG figures
    report_body(report)      its sections as a fragment, for a page that draws its own banner
    render_markdown(report)  the same figures as tables; the banner is the first and last line
    report_json(report)      versions of suite, system, scorers and Garrison; every figure with
                             its interval and n; per-item score values
    stats_only(report)       the figures without per-item values, transcripts or item text,
                             marked like the report (sharing it lower is a downgrade)
    inspect_log(report, samples) / write_inspect_log(path, report, samples)
                             Inspect's ``EvalLog`` JSON, each sample marked in its metadata

Only the statistics come from :mod:`garrison.evaluate.stats`; this module reads their fields
(``Estimate.value/low/high/n/method/confidence``, ``Comparison.metric/a/b/difference/test/
p_value/p_adjusted/n/higher_is_better``, ``Verdict.passed/rule/reason``) and nothing else.
"""

from __future__ import annotations

from garrison.evaluate._inspect import inspect_log, inspect_log_name, write_inspect_log
from garrison.evaluate._report_data import (
    DOWNGRADE_RULE,
    REPORT_FORMAT,
    CompareReport,
    MetricResult,
    RunReport,
    Sample,
    distribution,
    estimate_json,
)
from garrison.evaluate._report_html import render_html, report_body
from garrison.evaluate._report_text import render_markdown, report_json, stats_only

__all__ = [
    "DOWNGRADE_RULE",
    "REPORT_FORMAT",
    "CompareReport",
    "MetricResult",
    "RunReport",
    "Sample",
    "distribution",
    "estimate_json",
    "inspect_log",
    "inspect_log_name",
    "render_html",
    "render_markdown",
    "report_body",
    "report_json",
    "stats_only",
    "write_inspect_log",
]
