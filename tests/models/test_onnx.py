"""Int8 ONNX embedders: export, fuse, quantize, check fidelity, register derived and marked,
open by reference, refuse tampered files; the ``garrison model optimize`` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from garrison.cli.main import main
from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.models import Models, ModelVersion, open_embedder
from garrison.models._check_texts import CHECK_TEXTS
from garrison.models._files import CACHE_DIR, manifest_files, verify_folder
from garrison.models._onnx import QUANTIZED_OPS, OnnxEmbeddingModel, graph_operators
from garrison.models._optimize import (
    MIN_CHECK_TEXTS,
    optimize_embedder,
    queries_for,
    read_check_file,
)
from garrison.models._use import load_embedder_folder
from garrison.security.audit import AuditAction
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import WORDS, corpus_texts, tiny_sentence_transformer

#: Held-out texts the tiny model's tokenizer knows: varied word sequences and "paragraphs".
TEXTS = [
    " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(4 + i % 9)) for i in range(30)
] + [
    ". ".join(
        " ".join(WORDS[(i * 5 + j * 11 + k) % len(WORDS)] for k in range(6)) for j in range(3)
    )
    + "."
    for i in range(20)
]
PARAMS = {"max_seq_length": 128}


@pytest.fixture(autouse=True)
def _tolerant_recall(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random 32-wide model ranks many texts nearly alike: one of 50 queries may flip with
    the thread count, moving recall@10 by 0.02 either way. The fidelity rule itself is tested
    with explicit thresholds; MiniLM's is measured in bench/onnx.py."""
    import garrison.models._optimize as optimize

    monkeypatch.setattr(optimize, "RECALL_TOLERANCE", 0.05)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


