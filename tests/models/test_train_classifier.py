"""Training classifiers on marked datasets: metrics with intervals, determinism, the label kept
out of the text, the marking join and the ceiling, no read-up, bad input, resuming after an
interruption, the time limit, and a small SetFit run."""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths, ingest_sql
from garrison.models import Models, _training, open_classifier, predict, train_classifier
from garrison.models._training import EMBEDDINGS_DIR, TRAIN_DIR
from garrison.models.embedding import SentenceTransformerModel
from garrison.security.audit import AuditAction
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import WORDS, tiny_sentence_transformer

TOPICS = {
    "logistics": ["convoy", "fuel", "supply", "depot", "cargo", "warehouse"],
    "weather": ["storm", "satellite", "imagery", "river", "harbor", "vessel"],
    "network": ["server", "outage", "firmware", "patch", "signal", "radar"],
}
RATIOS = {"train": 0.6, "validation": 0.2, "test": 0.2}
FILLER = [w for w in WORDS if w not in TOPICS and not any(w in ws for ws in TOPICS.values())]


def _rows(files: int, per_file: int, seed: int, *, secret_every: int = 0) -> list[list[list[str]]]:
    """Rows (note, label, classification) per file; the note never holds its label's name."""
    rng = random.Random(seed)
    out = []
    for f in range(files):
        rows = []
        for i in range(per_file):
            label = list(TOPICS)[(f + i) % len(TOPICS)]
            note = " ".join(rng.sample(TOPICS[label], 3) + rng.sample(FILLER, 2))
            n = f * per_file + i
            secret = bool(secret_every) and n % secret_every == 0
            rows.append([note, label, "SECRET" if secret else "UNCLASSIFIED"])
        out.append(rows)
    return out


def _csvs(
    folder: Path, files: list[list[list[str]]], header: str = "note,label,classification"
) -> Path:
    folder.mkdir(parents=True)
    for f, rows in enumerate(files):
        body = "\n".join(",".join(r) for r in rows)
        (folder / f"f{f:02d}.csv").write_text(f"{header}\n{body}\n")
    return folder


def _ingest(ws: Workspace, folder: Path, source: str) -> None:
    ingest_paths(
        ws.session(),
        [str(folder)],
        IngestOptions(
            default_marking="UNCLASSIFIED", marking_column="classification", source=source
        ),
    )


def _dataset(ws: Workspace, name: str, source: str, ratios: dict[str, float] | None = None) -> str:
    version = Datasets(ws.session("stew")).create(
        name, Selection(kind="records", source=source, fields=("fields",)), ratios=ratios or RATIOS
    )
    return version.id


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("train")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("viv", SubjectSpec(clearance="S", roles=("viewer",)))
    _ingest(workspace, _csvs(root / "notes", _rows(12, 8, 0, secret_every=10)), "notes")
    _ingest(workspace, _csvs(root / "plain", _rows(12, 8, 1)), "plain")
    one = [[[r[0], "logistics", r[2]] for r in rows] for rows in _rows(6, 4, 2)]
    _ingest(workspace, _csvs(root / "one", one), "one")
    empty = _rows(6, 4, 3)
    for rows in empty[:2]:
        rows[0][1] = ""
    _ingest(workspace, _csvs(root / "empty", empty), "empty")
    _ingest(workspace, _csvs(root / "single", _rows(1, 60, 4)), "single")
    _ingest(workspace, _csvs(root / "small", _rows(6, 4, 5)), "small")
    _dataset(workspace, "notes", "notes")
    _dataset(workspace, "plain", "plain")
    _dataset(workspace, "one", "one")
    _dataset(workspace, "empty", "empty")
    _dataset(workspace, "single", "single")
    _dataset(workspace, "novalid", "plain", {"train": 0.7, "test": 0.3})
    _dataset(workspace, "small", "small", {"train": 0.5, "validation": 0.25, "test": 0.25})
    Datasets(workspace.session("stew")).create(
        "nofields", Selection(kind="records", source="plain"), ratios=RATIOS
    )
    Models(workspace.session("stew")).register(kind="embedder", name="tiny", folder=tiny)
    yield workspace
    workspace.close()


