"""Int8 ONNX embedder vs raw sentence-transformers PyTorch encode, all-MiniLM-L6-v2 on CPU.

MiniLM is exported as ``garrison model optimize`` exports it (torch.onnx.export, onnxruntime's
transformer fusions, dynamic int8 per-channel MatMul weights) and both models embed the same
texts at the same batch size and thread count, alternating rounds: short sentences, and
chunk-length texts of 200-256 tokens. Targets: >= 2.0x on short and >= 1.5x on chunk-length
texts at mean cosine >= 0.99 to the PyTorch vectors.

Then the whole default pipeline (bench/pipeline.py's generated corpus, 1 worker) runs once with
the PyTorch MiniLM and once with the int8 ONNX one standing in for it under the same name, each
on its own copy of the ingested workspace in its own spawned process: wall time ratio and peak
memory, on :data:`PIPELINE_DOCS` documents (the 10,000-document run takes over 20 minutes with
PyTorch on this machine).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench._timing import interleaved
from bench.embed import sentences
from garrison.models import MINILM, SentenceTransformerModel, get_model
from garrison.models._onnx import OnnxEmbeddingModel, export_int8, intra_op_threads

BATCH_SIZE = 64
PIPELINE_DOCS = 400


def chunk_texts(model: SentenceTransformerModel, n: int, seed: int = 5) -> list[str]:
    """``n`` texts of 200-256 tokens each (MiniLM's count, special tokens included)."""
    rng = random.Random(seed)
    pool = sentences(4000, seed=seed)
    out: list[str] = []
    while len(out) < n:
        parts: list[str] = []
        target = rng.randint(200, 256)
        while True:
            parts.append(rng.choice(pool))
            count = model.count_tokens(" ".join(parts))
            if count >= target:
                break
        if count > 256:
            parts.pop()
        text = " ".join(parts)
        if 200 <= model.count_tokens(text) <= 256:
            out.append(text)
    return out


def _cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float((a * b).sum(axis=1).mean())


def _pipeline_run(root: str, onnx_folder: str | None) -> dict[str, Any]:
    """One default-pipeline run (in a spawned process), MiniLM or its int8 ONNX stand-in."""
    from bench import pipeline as bench_pipeline
    from garrison.models import embedding

    model: OnnxEmbeddingModel | None = None
    if onnx_folder is not None:
        # The embed and chunk stages look MiniLM up by name. One worker: the pipeline's extra
        # workers come from a fork server, which would not see this stand-in.
        model = OnnxEmbeddingModel(MINILM, Path(onnx_folder))
        embedding._cache[(MINILM, None)] = model
    out = bench_pipeline._measure(root, None, 1, None)
    used = type(embedding._cache[(MINILM, None)]).__name__
    assert model is None or (used == "OnnxEmbeddingModel" and model._session is not None)
    out["embedder"] = used
    return out


def _pipeline(onnx_folder: Path, n: int, scratch: Path) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from bench import pipeline as bench_pipeline
    from garrison.ingest.engine import IngestOptions, ingest_paths
    from garrison.store.workspace import Workspace

    corpus = scratch / "corpus"
    corpus.mkdir()
    bench_pipeline.make_corpus(corpus, n)
    ingested = scratch / "ingested"
    ws = Workspace.init(ingested, system_high=bench_pipeline.SYSTEM_HIGH)
    try:
        options = IngestOptions(default_marking=bench_pipeline.DEFAULT_MARKING, workers=2)
        ingest_paths(ws.session(), [str(corpus)], options)
    finally:
        ws.close()
    out: dict[str, Any] = {}
    walls = {}
    for label, folder in (("PyTorch", None), ("int8 ONNX", str(onnx_folder))):
        copy = scratch / f"ws-{label.replace(' ', '-')}"
        shutil.copytree(ingested, copy)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(_pipeline_run, str(copy), folder).result()
        shutil.rmtree(copy, ignore_errors=True)
        rep = result["report"]
        walls[label] = result["wall_s"]
        embed_s = sum(s["seconds"] for s in rep["stages"] if s["stage"] == "embed")
        peak = max(result["maxrss_self_kib"], result["maxrss_children_kib"]) / 1024
        out[f"pipeline {label}: embedder class"] = result["embedder"]
        out[f"pipeline {label}: documents / chunks / failed"] = (
            f"{rep['documents']} / {rep['chunks']} / {rep['failed']}"
        )
        out[f"pipeline {label}: wall s / embed stage s"] = f"{result['wall_s']:.1f} / {embed_s:.1f}"
        out[f"pipeline {label}: peak RSS MiB (any process)"] = round(peak, 1)
    out["pipeline wall time ratio PyTorch / int8 ONNX"] = round(
        walls["PyTorch"] / walls["int8 ONNX"], 2
    )
    return out


def run(*, quick: bool = False) -> dict[str, Any]:
    import torch

    fp32 = get_model(MINILM)
    assert isinstance(fp32, SentenceTransformerModel)
    raw = fp32.raw
    threads = intra_op_threads()
    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    try:
        exported = export_int8(fp32.folder, work / "int8", max_seq_length=fp32.max_tokens)
        int8 = OnnxEmbeddingModel("all-MiniLM-L6-v2-int8", exported.folder)
        int8.load()
        short = sentences(300 if quick else 1_000)
        long = chunk_texts(fp32, 32 if quick else 96)
        results: dict[str, Any] = {
            "threads (torch / onnxruntime)": f"{torch.get_num_threads()} / {threads}",
            "batch size": BATCH_SIZE,
            "fused operators": ", ".join(f"{k} {v}" for k, v in exported.fused.items()),
            "quantized operators": ", ".join(f"{k} {v}" for k, v in exported.quantized.items()),
            "model size MiB (safetensors / onnx)": (
                f"{(fp32.folder / 'model.safetensors').stat().st_size / 2**20:.1f} / "
                f"{(exported.folder / 'model.onnx').stat().st_size / 2**20:.1f}"
            ),
        }
        ok = True
        for label, texts, target in (("short", short, 2.0), ("chunk-length", long, 1.5)):
            tokens = [fp32.count_tokens(t) for t in texts]
            raw.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)  # warm-up
            int8.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)
            reference = raw.encode(
                texts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False
            )
            cosine = _cosine(int8.encode(texts, batch_size=BATCH_SIZE), reference)

            def candidate(texts: list[str] = texts) -> None:
                int8.encode(texts, batch_size=BATCH_SIZE)

            def baseline(texts: list[str] = texts) -> None:
                raw.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False)

            cand, base = interleaved(candidate, baseline, rounds=3)
            ratio = base / cand
            passed = ratio >= target and cosine >= 0.99
            ok = ok and passed
            results.update(
                {
                    f"{label}: texts / mean tokens": f"{len(texts)} / {np.mean(tokens):.0f}",
                    f"{label}: int8 ONNX texts/s": round(len(texts) / cand, 1),
                    f"{label}: PyTorch texts/s": round(len(texts) / base, 1),
                    f"{label}: ratio (target >= {target}x)": round(ratio, 2),
                    f"{label}: mean cosine to PyTorch": round(cosine, 4),
                    f"{label}: pass": "pass" if passed else "MISS",
                }
            )
        print("   running the default pipeline twice ...", file=sys.stderr, flush=True)
        n_docs = 100 if quick else PIPELINE_DOCS
        results["pipeline documents generated"] = n_docs
        results.update(_pipeline(exported.folder, n_docs, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "title": "ONNX: int8 ONNX embedder vs PyTorch sentence-transformers",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "notes": [
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"{os.cpu_count()} CPUs visible; the machine is shared, so only ratios mean much.",
            "Medians of interleaved rounds; vectors L2-normalized on both sides.",
            "All targets met." if ok else "At least one target missed (see the pass rows).",
        ],
    }
