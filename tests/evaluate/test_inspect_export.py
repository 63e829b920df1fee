"""The Inspect export: an ``EvalLog`` JSON that ``inspect_ai`` reads offline, each sample marked."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import InvalidInput, MarkingError
from garrison.evaluate.report import (
    RunReport,
    Sample,
    inspect_log,
    inspect_log_name,
    write_inspect_log,
)
from garrison.security.markings import dominates, parse_marking
from tests.conftest import require
from tests.evaluate.report_fixtures import CONF, HOSTILE, SECRET, run_report, samples


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any connection to a non-loopback address fails (and is recorded), as in the test
    namespace; DNS lookups fail too."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host).is_loopback:
            attempts.append(address)
            raise OSError("network blocked in tests")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(host)
        raise socket.gaierror("name resolution blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def report() -> RunReport:
    return run_report()


def _read(path: Path, **kwargs: Any) -> Any:
    require(sys.modules.get("inspect_ai") is not None or _has_inspect(), "inspect_ai is absent")
    from inspect_ai.log import read_eval_log

    return read_eval_log(str(path), **kwargs)


def _has_inspect() -> bool:
    import importlib.util

    return importlib.util.find_spec("inspect_ai") is not None


def test_the_log_loads_in_inspect_offline(
    tmp_path: Path, report: RunReport, no_network: list[Any]
) -> None:
    items = samples(report)
    path = write_inspect_log(tmp_path / "run.json", report, items)
    log = _read(path)
    assert no_network == []
    assert log.status == "success" and log.version == 2
    assert log.eval.task == "depot-qa" and log.eval.run_id == "run-a"
    assert log.eval.model == "garrison/assistant:k=8"
    assert log.eval.model_args == {"k": 8, "generator": "extractive"}
    assert log.eval.packages == {"garrison": "0.1.0"}
    assert log.eval.dataset.location == "depot-qa@0123456789ab"
    assert log.eval.dataset.samples == 42
    assert log.eval.metadata["scorers"] == {"exact": "1", "token_f1": "1"}
    # the figures, each with its interval and n
    assert log.results is not None
    assert log.results.total_samples == 42 and log.results.completed_samples == 40
    by_name = {s.name: s for s in log.results.scores}
    for metric in report.metrics:
        score = by_name[metric.name]
        assert score.scored_samples == metric.estimate.n
        assert score.metrics["mean"].value == pytest.approx(metric.estimate.value)
        assert score.metrics["ci_low"].value == pytest.approx(metric.estimate.low)
        assert score.metrics["ci_high"].value == pytest.approx(metric.estimate.high)
        assert score.params == {"version": "1"}
    # the samples
    assert log.samples is not None and len(log.samples) == len(items)
    for loaded, item in zip(log.samples, items, strict=True):
        assert loaded.id == item.id
        assert loaded.input == item.input  # markup kept as data, not interpreted
        assert loaded.target == item.target
        assert loaded.output.completion == item.output["text"]
        assert {k: v.value for k, v in (loaded.scores or {}).items()} == dict(item.scores)
        assert loaded.metadata["cluster"] == item.metadata["cluster"]
    header = _read(path, header_only=True)
    assert header.samples is None and header.results is not None


def test_the_log_and_every_sample_are_marked(tmp_path: Path, report: RunReport) -> None:
    items = samples(report)
    path = write_inspect_log(tmp_path / "run.json", report, items)
    log = _read(path)
    assert log.metadata["marking"] == "SECRET//NOFORN"
    assert log.eval.metadata["marking"] == "SECRET//NOFORN"
    assert log.tags == ["SECRET//NOFORN"] and log.eval.tags == ["SECRET//NOFORN"]
    assert "(SECRET//NOFORN)" in (log.eval.task_display_name or "")
    assert log.samples is not None
    shown = [s.metadata["marking"] for s in log.samples]
    assert shown == [("CONFIDENTIAL" if i % 2 else "SECRET//NOFORN") for i in range(len(items))]


def test_a_sample_marked_as_text_is_parsed(report: RunReport) -> None:
    item = replace(samples(report)[0], metadata={"marking": "confidential"})
    doc = inspect_log(report, [item])
    assert doc["samples"][0]["metadata"]["marking"] == "CONFIDENTIAL"


def test_a_sample_without_a_marking_is_refused(tmp_path: Path, report: RunReport) -> None:
    unmarked = replace(samples(report)[0], metadata={"cluster": "doc-0"})
    with pytest.raises(InvalidInput, match="carries no marking"):
        write_inspect_log(tmp_path / "run.json", report, [unmarked])
    assert not (tmp_path / "run.json").exists()


@pytest.mark.parametrize(
    "above", ["TOP SECRET//NOFORN", "SECRET//SI//NOFORN", "SECRET//ORCON/NOFORN"]
)
def test_a_sample_above_the_reports_marking_is_refused(
    tmp_path: Path, report: RunReport, above: str
) -> None:
    higher = replace(samples(report)[0], metadata={"marking": parse_marking(above)})
    with pytest.raises(MarkingError, match="above the report"):
        write_inspect_log(tmp_path / "run.json", report, [higher])
    assert not (tmp_path / "run.json").exists()
    # the same sample is fine in a report marked high enough
    doc = inspect_log(replace(report, marking=parse_marking(above)), [higher])
    assert doc["metadata"]["marking"] == parse_marking(above).banner()


def test_a_lower_report_refuses_higher_samples(report: RunReport) -> None:
    low = replace(report, marking=CONF)
    with pytest.raises(MarkingError):
        inspect_log(low, samples(report))
    assert inspect_log(low, [s for s in samples(report) if s.metadata["marking"] == CONF])


def test_the_document_validates_against_inspects_types(report: RunReport) -> None:
    require(_has_inspect(), "inspect_ai is absent")
    from inspect_ai.log import EvalLog

    doc = inspect_log(report, samples(report))
    json.dumps(doc, allow_nan=False)
    log = EvalLog.model_validate(doc)
    assert log.samples is not None and log.samples[1].metadata["marking"] == "CONFIDENTIAL"
    assert doc["samples"][0]["input"].startswith("Question 0 " + HOSTILE)
    assert SECRET.banner() in doc["tags"]


@pytest.mark.parametrize(
    ("given", "expected", "shown_input", "shown_target"),
    [
        ({"question": "Q?"}, {"answer": "A", "sources": ["c1"]}, "Q?", "A"),  # qa
        ({"text": "classify me", "fields": {"a": 1}}, {"label": "alpha"}, "classify me", "alpha"),
        ({"query": "depot"}, {"relevant": ["c1", "c2"]}, "depot", ["c1", "c2"]),  # retrieval
        ({"prompt": "Write"}, {"reference": "Text"}, "Write", "Text"),  # generation
        ({"doc": "x"}, {"json": {"k": 1}}, '{"doc": "x"}', '{"json": {"k": 1}}'),  # other
        ("plain", ["alpha", "beta"], "plain", ["alpha", "beta"]),
    ],
)
def test_item_fields_shown_as_input_and_target(
    report: RunReport, given: Any, expected: Any, shown_input: str, shown_target: Any
) -> None:
    item = Sample(
        id="x",
        input=given,
        target=expected,
        output={"text": "alpha", "citations": []},
        scores={"exact": 1.0},
        metadata={"marking": CONF},
    )
    row = inspect_log(report, [item])["samples"][0]
    assert row["input"] == shown_input and row["target"] == shown_target
    assert row["output"]["completion"] == "alpha"
    if isinstance(given, dict):
        assert row["metadata"]["input_fields"] == given
        assert row["metadata"]["expected_fields"] == expected


@pytest.mark.parametrize(
    ("response", "shown"),
    [
        ({"text": "the depot", "citations": []}, "the depot"),
        ({"label": "urgent", "probabilities": {"urgent": 0.9}}, "urgent"),
        ({"retrieved": ["c1", "c2"]}, '["c1", "c2"]'),
        ("plain text", "plain text"),
        (None, ""),
    ],
)
def test_responses_shown_as_the_model_output(report: RunReport, response: Any, shown: str) -> None:
    item = Sample("x", "q", "t", response, {}, {"marking": CONF})
    row = inspect_log(report, [item])["samples"][0]
    assert row["output"]["completion"] == shown
    assert row["output"]["choices"][0]["message"]["content"] == shown


def test_written_into_a_folder_the_viewer_lists_it(tmp_path: Path, report: RunReport) -> None:
    require(_has_inspect(), "inspect_ai is absent")
    from inspect_ai.log import list_eval_logs

    path = write_inspect_log(tmp_path, report, samples(report))
    assert path.parent == tmp_path
    assert path.name == "2026-12-02T03-00-00+00-00_depot-qa_run-a.json" == inspect_log_name(report)
    write_inspect_log(tmp_path / "run.json", report, samples(report))  # a name it does not list
    listed = list_eval_logs(str(tmp_path))
    assert [Path(log.name.removeprefix("file://")).name for log in listed] == [path.name]
    assert listed[0].task == "depot-qa"
    odd = replace(report, run_id="../x y", suite={"name": "a/b c@1"}, created="2026-12-02 03:00")
    assert inspect_log_name(odd) == "2026-12-02T03-00-00+00-00_a-b-c_..-x-y.json"


def test_only_json_is_written(tmp_path: Path, report: RunReport) -> None:
    with pytest.raises(InvalidInput, match=r"\.json"):
        write_inspect_log(tmp_path / "run.eval", report, [])


def test_reports_import_neither_inspect_nor_matplotlib() -> None:
    code = (
        "import sys, garrison.evaluate.report as r; "
        "print(sorted(m for m in ('inspect_ai', 'matplotlib', 'tiktoken') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


# -- a real run of the assistant ------------------------------------------------------------------


@pytest.fixture(scope="module")
def assistant_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """Two runs of the extractive assistant (k=2 and k=8) on a QA suite generated from the
    assistant tests' marked corpus, by a TOP SECRET evaluator."""
    from garrison.evaluate import Runs, parse_system
    from garrison.evaluate._suites import Suites
    from garrison.ingest.engine import IngestOptions, ingest_paths
    from garrison.pipeline.executor import run_pipeline
    from garrison.pipeline.spec import parse_pipeline
    from garrison.store.session import SubjectSpec
    from garrison.store.workspace import Workspace
    from tests.assist.conftest import FAST, write_corpus

    root = tmp_path_factory.mktemp("eval-inspect")
    ws = Workspace.init(root / "ws", system_high="TOP SECRET")
    write_corpus(root / "in")
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("evr", SubjectSpec(clearance="TS", roles=("evaluator",)))
    session = ws.session("evr")
    suite = Suites(session).generate_from_docs("depot-qa", limit=6)
    runs = Runs(session)
    a = runs.start(suite.ref, parse_system("assistant:k=2"), concurrency=1)
    b = runs.start(suite.ref, parse_system("assistant:k=8"), concurrency=1)
    yield session, a.ref, b.ref
    ws.close()