def _cold(ws: Workspace) -> None:
    """Forget every cached embedding and checkpoint."""
    shutil.rmtree(ws.root / EMBEDDINGS_DIR, ignore_errors=True)
    shutil.rmtree(ws.root / TRAIN_DIR, ignore_errors=True)


def _train(ws: Workspace, name: str, dataset: str = "notes", user: str = "stew", **kw: Any) -> Any:
    return train_classifier(
        ws.session(user),
        name,
        dataset,
        kw.pop("text", "note"),
        kw.pop("label", "label"),
        embedder="tiny",
        **kw,
    )


def _classifiers(ws: Workspace) -> set[str]:
    return {v.id for v in Models(ws.session()).list(kind="classifier")}


def _check_interval(metric: dict[str, float]) -> None:
    assert set(metric) == {"value", "low", "high"}
    assert 0.0 <= metric["low"] <= metric["value"] <= metric["high"] <= 1.0


# -- what a training gives --------------------------------------------------------------------


def test_metrics_come_with_intervals_and_the_card_tells_the_facts(ws: Workspace) -> None:
    result = _train(ws, "topic")
    report, version = result.report, result.version
    metrics = report["metrics"]
    assert metrics["records"] == report["splits"]["test"] > 0
    for key in ("accuracy", "macro_f1", "ece"):
        _check_interval(metrics[key])
    assert set(metrics["per_class"]) == set(TOPICS)
    for entry in metrics["per_class"].values():
        assert entry["support"] > 0
        _check_interval(entry["recall"])
        if entry["precision"] is not None:
            _check_interval(entry["precision"])
    assert metrics["accuracy"]["value"] > 0.5  # the notes separate the topics well
    assert report["selection"]["on"] == "validation"
    assert [p["C"] for p in report["selection"]["grid"]] == [0.01, 0.1, 1.0, 10.0, 100.0]
    assert version.kind == "classifier" and report["labels"] == sorted(TOPICS)
    embedder = Models(ws.session()).resolve("tiny")
    dataset = Datasets(ws.session("stew")).get("notes")
    assert version.manifest["base"] == embedder.id
    assert version.manifest["datasets"] == [dataset.id]
    params = version.manifest["parameters"]
    assert params["trainer"] == "logreg" and params["C"] == report["selection"]["C"]
    assert (params["text_field"], params["label_field"]) == ("note", "label")
    card = version.card
    assert card["metrics"] == metrics and card["limitations"] and card["intended_use"]
    assert card["training_data"]["records"] == report["splits"]
    assert sum(card["training_data"]["labels"].values()) == report["splits"]["train"]
    event = [e for e in ws.audit.tail(20) if e.action == AuditAction.MODEL_TRAIN.value][-1]
    assert event.actor == "stew" and event.object_id == version.id
    assert event.details["dataset"] == dataset.id and event.details["result"] == version.id
    # The classifier predicts through its registered embedder.
    classifier = open_classifier(ws.session("stew"), version.id)
    (prediction,) = classifier.predict(["convoy fuel depot cargo"], [parse_marking("U")])
    assert prediction.label == "logistics"


def test_same_dataset_and_seed_give_the_same_version(ws: Workspace) -> None:
    _cold(ws)
    first = _train(ws, "det").version
    again = _train(ws, "det").version  # now from the embedding cache
    assert first.id == again.id
    other = _train(ws, "det", seed=1).version
    assert other.id != first.id and other.manifest["seeds"]["train"] == 1


def test_a_dataset_without_validation_selects_on_held_out_train(ws: Workspace) -> None:
    report = _train(ws, "held", "novalid").report
    assert report["selection"]["on"] == "held-out train"
    assert report["splits"]["validation"] == 0 and report["metrics"]["records"] > 0


