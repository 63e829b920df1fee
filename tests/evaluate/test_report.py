"""Evaluation reports: HTML, Markdown, JSON and statistics-only, marked and escaped."""

from __future__ import annotations

import html
import json
import re
import sys
from dataclasses import replace

import pytest

from garrison.core.errors import MissingExtra
from garrison.datasets.banner_colors import banner_style
from garrison.datasets.card_style import md_text
from garrison.evaluate.report import (
    DOWNGRADE_RULE,
    REPORT_FORMAT,
    RunReport,
    distribution,
    render_html,
    render_markdown,
    report_body,
    report_json,
    stats_only,
)
from garrison.security.markings import parse_marking
from tests.evaluate.report_fixtures import HOSTILE, SECRET, compare_report, run_report

_BANNER = re.compile(
    r'<div class="banner"[^>]*style="background:([^;]+);color:([^"]+)">([^<]*)</div>'
)


@pytest.fixture(scope="module")
def report() -> RunReport:
    return run_report()


@pytest.fixture(scope="module")
def page(report: RunReport) -> str:
    return render_html(report)


@pytest.fixture(scope="module")
def compare_page() -> str:
    return render_html(compare_report())


def _body(html: str) -> str:
    return html[html.index("<body>") + 6 : html.rindex("</body>")]


# -- HTML ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["run", "compare"])
def test_html_banner_top_and_bottom_in_the_marking_colours(
    which: str, page: str, compare_page: str
) -> None:
    text = page if which == "run" else compare_page
    body = _body(text)
    banners = _BANNER.findall(body)
    assert len(banners) == 2
    style = banner_style(SECRET)
    assert banners[0] == (style.background, style.color, "SECRET//NOFORN") == banners[1]
    assert body.startswith('<div class="banner"') and body.endswith("</div>")
    assert "<title>SECRET//NOFORN " in text


def test_a_compare_report_is_marked_with_its_own_marking_not_a_runs() -> None:
    report = compare_report()
    assert report.b.marking.banner() == "CONFIDENTIAL"
    top_secret = parse_marking("TOP SECRET//SI//NOFORN")
    page = render_html(replace(report, marking=top_secret))
    banners = _BANNER.findall(_body(page))
    assert [b[2] for b in banners] == ["TOP SECRET//SI//NOFORN"] * 2
    assert banners[0][0] == banner_style(top_secret).background
    md = render_markdown(replace(report, marking=top_secret)).splitlines()
    assert md[0] == md[-1] == "**TOP SECRET//SI//NOFORN**"


@pytest.mark.parametrize("which", ["run", "compare"])
def test_html_escapes_every_piece_of_text(which: str, page: str, compare_page: str) -> None:
    text = page if which == "run" else compare_page
    assert HOSTILE not in text
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text  # title, notes, slices


@pytest.mark.parametrize("which", ["run", "compare"])
def test_html_is_self_contained(which: str, page: str, compare_page: str) -> None:
    text = page if which == "run" else compare_page
    assert "<link" not in text and "@import" not in text
    assert not re.search(r"url\((?!#)", text)  # only references inside the page
    assert not re.search(r"<[^>]*\s(src|href)=", text)  # no element loads anything
    # matplotlib's SVG names its XML namespaces by URL; nothing else may name an address
    addresses = set(re.findall(r"https?://[^\s\"'<>]+", text))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text
    assert "<metadata>" not in text


def test_html_run_sections(report: RunReport, page: str) -> None:
    for heading in ("What was run", "Counts", "Metrics", "Score distributions and slices", "Power"):
        assert f">{heading}</h2>" in page
    for fact in (
        "depot-qa@0123456789ab",  # suite version
        "assistant:k=8",  # system version
        "{&quot;generator&quot;: &quot;extractive&quot;, &quot;k&quot;: 8}",  # parameters
        "Acting subject</td><td>ada",
        "Ceiling</td><td>SECRET//NOFORN",
        "Scorer token_f1</td><td>1",
        "Garrison version</td><td>0.1.0",
        "2026-12-02T03:00:00+00:00",
        "not-eligible</td><td>1",
        "error</td><td>1",
        "scored</td><td>40",
    ):
        assert fact in page, fact
    for metric in report.metrics:
        e = metric.estimate
        row = (
            f"<td>{metric.name}</td><td>{e.value:.3f}</td>"
            f"<td>95% [{e.low:.3f}, {e.high:.3f}]</td><td>{e.n}</td>"
        )
        assert row in page
        assert f'aria-label="Distribution of {metric.name}"' in page
        for dimension, slices in metric.slices.items():
            assert f'aria-label="{metric.name} by {dimension}"' in page
            for est in slices.values():
                assert f"95% [{est.low:.3f}, {est.high:.3f}]</td><td>{est.n}</td>" in page
    for statement in report.power:
        assert html.escape(statement) in page
    assert page.count("<svg ") == 2 + 2 * 2  # a histogram and two slice charts per metric


