"""Refined embedders: fine-tuned on marked pairs from a dataset or mined from the corpus, measured
against their base on held-out pairs, marked with the join of base and pairs, deterministic,
resumable, and refused -- with nothing registered -- on bad input."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from garrison.cli.main import main
from garrison.core.errors import GarrisonError, InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, open_embedder, write_classifier
from garrison.models._finetune import TrainingStopped
from garrison.models._pairs import dataset_pairs, mine_pairs
from garrison.models._refine import TRAIN_DIR, train_embedder
from garrison.security.audit import AuditAction
from garrison.store.session import SubjectSpec
from garrison.store.views import visible_heading_markings, visible_headings
from garrison.store.workspace import Workspace
from tests.models.tiny import WORDS, tiny_sentence_transformer

#: Query words and the passage words they stand for: the base relates neither to the other.
QUERY_WORDS, PASSAGE_WORDS, FILLER = WORDS[:12], WORDS[12:24], WORDS[24:]
SECRET_WORDS = ("zulu", "canary", "kilo")
FAST = {"epochs": 10, "batch_size": 8, "learning_rate": 1e-3}


def _texts() -> list[str]:
    words = [*WORDS, *SECRET_WORDS, "title", "notes", "section", "subject"]
    return [" ".join(words[(i * k) % len(words)] for k in range(1, 9)) for i in range(300)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st", _texts())


def _pair_files(folder: Path, docs: int, seed: int) -> None:
    """CSV files of (query, passage) rows: a query word, a passage with its partner word."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for d in range(docs):
        with (folder / f"pairs{d:02d}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "passage", "note"])
            for k in range(12):
                if (k + d) % 2 == 0:
                    passage = f"{PASSAGE_WORDS[k]} " + " ".join(rng.sample(FILLER, 4))
                    writer.writerow([QUERY_WORDS[k], passage, "x"])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("refine")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("vera", SubjectSpec(clearance="S", roles=("viewer",)))
    _pair_files(root / "low", 12, 0)
    _pair_files(root / "high", 4, 1)
    ingest_paths(system, [str(root / "low")], IngestOptions(default_marking="U", source="low"))
    ingest_paths(system, [str(root / "high")], IngestOptions(default_marking="S", source="high"))
    stew = workspace.session("stew")
    datasets = Datasets(stew)
    ratios = {"train": 0.7, "test": 0.3}
    records = Selection(kind="records", source="low", fields=("fields",))
    datasets.create("pairs", records, ratios=ratios)
    datasets.create("mixed", Selection(kind="records", fields=("fields",)), ratios=ratios)
    datasets.create("pairs-train-only", records)
    high = Selection(kind="records", source="high", fields=("fields",))
    datasets.create("pairs-high", high, ratios=ratios)
    Models(stew).register(kind="embedder", name="tiny", folder=tiny)
    Models(stew).register(kind="embedder", name="tiny-secret", folder=tiny, marking=_m("S"))
    # Registered as an exported graph: refining one is refused.
    Models(stew).register(
        kind="embedder", name="tiny-onnx", folder=tiny, parameters={"format": "onnx"}
    )
    yield workspace
    workspace.close()


def _m(text: str):  # type: ignore[no-untyped-def]
    from garrison.security.markings import parse_marking

    return parse_marking(text)


def _names(ws: Workspace) -> set[str]:
    return {v.name for v in Models(ws.session()).list()}


def _well_formed(metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    for side in ("base", "refined"):
        assert set(metrics[side]) == {"recall@10", "mrr"}
        for interval in metrics[side].values():
            assert 0.0 <= interval["low"] <= interval["value"] <= interval["high"] <= 1.0


# -- learning --------------------------------------------------------------------------------------


def test_a_refined_embedder_learns_what_its_base_does_not_relate(ws: Workspace) -> None:
    stew = ws.session("stew")
    result = train_embedder(stew, "refined", "tiny", pairs="pairs", **FAST)  # type: ignore[arg-type]
    _well_formed(result.metrics)
    base, refined = result.metrics["base"], result.metrics["refined"]
    # With a dozen-odd candidates, recall@10 of an unrelated base is already high by chance;
    # the rank of the right passage (MRR) shows the learning plainly.
    assert refined["recall@10"]["value"] >= max(base["recall@10"]["value"], 0.9)
    assert refined["mrr"]["value"] > base["mrr"]["value"] + 0.3
    assert result.candidates > 10 and result.held_out_pairs >= result.candidates
    version = result.version
    dataset = Datasets(stew).get("pairs")
    assert version.kind == "embedder" and version.marking.banner() == "UNCLASSIFIED"
    assert version.manifest["base"] == Models(stew).resolve("tiny").id
    assert version.manifest["datasets"] == [dataset.id]
    params = version.manifest["parameters"]
    assert params["format"] == "sentence-transformers"
    assert params["loss"] == "MultipleNegativesRankingLoss"
    assert (params["epochs"], params["batch_size"], params["learning_rate"]) == (10, 8, 1e-3)
    assert params["max_seq_length"] == 128 and params["dim"] == 32
    assert params["pairs"]["source"] == "dataset" and params["pairs"]["train"] > 0
    assert version.manifest["seeds"] == {"seed": 0}
    assert version.card["metrics"]["refined"] == refined
    assert version.card["reproducibility"]["torch_threads"] >= 1
    assert [step["kind"] for step in version.lineage] == ["base", "dataset"]
    # A registered embedder like any other: it opens by reference and encodes.
    opened, model = open_embedder(ws.session("ustew"), version.ref)
    assert opened.id == version.id
    vectors = model.encode([QUERY_WORDS[0], PASSAGE_WORDS[0]])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # It has learnt the mapping: a query word is nearer its partner passage word than another.
    sims = model.encode([QUERY_WORDS[3], PASSAGE_WORDS[3], PASSAGE_WORDS[7]])
    assert sims[0] @ sims[1] > sims[0] @ sims[2]
    # The training run's folder is gone once the version is registered; the audit says so.
    assert not any((ws.root / TRAIN_DIR).glob("*"))
    trained = [
        e
        for e in ws.audit.events()
        if e.action == AuditAction.MODEL_TRAIN and e.object_id == version.id
    ]
    assert len(trained) == 1 and trained[0].actor == "stew"
    assert trained[0].object_marking == "UNCLASSIFIED"


def test_the_same_inputs_and_seed_give_the_same_weights_and_id(ws: Workspace) -> None:
    eve = ws.session("eve")  # evaluators train too
    first = train_embedder(eve, "again", "tiny", pairs="pairs", seed=3, **FAST)  # type: ignore[arg-type]
    second = train_embedder(eve, "again", "tiny", pairs="pairs", seed=3, **FAST)  # type: ignore[arg-type]
    assert first.version.id == second.version.id
    assert first.version.manifest["files"] == second.version.manifest["files"]
    assert first.metrics == second.metrics
    other = train_embedder(eve, "again", "tiny", pairs="pairs", seed=4, **FAST)  # type: ignore[arg-type]
    weights = {f["path"]: f["sha256"] for f in first.version.manifest["files"]}
    other_weights = {f["path"]: f["sha256"] for f in other.version.manifest["files"]}
    assert other.version.id != first.version.id
    assert other_weights["model.safetensors"] != weights["model.safetensors"]


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_model(ws: Workspace) -> None:
    stew = ws.session("stew")
    whole = train_embedder(stew, "resumed", "tiny", pairs="pairs", seed=5, **FAST)  # type: ignore[arg-type]
    Models(stew).remove(whole.version.ref, "trained again below")
    seen: list[int] = []

    def ctrl_c(p) -> None:  # type: ignore[no-untyped-def]
        seen.append(p.step)
        assert p.total == 70 and p.eta_s is not None and p.eta_s >= 0
        if p.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(TrainingStopped) as stopped:
        train_embedder(stew, "resumed", "tiny", pairs="pairs", seed=5, progress=ctrl_c, **FAST)  # type: ignore[arg-type]
    assert stopped.value.exit_code == 130 and stopped.value.step == 7
    assert "resume" in str(stopped.value)
    assert list((ws.root / TRAIN_DIR).glob("*/checkpoint.pt"))
    assert "resumed" not in _names(ws)
    steps: list[int] = []
    again = train_embedder(
        stew,
        "resumed",
        "tiny",
        pairs="pairs",
        seed=5,
        progress=lambda p: steps.append(p.step),
        **FAST,  # type: ignore[arg-type]
    )
    assert again.resumed_from == 7 and steps[0] == 8 and steps[-1] == 70
    assert again.version.id == whole.version.id  # bit for bit what an uninterrupted run makes
    assert not any((ws.root / TRAIN_DIR).glob("*"))


def test_ctrl_c_stops_between_two_steps_with_a_checkpoint(ws: Workspace) -> None:
    import os
    import signal

    def ctrl_c(p) -> None:  # type: ignore[no-untyped-def]
        if p.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends

    stew = ws.session("stew")
    # A shell starts background jobs with SIGINT ignored: the test sets the usual handler
    # itself, so it checks what training puts back, whatever it was started with.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingStopped) as stopped:
            train_embedder(stew, "sigint", "tiny", pairs="pairs", seed=7, progress=ctrl_c, **FAST)  # type: ignore[arg-type]
        assert stopped.value.reason == "interrupted" and stopped.value.step == 3
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, before)
    done = train_embedder(stew, "sigint", "tiny", pairs="pairs", seed=7, **FAST)  # type: ignore[arg-type]
    assert done.resumed_from == 3


def test_max_minutes_stops_with_a_checkpoint(ws: Workspace) -> None:
    stew = ws.session("stew")
    with pytest.raises(TrainingStopped) as stopped:
        train_embedder(stew, "bounded", "tiny", pairs="pairs", max_minutes=1e-9, seed=6, **FAST)  # type: ignore[arg-type]
    assert stopped.value.exit_code == 75 and stopped.value.reason == "max-minutes"
    assert stopped.value.step == 1 and "bounded" not in _names(ws)
    done = train_embedder(stew, "bounded", "tiny", pairs="pairs", seed=6, **FAST)  # type: ignore[arg-type]
    assert done.resumed_from == 1


class _Fixed:
    """A stand-in model with fixed vectors, to check the ranking arithmetic by hand."""

    def __init__(self) -> None:
        self.vectors = {
            "q1": [1.0, 0.0],
            "q2": [0.0, 1.0],
            "q3": [0.6, 0.8],
            "p1": [1.0, 0.0],
            "p2": [0.8, 0.6],
            "p1b": [1.0, 0.0],
        }

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_ranks_recall_and_mrr_are_computed_over_distinct_held_out_passages() -> None:
    from garrison.models._finetune import ranks, retrieval_metrics

    # The candidates are the distinct held-out passages, p1 and p2. q1 and q2 rank their own
    # first; q3 shares p1 with q1 and ranks it second (p2 is nearer: 0.96 against 0.6).
    rank = ranks(_Fixed(), ["q1", "q2", "q3"], ["p1", "p2", "p1"])
    assert rank.tolist() == [1, 1, 2]
    metrics = retrieval_metrics(rank, seed=0)
    assert metrics["recall@10"]["value"] == 1.0
    assert metrics["mrr"]["value"] == pytest.approx((1 + 1 + 1 / 2) / 3, abs=1e-6)
    low, high = metrics["mrr"]["low"], metrics["mrr"]["high"]
    assert 0.5 <= low <= metrics["mrr"]["value"] <= high <= 1.0
    # A tie counts in the query's favour: p1b is another passage with p1's vector.
    assert ranks(_Fixed(), ["q1", "q2"], ["p1", "p1b"]).tolist() == [1, 1]
    assert retrieval_metrics(np.array([11, 1]), seed=0)["recall@10"]["value"] == 0.5


# -- markings --------------------------------------------------------------------------------------


def test_the_model_is_marked_with_its_base_and_every_pair_and_max_marking_caps_it(
    ws: Workspace,
) -> None:
    stew = ws.session("stew")
    mixed = Datasets(stew).get("mixed")
    assert mixed.marking.banner() == "SECRET"
    high = train_embedder(stew, "mixed", "tiny", pairs="mixed", epochs=1)
    assert high.version.marking.banner() == "SECRET"
    assert high.version.manifest["datasets"] == [mixed.id]
    low = train_embedder(stew, "mixed-low", "tiny", pairs="mixed", epochs=1, max_marking="U")
    assert low.version.marking.banner() == "UNCLASSIFIED"
    assert low.train_pairs + low.held_out_pairs < high.train_pairs + high.held_out_pairs
    # The SECRET dataset is not named by the UNCLASSIFIED model: its pairs' digest is.
    assert low.version.manifest["datasets"] == []
    assert [s["kind"] for s in low.version.lineage] == ["base"]
    pairs = low.version.manifest["parameters"]["pairs"]
    assert pairs["dataset_subset"] is True and pairs["max_marking"] == "UNCLASSIFIED"
    assert mixed.id not in json.dumps(low.version.to_dict())
    # The base's marking counts too.
    secret_base = train_embedder(stew, "from-secret", "tiny-secret", pairs="pairs", epochs=1)
    assert secret_base.version.marking.banner() == "SECRET"
    with pytest.raises(InvalidInput, match="above the ceiling"):
        train_embedder(stew, "no", "tiny-secret", pairs="pairs", max_marking="U")
    # A reader below the model cannot see or use it; one at its level can.
    ustew = ws.session("ustew")
    for ref in ("mixed", "from-secret", high.version.id):
        with pytest.raises(NotFound):
            Models(ustew).get(ref)
        with pytest.raises(NotFound):
            open_embedder(ustew, ref)
    assert Models(ustew).get("mixed-low").id == low.version.id


# -- mining ----------------------------------------------------------------------------------------


def _markdown(d: int) -> str:
    """A document with a title and two sections; every third one also has a SECRET paragraph
    in its first section and an UNCLASSIFIED paragraph under a SECRET heading."""
    w = {
        "title": WORDS[d % 24],
        "a": WORDS[(d + 3) % 24],
        "b": WORDS[(d + 7) % 24],
        "c": WORDS[(d + 11) % 24],
        **{f"f{i}": FILLER[(d + i) % len(FILLER)] for i in range(1, 5)},
    }
    secret = d % 3 == 0
    parts = [
        "# (U) {title} notes",
        "## (U) {a} report",
        "(U) The {a} {f1} {f2} arrived today.",
        *(["(S) The zulu canary kilo {c} is at the depot."] if secret else []),
        "## (U) {b} schedule",
        "(U) The {b} {f3} {f4} leaves at dawn.",
        *(["## (S) Zulu canary {c}", "(U) The {c} {f1} weather is clear."] if secret else []),
    ]
    return "\n\n".join(parts).format(**w) + "\n"


EMAIL = """From: ops@example.mil
To: staff@example.mil
Subject: (U) {a} outage

(U) The {a} {f1} is down until noon.
"""


def _corpus(folder: Path, docs: int = 12) -> None:
    folder.mkdir(parents=True)
    for d in range(docs):
        (folder / f"doc{d:02d}.md").write_text(_markdown(d))
    for d in range(3):
        (folder / f"mail{d}.eml").write_text(EMAIL.format(a=WORDS[30 + d], f1=FILLER[d]))


@pytest.fixture
def corpus(tmp_path: Path, catalog_url: str | None, tiny: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    system = workspace.session()
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    _corpus(tmp_path / "in")
    ingest_paths(system, [str(tmp_path / "in")], IngestOptions(default_marking="U", source="c"))
    Models(system).register(kind="embedder", name="tiny", folder=tiny)
    yield workspace
    workspace.close()


def test_mining_never_uses_text_the_subject_cannot_read(corpus: Workspace) -> None:
    low = mine_pairs(corpus.session("ustew"))
    assert low and {p.marking.banner() for p in low} == {"UNCLASSIFIED"}
    for pair in low:
        text = f"{pair.query} {pair.passage}".lower()
        assert not any(word in text for word in SECRET_WORDS), pair
    assert {p.source for p in low} == {"heading", "title", "subject"}
    # The UNCLASSIFIED paragraph under a SECRET heading is readable; for this reader the
    # heading is not there, so the paragraph is under the title (as search shows it).
    weather = [p for p in low if "weather is clear" in p.passage]
    assert len(weather) == 4
    assert all(p.query.endswith(" notes") and p.source == "title" for p in weather)
    # The first section of a document with a SECRET paragraph: without it.
    first = next(p for p in low if p.query == f"{WORDS[3]} report")
    assert first.passage == f"The {WORDS[3]} {FILLER[1]} {FILLER[2]} arrived today."
    # Nor does it get the id of a document it may not read, even to split by.
    unreadable = {p.group for p in low if p.group.startswith("part:")}
    assert len(unreadable) == 4

    high = mine_pairs(corpus.session("stew"))
    assert len(high) > len(low)
    # A pair is marked with both its sides: a SECRET heading over an UNCLASSIFIED paragraph...
    heading = next(p for p in high if p.query.startswith("Zulu canary"))
    assert heading.marking.banner() == "SECRET" and "weather is clear" in heading.passage
    # ... and an UNCLASSIFIED heading over a SECRET paragraph.
    section = next(p for p in high if p.query == first.query and p.passage != first.passage)
    assert section.marking.banner() == "SECRET" and "zulu canary kilo" in section.passage
    for pair in high:
        if any(word in f"{pair.query} {pair.passage}".lower() for word in SECRET_WORDS):
            assert pair.marking.banner() == "SECRET", pair
    subjects = [p for p in low if p.source == "subject"]
    assert len(subjects) == 3 and all(p.query.endswith("outage") for p in subjects)
    assert all("down until noon" in p.passage for p in subjects)


def test_a_model_mined_by_an_unclassified_trainer_is_unclassified(corpus: Workspace) -> None:
    result = train_embedder(corpus.session("ustew"), "mined", "tiny", mine=True, epochs=1)
    _well_formed(result.metrics)
    assert result.version.marking.banner() == "UNCLASSIFIED"
    assert result.version.manifest["datasets"] == []
    pairs = result.version.manifest["parameters"]["pairs"]
    assert pairs["source"] == "mined" and set(pairs["kinds"]) == {"heading", "title", "subject"}
    assert result.held_out_pairs >= 2 and result.train_pairs >= 4
    stew = corpus.session("stew")
    secret = train_embedder(stew, "mined-s", "tiny", mine=True, epochs=1)
    assert secret.version.marking.banner() == "SECRET"
    capped = train_embedder(stew, "mined-u", "tiny", mine=True, epochs=1, max_marking="U")
    assert capped.version.marking.banner() == "UNCLASSIFIED"
    assert capped.train_pairs + capped.held_out_pairs < secret.train_pairs + secret.held_out_pairs


def test_held_out_mined_pairs_never_share_a_document_with_training_pairs(
    corpus: Workspace,
) -> None:
    from garrison.models._pairs import HELD_OUT, TRAIN, hold_out

    pairs = hold_out(mine_pairs(corpus.session("stew")), 0.2, seed=0)
    train = {p.group for p in pairs if p.split == TRAIN}
    held = {p.group for p in pairs if p.split == HELD_OUT}
    assert train and held and not train & held
    assert hold_out(pairs, 0.2, seed=0) == pairs  # seeded: the same split again


def test_dataset_pairs_may_name_record_fields(corpus: Workspace) -> None:
    stew = corpus.session("stew")
    Datasets(stew).create(
        "sections",
        Selection(kind="elements", fields=("section_path",)),
        ratios={"train": 0.75, "test": 0.25},
    )
    _, pairs = dataset_pairs(stew, "sections", "section_path", "text")
    assert pairs and {p.source for p in pairs} == {"dataset"}
    assert {p.split for p in pairs} == {"train", "held-out"}
    # The deepest heading is the query; the record's marking (which shows its headings) is
    # the pair's: a SECRET heading over an UNCLASSIFIED paragraph makes a SECRET pair.
    weather = [p for p in pairs if "weather is clear" in p.passage]
    assert len(weather) == 4
    assert all(
        p.query.startswith("Zulu canary") and p.marking.banner() == "SECRET" for p in weather
    )


def test_visible_heading_markings_is_the_reader_view_of_headings() -> None:
    path, ids, readable = ["a", "b", "c", "d"], [1, 2, None, 3], frozenset({1, 3, 7})
    shown = visible_heading_markings(path, ids, readable, 7)
    assert shown == [("a", 1), ("c", 7), ("d", 3)]
    assert [h for h, _ in shown] == visible_headings(path, ids, readable, 7)
    assert visible_heading_markings(path, None, readable, None) == []


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "kwargs", "error", "match"),
    [
        ("stew", {"pairs": "pairs", "query_field": "question"}, InvalidInput, "no record with"),
        (
            "stew",
            {"pairs": "pairs", "passage_field": "note", "query_field": "note"},
            InvalidInput,
            "must differ",
        ),
        ("stew", {"pairs": "pairs-train-only"}, InvalidInput, "no test or validation split"),
        ("stew", {"pairs": "pairs-high", "max_marking": "U"}, InvalidInput, "at or below"),
        ("stew", {}, InvalidInput, "either --pairs"),
        ("stew", {"pairs": "pairs", "mine": True}, InvalidInput, "either --pairs"),
        ("stew", {"pairs": "pairs", "base": "nothing-here"}, NotFound, "No model version"),
        ("ustew", {"pairs": "pairs", "base": "tiny-secret"}, NotFound, "No model version"),
        ("ustew", {"pairs": "mixed"}, NotFound, "No dataset version"),
        ("stew", {"pairs": "no-such-dataset"}, NotFound, "No dataset version"),
        ("vera", {"pairs": "pairs"}, NotPermitted, "may not"),
        ("ustew", {"pairs": "pairs", "max_marking": "S"}, NotPermitted, "above what"),
        ("stew", {"pairs": "pairs", "epochs": 0}, InvalidInput, "--epochs"),
        ("stew", {"pairs": "pairs", "batch_size": 1}, InvalidInput, "--batch-size"),
        ("stew", {"pairs": "pairs", "max_minutes": 0}, InvalidInput, "--max-minutes"),
        ("stew", {"pairs": "pairs", "name": "-bad name"}, InvalidInput, "model name"),
        ("stew", {"pairs": "pairs", "base": "topic"}, InvalidInput, "not an embedder"),
        ("stew", {"pairs": "pairs", "base": "tiny-onnx"}, InvalidInput, "onnx format"),
    ],
)
def test_bad_input_is_one_sentence_and_registers_nothing(
    ws: Workspace, tmp_path: Path, who: str, kwargs: dict[str, object], error: type, match: str
) -> None:
    if kwargs.get("base") == "topic" and "topic" not in _names(ws):
        head = tmp_path / "head"
        write_classifier(
            head,
            trainer="logreg",
            labels=["a", "b"],
            weight=np.zeros((2, 32), dtype=np.float32),
            bias=np.zeros(2, dtype=np.float32),
            embedder={"id": Models(ws.session()).resolve("tiny").id},
        )
        Models(ws.session("stew")).register(kind="classifier", name="topic", folder=head)
    before = _names(ws)
    args = dict(kwargs)
    name = str(args.pop("name", "bad"))
    base = str(args.pop("base", "tiny"))
    with pytest.raises(error, match=match) as caught:
        train_embedder(ws.session(who), name, base, **{"epochs": 1, **args})  # type: ignore[arg-type]
    assert isinstance(caught.value, GarrisonError)
    assert str(caught.value).count(". ") == 0 or str(caught.value).endswith(".")
    assert _names(ws) == before