def test_the_label_never_reaches_the_embedder(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    encode = SentenceTransformerModel.encode

    def spy(self: SentenceTransformerModel, texts: list[str], batch_size: int = 64) -> Any:
        seen.extend(texts)
        return encode(self, texts, batch_size=batch_size)

    monkeypatch.setattr(SentenceTransformerModel, "encode", spy)
    _cold(ws)
    _train(ws, "leak", "plain", text="fields.note", label="fields.label")
    assert len(seen) == len({*seen}) > 0
    assert not any(label in text for text in seen for label in TOPICS)
    # The record's text lists every column, the label's too: refused, nothing registered.
    before = _classifiers(ws)
    with pytest.raises(InvalidInput, match="spells out the label column 'label'"):
        _train(ws, "leak2", "plain", text="text", label="label")
    assert _classifiers(ws) == before


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "sqlite"])
def test_columns_of_every_tabular_format_name_text_and_label(
    ws: Workspace, tmp_path: Path, fmt: str
) -> None:
    files = _rows(6, 6, 7)
    folder = tmp_path / fmt
    if fmt == "csv":
        _ingest(ws, _csvs(folder, files, "body,topic,classification"), f"src-{fmt}")
    elif fmt == "xlsx":
        import openpyxl

        folder.mkdir()
        for f, rows in enumerate(files):
            book = openpyxl.Workbook()
            sheet = book.active
            assert sheet is not None
            sheet.append(["body", "topic", "classification"])
            for row in rows:
                sheet.append(row)
            book.save(folder / f"f{f}.xlsx")
        _ingest(ws, folder, f"src-{fmt}")
    else:
        folder.mkdir()
        db = folder / "rows.db"
        conn = sqlite3.connect(db)
        for f, rows in enumerate(files):
            conn.execute(
                f"CREATE TABLE t{f} (id INTEGER PRIMARY KEY, body TEXT, topic TEXT, "
                "classification TEXT)"
            )
            conn.executemany(
                f"INSERT INTO t{f} (body, topic, classification) VALUES (?, ?, ?)", rows
            )
        conn.commit()
        conn.close()
        ingest_sql(
            ws.session(),
            f"sqlite:///{db}",
            IngestOptions(
                default_marking="UNCLASSIFIED", marking_column="classification", source=f"src-{fmt}"
            ),
        )
    _dataset(ws, f"ds-{fmt}", f"src-{fmt}", {"train": 0.5, "validation": 0.17, "test": 0.33})
    report = _train(ws, f"clf-{fmt}", f"ds-{fmt}", text="body", label="fields.topic").report
    assert report["labels"] == sorted(TOPICS)
    with pytest.raises(InvalidInput, match=r"no field 'fields\.label'"):
        _train(ws, f"clf-{fmt}", f"ds-{fmt}", text="body", label="fields.label")


# -- markings ---------------------------------------------------------------------------------


def test_the_classifier_is_marked_with_its_records_and_the_ceiling_lowers_it(ws: Workspace) -> None:
    secret = _train(ws, "mark").version
    assert secret.marking.banner() == "SECRET"
    low = _train(ws, "mark-u", max_marking="UNCLASSIFIED")
    assert low.version.marking.banner() == "UNCLASSIFIED"
    data = low.version.card["training_data"]
    assert data["max_marking"] == "UNCLASSIFIED" and data["excluded_above_ceiling"] > 0
    assert low.version.manifest["parameters"]["max_marking"] == "UNCLASSIFIED"
    assert low.version.id != secret.id
    # An UNCLASSIFIED reader may use the UNCLASSIFIED one only; its outputs carry the join.
    ursula = ws.session("ursula")
    with pytest.raises(NotFound):
        open_classifier(ursula, secret.id)
    _, predictions = predict(ursula, low.version.id, ["storm river"], [parse_marking("U")])
    assert predictions[0].marking.banner() == "UNCLASSIFIED"
    _, predictions = predict(ws.session("stew"), secret.id, ["storm river"], [parse_marking("U")])
    assert predictions[0].marking.banner() == "SECRET"
    with pytest.raises(NotPermitted):  # a text marked above the subject's clearance
        predict(ursula, low.version.id, ["storm river"], [parse_marking("SECRET")])


