"""Projects, the clearance-bound queue, blind overlap, drafts, skips, and typed markings."""

from __future__ import annotations

import pytest

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.label import (
    LabelProjects,
    my_labels,
    next_task,
    project_stats,
    skip,
    submit,
)
from garrison.security.markings import dominates, parse_marking
from tests.label.conftest import LabelWorld

SCHEMA = {"classes": ["logistics", "weather", "personnel"], "instructions": "Pick the topic."}


def _project(world: LabelWorld, name: str = "topics", **options: object) -> None:
    steward = world.ws.session("stew")
    LabelProjects(steward).create(
        name, world.dataset, "classification", SCHEMA, marking="UNCLASSIFIED", **options
    )


def _drain(world: LabelWorld, user: str, project: str = "topics") -> list[str]:
    """Label every task the user is handed (with the right topic); the record ids."""
    session = world.ws.session(user)
    done = []
    while (task := next_task(session, project)) is not None:
        submit(session, task.id, world.records[task.record_id][1])
        done.append(task.record_id)
    return done


def _readable(world: LabelWorld, clearance: str) -> set[str]:
    ceiling = parse_marking(clearance)
    return {r for r, (m, _, _) in world.records.items() if dominates(ceiling, parse_marking(m))}


def test_tasks_follow_clearance_and_overlap(world: LabelWorld) -> None:
    _project(world, overlap=2)
    got_u = _drain(world, "ann_u")
    assert set(got_u) == _readable(world, "UNCLASSIFIED") and len(got_u) == len(set(got_u))
    got_s = _drain(world, "ann_s")
    assert set(got_s) == set(world.records)
    got_s2 = _drain(world, "ann_s2")
    # Overlap 2: the UNCLASSIFIED tasks already have their two replicas.
    assert set(got_s2) == set(world.records) - set(got_u)
    # The counts of a low annotator cover only what they may read.
    stats_u = project_stats(world.ws.session("ann_u"), "topics")
    assert stats_u["tasks"] == len(_readable(world, "UNCLASSIFIED"))
    assert "annotators" not in stats_u and "kinds" not in stats_u
    assert stats_u["labels"] == {"submitted": len(got_u)}
    stats = project_stats(world.ws.session("stew"), "topics")
    assert stats["tasks"] == len(world.records) and stats["complete"] == len(world.records)
    assert {a["annotator"] for a in stats["annotators"]} == {"ann_u", "ann_s", "ann_s2"}
    # A steward cleared only to UNCLASSIFIED counts only UNCLASSIFIED work.
    low = project_stats(world.ws.session("lowstew"), "topics")
    assert low["tasks"] == len(got_u) and low["labels"]["submitted"] == 2 * len(got_u)


def test_labels_are_blind_and_tasks_above_do_not_exist(world: LabelWorld) -> None:
    _project(world, overlap=3)
    _drain(world, "ann_s")
    session_u = world.ws.session("ann_u")
    assert my_labels(session_u, "topics") == []
    secret = next(r for r, (m, _, _) in world.records.items() if m == "SECRET")
    steward = world.ws.session("stew")
    page, _ = LabelProjects(steward).tasks("topics", limit=100)
    secret_task = next(t["id"] for t in page if t["record_id"] == secret)
    for call in (
        lambda: submit(session_u, secret_task, "weather"),
        lambda: skip(session_u, secret_task, "no"),
        lambda: submit(session_u, "0" * 32, "weather"),
    ):
        with pytest.raises(NotFound, match="No task"):
            call()
    low_page, _ = LabelProjects(session_u).tasks("topics", limit=100)
    assert {t["record_id"] for t in low_page} == _readable(world, "UNCLASSIFIED")
    assert all("kind" not in t for t in low_page)
    labels_s = my_labels(world.ws.session("ann_s"), "topics")
    assert {label.annotator for label in labels_s} == {"ann_s"}


def test_drafts_come_back_and_skips_return_the_replica(world: LabelWorld) -> None:
    _project(world, overlap=1)
    session = world.ws.session("ann_u")
    first = next_task(session, "topics")
    assert first is not None and first.draft is None
    submit(session, first.id, "weather", draft=True)
    again = next_task(session, "topics")
    assert again is not None and again.id == first.id and again.draft == "weather"
    skipped = skip(session, first.id, "unclear wording")
    assert skipped.status == "skipped" and skipped.reason == "unclear wording"
    other = next_task(session, "topics")
    assert other is not None and other.id != first.id
    # The skipped replica went back: another annotator gets the task.
    assert first.record_id in _drain(world, "ann_c")
    with pytest.raises(InvalidInput, match="flag needs a reason"):
        skip(session, other.id, flag=True)
    flagged = skip(session, other.id, "text is garbled", flag=True)
    assert flagged.flagged


