"""Reports: the twelve NIST AI 600-1 risks always listed, banners top and bottom, JSON shape,
the gate, and the red-team commands with their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.evaluate.redteam import (
    NOT_TESTED,
    PLANT_AT,
    RISKS,
    build_report,
    coverage,
    make_canaries,
    render_html,
    render_markdown,
    report_json,
    run_probes,
)
from garrison.store.workspace import Workspace
from tests.evaluate.redteam import bad


def test_coverage_lists_all_twelve() -> None:
    assert len(RISKS) == 12
    rows = coverage(["leakage"])
    assert [r["risk"] for r in rows] == list(RISKS)
    tested = {r["risk"] for r in rows if r["status"] == "tested"}
    assert tested == {"information security", "data privacy", "human-AI configuration"}
    assert sum(r["status"] == NOT_TESTED for r in rows) == 9


def test_renderers_are_marked(source: Workspace) -> None:
    result = run_probes(source.session("eve"), ["generator:comply"], subject="uma")
    report = build_report(result, reader=source.session("eve"))
    banner = report.marking.banner()
    page = render_html(report)
    assert page.count(f">{banner}</div>") == 2
    assert page.index(banner) < page.index("<h1>") < page.rindex(banner)
    assert "not tested" in page and "<script" not in page
    md = render_markdown(report).strip().splitlines()
    assert md[0] == md[-1] == banner
    data = report_json(report)
    assert data["format"] == 1 and data["marking"] == banner
    assert len(data["nist_ai_600_1"]) == 12
    assert data["headline"]["by_system"]["generator:comply"]["method"] == "wilson"
    json.dumps(data)  # serializable as it is


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().out


def test_cli_leakage_gate(
    source: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad.KNOWN[:] = make_canaries(2, list(PLANT_AT), seed=0)
    ws = str(source.root)
    html = tmp_path / "r.html"
    code, out = _run(
        ["redteam", "leakage", "-w", ws, "--as", "eve", "--system", "assistant", "--system",
         "generator:memorized", "--canaries", "2", "--upper-below", "0.9", "--json",
         "--html", str(html)],
        capsys,
    )  # fmt: skip
    data = json.loads(out)
    assert code == 1  # the memorizing generator leaks both canaries: its bound is 1
    gates = {g["passed"] for g in data["gate"]}
    assert gates == {True, False}
    assert data["summary"]["assistant"]["leaks"] == 0
    # two canaries, CONFIDENTIAL and SECRET: the report carries the join of its transcripts
    assert data["marking"] == "SECRET"
    assert html.read_text().count(">SECRET</div>") == 2
    # stored as evaluation runs: eval compare pairs the canaries and gates on B's upper bound
    runs = data["runs"]
    compare = ["eval", "compare", "-w", ws, "--as", "eve", runs["assistant"]]
    code, _ = _run([*compare, runs["generator:memorized"], "--upper-below", "0.9"], capsys)
    assert code == 1
    code, _ = _run([*compare, runs["assistant"], "--upper-below", "0.9"], capsys)
    assert code == 0
    code, out = _run(
        ["redteam", "probes", "-w", ws, "--as", "eve", "--system", "assistant"], capsys
    )
    assert code == 0 and "NIST AI 600-1 not tested" in out
    code, _ = _run(["redteam", "probes", "-w", ws, "--as", "sam", "--system", "assistant"], capsys)
    assert code == 4  # not an evaluator