def test_a_stale_dataset_is_refused(ws: Workspace, tmp_path: Path) -> None:
    from tests.datasets.test_record_markings import _raise_document

    _ingest(ws, _csvs(tmp_path / "rising", _rows(6, 4, 9)), "rising")
    _dataset(ws, "rising", "rising")
    _raise_document(ws, "rising", "SECRET")
    before = _classifiers(ws)
    with pytest.raises(NotPermitted, match="stale-marking"):
        _train(ws, "stale", "rising")
    assert _classifiers(ws) == before


def test_an_embedder_marking_joins_the_classifier(ws: Workspace, tiny: Path) -> None:
    Models(ws.session("stew")).register(
        kind="embedder", name="tiny-c", folder=tiny, marking=parse_marking("CONFIDENTIAL")
    )
    result = train_classifier(
        ws.session("stew"), "via-c", "plain", "note", "label", embedder="tiny-c"
    )
    assert result.version.marking.banner() == "CONFIDENTIAL"


def test_an_unreadable_dataset_looks_missing_and_roles_are_checked(ws: Workspace) -> None:
    before = _classifiers(ws)
    with pytest.raises(NotFound):
        _train(ws, "nope", user="ustew")  # notes is SECRET
    with pytest.raises(NotFound):
        _train(ws, "nope", dataset="missing")
    with pytest.raises(NotPermitted):
        _train(ws, "nope", user="viv")
    with pytest.raises(NotPermitted):  # a ceiling above the subject
        _train(ws, "nope", user="ustew", dataset="plain", max_marking="SECRET")
    assert _train(ws, "by-eve", user="eve", dataset="plain").version.kind == "classifier"
    assert _classifiers(ws) - before == {Models(ws.session()).resolve("by-eve").id}


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("trainer", ["logreg", "setfit"])
@pytest.mark.parametrize(
    ("dataset", "kw", "message"),
    [
        ("plain", {"text": "fields.body"}, "has no field 'fields.body'"),
        ("plain", {"label": "topic"}, "has no field 'topic'"),
        ("nofields", {}, "make the dataset with --field fields"),
        ("plain", {"label": "note"}, "must be different"),
        ("one", {}, "only one class"),
        ("empty", {}, "2 of the 24 records have an empty label field 'label'"),
        ("notes", {"max_marking": "TOP SECRET"}, "above system high|above what"),
    ],
)
def test_bad_input_is_one_sentence_and_registers_nothing(
    ws: Workspace, trainer: str, dataset: str, kw: dict[str, Any], message: str
) -> None:
    before = _classifiers(ws)
    with pytest.raises((InvalidInput, NotPermitted), match=message):
        _train(ws, "bad", dataset, trainer=trainer, **kw)
    assert _classifiers(ws) == before


def test_one_csv_file_trains_its_rows_split_by_row(ws: Workspace) -> None:
    trained = _train(ws, "one-file", "single")
    splits = trained.version.card["training_data"]["records"]
    assert all(splits[name] > 0 for name in ("train", "validation", "test")), splits


def test_unknown_trainer_and_bad_options(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="Unknown trainer 'forest'"):
        _train(ws, "bad", trainer="forest")
    with pytest.raises(InvalidInput, match="model name"):
        _train(ws, "-bad")
    with pytest.raises(InvalidInput, match="setfit trainer only"):
        _train(ws, "bad", epochs=3)
    with pytest.raises(NotFound):
        train_classifier(
            ws.session("stew"), "bad", "plain", "note", "label", embedder="no-such-embedder"
        )
    classifier = _train(ws, "kind-check", "plain").version.id
    with pytest.raises(InvalidInput, match="not an embedder"):
        train_classifier(ws.session("stew"), "bad", "plain", "note", "label", embedder=classifier)


# -- resuming and the time limit ---------------------------------------------------------------


class Stop(Exception):
    pass


def _stopper(phase: str, after: int) -> Any:
    calls = {"n": 0}

    def progress(p: str, done: int, total: int) -> None:
        if p == phase:
            calls["n"] += 1
            if calls["n"] >= after:
                raise Stop(p)

    return progress