def test_submitted_labels_never_change_and_values_are_checked(world: LabelWorld) -> None:
    _project(world)
    session = world.ws.session("ann_s")
    task = next_task(session, "topics")
    assert task is not None
    with pytest.raises(InvalidInput, match="not a class"):
        submit(session, task.id, "astrology")
    label = submit(session, task.id, "weather")
    assert label.schema_version == 1 and label.status == "submitted"
    with pytest.raises(InvalidInput, match="never change"):
        submit(session, task.id, "logistics")


def test_roles(world: LabelWorld) -> None:
    with pytest.raises(NotPermitted):
        LabelProjects(world.ws.session("ann_s")).create(
            "x", world.dataset, "classification", SCHEMA
        )
    _project(world)
    with pytest.raises(NotPermitted):
        next_task(world.ws.session("view"), "topics")
    with pytest.raises(NotFound):
        next_task(world.ws.session("ann_s"), "nope")


def test_project_marking_and_schema_checks(world: LabelWorld) -> None:
    projects = LabelProjects(world.ws.session("stew"))
    with pytest.raises(InvalidInput, match="needs classes"):
        projects.create("a", world.dataset, "classification", {})
    with pytest.raises(InvalidInput, match="Unknown task type"):
        projects.create("a", world.dataset, "poetry", SCHEMA)
    with pytest.raises(InvalidInput, match="above what you may read"):
        projects.create("a", world.dataset, "classification", SCHEMA, marking="TOP SECRET")
    made = projects.create("a", world.dataset, "classification", SCHEMA)
    assert made.marking.banner() == "UNCLASSIFIED"  # the lowest of its records'
    revised = projects.revise_schema("a", {**SCHEMA, "instructions": "Pick one topic."})
    assert revised.schema_version == 2
    session = world.ws.session("ann_u")
    task = next_task(session, "a")
    assert task is not None and task.schema_version == 2
    assert submit(session, task.id, "weather").schema_version == 2


ANSWER = {"instructions": "Which ledger does the report name?"}


def test_typed_answers_are_marked_with_the_join(world: LabelWorld) -> None:
    LabelProjects(world.ws.session("stew")).create(
        "qa", world.dataset, "answer", ANSWER, marking="UNCLASSIFIED"
    )
    low = world.ws.session("ann_u")
    task = next_task(low, "qa")
    assert task is not None and task.marking.banner() == "UNCLASSIFIED"
    # By default the answer is marked like its record; a lower claim cannot lower it.
    with pytest.raises(InvalidInput, match="above what you may read"):
        submit(low, task.id, "the harbor ledger", marking="SECRET")
    label = submit(low, task.id, "the harbor ledger")
    assert label.marking.banner() == "UNCLASSIFIED"
    high = world.ws.session("ann_s")
    seen = []
    while (t := next_task(high, "qa")) is not None:
        label = submit(
            high,
            t.id,
            "a ledger",
            marking="CONFIDENTIAL" if t.marking.banner() != "SECRET" else "UNCLASSIFIED",
        )
        seen.append((t.marking.banner(), label.marking.banner()))
    assert ("UNCLASSIFIED", "CONFIDENTIAL") in seen
    assert ("SECRET", "SECRET") in seen  # the claim below the record leaves the record's
    # The CONFIDENTIAL answers on UNCLASSIFIED records are not the low annotator's to see,
    # nor counted for a steward cleared to UNCLASSIFIED.
    low_stats = project_stats(world.ws.session("lowstew"), "qa")
    assert low_stats["labels"]["submitted"] == 1


def test_create_from_items_marks_at_least_as_given(world: LabelWorld) -> None:
    unclassified = [r for r, (m, _, _) in world.records.items() if m == "UNCLASSIFIED"][:2]
    project = LabelProjects(world.ws.session("stew")).create_from_items(
        "failed",
        world.dataset,
        "classification",
        SCHEMA,
        [(unclassified[0], "UNCLASSIFIED"), (unclassified[1], "SECRET")],
        marking="UNCLASSIFIED",
    )
    assert project.name == "failed"
    got = _drain(world, "ann_u", "failed")
    assert got == [unclassified[0]]
    with pytest.raises(InvalidInput, match="no items"):
        LabelProjects(world.ws.session("stew")).create_from_items(
            "empty", world.dataset, "classification", SCHEMA, []
        )