def _workspace(root: Path) -> Workspace:
    workspace = Workspace.init(root, system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("sam", SubjectSpec(clearance="S"))
    return workspace


def _register(ws: Workspace, tiny: Path, name: str, marking: str = "UNCLASSIFIED") -> ModelVersion:
    return Models(ws.session("stew")).register(
        kind="embedder", name=name, folder=tiny, marking=parse_marking(marking), parameters=PARAMS
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Iterator[Workspace]:
    workspace = _workspace(tmp_path_factory.mktemp("ws") / "ws")
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def optimized(
    shared: Workspace, tiny: Path
) -> tuple[ModelVersion, ModelVersion, dict[str, object]]:
    source = _register(shared, tiny, "tiny")
    result = optimize_embedder(shared.session("eve"), "tiny", name="tiny-int8", check_set=TEXTS)
    return source, result.version, result.to_dict()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = _workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


# -- the registered version ------------------------------------------------------------------------


def test_the_registered_graph_holds_quantized_operators(
    shared: Workspace, optimized: tuple[ModelVersion, ModelVersion, dict[str, object]]
) -> None:
    _, version, _ = optimized
    models = Models(shared.session("sam"))
    folder = models.folder(models.resolve(version.ref))
    assert sorted(manifest_files(version.manifest)) == sorted(
        ["model.onnx", "onnx_config.json", "tokenizer.json", "tokenizer_config.json"]
    )
    operators = graph_operators(folder / "model.onnx")
    quantized = {op for op in operators if op in QUANTIZED_OPS}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= quantized
    # The transformer optimizer fused attention and layer norms before quantizing.
    assert operators.get("Attention", 0) == 2
    assert operators.get("SkipLayerNormalization", 0) >= 2
    assert "MatMul" not in operators  # every MatMul weight is int8 now
    config = json.loads((folder / "onnx_config.json").read_text())
    assert config["max_seq_length"] == 128 and config["dim"] == 32 and config["pooling"] == "mean"


def test_it_opens_by_reference_and_follows_the_fp32_model(
    shared: Workspace,
    tiny: Path,
    optimized: tuple[ModelVersion, ModelVersion, dict[str, object]],
) -> None:
    source, version, _ = optimized
    opened, model = open_embedder(shared.session("sam"), version.ref)
    assert isinstance(model, OnnxEmbeddingModel)
    assert opened.id == version.id and model.name == version.ref
    fp32 = load_embedder_folder("fp32", tiny, PARAMS)
    texts = [*corpus_texts()[:40], *TEXTS[:10], "convoy", ""]
    ours, theirs = model.encode(texts, batch_size=7), fp32.encode(texts)
    assert ours.shape == theirs.shape == (len(texts), 32) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert float((ours * theirs).sum(axis=1).mean()) >= 0.99
    # Batching and length-sorting barely move a text's vector (dynamic quantization scales
    # each batch's activations by that batch's range).
    one = model.encode([texts[3]])
    assert float(one[0] @ ours[3]) >= 0.9995
    assert model.encode([]).shape == (0, 32)
    long_text = " ".join(corpus_texts()[:30])  # far over 128 tokens: truncated like fp32
    for text in [*texts, long_text]:
        assert model.count_tokens(text) == fp32.count_tokens(text)
        assert model.token_spans(text) == fp32.token_spans(text)
    assert model.count_tokens(long_text) > 128 and model.max_tokens == 128
    long_cos = float((model.encode([long_text]) * fp32.encode([long_text])).sum())
    assert long_cos >= 0.99
    assert model.special_tokens == 2
    assert source.kind == "embedder"


def test_it_is_derived_from_its_source_at_the_same_marking(
    optimized: tuple[ModelVersion, ModelVersion, dict[str, object]],
) -> None:
    source, version, data = optimized
    assert version.marking == source.marking
    assert version.name == "tiny-int8" and version.kind == "embedder"
    assert version.manifest["base"] == source.id
    assert [(s["kind"], s["id"], s["name"]) for s in version.lineage] == [
        ("base", source.id, "tiny")
    ]
    params = version.manifest["parameters"]
    assert params["format"] == "onnx"
    assert params["quantization"] == "int8-dynamic-per-channel"
    assert params["derived_from"] == source.id and isinstance(params["opset"], int)
    assert version.card["derived_from"] == source.ref
    assert version.card["fidelity"]["passed"] is True
    fidelity = data["fidelity"]
    assert isinstance(fidelity, dict) and fidelity["source"] == "given"
    assert fidelity["texts"] == len(TEXTS) and fidelity["mean_cosine"]["value"] >= 0.99
    gap = abs(fidelity["recall@10_int8"]["value"] - fidelity["recall@10_fp32"]["value"])
    assert gap <= 0.01
    assert data["size_bytes"]["after"] > 0  # type: ignore[index]


def test_optimize_is_audited(
    shared: Workspace, optimized: tuple[ModelVersion, ModelVersion, dict[str, object]]
) -> None:
    source, version, _ = optimized
    events = [e for e in shared.audit.tail(None) if e.action == AuditAction.MODEL_OPTIMIZE.value]
    done = [e for e in events if e.object_id == version.id]
    assert done and done[-1].actor == "eve" and done[-1].decision == "allow"
    assert done[-1].details["source"] == source.id
    uses = [e for e in shared.audit.tail(None) if e.action == AuditAction.MODEL_USE.value]
    assert any(e.object_id == source.id and e.details["purpose"] == "optimize" for e in uses)


# -- marking and roles -----------------------------------------------------------------------------


def test_a_secret_source_gives_a_secret_version_no_u_reader_sees(ws: Workspace, tiny: Path) -> None:
    _register(ws, tiny, "hush", "SECRET")
    version = optimize_embedder(
        ws.session("stew"), "hush", name="hush-int8", check_set=TEXTS
    ).version
    assert version.marking.banner() == "SECRET"
    reader = ws.session("ursula")
    with pytest.raises(NotFound):
        Models(reader).resolve(version.ref)
    with pytest.raises(NotFound):
        open_embedder(reader, version.id)
    assert [v.name for v in Models(reader).list()] == []
    # A U steward cannot see the SECRET source either: it answers as missing.
    with pytest.raises(NotFound):
        optimize_embedder(ws.session("ustew"), "hush", check_set=TEXTS)
    assert open_embedder(ws.session("sam"), version.ref)[1].encode(["convoy"]).shape == (1, 32)


def test_only_stewards_and_evaluators_optimize(ws: Workspace, tiny: Path) -> None:
    _register(ws, tiny, "tiny")
    before = _versions(ws)
    with pytest.raises(NotPermitted):
        optimize_embedder(ws.session("sam"), "tiny", check_set=TEXTS)
    denied = [e for e in ws.audit.tail(None) if e.action == AuditAction.MODEL_OPTIMIZE.value]
    assert denied and denied[-1].decision == "deny" and denied[-1].actor == "sam"
    assert _versions(ws) == before


# -- refusals --------------------------------------------------------------------------------------


def _versions(ws: Workspace) -> set[str]:
    return {v.id for v in Models(ws.session("stew")).list()}


def test_a_failed_fidelity_check_registers_nothing(ws: Workspace, tiny: Path) -> None:
    _register(ws, tiny, "tiny")
    before = _versions(ws)
    with pytest.raises(CheckFailed, match="fidelity check"):
        optimize_embedder(ws.session("stew"), "tiny", check_set=TEXTS, min_cosine=1.0001)
    with pytest.raises(CheckFailed, match="recall@10"):
        optimize_embedder(ws.session("stew"), "tiny", check_set=TEXTS, recall_tolerance=-1.0)
    assert _versions(ws) == before
    cache = ws.root / CACHE_DIR
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no export left behind
    failed = [e for e in ws.audit.tail(None) if e.action == AuditAction.MODEL_OPTIMIZE.value]
    assert [e.decision for e in failed] == ["error", "error"]
    assert failed[0].details["mean_cosine"] < 1.0001


def test_bad_sources_and_check_sets_are_refused(ws: Workspace, tiny: Path, tmp_path: Path) -> None:
    _register(ws, tiny, "tiny")
    stew = ws.session("stew")
    before = _versions(ws)
    with pytest.raises(InvalidInput, match="at least"):
        optimize_embedder(stew, "tiny", check_set=TEXTS[: MIN_CHECK_TEXTS - 1])
    with pytest.raises(InvalidInput, match="at least"):
        optimize_embedder(stew, "tiny", check_set=["same text"] * 50)  # one distinct text
    head = tmp_path / "clf"
    head.mkdir()
    (head / "classifier.json").write_text("{}")
    Models(stew).register(kind="classifier", name="clf", folder=head)
    with pytest.raises(InvalidInput, match="only embedders"):
        optimize_embedder(stew, "clf", check_set=TEXTS)
    with pytest.raises(NotFound):
        optimize_embedder(stew, "nothing-here", check_set=TEXTS)
    assert _versions(ws) == before | {Models(stew).resolve("clf").id}


def test_an_onnx_version_is_not_optimized_again(ws: Workspace, tiny: Path) -> None:
    _register(ws, tiny, "tiny")
    stew = ws.session("stew")
    ref = optimize_embedder(stew, "tiny", check_set=TEXTS).version.ref
    assert Models(stew).resolve("tiny").id == Models(stew).resolve(ref).id  # the latest now
    with pytest.raises(InvalidInput, match="already onnx"):
        optimize_embedder(stew, ref, check_set=TEXTS)


def test_a_tampered_cached_graph_is_never_loaded(
    shared: Workspace, optimized: tuple[ModelVersion, ModelVersion, dict[str, object]]
) -> None:
    _, version, _ = optimized
    models = Models(shared.session("sam"))
    folder = models.folder(models.resolve(version.ref))
    graph = folder / "model.onnx"
    good = graph.read_bytes()
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0xFF
    graph.write_bytes(bytes(tampered))
    with pytest.raises(CheckFailed, match="SHA-256"):
        verify_folder(folder, manifest_files(version.manifest))
    again = models.folder(models.resolve(version.ref))  # re-materialized from the blobs
    assert (again / "model.onnx").read_bytes() == good
    model = OnnxEmbeddingModel("check", again)
    assert model.encode(["convoy fuel report"]).shape == (1, 32)


def test_a_broken_onnx_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    with pytest.raises(InvalidInput, match=r"model\.onnx"):
        OnnxEmbeddingModel("x", folder)
    (folder / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(InvalidInput, match=r"onnx_config\.json"):
        OnnxEmbeddingModel("x", folder)
    (folder / "onnx_config.json").write_text('{"format": 1, "max_seq_length": 0, "dim": 4}')
    with pytest.raises(InvalidInput, match="max_seq_length"):
        OnnxEmbeddingModel("x", folder)
    (folder / "onnx_config.json").write_text(
        '{"format": 1, "max_seq_length": 8, "dim": 4, "pooling": "max"}'
    )
    with pytest.raises(InvalidInput, match="pooling"):
        OnnxEmbeddingModel("x", folder)
    (folder / "onnx_config.json").write_text('{"format": 1, "max_seq_length": 8, "dim": 4}')
    with pytest.raises(InvalidInput, match="tokenizer"):
        OnnxEmbeddingModel("x", folder)


# -- check sets ------------------------------------------------------------------------------------


def test_the_built_in_check_set_is_used_without_workspace_texts(ws: Workspace, tiny: Path) -> None:
    _register(ws, tiny, "tiny")
    result = optimize_embedder(ws.session("stew"), "tiny", name="tiny-b")
    fidelity = result.fidelity
    assert fidelity.source == "built-in" and fidelity.texts == len(CHECK_TEXTS)
    assert fidelity.passed and result.version.card["fidelity"]["source"] == "built-in"


def test_queries_are_first_sentences_or_perturbed_copies() -> None:
    assert queries_for(["One two. Three four five.", "The Convoy, left the depot at dawn!"]) == [
        "One two.",
        "the convoy left depot at dawn",
    ]
    assert all(
        q and q != t for q, t in zip(queries_for(list(CHECK_TEXTS)), CHECK_TEXTS, strict=True)
    )
    assert len(set(CHECK_TEXTS)) == len(CHECK_TEXTS) >= 60


def test_check_files(tmp_path: Path) -> None:
    plain = tmp_path / "texts.txt"
    plain.write_text("first text\n\n  second   text \nfirst text\n")
    assert read_check_file(plain) == ["first text", "second text"]
    lines = tmp_path / "texts.jsonl"
    lines.write_text('{"text": "a"}\n\n{"text": "b", "id": 2}\n')
    assert read_check_file(lines) == ["a", "b"]
    lines.write_text('{"text": "a"}\n{"body": "b"}\n')
    with pytest.raises(InvalidInput, match="Line 2"):
        read_check_file(lines)
    lines.write_text("{not json\n")
    with pytest.raises(InvalidInput, match="Line 1"):
        read_check_file(lines)
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InvalidInput, match="UTF-8"):
        read_check_file(binary)


# -- the command -----------------------------------------------------------------------------------


def test_cli_optimize(
    ws: Workspace, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _register(ws, tiny, "tiny")
    check = tmp_path / "check.txt"
    check.write_text("\n".join(TEXTS) + "\n")
    w = ["-w", str(ws.root)]
    capsys.readouterr()
    args = ["model", "optimize", source.ref, *w, "--check-file", str(check)]
    assert main([*args, "--as", "stew", "--name", "fast", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == ""  # no library chatter (loading bars, quantizer advice)
    assert data["source"]["id"] == source.id and data["ref"].startswith("fast@")
    assert data["fidelity"]["passed"] is True and data["marking"] == "UNCLASSIFIED"
    assert data["quantized_operators"]["MatMulInteger"] > 0
    assert main([*args, "--as", "stew"]) == 0
    out = capsys.readouterr().out
    assert "Registered tiny@" in out and "mean cosine to fp32" in out
    assert "recall@10" in out and "MiB" in out
    assert main([*args, "--as", "sam"]) == 4  # not a steward or evaluator
    short = tmp_path / "short.txt"
    short.write_text("one\ntwo\n")
    assert (
        main(["model", "optimize", source.ref, *w, "--check-file", str(short), "--as", "stew"]) == 2
    )
    assert "at least" in capsys.readouterr().err


FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 0}
  - embed: {model: hashing}
"""


def test_workspace_chunks_no_higher_than_the_model_are_the_default_check_set(
    ws: Workspace, tiny: Path, tmp_path: Path
) -> None:
    from garrison.ingest.engine import IngestOptions, ingest_paths
    from garrison.models._optimize import _workspace_texts
    from garrison.pipeline.executor import run_pipeline
    from garrison.pipeline.spec import parse_pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(24):
        words = " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(12))
        (folder / f"u{i}.txt").write_text(f"(U) Note {i}: the {words} report.\n")
    for i in range(6):
        (folder / f"s{i}.txt").write_text(
            f"SECRET\n\n(S) The walruspeak {i} convoy moves at dawn.\n\nSECRET\n"
        )
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    stew = ws.session("stew")
    texts = _workspace_texts(stew, parse_marking("UNCLASSIFIED"))
    assert len(texts) == 24 and not any("walruspeak" in t for t in texts)
    assert len(_workspace_texts(stew, parse_marking("SECRET"))) == 30
    assert _workspace_texts(ws.session("ursula"), parse_marking("SECRET")) == texts
    _register(ws, tiny, "tiny")
    fidelity = optimize_embedder(stew, "tiny", name="tiny-w").fidelity
    assert fidelity.source == "workspace" and fidelity.texts == 24 and fidelity.passed
