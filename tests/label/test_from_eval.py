"""The data-engine loop: an evaluation run's failed items become labeling tasks over the records
they came from, and their labels a dataset version a classifier is trained on again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.api import MARKING_HEADER, create_app
from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.evaluate import Runs, SystemSpec, failed_records, label_failed
from garrison.evaluate._suite_items import NewItem, item_content
from garrison.evaluate._suites import Suites
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.label import LabelProjects, next_task, submit
from garrison.models import Models
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import dominates
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from tests.label.conftest import PIPELINE, USERS, write_corpus
from tests.models.registered import classifier_folder
from tests.models.tiny import tiny_sentence_transformer

N = 30


@dataclass
class Loop:
    ws: Workspace
    root: str
    #: The dataset version the suite was built from (a ``priority`` field on each record).
    dataset: str
    #: Record id -> (banner, report number, expected priority).
    records: dict[str, tuple[str, str, str]]
    classifier: str
    run: str


def _number(text: str) -> int:
    return int(text.split("Report ", 1)[1].split(" ", 1)[0])


def build_loop(root: Path, db_url: str | None = None, n: int = N) -> Loop:
    ws = Workspace.init(root / "ws", system_high="TOP SECRET", db_url=db_url)
    write_corpus(root / "in", n)
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="plain.yaml"))
    for name, (clearance, role) in {**USERS, "eve": ("S", "evaluator")}.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=(role,)))
    datasets = Datasets(ws.session("stew"))
    base = datasets.create(
        "reports", Selection(kind="elements", fields=()), ratios={"train": 0.5, "test": 0.5}
    )
    # The suite's labels: even-numbered reports are urgent, odd ones routine.
    priority = {
        r.id: "urgent" if _number(r.text) % 2 == 0 else "routine" for r in datasets.records(base)
    }
    triage = datasets.derive(
        base.id, name="triage", fields={rid: {"priority": p} for rid, p in priority.items()}
    )
    records = {r.id: (r.marking, _number(r.text), priority[r.id]) for r in datasets.records(triage)}
    models = Models(system)
    embedder = models.register(
        kind="embedder", name="tiny", folder=tiny_sentence_transformer(root / "tiny")
    )
    # The test head answers "urgent" for every text: every routine item fails.
    head = models.register(
        kind="classifier",
        name="triage",
        folder=classifier_folder(root, embedder.id, "triage"),
        base=embedder.id,
    )
    eve = ws.session("eve")
    suite = Suites(eve).from_dataset("triage", triage.id, text_field="text", label_field="priority")
    run = Runs(eve).start(suite.ref, SystemSpec("classifier", head.ref))
    return Loop(ws, str(ws.root), triage.id, records, head.ref, run.ref)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    built = build_loop(tmp_path_factory.mktemp("loop"))
    yield built
    built.ws.close()


def _cli(capsys: pytest.CaptureFixture[str], loop: Loop, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "-w", loop.root])
    out, err = capsys.readouterr()
    return code, out, err


def _routine(loop: Loop, readable: str | None = None) -> set[str]:
    return {
        rid
        for rid, (banner, _t, p) in loop.records.items()
        if p == "routine" and (readable is None or banner == readable)
    }


def test_suite_items_from_a_dataset_remember_their_record(loop: Loop) -> None:
    items = Suites(loop.ws.session("eve")).read_items("triage")
    assert {i.record for i in items} == set(loop.records)
    assert all(i.to_dict()["record"] == i.record for i in items)
    # Items from anywhere else name no record (and keep their ids: no record key is hashed).
    other = NewItem(input={"text": "x"}, expected={"label": "a"}, marking=items[0].marking)
    assert other.record is None
    args = ("classification", other.input, other.expected, other.marking, (), None, {})
    assert "record" not in item_content(*args)
    assert item_content(*args, None, "r1")["record"] == "r1"


def test_the_loop_end_to_end(loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    summary = Runs(loop.ws.session("eve")).get(loop.run)
    assert summary.counts["scored"] == N
    failed = _routine(loop)
    code, out, err = _cli(
        capsys, loop, "label", "project", "create", "relabel", "--from-eval", loop.run,
        "--failed", "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["task_type"] == "classification"
    assert data["from_eval"] == {
        "run": loop.run,
        "suite": data["from_eval"]["suite"],
        "metric": "accuracy",
        "scored": N,
        "failed": len(failed),
    }
    assert sorted(data["schema"]["classes"]) == ["routine", "urgent"]
    stew = loop.ws.session("stew")
    tasks, _ = LabelProjects(stew).tasks("relabel", limit=1000)
    assert {t["record_id"] for t in tasks} == failed
    for task in tasks:  # each task marked at least as its item was evaluated
        assert dominates(stew.parse_marking(task["marking"]), stew.parse_marking(
            loop.records[task["record_id"]][0]
        ))  # fmt: skip

    # Annotators label them, each only what they may read: reports 1, 5, 9... were urgent.
    for annotator in ("ann_u", "ann_c", "ann_s"):
        session = loop.ws.session(annotator)
        while (task := next_task(session, "relabel")) is not None:
            assert session.can_read(task.marking)
            truth = "urgent" if loop.records[task.record_id][1] % 4 == 1 else "routine"
            submit(session, task.id, truth)
    code, out, err = _cli(
        capsys, loop, "label", "project", "export", "relabel", "--format", "dataset",
        "--name", "triage-fixed", "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err
    version = Datasets(stew).get("triage-fixed")
    labeled = {
        r.id: r.fields["labels"]["aggregate"]
        for r in Datasets(stew).records(version)
        if "labels" in r.fields
    }
    assert set(labeled) == failed
    urgent = {rid for rid, v in labeled.items() if v == "urgent"}
    assert urgent == {rid for rid in failed if loop.records[rid][1] % 4 == 1}

    # A classifier trained again on the new version learns from the labels (only the labeled
    # records: the others were not in the export).
    code, out, err = _cli(
        capsys, loop, "model", "train", "classifier", "triage-fixed", "--dataset",
        "triage-fixed", "--text-field", "text", "--label-field", "labels.aggregate",
        "--embedder", "tiny", "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    splits = report["splits"]
    assert splits["train"] + splits["validation"] + splits["test"] == len(failed)
    assert report["dataset"]["id"] == version.id


def test_a_lower_cleared_steward_gets_only_what_they_may_read(
    loop: Loop, capsys: pytest.CaptureFixture[str]
) -> None:
    low = loop.ws.session("lowstew")
    found = failed_records(low, loop.run)
    assert 0 < len(_routine(loop, "UNCLASSIFIED")) < len(_routine(loop))
    assert {r for r, _ in found.items} == _routine(loop, "UNCLASSIFIED")
    assert found.failed == len(_routine(loop, "UNCLASSIFIED"))
    assert found.scored == sum(1 for b, _t, _p in loop.records.values() if b == "UNCLASSIFIED")
    assert all(m.banner() == "UNCLASSIFIED" for _, m in found.items)
    # The version they came from holds records above them: no project over it for them.
    code, _out, err = _cli(
        capsys, loop, "label", "project", "create", "low", "--from-eval", loop.run,
        "--failed", "--as", "lowstew",
    )  # fmt: skip
    assert code != 0 and "SECRET" not in err
    with pytest.raises(NotFound):
        failed_records(loop.ws.session("lowstew"), "RUN-" + "0" * 12)


def test_holdout_suites_are_never_labeled(loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    eve = loop.ws.session("eve")
    suite = Suites(eve).from_dataset(
        "triage-holdout", loop.dataset, text_field="text", label_field="priority", holdout=True
    )
    run = Runs(eve).start(suite.ref, SystemSpec("classifier", loop.classifier))
    with pytest.raises(NotPermitted, match="holdout"):
        failed_records(loop.ws.session("stew"), run.ref)
    with pytest.raises(NotPermitted, match="holdout"):
        failed_records(eve, run.ref)
    code, _out, err = _cli(
        capsys, loop, "label", "project", "create", "held", "--from-eval", run.ref,
        "--failed", "--as", "stew",
    )  # fmt: skip
    assert code == 4 and "holdout" in err
    with pytest.raises(NotFound):
        LabelProjects(loop.ws.session("stew")).get("held")


def test_runs_of_other_suites_are_refused(loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    eve = loop.ws.session("eve")
    items = [
        NewItem(
            input={"text": f"Report {i} of the harbor."},
            expected={"label": "routine"},
            marking=eve.parse_marking("UNCLASSIFIED"),
        )
        for i in range(4)
    ]
    suite = Suites(eve).create("plain", "classification", items, source={"type": "jsonl"})
    run = Runs(eve).start(suite.ref, SystemSpec("classifier", loop.classifier))
    with pytest.raises(InvalidInput, match="was not built from a dataset"):
        failed_records(loop.ws.session("stew"), run.ref)
    code, _out, err = _cli(
        capsys, loop, "label", "project", "create", "plain", "--from-eval", run.ref,
        "--failed", "--as", "stew",
    )  # fmt: skip
    assert code == 2 and "was not built from a dataset" in err


def test_cli_options_go_together(loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ("--from-eval", loop.run),  # without --failed
        ("--failed",),  # without --from-eval
        ("--from-eval", loop.run, "--failed", "--dataset", "triage"),
        ("--from-eval", loop.run, "--failed", "--metric", "nosuch"),
    ):
        code, _out, err = _cli(
            capsys, loop, "label", "project", "create", "x", *argv, "--as", "stew"
        )
        assert code != 0 and err.strip()
    with pytest.raises(NotPermitted):  # a viewer cannot make projects at all
        label_failed(loop.ws.session("view"), "v", loop.run)


def test_api_creates_a_project_from_failed_items(loop: Loop) -> None:
    tokens = {u: create_token(loop.ws.session(), u, 30)[1] for u in ("stew", "lowstew")}
    with TestClient(create_app(Path(loop.root)), raise_server_exceptions=False) as client:
        body = {"name": "api-relabel", "from_eval": loop.run, "failed": True}
        got = client.post(
            "/v1/label/projects", json=body, headers={"Authorization": f"Bearer {tokens['stew']}"}
        )
        assert got.status_code == 200, got.text
        data = got.json()
        assert data["from_eval"]["failed"] == len(_routine(loop))
        assert got.headers[MARKING_HEADER] == data["marking"]
        refused = client.post(
            "/v1/label/projects",
            json={"name": "api-x", "from_eval": loop.run},
            headers={"Authorization": f"Bearer {tokens['stew']}"},
        )
        assert refused.status_code == 400
        low = client.post(
            "/v1/label/projects",
            json={"name": "api-low", "from_eval": loop.run, "failed": True},
            headers={"Authorization": f"Bearer {tokens['lowstew']}"},
        )
        assert low.status_code in (400, 403, 404) and "SECRET" not in low.text


_SEEN: set[str] = set()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    clearance=st.sampled_from(["U", "C", "S", "TS"]),
    role=st.sampled_from(["steward", "viewer", "evaluator", "annotator", "reviewer"]),
    api=st.booleans(),
)
def test_no_failed_item_above_the_caller_is_revealed(
    loop: Loop, clearance: str, role: str, api: bool
) -> None:
    name = f"p_{clearance}_{role}".lower()
    system = loop.ws.session()
    if name not in _SEEN:
        system.add_user(name, SubjectSpec(clearance=clearance, roles=(role,)))
        _SEEN.add(name)
    session = loop.ws.session(name)
    readable = {
        rid
        for rid, (banner, _n, _p) in loop.records.items()
        if session.can_read(session.parse_marking(banner))
    }
    allowed = _routine(loop) & readable
    hidden = set(loop.records) - readable
    if api:
        token = create_token(system, name, 5)[1]
        with TestClient(create_app(Path(loop.root)), raise_server_exceptions=False) as client:
            got = client.post(
                "/v1/label/projects",
                json={"name": f"prop-{name}", "from_eval": loop.run, "failed": True},
                headers={"Authorization": f"Bearer {token}"},
            )
        text = got.text
        if got.status_code == 200:
            assert got.json()["from_eval"]["failed"] == len(allowed)
    else:
        try:
            found = failed_records(session, loop.run)
        except (NotFound, NotPermitted) as exc:
            text = str(exc)
        else:
            assert {r for r, _ in found.items} == allowed
            assert all(session.can_read(m) for _, m in found.items)
            text = json.dumps(found.to_dict())
    for rid in hidden:
        assert rid not in text
    if clearance != "TS" and clearance != "S":
        assert "SECRET" not in text


def test_failed_items_become_tasks_on_each_catalog(tmp_path: Path, catalog_url: str | None) -> None:
    small = build_loop(tmp_path, catalog_url, n=12)
    try:
        stew = small.ws.session("stew")
        project, found = label_failed(stew, "relabel", small.run)
        assert {r for r, _ in found.items} == _routine(small)
        tasks, _ = LabelProjects(stew).tasks(project.name, limit=1000)
        assert {t["record_id"] for t in tasks} == _routine(small)
        low = failed_records(small.ws.session("lowstew"), small.run)
        assert {r for r, _ in low.items} == _routine(small, "UNCLASSIFIED")
    finally:
        small.ws.close()
