"""Assistant latency: ``ask`` with the extractive answerer and with a generator, vs. search.

A workspace of generated, portion-marked reports (10,000 in a full run) is asked a fixed set of
questions by a viewer cleared to SECRET, once with the index embedded by the hashing embedder
and once by all-MiniLM-L6-v2 (the extractive answerer then embeds the question and every
candidate sentence with it: the model loads once per process, on the warm-up question).
Garrison's path is the whole ``ask`` (question marking, retrieval, catalog re-reads of each
chunk and its elements, sentence scoring, packing, citations, audit); the baseline, in the same
run and interleaved, is the ``search`` call ``ask`` makes for retrieval. A third run answers
with a generator: a tiny random-weight Llama built here from a config (2 layers, 64 wide, a
word-level tokenizer trained on the corpus; no download), registered as a local generator.
Reported for each: ``ask`` p50/p95 (target p95 < 1 s for the extractive answerer), the share of
it that retrieval takes, and the ratio to search alone.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from garrison.assist import SYSTEM_PROMPT, ask
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import MINILM, register_local
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.markings import UNCLASSIFIED
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: bench
stages:
  - normalize: {{}}
  - chunk: {{model: {model}, max_tokens: 128, overlap_tokens: 16}}
  - embed: {{model: {model}}}
"""
PLACES = ["harrow", "kestrel", "osprey", "falcon", "heron", "plover", "tern", "merlin", "wren"]
QUESTIONS = [
    "Where did the pallets of spare parts for depot harrow go?",
    "How many pallets did depot kestrel move?",
    "When was the osprey transfer logged?",
    "Which depot moved the most spare parts?",
    "What did report 42 say about the falcon depot?",
    "transfer logged heron pallets",
]
#: The target for the extractive answerer's p95 (milliseconds).
TARGET_MS = 1000.0
#: Documents of the MiniLM-indexed run (default: as many as the hashing run; 0 leaves it out):
#: embedding 10,000 reports with MiniLM on a busy 2-core machine takes most of an hour.
MINILM_ENV = "GARRISON_BENCH_ASK_MINILM_DOCS"


def _paragraph(i: int, j: int) -> str:
    marks = ["(U)", "(C)", "(S)", "(U)"]
    return (
        f"{marks[(i + j) % 4]} Report {i}, paragraph {j}: depot {PLACES[(i + j) % 9]} moved "
        f"{j * 13 + i % 7} pallets of spare parts. The transfer was logged on day {i % 28}."
    )


