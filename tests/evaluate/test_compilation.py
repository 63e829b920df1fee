"""Evaluation and classification by compilation: an item whose transcript combines a rule's parts
is raised, and a report whose run's items together combine them is raised and refused to a
reader of the run who may not read the raised marking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import NotFound, NotPermitted
from garrison.evaluate import Runs
from garrison.evaluate._runs import ItemResult
from garrison.evaluate._systems import SystemSpec
from garrison.evaluate.report import render_markdown, report_json
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

M = parse_marking
SYSTEM = SystemSpec("assistant", "assistant")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("uma", SubjectSpec(clearance="U", roles=("viewer",)))
    system.registry_add_compilation(
        "falcon-uranium", when=["project falcon"], and_=["uranium"], marking="SECRET//NOFORN",
        reason="The program and its material together.",
    )  # fmt: skip
    yield workspace
    workspace.close()


def _item(item_id: str, question: str, response: str, leak: float = 0.0) -> ItemResult:
    return ItemResult(
        item_id, "scored", M("UNCLASSIFIED"), {"leak": leak}, {"leak": True}, cluster=item_id,
        transcript={"item": {"input": {"question": question}}, "response": {"text": response}},
    )  # fmt: skip


def _run(ws: Workspace, *items: ItemResult) -> str:
    writer = Runs(ws.session("eve")).begin_external("probe", SYSTEM, {})
    for item in items:
        writer.record(item)
    return writer.finish().id


def test_an_item_that_combines_the_parts_is_raised(ws: Workspace) -> None:
    run = _run(
        ws,
        _item("p1", "Where is Project Falcon?", "Its uranium is in the north."),
        _item("p2", "What time is it?", "Noon."),
    )
    items = {i.item_id: i.marking.banner() for i in Runs(ws.session("eve")).items(run)}
    assert items == {"p1": "SECRET//NOFORN", "p2": "UNCLASSIFIED"}
    assert Runs(ws.session("eve")).get(run).marking.banner() == "SECRET//NOFORN"
    # A reader below the raised item sees neither it nor the run.
    with pytest.raises(NotFound):
        list(Runs(ws.session("uma")).items(run))


def test_a_report_over_items_that_together_combine_the_parts_is_raised(ws: Workspace) -> None:
    run = _run(
        ws,
        _item("p1", "What is Project Falcon?", "A logistics study."),
        _item("p2", "What was weighed?", "The uranium was weighed twice.", leak=1.0),
    )
    # Each item alone, and so the run, stays UNCLASSIFIED ...
    summary = Runs(ws.session("uma")).get(run)
    assert summary.marking.banner() == "UNCLASSIFIED"
    assert {i.marking.banner() for i in Runs(ws.session("uma")).items(run)} == {"UNCLASSIFIED"}
    # ... but the report speaks of both together.
    report = Runs(ws.session("eve")).report(run)
    assert report.marking.banner() == "SECRET//NOFORN"
    assert any("falcon-uranium" in n and n.startswith("compilation") for n in report.notes)
    text = render_markdown(report)
    assert "SECRET//NOFORN" in text.splitlines()[0] and "falcon-uranium" in text
    assert report_json(report)["marking"] == "SECRET//NOFORN"
    with pytest.raises(NotPermitted, match="not shown"):
        Runs(ws.session("uma")).report(run)
    denied = [e for e in ws.audit.tail() if e.action == "eval.run-report" and e.actor == "uma"]
    assert denied and denied[-1].decision == "deny"


def test_a_report_of_one_part_only_is_not_raised(ws: Workspace) -> None:
    run = _run(ws, _item("p1", "What is Project Falcon?", "A logistics study."))
    report = Runs(ws.session("uma")).report(run)
    assert report.marking.banner() == "UNCLASSIFIED"
    assert not any(n.startswith("compilation") for n in report.notes)


def test_a_comparison_of_runs_that_together_combine_the_parts_is_raised(ws: Workspace) -> None:
    a = _run(ws, _item("p1", "What is Project Falcon?", "A logistics study."))
    b = _run(ws, _item("p1", "What was weighed?", "The uranium was.", leak=1.0))
    assert Runs(ws.session("uma")).report(a).marking.banner() == "UNCLASSIFIED"
    compared = Runs(ws.session("eve")).compare(a, b)
    assert compared.marking.banner() == "SECRET//NOFORN"
    with pytest.raises(NotPermitted):
        Runs(ws.session("uma")).compare(a, b)