def test_too_few_pairs_are_refused(ws: Workspace, tmp_path: Path, tiny: Path) -> None:
    small = Workspace.init(tmp_path / "small", system_high="SECRET")
    try:
        system = small.session()
        _corpus(tmp_path / "in", docs=2)
        for mail in (tmp_path / "in").glob("*.eml"):
            mail.unlink()
        ingest_paths(system, [str(tmp_path / "in")], IngestOptions(default_marking="U"))
        Models(system).register(kind="embedder", name="tiny", folder=tiny)
        with pytest.raises(InvalidInput, match="Too few training pairs"):
            train_embedder(system, "few", "tiny", mine=True)
        assert {v.name for v in Models(system).list()} == {"tiny"}
    finally:
        small.close()


def test_a_corpus_without_headings_titles_or_subjects_mines_nothing(
    tmp_path: Path, tiny: Path
) -> None:
    flat = Workspace.init(tmp_path / "flat", system_high="SECRET")
    try:
        system = flat.session()
        folder = tmp_path / "in"
        folder.mkdir()
        for d in range(5):
            (folder / f"flat{d}.md").write_text(f"(U) {WORDS[d]} is a word.\n\n(U) And more.\n")
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="U"))
        Models(system).register(kind="embedder", name="tiny", folder=tiny)
        with pytest.raises(InvalidInput, match="No training pairs could be mined"):
            train_embedder(system, "flat", "tiny", mine=True)
        assert {v.name for v in Models(system).list()} == {"tiny"}
    finally:
        flat.close()


