"""Run summaries, reports and paired comparisons, from stored item results.

- a metric's estimate is :func:`garrison.evaluate.stats.estimate` over the scored items that
  have it, clustered by each item's cluster (its source document): Wilson for binary metrics,
  a cluster bootstrap otherwise;
- per-slice estimates (by marking, source, media type, language: whatever slices the items
  carry) are :func:`~garrison.evaluate.stats.slices` with the same intervals;
- the power statement is :func:`~garrison.evaluate.stats.power_statement` on the scored items;
- a comparison pairs the two runs on the items both scored, per metric
  (:func:`~garrison.evaluate.stats.paired_compare`: McNemar's exact test for binary metrics, a
  paired bootstrap otherwise), corrects across metrics with Holm, and gives each metric a
  :class:`~garrison.evaluate.stats.Verdict` from :func:`~garrison.evaluate.stats.gate`
  (or :func:`~garrison.evaluate.stats.upper_bound_gate` for a failure rate under a limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from garrison import __version__
from garrison.core.errors import InvalidInput
from garrison.evaluate import stats
from garrison.security.markings import Marking, join

if TYPE_CHECKING:
    from garrison.evaluate._runs import ItemResult, RunSummary
    from garrison.evaluate.report import CompareReport, MetricResult, RunReport

__all__ = ["LOWER_IS_BETTER", "compare_report", "run_report", "summary_metrics"]

#: Metrics where a lower value is better (a failure or error rate); every other is higher.
LOWER_IS_BETTER = frozenset(
    {"leak", "leaked", "leak_rate", "ece", "error_rate", "latency_ms", "attack_success"}
)


def _higher_is_better(name: str) -> bool:
    return name not in LOWER_IS_BETTER and not name.startswith("leak")


def _by_metric(results: Sequence[ItemResult]) -> dict[str, list[ItemResult]]:
    out: dict[str, list[ItemResult]] = {}
    for result in results:
        if result.status != "scored":
            continue
        for name in result.scores:
            out.setdefault(name, []).append(result)
    return dict(sorted(out.items()))


def _is_binary(name: str, rows: Sequence[ItemResult]) -> bool:
    return all(r.binary.get(name, False) for r in rows)


def metric_estimate(name: str, rows: Sequence[ItemResult], seed: int = 0) -> stats.Estimate:
    binary = _is_binary(name, rows)
    values = [r.scores[name] for r in rows]
    return stats.estimate(values, binary=binary, clusters=[r.cluster for r in rows], seed=seed)


def summary_metrics(results: Sequence[ItemResult], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Each metric's estimate with its interval (JSON form), over the scored items."""
    out: dict[str, dict[str, Any]] = {}
    for name, rows in _by_metric(results).items():
        estimate = metric_estimate(name, rows, seed)
        out[name] = {**estimate.to_json(), "binary": _is_binary(name, rows)}
    return out


def _metric_result(name: str, rows: Sequence[ItemResult], seed: int) -> MetricResult:
    from garrison.evaluate.report import MetricResult

    binary = _is_binary(name, rows)
    values = [r.scores[name] for r in rows]
    clusters = [r.cluster for r in rows]
    per_slice: dict[str, Mapping[str, stats.Estimate]] = {}
    dimensions = sorted({d for r in rows for d in r.slices})
    for dimension in dimensions:
        keys = [r.slices.get(dimension, "(none)") for r in rows]
        per_slice[dimension] = stats.slices(
            values, keys, binary=binary, clusters=clusters, seed=seed
        )
    return MetricResult(
        name=name,
        estimate=stats.estimate(values, binary=binary, clusters=clusters, seed=seed),
        binary=binary,
        values=tuple(values),
        slices=per_slice,
    )


