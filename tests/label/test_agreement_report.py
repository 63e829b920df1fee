"""Agreement and aggregation reported by project stats (library, CLI, API), over what the
reader may read; exports aggregated by majority or Dawid–Skene; gold hidden from annotators
who review."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotPermitted
from garrison.label import (
    LabelProjects,
    agreement_report,
    export_dataset,
    export_labels,
    next_review,
    next_task,
    project_agreement,
    project_stats,
    submit,
)
from garrison.label._agreement_report import _box_f1
from garrison.label.agreement import match_boxes
from tests.label.conftest import TOPICS, LabelWorld

SCHEMA = {"classes": TOPICS}


def _wrong(topic: str) -> str:
    return TOPICS[(TOPICS.index(topic) + 1) % len(TOPICS)]


def _label_round(
    world: LabelWorld, annotators: dict[str, set[int]], *, overlap: int, name: str = "agr"
) -> dict[str, dict[str, str]]:
    """A project with gold on every other record; each annotator answers every task they
    receive, wrongly on the record numbers given. Returns record -> {annotator: value}."""
    order = sorted(world.records)
    gold = {r: world.records[r][1] for i, r in enumerate(order) if i % 2 == 0}
    LabelProjects(world.ws.session("stew")).create(
        name,
        world.dataset,
        "classification",
        SCHEMA,
        overlap=overlap,
        gold=gold,
        gold_rate=0.5,
        review_rate=1.0,
        marking="UNCLASSIFIED",
    )
    given: dict[str, dict[str, str]] = {}
    for who, wrong_on in annotators.items():
        session = world.ws.session(who)
        while (task := next_task(session, name)) is not None:
            topic = world.records[task.record_id][1]
            value = _wrong(topic) if order.index(task.record_id) in wrong_on else topic
            submit(session, task.id, value)
            given.setdefault(task.record_id, {})[who] = value
    return given


def _figure(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in report["agreement"] if f["name"] == name)


def test_agreement_and_aggregation_match_reference_implementations(world: LabelWorld) -> None:
    given = _label_round(world, {"ann_s": set(), "ann_s2": {0, 3, 5, 8}}, overlap=2)
    stats = project_stats(world.ws.session("stew"), "agr")
    units = {r: v for r, v in given.items() if len(v) == 2}
    assert units, "both annotators labeled the same tasks"
    # Krippendorff's alpha (nominal) against the krippendorff package.
    categories = {t: i for i, t in enumerate(TOPICS)}
    matrix = np.array(
        [[categories[units[r][a]] for r in sorted(units)] for a in ("ann_s", "ann_s2")],
        dtype=float,
    )
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    alpha = _figure(stats, "Krippendorff's alpha (nominal)")
    assert alpha["value"] == pytest.approx(expected_alpha)
    assert alpha["n"] == len(units) and alpha["low"] <= alpha["value"] <= alpha["high"]
    # Exactly two annotators: Cohen's kappa; every task two replicas: Fleiss' kappa.
    cohen = _figure(stats, "Cohen's kappa")
    assert cohen["value"] == pytest.approx(cohen_kappa_score(matrix[0], matrix[1]))
    table, _ = aggregate_raters(matrix.T.astype(int))
    assert _figure(stats, "Fleiss' kappa")["value"] == pytest.approx(fleiss_kappa(table))
    # Majority vote and Dawid–Skene side by side, compared on gold with Wilson intervals.
    aggregation = stats["aggregation"]
    assert set(aggregation["methods"]) == {"majority", "dawid-skene"}
    order = sorted(world.records)
    gold_tasks = [r for r in given if order.index(r) % 2 == 0]
    assert aggregation["gold"] == len(gold_tasks) > 0
    majority = aggregation["methods"]["majority"]
    assert majority["n"] + majority["ties"] >= majority["n"]
    if majority["n"]:
        ci = binomtest(majority["correct"], majority["n"]).proportion_ci(method="wilson")
        assert majority["low"] == pytest.approx(ci.low) and majority["high"] == pytest.approx(
            ci.high
        )
    skene = aggregation["methods"]["dawid-skene"]
    # Dawid–Skene settles every task (no ties) and learns that ann_s is the reliable one.
    assert skene["n"] == len(gold_tasks) and skene["accuracy"] == 1.0
    assert stats["labels_marking"] == "SECRET"
    json.dumps(stats, allow_nan=False)  # plain JSON: undefined figures are None, never NaN


def test_fleiss_only_with_equal_replicas_and_no_cohen_past_two(world: LabelWorld) -> None:
    _label_round(world, {"ann_s": set(), "ann_s2": {1, 2}, "rev": {4}}, overlap=3)
    names = {f["name"] for f in agreement_report(world.ws.session("stew"), "agr")["agreement"]}
    assert "Cohen's kappa" not in names and "Fleiss' kappa" in names


def test_agreement_counts_only_what_the_reader_may_read(world: LabelWorld) -> None:
    given = _label_round(world, {"ann_s": set(), "ann_s2": {0, 3}}, overlap=2)
    low = world.ws.session("lowstew")
    report = agreement_report(low, "agr")
    readable = [
        r for r, v in given.items() if len(v) == 2 and world.records[r][0] == "UNCLASSIFIED"
    ]
    assert _figure(report, "Krippendorff's alpha (nominal)")["n"] == len(readable)
    assert report["marking"] == "UNCLASSIFIED"
    assert report["aggregation"]["tasks"] == sum(
        1 for r in given if world.records[r][0] == "UNCLASSIFIED"
    )
    _, marking = project_agreement(low, "agr")
    assert marking is not None and marking.banner() == "UNCLASSIFIED"
    # Annotators: their own counts, never a figure computed from others' labels.
    annotator = world.ws.session("ann_s")
    mine = project_stats(annotator, "agr")
    assert not {"agreement", "aggregation", "annotators", "labels_marking"} & set(mine)
    with pytest.raises(NotPermitted):
        agreement_report(annotator, "agr")
    denied = [e for e in world.ws.audit.tail(5) if e.decision == "deny"]
    assert denied and denied[-1].action == "label.project-read"


def test_box_agreement_reports_missing_extra_and_wrong_label_counts() -> None:
    box = {"x": 0, "y": 0, "w": 10, "h": 10, "label": "ship"}
    units = {
        "t1": {"a": [box], "b": [box]},
        "t2": {"a": [box], "b": [{**box, "label": "truck"}]},
        "t3": {"a": [box, {**box, "x": 50}], "b": []},
        "t4": {"a": [], "b": [{**box, "x": 30}]},
    }
    figure = _box_f1(units).to_dict()
    assert figure["counts"] == {"matched": 1, "missing": 1, "extra": 2, "wrong_label": 1}
    whole = match_boxes(
        [[tuple(b.values()) for b in u["a"]] for u in units.values()],
        [[tuple(b.values()) for b in u["b"]] for u in units.values()],
    )
    assert figure["value"] == pytest.approx(whole.f1) == pytest.approx(2 / (2 + 2 + 2 + 1))


def test_export_by_dawid_skene_records_the_method(world: LabelWorld, tmp_path: Path) -> None:
    given = _label_round(world, {"ann_s": set(), "ann_s2": {0, 3, 5, 8}}, overlap=2)
    stew = world.ws.session("stew")
    _, majority = export_labels(stew, "agr")
    _, skene = export_labels(stew, "agr", method="dawid-skene")
    assert {r.labels["method"] for r in majority} <= {"majority"}
    assert {r.labels["method"] for r in skene} == {"dawid-skene"}
    # Ties left open by majority vote are settled by Dawid–Skene, toward the reliable annotator.
    by_id = {r.record_id: r for r in skene}
    for record_id, values in given.items():
        assert by_id[record_id].labels["aggregate"] == values["ann_s"]
        assert by_id[record_id].labels["tie"] is False
    assert any(r.labels["tie"] for r in majority)
    version = export_dataset(stew, "agr", name="agr-ds", method="dawid-skene")
    assert version.to_dict()["records"] == len(skene)
    with pytest.raises(InvalidInput, match="aggregation method"):
        export_labels(stew, "agr", method="mean")


@dataclass
class Ran:
    exit_code: int
    output: str


def _cli(capsys: pytest.CaptureFixture[str], world: LabelWorld, *args: str) -> Ran:
    code = main(["-w", str(world.ws.root), *args])
    out, err = capsys.readouterr()
    return Ran(code, out + err)


def test_cli_stats_and_export_method(
    sqlite_world: LabelWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = sqlite_world
    _label_round(world, {"ann_s": set(), "ann_s2": {0, 3}}, overlap=2)
    shown = _cli(capsys, world, "label", "project", "stats", "agr", "--as", "stew")
    assert shown.exit_code == 0, shown.output
    assert "Krippendorff's alpha (nominal)" in shown.output and "dawid-skene" in shown.output
    data = json.loads(
        _cli(capsys, world, "label", "project", "stats", "agr", "--as", "stew", "--json").output
    )
    assert set(data["aggregation"]["methods"]) == {"majority", "dawid-skene"}
    mine = _cli(capsys, world, "label", "project", "stats", "agr", "--as", "ann_s", "--json")
    assert mine.exit_code == 0 and "agreement" not in json.loads(mine.output)
    out = tmp_path / "ds.jsonl"
    args = ("label", "project", "export", "agr", "--format", "jsonl", "--out", str(out))
    done = _cli(capsys, world, *args, "--method", "dawid-skene", "--as", "stew")
    assert done.exit_code == 0, done.output
    methods = {json.loads(line)["labels"]["method"] for line in out.read_text().splitlines()}
    assert methods == {"dawid-skene"}
    bad = _cli(
        capsys, world, *args[:-1], str(tmp_path / "x.jsonl"), "--method", "mean", "--as", "stew"
    )
    assert bad.exit_code != 0 and "aggregation method" in bad.output


def _review_kinds(world: LabelWorld, who: str, name: str) -> set[str | None]:
    session = world.ws.session(who)
    item = next_review(session, name)
    assert item is not None
    return {item.task.kind, item.to_dict()["task"].get("kind")}


def test_gold_stays_hidden_from_annotators_who_review(world: LabelWorld) -> None:
    _label_round(world, {"ann_s": set(), "ann_s2": set()}, overlap=2)
    # An annotator holds the review action, but is never told a task is gold.
    assert _review_kinds(world, "ann_c", "agr") == {None}
    # A reviewer who labeled nothing in the project see the task's kind.
    kinds = _review_kinds(world, "rev", "agr")
    assert kinds <= {"gold", "production", "calibration"} and None not in kinds


def test_a_reviewer_who_labels_in_the_project_does_not_see_gold(world: LabelWorld) -> None:
    _label_round(world, {"ann_s": set()}, overlap=2)
    reviewer = world.ws.session("rev")
    task = next_task(reviewer, "agr")
    assert task is not None and task.kind is None
    submit(reviewer, task.id, world.records[task.record_id][1])
    assert _review_kinds(world, "rev", "agr") == {None}


def test_gold_hidden_through_cli_and_api(
    sqlite_world: LabelWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from garrison.api import create_app
    from garrison.store.tokens import create_token

    world = sqlite_world
    _label_round(world, {"ann_s": set(), "ann_s2": set()}, overlap=2)
    shown = _cli(capsys, world, "label", "review", "next", "agr", "--as", "ann_c", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["task"].get("kind") is None
    steward = _cli(capsys, world, "label", "review", "next", "agr", "--as", "rev", "--json")
    assert json.loads(steward.output)["task"]["kind"] in {"gold", "production"}
    tokens = {u: create_token(world.ws.session(), u, 30)[1] for u in ("ann_c", "rev")}
    with TestClient(create_app(world.ws.root), raise_server_exceptions=False) as client:
        for who, hidden in (("ann_c", True), ("rev", False)):
            response = client.post(
                "/v1/label/projects/agr/review/next",
                headers={"Authorization": f"Bearer {tokens[who]}"},
            )
            assert response.status_code == 200, response.text
            kind = response.json()["review"]["task"].get("kind")
            assert (kind is None) is hidden


def test_tampered_tasks_and_labels_are_left_out_of_exports_stats_and_accuracy(
    world: LabelWorld,
) -> None:
    from tests.store.test_bindings import _integrity_events, _marking_id, _raw

    given = _label_round(world, {"ann_s": set(), "ann_s2": set()}, overlap=2)
    stew = world.ws.session("stew")
    _, before = export_labels(stew, "agr")
    secret = sorted(r for r in given if world.records[r][0] == "SECRET")
    task_record, label_record = secret[0], secret[1]
    u = _marking_id(world.ws, "UNCLASSIFIED")
    # A task lowered to UNCLASSIFIED (every one of its labels rides on it) and one label lowered.
    _raw(
        world.ws, "UPDATE label_tasks SET marking_id = :u WHERE record_id = :r", u=u, r=task_record
    )
    with world.ws.catalog.transaction() as orm:
        from sqlalchemy import select

        from garrison.store.models import LabelRow, LabelTaskRow

        task_id = orm.scalar(select(LabelTaskRow.id).where(LabelTaskRow.record_id == label_record))
        label_id = orm.scalar(
            select(LabelRow.id).where(LabelRow.task_id == task_id, LabelRow.annotator == "ann_s")
        )
    _raw(world.ws, "UPDATE labels SET marking_id = :u WHERE id = :i", u=u, i=label_id)
    _, after = export_labels(stew, "agr")
    kept = {r.record_id: r for r in after}
    assert task_record not in kept and len(after) == len(before) - 1
    assert {a["annotator"] for a in kept[label_record].labels["annotators"]} == {"ann_s2"}
    # Each tampered row is reported, the task once although several labels ride on it.
    assert len(_integrity_events(world.ws, f"labels:{label_id}")) == 1
    with world.ws.catalog.transaction() as orm:
        lowered = orm.scalar(select(LabelTaskRow.id).where(LabelTaskRow.record_id == task_record))
    assert len(_integrity_events(world.ws, f"label_tasks:{lowered}")) == 1
    report = agreement_report(stew, "agr")
    assert report["aggregation"]["tasks"] == len(given) - 1
    quality = {q["annotator"]: q for q in project_stats(stew, "agr", agreement=False)["annotators"]}
    gold_seen = [r for r in given if sorted(world.records).index(r) % 2 == 0]
    dropped = {task_record, label_record} & set(gold_seen)
    assert quality["ann_s2"]["gold"]["answered"] == len(gold_seen) - (task_record in dropped)
    assert quality["ann_s"]["gold"]["answered"] == len(gold_seen) - len(dropped)


def test_api_stats_and_export_method(sqlite_world: LabelWorld) -> None:
    from fastapi.testclient import TestClient

    from garrison.api import MARKING_HEADER, create_app
    from garrison.store.tokens import create_token

    world = sqlite_world
    _label_round(world, {"ann_s": set(), "ann_s2": {0, 3}}, overlap=2)
    tokens = {u: create_token(world.ws.session(), u, 30)[1] for u in ("stew", "ann_s")}
    with TestClient(create_app(world.ws.root), raise_server_exceptions=False) as client:

        def call(method: str, path: str, who: str, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return client.request(method, path, headers=headers, **kw)

        stats = call("GET", "/v1/label/projects/agr/stats", "stew")
        assert stats.status_code == 200 and stats.headers[MARKING_HEADER] == "SECRET"
        body = stats.json()["stats"]
        assert _figure(body, "Cohen's kappa")["n"] > 0
        assert set(body["aggregation"]["methods"]) == {"majority", "dawid-skene"}
        mine = call("GET", "/v1/label/projects/agr/stats", "ann_s").json()["stats"]
        assert "agreement" not in mine and "aggregation" not in mine
        done = call("POST", "/v1/label/projects/agr/export", "stew", json={"method": "dawid-skene"})
        assert done.status_code == 200, done.text
        bad = call("POST", "/v1/label/projects/agr/export", "stew", json={"method": "mean"})
        assert bad.status_code == 400 and "aggregation method" in bad.text