def _corpus(folder: Path, n: int) -> None:
    for i in range(n):
        paras = "\n\n".join(_paragraph(i, j) for j in range(4))
        (folder / f"r{i:05d}.txt").write_text(f"SECRET\n\n{paras}\n\nSECRET\n")


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def tiny_lm(folder: Path) -> Path:
    """A tiny causal LM directory with seeded random weights, built from a config (no
    download): deterministic, fast, and as real to the assistant as any local model."""
    import torch
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(WordLevel(unk_token="<unk>"))  # type: ignore[arg-type]
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    texts = [_paragraph(i, j) for i in range(60) for j in range(4)] + QUESTIONS
    texts += [SYSTEM_PROMPT, "system: user: assistant: <source> </source>"]
    tok.train_from_iterator(
        texts,
        trainer=WordLevelTrainer(  # type: ignore[arg-type]
            vocab_size=256, special_tokens=specials, show_progress=False
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
    )
    fast.chat_template = (
        "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
        "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
        pad_token_id=tok.token_to_id("<pad>"),
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    # Words only: it writes its whole allowance of new tokens, the same work for every question.
    model.generation_config.suppress_tokens = [tok.token_to_id(t) for t in specials]
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def _build(root: Path, n: int, model: str) -> tuple[Workspace, float, int]:
    """A workspace holding ``n`` reports, indexed with ``model``; (workspace, seconds, chunks)."""
    folder = root / "in"
    folder.mkdir(parents=True)
    _corpus(folder, n)
    ws = Workspace.init(root / f"ws-{model}", system_high="SECRET")
    system = ws.session()
    t0 = time.perf_counter()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    result = run_pipeline(system, parse_pipeline(PIPELINE.format(model=model), source="b.yaml"))
    build_s = time.perf_counter() - t0
    chunks = result.chunks
    system.add_user("viewer", SubjectSpec(clearance="S", roles=("viewer",)))
    return ws, build_s, chunks


def _measure(session: Session, rounds: int, generator: str | None = None) -> dict[str, Any]:
    """``ask`` and, interleaved, the search it retrieves through, ``rounds`` x every question."""
    first = ask(session, QUESTIONS[0], generator=generator)  # warm-up: index, model, caches
    asked: list[float] = []
    searched: list[float] = []
    retrieval: list[float] = []
    matches: list[int] = []
    refused = 0
    for _ in range(rounds):
        for question in QUESTIONS:
            t0 = time.perf_counter()
            answer = ask(session, question, generator=generator)
            t1 = time.perf_counter()
            found = search(session, question, k=8)
            t2 = time.perf_counter()
            matches.append(found.total)
            asked.append((t1 - t0) * 1000)
            searched.append((t2 - t1) * 1000)
            retrieval.append(answer.timings["retrieval_ms"] / answer.timings["total_ms"])
            refused += answer.refused
    return {
        "n": len(asked),
        "refused": refused,
        "p50": _pct(asked, 50),
        "p95": _pct(asked, 95),
        "max": max(asked),
        "search p50": _pct(searched, 50),
        "matches": statistics.median(matches),
        "ratio": statistics.median(asked) / max(statistics.median(searched), 1e-9),
        "retrieval share": statistics.median(retrieval),
        "generator": first.generator,
        "context": len(first.context),
    }


def _report(results: dict[str, Any], label: str, m: dict[str, Any], target: bool) -> None:
    results[f"{label}: questions asked (refused)"] = f"{m['n']} ({m['refused']})"
    results[f"{label}: ask p50 ms"] = round(m["p50"], 1)
    results[f"{label}: ask p95 ms"] = round(m["p95"], 1)
    results[f"{label}: ask max ms"] = round(m["max"], 1)
    results[f"{label}: search alone p50 ms (baseline)"] = round(m["search p50"], 1)
    results[f"{label}: chunks matching the question's words (median)"] = round(m["matches"])
    results[f"{label}: ask / search (medians)"] = round(m["ratio"], 2)
    results[f"{label}: retrieval share of ask (median)"] = round(m["retrieval share"], 3)
    if target:
        results[f"{label}: target p95 < 1000 ms"] = "pass" if m["p95"] < TARGET_MS else "FAIL"


def notes_for(results: dict[str, Any], load: str) -> list[str]:
    """The report's notes, read from its measures; ``load``: the machine's load during it."""
    ext = "extractive, hashing index"
    matching = results[f"{ext}: chunks matching the question's words (median)"]
    minilm = results.get("MiniLM index: documents")
    notes = [
        "Extractive answerer, k = 8 (the default), a viewer cleared to SECRET on a corpus of "
        "SECRET reports with U, C and S portions: every chunk is readable, so retrieval and "
        "scoring work on full candidate sets.",
        f"Target p95 < 1 s: {results[f'{ext}: target p95 < 1000 ms']} with the hashing index "
        f"({results[f'{ext}: ask p95 ms']:.0f} ms on {results['documents']} reports)"
        + (
            f" and {results['extractive, MiniLM index: target p95 < 1000 ms']} with the MiniLM "
            f"index ({results['extractive, MiniLM index: ask p95 ms']:.0f} ms on "
            f"{results['MiniLM index: documents']} reports)."
            if minilm
            else "."
        ),
        f"Retrieval is {results[f'{ext}: retrieval share of ask (median)']:.1%} of ask's time "
        f"(median): the search ask makes, not the answerer, is the cost. Every question here "
        f"shares words with nearly every generated chunk (median "
        f"{matching} matching of {results['chunks']}), and search ranks every full-text match "
        "exactly (BM25 recomputed from the readable matches, each re-checked against the catalog) "
        "before it fuses the rankings, so its time grows with the number of matching chunks. "
        "How much faster a corpus with more varied wording would be was not measured; "
        "search's full-text side is what to make faster.",
        "Retrieval is the search plus the catalog re-reads of each chunk and its readable "
        "elements (bindings verified); the rest is sentence scoring, packing, citations and the "
        "audit event. With the hashing index the extractive answerer scores by term overlap "
        "alone (hashing vectors carry no meaning); with the MiniLM index it also embeds the "
        "question and every candidate sentence with MiniLM on each question (CPU; the model "
        "loads once per process, on the warm-up question).",
        "The generator run answers with a tiny random-weight local Llama built from a config "
        "(greedy, up to 128 new tokens in a 512-token context): it measures the assistant's "
        "overhead around a local model (registry check, file verification, prompt, support "
        "check), not a real model's speed; its sentences are random corpus words.",
        f"Shared 2-core machine, load {load}: absolute times are inflated by the other work on "
        "it; the ask/search ratios and the retrieval share are the comparable numbers.",
    ]
    if minilm is not None and minilm < results["documents"]:
        notes.append(
            f"The MiniLM-indexed run has {minilm} reports because embedding "
            f"{results['documents']:,} with MiniLM on this busy machine takes most of an hour "
            f"({MINILM_ENV}); the answerer's own part is the same "
            "per question at any corpus size (it scores the k retrieved chunks), while search's "
            "part grows with the corpus as above."
        )
    return notes


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 300 if quick else 10_000
    # Every question's words occur in nearly every generated chunk, and search ranks all of the
    # matches exactly: at 10,000 reports one question takes tens of seconds, so few rounds.
    rounds = 3 if quick else 2
    gen_rounds = 2 if quick else 1
    minilm_n = int(os.environ.get(MINILM_ENV, n))
    root = Path(tempfile.mkdtemp(prefix="garrison-bench-ask-"))
    results: dict[str, Any] = {"documents": n}
    notes: list[str] = []
    try:
        ws, build_s, chunks = _build(root, n, "hashing")
        try:
            results["hashing index: build s (ingest + pipeline)"] = round(build_s, 1)
            results["chunks"] = chunks
            session = ws.session("viewer")
            hashing = _measure(session, rounds)
            _report(results, "extractive, hashing index", hashing, True)
            tiny = register_local(
                ws.session(), "tiny", path=tiny_lm(root / "tiny"), marking=UNCLASSIFIED
            )
            generated = _measure(ws.session("viewer"), gen_rounds, generator=tiny.name)
            _report(results, "tiny local generator, hashing index", generated, False)
        finally:
            ws.close()
        if minilm_n > 0:
            ws, build_s, chunks = _build(root / "minilm", minilm_n, MINILM)
            try:
                results["MiniLM index: documents"] = minilm_n
                results["MiniLM index: chunks"] = chunks
                results["MiniLM index: build s (ingest + pipeline)"] = round(build_s, 1)
                minilm = _measure(ws.session("viewer"), 3 if minilm_n < n else rounds)
                _report(results, "extractive, MiniLM index", minilm, True)
            finally:
                ws.close()
        else:
            notes.append(f"The MiniLM-indexed run was left out ({MINILM_ENV}=0).")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    notes += notes_for(results, f"{load:.1f} (1-minute load average at the end of the run)")
    return {
        "title": "Assistant: ask latency (extractive answerer and a local generator)",
        "what": (
            f"ask() on {n} generated reports (hashing index; MiniLM index on {minilm_n}) by a "
            "viewer cleared to SECRET, interleaved with the search it retrieves through; the "
            "extractive answerer and a tiny local LM."
        ),
        "results": results,
        "notes": notes,
    }