def test_a_real_run_exports_loads_and_keeps_every_marking(
    tmp_path: Path, assistant_runs: tuple[Any, str, str], no_network: list[Any]
) -> None:
    from garrison.evaluate import Runs
    from garrison.evaluate.report import render_markdown, report_json, stats_only

    session, ref_a, ref_b = assistant_runs
    runs = Runs(session)
    report = runs.report(ref_a)
    items = runs.samples(ref_a)
    assert items and all("marking" in s.metadata for s in items)
    path = write_inspect_log(tmp_path / "run.json", report, items)
    log = _read(path)
    assert no_network == []
    assert log.eval.metadata["marking"] == report.marking.banner()
    assert log.samples is not None and len(log.samples) == len(items)
    for sample in log.samples:
        assert dominates(report.marking, parse_marking(sample.metadata["marking"]))
        assert sample.input and sample.output.completion is not None
    assert {s.name for s in log.results.scores} == {m.name for m in report.metrics}
    # the other formats of the same report, and of a comparison
    data = report_json(report)
    assert data["versions"]["garrison"] and data["versions"]["scorers"]
    assert all(m["estimate"]["n"] == len(items) for m in data["metrics"])
    assert render_markdown(report).splitlines()[0] == f"**{report.marking.banner()}**"
    compared = runs.compare(ref_a, ref_b)
    assert dominates(compared.marking, report.marking)
    assert stats_only(compared)["marking"] == compared.marking.banner()