def test_html_compare_sections(compare_page: str) -> None:
    report = compare_report()
    assert 'aria-label="Paired differences, B minus A"' in compare_page
    for i, c in enumerate(report.comparisons):
        d = c.difference
        assert f"{d.value:+.3f} 95% [{d.low:.3f}, {d.high:.3f}]" in compare_page
        assert f"<td>{c.test}</td>" in compare_page
        assert c.p_adjusted is not None
        verdict = report.verdicts[i]
        assert f"{'PASS' if verdict.passed else 'FAIL'}: {verdict.rule}" in compare_page
        assert html.escape(verdict.reason) in compare_page
    assert "Adjusted p" in compare_page
    assert ">Run A: " in compare_page and ">Run B: " in compare_page


def test_html_figures_need_the_evaluate_extra(
    report: RunReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtra, match=r"garrison\[evaluate\]"):
        render_html(report)


def test_a_run_acting_as_its_starter_says_so() -> None:
    report = run_report()
    system = {k: v for k, v in report.system.items() if k not in ("subject", "ceiling")}
    text = render_markdown(replace(report, system=system))
    assert "| Acting subject | the subject who started it |" in text
    assert "| Ceiling | the acting subject's clearance |" in text


def test_a_single_slice_gets_a_table_and_no_figure() -> None:
    report = run_report()
    metric = report.metrics[0]
    one = replace(metric, slices={"language": {"en": metric.estimate}})
    page = render_html(replace(report, metrics=[one]))
    assert 'aria-label="exact by language"' not in page
    assert "<caption>exact by language</caption>" in page
    assert page.count("<svg ") == 1  # the histogram


def test_html_of_a_run_without_scored_items() -> None:
    empty = replace(run_report(), metrics=[], counts={"scored": 0, "error": 3}, power=())
    page = render_html(empty)
    assert "<svg" not in page
    assert "error</td><td>3" in page and "(none)" in page
    md = render_markdown(empty)
    assert "| error | 3 |" in md


# -- Markdown ------------------------------------------------------------------------------------


def test_markdown_banner_first_and_last_line_and_escaped(report: RunReport) -> None:
    lines = render_markdown(report).splitlines()
    assert lines[0] == lines[-1] == "**SECRET//NOFORN**"
    text = "\n".join(lines)
    assert HOSTILE not in text and "<script" not in text
    assert "&lt;script&gt;" in text


def test_markdown_shows_the_figures_as_tables(report: RunReport) -> None:
    text = render_markdown(report)
    for metric in report.metrics:
        e = metric.estimate
        assert f"| {metric.name} | {e.value:.3f} | 95% [{e.low:.3f}, {e.high:.3f}] | {e.n} |" in (
            text
        )
        assert f"## Distribution of {metric.name}" in text
        for b in distribution(metric.values, binary=metric.binary):
            assert f" | {b['count']} |" in text
        for dimension, slices in metric.slices.items():
            assert f"## {metric.name} by {dimension}" in text
            for e in slices.values():
                assert f"| {e.value:.3f} | 95% [{e.low:.3f}, {e.high:.3f}] | {e.n} |" in text
    assert "| 0 (fail) | 16 |" in text and "| 1 (pass) | 24 |" in text
    for statement in report.power:
        assert f"- {md_text(statement)}" in text


def test_markdown_compare_table() -> None:
    report = compare_report()
    text = render_markdown(report)
    assert "| Metric | A | B | Difference (B − A) | n | Test | p | Adjusted p | Verdict |" in text
    for c in report.comparisons:
        assert f"| {c.metric} | {c.a.value:.3f} 95% [" in text
    assert "## Run A: " in text and "### What was run" in text and "#### Distribution of" in text


# -- JSON and statistics only --------------------------------------------------------------------