def test_an_interrupted_training_resumes_from_its_checkpoint(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = Datasets(ws.session("stew")).records(Datasets(ws.session("stew")).get("notes"))
    unique = len({r.fields["fields"]["note"] for r in records})
    assert unique > 64  # two batches
    _cold(ws)
    reference = _train(ws, "resume").version.id
    _cold(ws)
    encoded: list[int] = []
    encode = SentenceTransformerModel.encode

    def spy(self: SentenceTransformerModel, texts: list[str], batch_size: int = 64) -> Any:
        encoded.append(len(texts))
        return encode(self, texts, batch_size=batch_size)

    monkeypatch.setattr(SentenceTransformerModel, "encode", spy)
    with pytest.raises(Stop):  # stopped after the first batch of embeddings
        _train(ws, "resume", progress=_stopper("embed", 1))
    assert encoded == [64]
    with pytest.raises(Stop):  # stopped after two grid points
        _train(ws, "resume", progress=_stopper("select", 2))
    assert encoded == [64, unique - 64]  # only the batch not yet cached
    result = _train(ws, "resume")
    assert result.report["resumed"] == {"cached_embeddings": unique, "grid_points": 2}
    assert result.version.id == reference
    assert encoded == [64, unique - 64]
    # A completed run leaves no checkpoint: the next one starts afresh (from the cache).
    again = _train(ws, "resume")
    assert again.report["resumed"] == {"cached_embeddings": unique}
    assert again.version.id == reference


def test_max_minutes_cuts_the_training_short(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train(ws, "warm")  # embeddings cached: the clock is only read by the grid
    shutil.rmtree(ws.root / TRAIN_DIR, ignore_errors=True)
    clock = {"t": 0.0}

    def now() -> float:
        clock["t"] += 30.0
        return clock["t"]

    monkeypatch.setattr(_training, "_now", now)
    before = _classifiers(ws)
    with pytest.raises(CheckFailed, match="before any model was fitted"):
        _train(ws, "limited", max_minutes=0)
    assert _classifiers(ws) == before
    cut = _train(ws, "limited", max_minutes=1.5)
    assert cut.report["cut_short"] and cut.version.manifest["parameters"]["cut_short"]
    assert len(cut.report["selection"]["grid"]) == 2
    assert "cut short" in cut.version.card["limitations"][0]
    full = _train(ws, "limited")
    assert not full.report["cut_short"] and full.report["resumed"]["grid_points"] == 2
    assert len(full.report["selection"]["grid"]) == 5 and full.version.id != cut.version.id


# -- SetFit ------------------------------------------------------------------------------------


def test_setfit_fine_tunes_the_body_and_resumes_by_epoch(ws: Workspace) -> None:
    pytest.importorskip("setfit")
    _cold(ws)
    with pytest.raises(Stop):  # stopped in the second epoch
        _train(ws, "sf", "small", trainer="setfit", epochs=2, progress=_epoch_stopper())
    result = _train(ws, "sf", "small", trainer="setfit", epochs=2)
    assert result.report["resumed"] == {"epochs": 1}
    version = result.version
    params = version.manifest["parameters"]
    assert params["trainer"] == "setfit" and params["epochs"] == 2
    paths = {f["path"] for f in version.manifest["files"]}
    assert {"classifier.json", "head.safetensors", "body/model.safetensors"} <= paths
    assert not any(p.endswith((".pkl", ".bin", ".pt")) for p in paths)
    for key in ("accuracy", "macro_f1", "ece"):
        _check_interval(result.report["metrics"][key])
    classifier = open_classifier(ws.session("stew"), version.id)
    assert classifier.embedder_version is None  # its own fine-tuned body
    probs = classifier.probabilities(["convoy fuel depot", "storm river harbor"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert version.marking.banner() == "UNCLASSIFIED"
    # Resumed or not, the same training gives the same version.
    _cold(ws)
    assert _train(ws, "sf", "small", trainer="setfit", epochs=2).version.id == version.id


def _epoch_stopper() -> Any:
    def progress(phase: str, done: int, total: int) -> None:
        if phase == "fine-tune" and done > total // 2:
            raise Stop(phase)

    return progress
