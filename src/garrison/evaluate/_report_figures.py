"""The report's figures, drawn with matplotlib as inline SVG.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, so no global state
shared between threads) and saved as SVG with text as paths: the page needs no fonts, and no
item text reaches the markup as text (matplotlib's label comments are removed).
The XML prologue is dropped so the ``<svg>`` element sits inside the HTML page. matplotlib is in
the ``evaluate`` extra and imported when a figure is drawn.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from garrison.core.errors import MissingExtra
from garrison.datasets.card_style import html_text
from garrison.evaluate._report_data import MetricResult, distribution

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from garrison.evaluate.stats import Comparison, Estimate

__all__ = ["delta_svg", "histogram_svg", "slice_svg"]

_BAR = "#3a6ea5"
_LINE = "#1a1a1a"
#: Text as paths (no fonts needed, no text in the markup) and stable element ids.
_SVG_RC: dict[str, Any] = {"svg.fonttype": "path", "svg.hashsalt": "garrison-report"}


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise MissingExtra("evaluate", "matplotlib") from exc
    return Figure(figsize=(width, height), dpi=72)


def _svg(fig: Figure, title: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):  # type: ignore[arg-type]
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # matplotlib's <metadata> block names the RDF/Dublin Core vocabularies by URL; drop it so
    # the page names no outside address at all.
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    # matplotlib repeats each label in a comment (escaped, "--" broken up); labels are drawn
    # as paths already, so the comments go: no slice name or title reaches the markup as text.
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html_text(title)}" ', 1)


def histogram_svg(metric: MetricResult) -> str:
    """The distribution of ``metric``'s per-item scores (two bars for a binary outcome)."""
    bins = distribution(metric.values, binary=metric.binary)
    fig = _figure(5.0, 2.4)
    ax = fig.add_subplot()
    if metric.binary:
        ax.bar(["0 (fail)", "1 (pass)"], [b["count"] for b in bins], color=_BAR)
    else:
        lefts = [b["low"] for b in bins]
        widths = [max(b["high"] - b["low"], 1e-9) for b in bins]
        ax.bar(lefts, [b["count"] for b in bins], width=widths, align="edge", color=_BAR)
        ax.set_xlabel("score")
    ax.set_ylabel("items")
    ax.set_title(f"Distribution of {metric.name} (n={len(metric.values)})", fontsize=10)
    return _svg(fig, f"Distribution of {metric.name}")


def _whiskers(estimates: Sequence[Estimate]) -> tuple[list[float], list[list[float]]]:
    values = [float(e.value) for e in estimates]
    errors = [
        [max(v - float(e.low), 0.0) for v, e in zip(values, estimates, strict=True)],
        [max(float(e.high) - v, 0.0) for v, e in zip(values, estimates, strict=True)],
    ]
    return values, errors


def slice_svg(metric: str, dimension: str, slices: Mapping[str, Estimate]) -> str:
    """``metric`` per slice of ``dimension``: horizontal bars with interval whiskers and n."""
    labels = [f"{key} (n={e.n})" for key, e in slices.items()]
    values, errors = _whiskers(list(slices.values()))
    fig = _figure(5.5, 0.9 + 0.35 * len(labels))
    ax = fig.add_subplot()
    positions = list(range(len(labels)))
    ax.barh(positions, values, xerr=errors, color=_BAR, ecolor=_LINE, capsize=3)
    ax.set_yticks(positions, labels=labels)
    ax.invert_yaxis()
    ax.set_title(f"{metric} by {dimension} (95% intervals)", fontsize=10)
    return _svg(fig, f"{metric} by {dimension}")


def delta_svg(comparisons: Sequence[Comparison]) -> str:
    """Each metric's paired difference (B minus A) as a point with its interval, around 0."""
    labels = [f"{c.metric} (n={c.n})" for c in comparisons]
    values, errors = _whiskers([c.difference for c in comparisons])
    fig = _figure(5.5, 0.9 + 0.4 * len(labels))
    ax = fig.add_subplot()
    positions = list(range(len(labels)))
    ax.errorbar(values, positions, xerr=errors, fmt="o", color=_BAR, ecolor=_LINE, capsize=3)
    ax.axvline(0.0, color="#767676", linewidth=1, linestyle="--")
    ax.set_yticks(positions, labels=labels)
    ax.invert_yaxis()
    ax.set_xlabel("B − A")
    ax.set_title("Paired differences, B minus A (95% intervals)", fontsize=10)
    return _svg(fig, "Paired differences, B minus A")