# -- command line ----------------------------------------------------------------------------------


def test_cli_trains_and_prints_base_beside_refined(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    w = ["-w", str(ws.root), "--as", "stew"]
    argv = ["model", "train", "embedder", "cli-refined", "--base", "tiny", "--pairs", "pairs"]
    fast = ["--epochs", "10", "--batch-size", "8", "--learning-rate", "0.001"]
    assert main([*argv, *fast, *w, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["name"] == "cli-refined" and data["model"]["marking"] == "UNCLASSIFIED"
    assert data["base"]["name"] == "tiny" and data["resumed_from"] == 0
    _well_formed(data["metrics"])
    assert (
        data["metrics"]["refined"]["recall@10"]["value"]
        > data["metrics"]["base"]["recall@10"]["value"]
    )
    assert data["pairs"]["train"] > 0 and data["pairs"]["held_out"] > 0
    assert main([*argv, *fast, "--seed", "1", *w]) == 0
    out = capsys.readouterr().out
    assert "Registered cli-refined@" in out and "recall@10" in out and "mrr" in out
    assert "metric\tbase\trefined" in out
    # Exit codes: unreadable base 3, bad input 2, no role 4, a bound reached 75.
    uw = ["-w", str(ws.root), "--as", "ustew"]
    secret = ["model", "train", "embedder", "x", "--base", "tiny-secret", "--pairs", "pairs"]
    assert main([*secret, *uw]) == 3
    x = [*argv[:3], "x", "--base", "tiny"]
    assert main([*x, "--mine", "--pairs", "pairs", *w]) == 2
    assert main([*x, "--pairs", "pairs", "-w", str(ws.root), "--as", "vera"]) == 4
    assert main([*x, "--pairs", "pairs", "--max-minutes", "0.0000001", *w]) == 75
    err = capsys.readouterr().err
    assert "resume" in err and "Traceback" not in err
