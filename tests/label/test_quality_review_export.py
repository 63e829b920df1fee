"""Gold, calibration and pause; the review queue; exports back into dataset versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import binomtest

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets
from garrison.label import (
    LabelProjects,
    accept,
    annotator_quality,
    export_dataset,
    export_file,
    fix,
    next_review,
    next_task,
    project_stats,
    reject,
    resume,
    submit,
    wilson_interval,
)
from tests.label.conftest import TOPICS, LabelWorld

SCHEMA = {"classes": TOPICS}


@pytest.mark.parametrize(("k", "n"), [(0, 1), (3, 10), (7, 7), (45, 50), (1, 200)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(ref.low, abs=1e-9) and high == pytest.approx(ref.high, abs=1e-9)


def _gold(world: LabelWorld) -> dict[str, str]:
    return {r: topic for r, (_, topic, _) in world.records.items()}


def test_calibration_then_gold_then_pause(world: LabelWorld) -> None:
    gold = _gold(world)
    LabelProjects(world.ws.session("stew")).create(
        "qc",
        world.dataset,
        "classification",
        SCHEMA,
        gold=gold,
        calibration=3,
        calibration_threshold=0.6,
        pause_threshold=0.5,
        min_gold=2,
        marking="UNCLASSIFIED",
    )
    good = world.ws.session("ann_s")
    kinds = []
    while (task := next_task(good, "qc")) is not None:
        assert task.kind is None  # an annotator is never told a task is gold
        submit(good, task.id, gold[task.record_id])
        kinds.append(task.record_id)
    quality = {q["annotator"]: q for q in annotator_quality(world.ws.session("stew"), "qc")}
    assert quality["ann_s"]["state"] == "active"
    assert quality["ann_s"]["calibration"]["answered"] == 3
    assert quality["ann_s"]["gold"]["accuracy"] == 1.0
    low, high = quality["ann_s"]["gold"]["interval"]
    assert 0 < low < 1 == high
    # A careless annotator fails calibration and is paused (audited), then resumed.
    bad = world.ws.session("ann_s2")
    for _ in range(3):
        task = next_task(bad, "qc")
        assert task is not None
        wrong = next(t for t in TOPICS if t != gold[task.record_id])
        submit(bad, task.id, wrong)
    with pytest.raises(NotPermitted, match="paused"):
        next_task(bad, "qc")
    events = [e for e in world.ws.audit.tail(20) if e.action == "label.pause"]
    assert events and events[-1].details["annotator"] == "ann_s2"
    with pytest.raises(NotPermitted):
        resume(world.ws.session("ann_s"), "qc", "ann_s2")
    resume(world.ws.session("stew"), "qc", "ann_s2")
    # Back at work, wrong gold answers pause again below the threshold.
    paused = False
    for _ in range(20):
        try:
            task = next_task(bad, "qc")
        except NotPermitted:
            paused = True
            break
        assert task is not None
        submit(bad, task.id, next(t for t in TOPICS if t != gold[task.record_id]))
    assert paused
    # A low steward's view of quality counts only UNCLASSIFIED gold.
    low_view = {q["annotator"]: q for q in annotator_quality(world.ws.session("lowstew"), "qc")}
    assert low_view["ann_s"]["gold"]["answered"] < quality["ann_s"]["gold"]["answered"]


def test_gold_hidden_at_rate(world: LabelWorld) -> None:
    gold = {r: t for i, (r, (_, t, _)) in enumerate(sorted(world.records.items())) if i % 2}
    LabelProjects(world.ws.session("stew")).create(
        "mix", world.dataset, "classification", SCHEMA, gold=gold, gold_rate=0.3
    )
    session = world.ws.session("ann_s")
    seen = []
    while (task := next_task(session, "mix")) is not None:
        submit(session, task.id, world.records[task.record_id][1])
        seen.append(task.record_id)
    assert set(seen) == set(world.records)
    page, _ = LabelProjects(world.ws.session("stew")).tasks("mix", limit=100)
    assert {t["kind"] for t in page} == {"gold", "production"}


def test_review_accept_fix_reject(world: LabelWorld) -> None:
    LabelProjects(world.ws.session("stew")).create(
        "rv", world.dataset, "classification", SCHEMA, overlap=2, review_rate=1.0
    )
    for user in ("ann_s", "ann_c"):
        session = world.ws.session(user)
        while (task := next_task(session, "rv")) is not None:
            submit(session, task.id, "weather")
    reviewer = world.ws.session("rev")
    verdicts = []
    while (item := next_review(reviewer, "rv")) is not None:
        assert item.label.annotator != "rev"
        # Review ends blindness: the other replica of the task is shown beside it.
        others = {o.annotator for o in item.others}
        assert item.label.annotator not in others
        topic = world.records[item.task.record_id][1]
        if len(verdicts) % 3 == 0:
            verdicts.append(accept(reviewer, item.label.id).review_state)
        elif len(verdicts) % 3 == 1:
            fixed = fix(reviewer, item.label.id, topic)
            assert fixed.kind == "fix" and fixed.parent_id == item.label.id
            verdicts.append("fixed")
        else:
            reject(reviewer, item.label.id, "wrong topic")
            verdicts.append("rejected")
        with pytest.raises(InvalidInput, match="already reviewed"):
            accept(reviewer, item.label.id)
    assert {"accepted", "fixed", "rejected"} <= set(verdicts)
    stats = project_stats(world.ws.session("stew"), "rv")
    assert stats["review"]["rejected"] >= 1 and "pending" not in stats["review"]
    # A rejected replica goes back to the queue.
    again = next_task(world.ws.session("ann_s2"), "rv")
    assert again is not None
    with pytest.raises(InvalidInput, match="needs a reason"):
        reject(reviewer, "x" * 32, " ")
    with pytest.raises(NotFound):
        accept(reviewer, "x" * 32)


def test_low_reviewer_sees_only_low_labels(world: LabelWorld) -> None:
    LabelProjects(world.ws.session("stew")).create(
        "rv2", world.dataset, "classification", SCHEMA, review_rate=1.0, marking="UNCLASSIFIED"
    )
    session = world.ws.session("ann_s")
    while (task := next_task(session, "rv2")) is not None:
        submit(session, task.id, "weather")
    low = world.ws.session("rev_u")
    seen = []
    while (item := next_review(low, "rv2")) is not None:
        seen.append(item.task.marking.banner())
        accept(low, item.label.id)
    assert seen and set(seen) == {"UNCLASSIFIED"}


def test_export_round_trip(world: LabelWorld, tmp_path: Path) -> None:
    LabelProjects(world.ws.session("stew")).create(
        "ex",
        world.dataset,
        "answer",
        {"instructions": "Name the ledger."},
        overlap=2,
        marking="UNCLASSIFIED",
    )
    for user in ("ann_s", "ann_s2"):
        session = world.ws.session(user)
        while (task := next_task(session, "ex")) is not None:
            typed = (
                "SECRET" if user == "ann_s2" and task.marking.banner() == "UNCLASSIFIED" else None
            )
            submit(session, task.id, f"{world.records[task.record_id][1]} ledger", marking=typed)
    with pytest.raises(NotPermitted):
        export_dataset(world.ws.session("ann_s"), "ex")
    version = export_dataset(world.ws.session("stew"), "ex", name="reports-labeled")
    records = {r.id: r for r in Datasets(world.ws.session("stew")).records(version)}
    assert set(records) == set(world.records)
    for record_id, (banner, topic, text) in world.records.items():
        record = records[record_id]
        labels = record.fields["labels"]
        assert labels["aggregate"] == f"{topic} ledger" and record.text == text
        assert {a["annotator"] for a in labels["annotators"]} == {"ann_s", "ann_s2"}
        # A SECRET answer on an UNCLASSIFIED record raises the record to SECRET.
        assert record.marking == "SECRET" if banner == "UNCLASSIFIED" else banner
    assert version.marking.banner() == "SECRET"
    assert version.manifest["derived_from"]["id"] == world.dataset
    # The same labels give the same version.
    assert export_dataset(world.ws.session("stew"), "ex", name="reports-labeled").id == version.id
    out = tmp_path / "labels.jsonl"
    written = export_file(world.ws.session("stew"), "ex", "jsonl", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert written["records"] == len(lines) == len(world.records)
    with pytest.raises(InvalidInput, match="already exists"):
        export_file(world.ws.session("stew"), "ex", "jsonl", out)
    # A steward cleared to UNCLASSIFIED exports only what they may read: the UNCLASSIFIED
    # records' labels without the SECRET answers.
    low_out = tmp_path / "low.jsonl"
    export_file(world.ws.session("lowstew"), "ex", "jsonl", low_out)
    low = [json.loads(line) for line in low_out.read_text().splitlines()]
    assert low and all(r["marking"] == "UNCLASSIFIED" for r in low)
    assert all({a["annotator"] for a in r["labels"]["annotators"]} == {"ann_s"} for r in low)
    actions = [e.action for e in world.ws.audit.tail(30)]
    assert "label.export" in actions and "label.submit" in actions


def test_file_formats_round_trip(sqlite_world: LabelWorld, tmp_path: Path) -> None:
    from garrison.label.formats import read_label_studio

    world = sqlite_world
    LabelProjects(world.ws.session("stew")).create(
        "fmt", world.dataset, "classification", SCHEMA, overlap=2, marking="UNCLASSIFIED"
    )
    spans = LabelProjects(world.ws.session("stew"))
    spans.create("ner", world.dataset, "spans", {"span_types": ["TOPIC"]}, marking="UNCLASSIFIED")
    for user in ("ann_s", "ann_s2"):
        session = world.ws.session(user)
        while (task := next_task(session, "fmt")) is not None:
            submit(session, task.id, world.records[task.record_id][1])
    session = world.ws.session("ann_s")
    while (task := next_task(session, "ner")) is not None:
        topic = world.records[task.record_id][1]
        start = task.text.index(topic)
        submit(session, task.id, [{"start": start, "end": start + len(topic), "type": "TOPIC"}])
    out = tmp_path / "ls.json"
    export_file(world.ws.session("stew"), "fmt", "label-studio", out)
    back = read_label_studio(out)
    assert len(back) == 2 * len(world.records)  # every replica
    assert {r.record_id for r in back} == set(world.records)
    assert {r.value for r in back} <= set(TOPICS)
    assert (tmp_path / "ls.json.marking").read_text().strip() == "SECRET"
    conll = tmp_path / "ner.conll"
    export_file(world.ws.session("stew"), "ner", "conll", conll)
    text = conll.read_text()
    assert "B-TOPIC" in text and text.startswith("# marking = SECRET")
    low = tmp_path / "low.conll"
    export_file(world.ws.session("lowstew"), "ner", "conll", low)
    assert "SECRET" not in low.read_text() and "CONFIDENTIAL" not in low.read_text()
    with pytest.raises(InvalidInput, match="Unknown label export format"):
        export_file(world.ws.session("stew"), "ner", "docx", tmp_path / "x.docx")
