"""``garrison model train classifier`` and ``garrison model predict``: output, exit codes, markings
and audit."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.models import Models
from garrison.security.audit import AuditAction
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer

TOPICS = {
    "logistics": ["convoy", "fuel", "supply", "depot", "cargo", "warehouse"],
    "weather": ["storm", "satellite", "imagery", "river", "harbor", "vessel"],
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture
def ws(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "ws")
    assert run(capsys, "init", path, "--system-high", "SECRET//NOFORN")[0] == 0
    for name, clearance, role in (
        ("stew", "S", "steward"),
        ("ustew", "U", "steward"),
        ("ursula", "U", "viewer"),
        ("viv", "S", "viewer"),
    ):
        code, _, err = run(
            capsys, "user", "add", name, "-w", path, "--clearance", clearance, "--role", role
        )
        assert code == 0, err
    folder = tmp_path / "in"
    folder.mkdir()
    rng = random.Random(0)
    for f in range(10):
        lines = ["note,label,classification"]
        for i in range(6):
            label = list(TOPICS)[(f + i) % 2]
            marking = "SECRET" if (f * 6 + i) % 9 == 0 else "UNCLASSIFIED"
            lines.append(f"{' '.join(rng.sample(TOPICS[label], 3))},{label},{marking}")
        (folder / f"f{f}.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run(
        capsys, "ingest", str(folder), "--marking-column", "classification",
        "--default-marking", "UNCLASSIFIED", "-w", path,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(
        capsys, "dataset", "create", "notes", "--kind", "records", "--field", "fields",
        "--split", "train=0.6,validation=0.2,test=0.2", "-w", path, "--as", "stew",
    )  # fmt: skip
    assert code == 0, err
    with Workspace.open(path) as workspace:
        Models(workspace.session("stew")).register(kind="embedder", name="tiny", folder=tiny)
    return path


def _train(capsys: pytest.CaptureFixture[str], ws: str, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "model", "train", "classifier", "topic", "--dataset", "notes",
        "--text-field", "note", "--label-field", "label", "--embedder", "tiny",
        "-w", ws, *extra,
    )  # fmt: skip


def _events(ws: str, action: AuditAction) -> list[Any]:
    with Workspace.open(ws) as workspace:
        return [e for e in workspace.audit.tail(None) if e.action == action.value]


def test_train_prints_metrics_with_intervals_and_json(
    ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _train(capsys, ws, "--as", "stew")
    assert code == 0, err
    assert "Trained topic@" in out and "[SECRET]" in out and "picked on validation" in out
    for row in ("accuracy", "macro-F1", "calibration error (ECE)", "precision weather"):
        assert row in out
    assert out.count("[") >= 8  # every metric with its interval
    code, out, err = _train(capsys, ws, "--as", "stew", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["marking"] == "SECRET" and data["trainer"] == "logreg"
    accuracy = data["metrics"]["accuracy"]
    assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    (event,) = _events(ws, AuditAction.MODEL_TRAIN)[-1:]
    assert event.details["result"] == data["id"]


def test_max_marking_gives_an_unclassified_model_an_unclassified_reader_uses(
    ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _train(capsys, ws, "--as", "stew", "--max-marking", "U", "--json")
    assert code == 0, err
    low = json.loads(out)
    assert low["marking"] == "UNCLASSIFIED"
    code, out, err = run(
        capsys, "model", "predict", low["ref"], "--text", "convoy fuel depot",
        "--text", "storm river", "-w", ws, "--as", "ursula", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["model"] == low["ref"]
    assert [p["marking"] for p in data["predictions"]] == ["UNCLASSIFIED", "UNCLASSIFIED"]
    assert {p["label"] for p in data["predictions"]} <= set(TOPICS)
    assert _events(ws, AuditAction.MODEL_PREDICT)[-1].details["count"] == 2
    # A SECRET input makes a SECRET prediction; one above the reader is refused.
    code, out, _ = run(
        capsys, "model", "predict", low["ref"], "--text", "cargo", "--marking", "SECRET",
        "-w", ws, "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["predictions"][0]["marking"] == "SECRET"
    code, _, err = run(
        capsys, "model", "predict", low["ref"], "--text", "cargo", "--marking", "SECRET",
        "-w", ws, "--as", "ursula",
    )  # fmt: skip
    assert code == 4 and "may not classify text marked SECRET" in err


def test_predict_reads_jsonl_from_a_file_or_stdin(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _train(capsys, ws, "--as", "stew")[0] == 0
    lines = [
        {"id": "a", "text": "convoy fuel supply"},
        {"id": "b", "text": "storm harbor", "marking": "CONFIDENTIAL"},
        "warehouse cargo",
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, out, err = run(
        capsys, "model", "predict", "topic", "--file", str(path), "-w", ws, "--as", "stew",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    predictions = json.loads(out)["predictions"]
    assert [p.get("id") for p in predictions] == ["a", "b", None]
    assert {p["marking"] for p in predictions} == {"SECRET"}  # the model is SECRET
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text()))
    code, out, err = run(
        capsys, "model", "predict", "topic", "--file", "-", "-w", ws, "--as", "stew"
    )
    assert code == 0, err
    assert "label" in out and "SECRET" in out and "warehouse cargo" in out
    # Bad input: both or neither source, a line that is not JSON.
    assert run(capsys, "model", "predict", "topic", "-w", ws)[0] == 2
    code, _, err = run(
        capsys, "model", "predict", "topic", "--text", "x", "--file", str(path), "-w", ws
    )
    assert code == 2 and "not both" in err
    path.write_text("not json\n")
    code, _, err = run(capsys, "model", "predict", "topic", "--file", str(path), "-w", ws)
    assert code == 2 and "Line 1" in err


def test_exit_codes_of_bad_training(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _train(capsys, ws, "--as", "stew", "--label-field", "topic")
    assert code == 2 and "has no field 'topic'" in err and not out
    assert len(err.strip().splitlines()) == 1  # one sentence, no traceback
    code, _, err = _train(capsys, ws, "--as", "stew", "--trainer", "forest")
    assert code == 2 and "Unknown trainer" in err
    code, _, err = _train(capsys, ws, "--as", "ustew")  # notes is SECRET: looks missing
    assert code == 3 and "No dataset version notes" in err
    code, _, err = _train(capsys, ws, "--as", "viv")
    assert code == 4
    code, _, err = _train(capsys, ws, "--as", "stew", "--max-minutes", "0")
    assert code == 1 and "resume" in err
    code, out, _ = run(capsys, "model", "ls", "-w", ws, "--json")
    assert [m["kind"] for m in json.loads(out)].count("classifier") == 0
    # An UNCLASSIFIED reader cannot use the SECRET classifier: it looks missing.
    assert _train(capsys, ws, "--as", "stew")[0] == 0
    code, _, err = run(
        capsys, "model", "predict", "topic", "--text", "x", "-w", ws, "--as", "ursula"
    )
    assert code == 3


def test_an_interrupted_training_says_how_to_resume(
    ws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("garrison.models._train_classifier.train_classifier", interrupted)
    code, _, err = _train(capsys, ws, "--as", "stew")
    assert code == 130 and "run the same command again to resume" in err
