"""Selecting dataset records by label: only readable predictions count, records are marked
with the predictions that picked them or that they show."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from garrison.cli.main import main
from garrison.core.errors import InvalidInput
from garrison.datasets import Datasets, Selection
from garrison.security.markings import dominates
from garrison.store.models import ChunkRow, PredictionRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer
from tests.pipeline.classified import LABELS, classified_workspace, classify_stages, run

FIELDS = ("doc_id", "language")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("label-datasets")
    tiny = tiny_sentence_transformer(root / "tiny")
    workspace, _ = classified_workspace(root, tiny)
    run(workspace, classify_stages("{model: topic-s}", "{model: topic-u, over: elements}"))
    workspace.session().add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    yield workspace
    workspace.close()


def labelled_chunks(ws: Workspace, name: str, label: str) -> set[str]:
    with ws.catalog.transaction() as orm:
        chunks = list(orm.scalars(select(ChunkRow)))
        rows = orm.scalars(select(PredictionRow))
        preds = [p for p in rows if (p.name, p.label) == (name, label)]
    return {c.id for c in chunks for p in preds if p.item_id == c.id or p.item_id in c.element_ids}


def secret_label(ws: Workspace) -> str:
    return next(label for label in LABELS if labelled_chunks(ws, "topic-s", label))


def test_a_secret_classifiers_label_selects_records_marked_secret(ws: Workspace) -> None:
    label = secret_label(ws)
    datasets = Datasets(ws.session("stew"))
    version = datasets.create("by-label", Selection(labels=(f"topic-s={label}",), fields=FIELDS))
    records = datasets.records(version)
    assert {r.id for r in records} == labelled_chunks(ws, "topic-s", label)
    # Picked by a SECRET classifier's label: every record says so, UNCLASSIFIED chunks too.
    assert all(r.marking.startswith("SECRET") for r in records)
    assert version.marking.banner().startswith("SECRET")
    assert version.manifest["selection"]["labels"] == [f"topic-s={label}"]


def test_an_uncleared_steward_selects_nothing_by_a_secret_label(ws: Workspace) -> None:
    ustew = Datasets(ws.session("ustew"))
    with pytest.raises(InvalidInput) as nobody:
        ustew.create("none", Selection(labels=("no-such-model=logistics",), fields=FIELDS))
    for label in LABELS:
        with pytest.raises(InvalidInput) as hidden:
            ustew.create("hidden", Selection(labels=(f"topic-s={label}",), fields=FIELDS))
        assert str(hidden.value) == str(nobody.value)


def test_shown_predictions_are_only_readable_ones_and_mark_the_record(ws: Workspace) -> None:
    fields = (*FIELDS, "predictions")
    ustew = Datasets(ws.session("ustew"))
    low = ustew.records(ustew.create("shown-u", Selection(kind="chunks", fields=fields)))
    assert low and all(r.marking == "UNCLASSIFIED" for r in low)
    for record in low:
        names = {p["name"] for p in record.fields["predictions"]}
        assert names == {"topic-u"}  # never the SECRET classifier's
    stew = Datasets(ws.session("stew"))
    high = stew.records(stew.create("shown-s", Selection(kind="chunks", fields=fields)))
    for record in high:
        shown = record.fields["predictions"]
        assert "topic-s" in {p["name"] for p in shown}
        record_marking = ws.session().parse_marking(record.marking)
        for p in shown:
            assert dominates(record_marking, ws.session().parse_marking(p["marking"]))
    # Elements show their own predictions (topic-u): marked like the element.
    elements = stew.records(stew.create("shown-e", Selection(kind="elements", fields=fields)))
    assert elements and all(
        {p["name"] for p in r.fields["predictions"]} == {"topic-u"} for r in elements
    )
    assert {r.marking for r in elements} == {"UNCLASSIFIED", "SECRET"}


def test_a_ceiling_leaves_out_records_picked_only_by_predictions_above_it(ws: Workspace) -> None:
    label = secret_label(ws)
    stew = Datasets(ws.session("stew"))
    with pytest.raises(InvalidInput, match="empty"):
        stew.create(
            "capped",
            Selection(labels=(f"topic-s={label}",), max_marking="UNCLASSIFIED", fields=FIELDS),
        )


def test_a_malformed_label_is_refused() -> None:
    with pytest.raises(ValueError, match="NAME=LABEL"):
        Selection(labels=("topic-s",))


def test_cli_dataset_create_label(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    label = secret_label(ws)
    argv = ["dataset", "create", "cli-label", "--label", f"topic-s={label}", "--json"]
    code = main([*argv, "-w", str(ws.root), "--as", "stew"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["marking"].startswith("SECRET")
    code = main([*argv, "-w", str(ws.root), "--as", "ustew"])
    capsys.readouterr()
    assert code == 2  # an empty selection: bad input, exactly as for a label nobody has
    code = main(["dataset", "create", "bad", "--label", "nolabel", "-w", str(ws.root)])
    assert code == 2 and "NAME=LABEL" in capsys.readouterr().err
