"""Reports built from fixed per-item scores with the real statistics, for the renderer tests."""

from __future__ import annotations

from garrison.evaluate import stats
from garrison.evaluate.report import CompareReport, MetricResult, RunReport, Sample
from garrison.security.markings import Marking, parse_marking

#: Item text with markup in it: every renderer must escape it.
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

SECRET = parse_marking("SECRET//NOFORN")
CONF = parse_marking("CONFIDENTIAL")


def _source(i: int) -> str:
    return f"src-{HOSTILE}" if i % 2 else "memo.txt"


def _metric(name: str, values: list[float], *, binary: bool, keys: list[str]) -> MetricResult:
    clusters = [f"doc-{i % 4}" for i in range(len(values))]
    return MetricResult(
        name=name,
        estimate=stats.estimate(values, binary=binary, clusters=clusters),
        binary=binary,
        values=tuple(values),
        slices={
            "marking": stats.slices(values, keys, binary=binary, clusters=clusters),
            "source": stats.slices(values, [_source(i) for i in range(len(values))], binary=binary),
        },
    )


def run_report(
    run_id: str = "run-a",
    *,
    shift: float = 0.0,
    marking: Marking = SECRET,
    title: str = f"QA {HOSTILE}",
) -> RunReport:
    n = 40
    keys = ["SECRET//NOFORN" if i % 3 == 0 else "CONFIDENTIAL" for i in range(n)]
    exact = [1.0 if (i * 7 + int(shift * 10)) % 10 < 6 + int(shift * 10) else 0.0 for i in range(n)]
    f1 = [min(1.0, ((i * 37) % 100) / 100 + shift) for i in range(n)]
    return RunReport(
        run_id=run_id,
        title=title,
        marking=marking,
        suite={"name": "depot-qa", "ref": "depot-qa@0123456789ab", "kind": "qa", "count": 42},
        system={
            "kind": "assistant",
            "ref": "assistant:k=8",
            "parameters": {"k": 8, "generator": "extractive"},
            "subject": "ada",
            "ceiling": "SECRET//NOFORN",
        },
        scorers={"exact": "1", "token_f1": "1"},
        garrison_version="0.1.0",
        created="2026-12-02T03:00:00+00:00",
        counts={"scored": n, "not-eligible": 1, "error": 1},
        metrics=[
            _metric("exact", exact, binary=True, keys=keys),
            _metric("token_f1", f1, binary=False, keys=keys),
        ],
        power=[stats.power_statement(n), stats.power_statement(n, failures=0)],
        notes=[f"Item note {HOSTILE}"],
    )


def compare_report() -> CompareReport:
    a, b = run_report("run-a"), run_report("run-b", shift=0.2, marking=CONF)
    comparisons = stats.adjust(
        [
            stats.paired_compare(m.name, ma.values, m.values, binary=m.binary)
            for ma, m in zip(a.metrics, b.metrics, strict=True)
        ]
    )
    verdicts = [stats.gate(c, mode="non-inferiority", margin=0.05) for c in comparisons]
    return CompareReport(a=a, b=b, comparisons=comparisons, verdicts=verdicts, marking=SECRET)


def samples(report: RunReport) -> list[Sample]:
    return [
        Sample(
            id=f"item-{i}",
            input=f"Question {i} {HOSTILE}",
            target=f"answer {i}",
            output={"text": f"response {i}", "citations": []},
            scores={m.name: m.values[i] for m in report.metrics},
            metadata={"marking": CONF if i % 2 else SECRET, "cluster": f"doc-{i % 4}"},
        )
        for i in range(len(report.metrics[0].values))
    ]
