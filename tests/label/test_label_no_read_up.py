"""No read up through labeling: a property over projects, tasks, labels, reviews, stats and
exports, in the style of tests/test_no_read_up.py.

Hypothesis draws a subject and an operation; whatever comes back (serialized to text) must
name no record, text, typed answer or marking above the subject, its counts must be those of
what the subject may read, and a task above them must answer exactly like a missing one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.label import (
    LabelProjects,
    accept,
    agreement_report,
    annotator_quality,
    export_file,
    my_labels,
    next_review,
    next_task,
    project_stats,
    skip,
    submit,
)
from garrison.security.markings import dominates, parse_marking
from tests.label.conftest import LabelWorld, build_world

#: Typed by the SECRET annotator, marked SECRET, on every task (UNCLASSIFIED ones too).
CANARY = "mongoosequill"
SUBJECTS = {"ann_u": "U", "ann_c": "C", "ann_s": "S", "rev_u": "U", "lowstew": "U", "stew": "S"}
BANNERS = {"U": "UNCLASSIFIED", "C": "CONFIDENTIAL", "S": "SECRET"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelWorld]:
    built = build_world(tmp_path_factory.mktemp("label-nru"))
    LabelProjects(built.ws.session("stew")).create(
        "nru", built.dataset, "answer", {"instructions": "Say it."}, overlap=3, review_rate=1.0,
        gold={r: "a ledger" for i, r in enumerate(sorted(built.records)) if i % 4 == 0},
        gold_rate=0.2, marking="UNCLASSIFIED",
    )  # fmt: skip
    secret = built.ws.session("ann_s")
    while (task := next_task(secret, "nru")) is not None:
        submit(secret, task.id, f"{CANARY} ledger", marking="SECRET")
    yield built
    built.ws.close()


def _forbidden(world: LabelWorld, clearance: str) -> list[str]:
    ceiling = parse_marking(clearance)
    out = [CANARY] if clearance != "S" else []
    for record_id, (banner, _, text) in world.records.items():
        if not dominates(ceiling, parse_marking(banner)):
            out += [record_id, text]
    out += [BANNERS[c] for c in ("C", "S") if not dominates(ceiling, parse_marking(BANNERS[c]))]
    return out


def _readable_tasks(world: LabelWorld, clearance: str) -> int:
    ceiling = parse_marking(clearance)
    return sum(1 for b, _, _ in world.records.values() if dominates(ceiling, parse_marking(b)))


def _work(session: Any) -> Any:
    task = next_task(session, "nru")
    if task is None:
        return None
    label = submit(session, task.id, "plain ledger")
    return {"task": task.to_dict(), "label": label.to_dict()}


def _skip(session: Any) -> Any:
    task = next_task(session, "nru")
    return skip(session, task.id, "unclear").to_dict() if task else None


def _review(session: Any) -> Any:
    item = next_review(session, "nru")
    if item is None:
        return None
    data = item.to_dict()
    accept(session, item.label.id)
    return data


def _export(session: Any, tmp: Path) -> Any:
    target = tmp / f"{session.subject.name}-{len(list(tmp.iterdir()))}.jsonl"
    export_file(session, "nru", "jsonl", target)
    return target.read_text()


OPERATIONS: dict[str, Callable[..., Any]] = {
    "work": _work,
    "skip": _skip,
    "review": _review,
    "stats": lambda s: project_stats(s, "nru"),
    "quality": lambda s: annotator_quality(s, "nru"),
    "agreement": lambda s: agreement_report(s, "nru"),
    "page": lambda s: LabelProjects(s).tasks("nru", limit=1000)[0],
    "mine": lambda s: [label.to_dict() for label in my_labels(s, "nru")],
    "list": lambda s: [p.to_dict() for p in LabelProjects(s).list()],
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(user=st.sampled_from(sorted(SUBJECTS)), op=st.sampled_from([*sorted(OPERATIONS), "export"]))
def test_labeling_never_reads_up(world: LabelWorld, tmp_path: Path, user: str, op: str) -> None:
    session = world.ws.session(user)
    result: Any = None
    try:
        result = _export(session, tmp_path) if op == "export" else OPERATIONS[op](session)
        text = json.dumps(result, default=str)
    except GarrisonError as exc:  # refusals (roles) must not leak either
        text = str(exc)
    for word in _forbidden(world, SUBJECTS[user]):
        assert word not in text, f"{user} {op} revealed {word!r}"
    if op == "stats" and isinstance(result, dict):
        assert result["tasks"] == _readable_tasks(world, SUBJECTS[user])
    if op in ("stats", "agreement") and isinstance(result, dict) and "aggregation" in result:
        # Aggregated and agreed over readable tasks only.
        assert result["aggregation"]["tasks"] <= _readable_tasks(world, SUBJECTS[user])
    if op == "page" and isinstance(result, list):
        assert len(result) == _readable_tasks(world, SUBJECTS[user])


def test_a_task_above_answers_like_a_missing_one(world: LabelWorld) -> None:
    page, _ = LabelProjects(world.ws.session("stew")).tasks("nru", limit=1000)
    secret = next(t["id"] for t in page if t["marking"] == "SECRET")
    low = world.ws.session("ann_u")
    messages = []
    for task_id in (secret, "9" * 32):
        with pytest.raises(GarrisonError) as caught:
            submit(low, task_id, "x")
        messages.append((type(caught.value), str(caught.value).replace(task_id, "ID")))
    assert messages[0] == messages[1]
