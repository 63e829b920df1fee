"""Int8 ONNX embedder vs raw sentence-transformers PyTorch encode, all-MiniLM-L6-v2 on CPU.

MiniLM is exported as ``garrison model optimize`` exports it (torch.onnx.export, onnxruntime's
transformer fusions, dynamic int8 per-channel MatMul weights) and both models embed the same
texts at the same batch size and thread count, alternating rounds: short sentences, and
chunk-length texts of 200-256 tokens. Targets: >= 2.0x on short and >= 1.5x on chunk-length
texts at mean cosine >= 0.99 to the PyTorch vectors.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench._timing import interleaved
from bench.embed import sentences
from garrison.models import MINILM, SentenceTransformerModel, get_model
from garrison.models._onnx import OnnxEmbeddingModel, export_int8, intra_op_threads

BATCH_SIZE = 64


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