def _estimates(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if "value" in node and "low" in node:
            found.append(node)
        for value in node.values():
            found += _estimates(value)
    elif isinstance(node, list):
        for value in node:
            found += _estimates(value)
    return found


def test_json_versions_and_every_figure_with_interval_and_n(report: RunReport) -> None:
    data = report_json(report)
    json.dumps(data, allow_nan=False)
    assert data["format"] == REPORT_FORMAT
    assert data["marking"] == "SECRET//NOFORN" and data["portion"] == "(S//NF)"
    assert data["versions"] == {
        "garrison": "0.1.0",
        "suite": "depot-qa@0123456789ab",
        "system": "assistant:k=8",
        "scorers": {"exact": "1", "token_f1": "1"},
    }
    assert data["counts"] == {"scored": 40, "not-eligible": 1, "error": 1}
    estimates = _estimates(data["metrics"])
    assert len(estimates) == 2 + 2 * (2 + 2)  # each metric and its four slices
    for est in estimates:
        assert {"value", "low", "high", "n", "method", "confidence"} <= est.keys()
        assert est["low"] <= est["value"] <= est["high"]  # type: ignore[operator]
        assert est["n"] > 0  # type: ignore[operator]
    exact = data["metrics"][0]
    assert exact["values"] == list(report.metrics[0].values)
    assert exact["estimate"]["clusters"] == 4
    assert sum(b["count"] for b in exact["distribution"]) == 40
    assert data["power"] == list(report.power)


def test_json_compare() -> None:
    report = compare_report()
    data = report_json(report)
    json.dumps(data, allow_nan=False)
    assert data["kind"] == "compare" and data["marking"] == "SECRET//NOFORN"
    assert data["a"]["run_id"] == "run-a" and data["b"]["marking"] == "CONFIDENTIAL"
    for entry, c in zip(data["comparisons"], report.comparisons, strict=True):
        assert entry["metric"] == c.metric and entry["test"] == c.test
        assert entry["difference"]["low"] == pytest.approx(c.difference.low)
        assert entry["p_adjusted"] == c.p_adjusted and entry["n"] == c.n
        assert entry["verdict"]["rule"].startswith("non-inferiority")


@pytest.mark.parametrize("which", ["run", "compare"])
def test_stats_only_has_no_item_level_data_and_is_marked_like_the_report(which: str) -> None:
    report = run_report() if which == "run" else compare_report()
    data = stats_only(report)
    text = json.dumps(data, allow_nan=False)
    assert data["marking"] == "SECRET//NOFORN" and data["statistics_only"] is True
    assert data["downgrade"] == DOWNGRADE_RULE
    assert "MARKINGS.md section 6" in data["downgrade"] and "never automatic" in data["downgrade"]
    assert '"values"' not in text and "transcript" not in text
    full = report_json(report)
    assert '"values"' in json.dumps(full)
    # the figures are all still there
    assert len(_estimates(data)) == len(_estimates(full))


def test_distribution_bins() -> None:
    assert distribution([1.0, 0.0, 1.0], binary=True) == [
        {"low": 0.0, "high": 0.0, "count": 1},
        {"low": 1.0, "high": 1.0, "count": 2},
    ]
    bins = distribution([0.0, 0.05, 0.5, 1.0], binary=False)
    assert len(bins) == 10 and bins[0]["count"] == 2 and bins[-1]["count"] == 1
    assert bins[0]["low"] == 0.0 and bins[-1]["high"] == 1.0
    wide = distribution([2.0, 4.0, 12.0], binary=False)
    assert wide[0]["low"] == 2.0 and wide[-1]["high"] == 12.0
    assert sum(b["count"] for b in wide) == 3
    assert distribution([3.0, 3.0], binary=False) == [{"low": 3.0, "high": 3.0, "count": 2}]
    assert distribution([], binary=False) == []


# -- the fragment the web UI embeds -------------------------------------------------------------


def test_report_body_with_images_and_without_run_sections() -> None:
    report = compare_report()
    body = report_body(report, images=True, runs=False)
    assert "<svg" not in body and "banner" not in body
    images = re.findall(r'<img class="figure" alt="([^"]+)" src="data:image/svg\+xml;base64,', body)
    assert images == ["Paired differences, B minus A"]
    assert ">Run A: " not in body and "Adjusted p" in body
    full = report_body(report.a, images=True)
    assert "<svg" not in full and full.count('<img class="figure"') == 6
    assert HOSTILE not in full