def run_report(summary: RunSummary, results: Sequence[ItemResult]) -> RunReport:
    """The report on one run (``results``: its items the reader may read -- all of them, since
    only a reader who dominates the run's marking gets here)."""
    from garrison.evaluate.report import RunReport

    seed = int(summary.parameters.get("seed", 0))
    metrics = [_metric_result(name, rows, seed) for name, rows in _by_metric(results).items()]
    scored = sum(1 for r in results if r.status == "scored")
    power: list[str] = []
    notes: list[str] = []
    if scored:
        power.append(stats.power_statement(scored))
        for m in metrics:
            if m.binary and _higher_is_better(m.name) is False:
                failures = round(sum(m.values))
                power.append(f"{m.name}: {stats.power_statement(len(m.values), failures)}")
    else:
        notes.append("No item was scored, so no metric can be estimated.")
    skipped = summary.counts.get("not-eligible", 0)
    if skipped:
        notes.append(
            f"{skipped} item(s) were not eligible (never sent to the system) and are not scored."
        )
    errors = summary.counts.get("error", 0)
    if errors:
        notes.append(f"{errors} item(s) ended in an error after the retries and are not scored.")
    if summary.status != "complete":
        notes.append(f"The run is {summary.status}: these figures cover the items recorded.")
    marking = join(summary.marking, *(r.marking for r in results))
    return RunReport(
        run_id=summary.id,
        title=f"{summary.ref}: {_system_label(summary.system)} on {summary.suite or summary.kind}",
        marking=marking,
        suite={"ref": summary.suite, "id": summary.suite_id, "kind": summary.kind},
        system=dict(summary.system),
        scorers=dict(summary.scorers),
        garrison_version=__version__,
        created=summary.created_at.isoformat(),
        counts=dict(summary.counts),
        metrics=metrics,
        power=power,
        notes=notes,
    )


def _system_label(system: Mapping[str, Any]) -> str:
    from garrison.evaluate._systems import SystemSpec

    try:
        return SystemSpec.from_dict(system).label()
    except (KeyError, TypeError):
        return str(system.get("kind", "system"))


def compare_report(
    a: tuple[RunSummary, Sequence[ItemResult]],
    b: tuple[RunSummary, Sequence[ItemResult]],
    *,
    metrics: Sequence[str] | None = None,
    mode: str = "non-inferiority",
    margin: float = 0.0,
    upper_below: float | None = None,
) -> CompareReport:
    """B (the candidate) against A (the baseline), paired on the items both scored."""
    from garrison.evaluate.report import CompareReport

    (sa, ra), (sb, rb) = a, b
    by_a = {r.item_id: r for r in ra if r.status == "scored"}
    by_b = {r.item_id: r for r in rb if r.status == "scored"}
    common = sorted(set(by_a) & set(by_b), key=lambda i: (by_a[i].position, i))
    names = sorted(
        {n for i in common for n in by_a[i].scores} & {n for i in common for n in by_b[i].scores}
    )
    if metrics:
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise InvalidInput(
                f"Neither run pairs scores of {', '.join(unknown)} "
                f"(paired metrics: {', '.join(names) or 'none'})."
            )
        names = [m for m in names if m in metrics]
    if not names:
        raise InvalidInput("The two runs share no scored item with a common metric to compare.")
    seed = int(sb.parameters.get("seed", 0))
    comparisons = []
    for name in names:
        items = [i for i in common if name in by_a[i].scores and name in by_b[i].scores]
        binary = all(
            by_a[i].binary.get(name, False) and by_b[i].binary.get(name, False) for i in items
        )
        comparisons.append(
            stats.paired_compare(
                name,
                [by_a[i].scores[name] for i in items],
                [by_b[i].scores[name] for i in items],
                binary=binary,
                clusters=[by_a[i].cluster for i in items],
                seed=seed,
                higher_is_better=_higher_is_better(name),
            )
        )
    comparisons = stats.adjust(comparisons)
    verdicts = []
    for c in comparisons:
        if upper_below is not None:
            failures = round(c.b.value * c.b.n)
            bound = stats.clopper_pearson_upper(failures, c.b.n)
            verdicts.append(stats.upper_bound_gate(bound, upper_below))
        else:
            verdicts.append(stats.gate(c, mode=mode, margin=margin))  # type: ignore[arg-type]
    marking: Marking = join(
        sa.marking, sb.marking, *(r.marking for r in ra), *(r.marking for r in rb)
    )
    return CompareReport(
        a=run_report(sa, ra),
        b=run_report(sb, rb),
        comparisons=comparisons,
        verdicts=verdicts,
        marking=marking,
    )
