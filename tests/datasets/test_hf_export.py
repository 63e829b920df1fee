"""Hugging Face conventions in exports: README.md with YAML metadata that ``datasets`` reads,
the banner around the card text, an embedding column, prompt templates for chat, --field help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotPermitted
from garrison.datasets import FIELDS, Datasets, Selection
from garrison.datasets._hf import load_prompt_template
from garrison.datasets.export import export_version
from garrison.datasets.verify import verify_export
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import parse_marking
from garrison.store.index import ChunkIndex
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: hf
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 32, overlap_tokens: 4}
  - embed: {model: hashing}
"""
BANNER = "SECRET"
CHOSEN = ("doc_id", "title", "section_path", "token_count")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("hf")
    workspace = Workspace.init(root / "ws", system_high="SECRET")
    folder = root / "in"
    folder.mkdir()
    for i in range(6):
        secret = "(S) The reserve moves on Thursday night.\n\n" if i % 2 else ""
        (folder / f"doc{i}.txt").write_text(
            f"(U) Report {i} covers the depot and its {i + 3} trucks in some detail.\n\n{secret}"
        )
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="U"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="hf.yaml"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    Datasets(workspace.session("stew")).create(
        "depot",
        Selection(fields=CHOSEN),
        ratios={"train": 0.5, "test": 0.5},
        seed=3,
    )
    yield workspace
    workspace.close()


def _export(ws: Workspace, tmp: Path, fmt: str, **kwargs: Any) -> Path:
    out = tmp / f"{fmt}-{len(list(tmp.iterdir()))}"
    export_version(ws.session("stew"), "depot", fmt, out, **kwargs)  # type: ignore[arg-type]
    return out


def _front_matter(folder: Path) -> tuple[dict[str, Any], list[str]]:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    lines = [line for line in body.splitlines() if line.strip()]
    return yaml.safe_load(head), lines


def _load(folder: Path, cache: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(folder), cache_dir=str(cache))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "hf", "chat"])
def test_readme_has_the_hub_metadata_and_datasets_reads_it(
    ws: Workspace, tmp_path: Path, fmt: str
) -> None:
    out = _export(ws, tmp_path, fmt)
    meta, lines = _front_matter(out)
    records = Datasets(ws.session("stew")).records(Datasets(ws.session("stew")).get("depot"))
    counts = {s: sum(1 for r in records if r.split == s) for s in ("train", "test")}
    assert meta["marking"] == BANNER and meta["garrison"]["marking"] == BANNER
    assert meta["pretty_name"].startswith("depot (") and meta["license"] == "other"
    assert "garrison" in meta["tags"]
    splits = {s["name"]: s for s in meta["dataset_info"]["splits"]}
    assert {n: s["num_examples"] for n, s in splits.items()} == counts
    assert all(s["num_bytes"] > 0 for s in splits.values())
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    if fmt == "chat":
        assert names[:0] == [] and "messages" in names
        messages = next(f for f in meta["dataset_info"]["features"] if f["name"] == "messages")
        assert {f["name"] for f in messages["list"]} == {"role", "content"}
    else:
        assert {"id", "text", "marking", "split", *CHOSEN} <= set(names)
    config = meta["configs"][0]
    for entry in config["data_files"]:
        paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        assert all((out / p).is_file() for p in paths)
    # The card text: the banner first and last.
    assert lines[0] == f"**{BANNER}**" and lines[-1] == f"**{BANNER}**"
    # The export stays verifiable with README.md in it.
    assert "README.md" in (out / "SHA256SUMS").read_text()
    assert verify_export(out).ok
    # datasets reads the directory through README.md's configs, offline.
    loaded = _load(out, tmp_path / "cache")
    assert {s: loaded[s].num_rows for s in loaded} == counts
    row = loaded["train"][0]
    assert row["marking"] in ("UNCLASSIFIED", "SECRET")


def test_datasets_reads_the_data_files_directly(ws: Workspace, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = _export(ws, tmp_path, "parquet")
    loaded = datasets.load_dataset(
        "parquet",
        data_files={s: str(out / "data" / f"{s}.parquet") for s in ("train", "test")},
        cache_dir=str(tmp_path / "cache"),
    )
    assert set(loaded) == {"train", "test"}
    out = _export(ws, tmp_path, "jsonl")
    loaded = datasets.load_dataset(
        "json", data_files=str(out / "data" / "train.jsonl"), cache_dir=str(tmp_path / "c2")
    )
    assert loaded["train"].num_rows > 0


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "hf"])
def test_embedding_column(ws: Workspace, tmp_path: Path, fmt: str) -> None:
    out = _export(ws, tmp_path, fmt, with_embeddings=True)
    meta, lines = _front_matter(out)
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    assert "embedding" in names and "embedding_model" in names
    feature = next(f for f in meta["dataset_info"]["features"] if f["name"] == "embedding")
    assert feature["list"] in ("float64", "float32")
    loaded = _load(out, tmp_path / "cache")
    rows = [r for s in loaded for r in loaded[s]]
    assert rows and all(r["embedding_model"] == "hashing" and len(r["embedding"]) > 8 for r in rows)
    assert any(f"{len(rows)} of {len(rows)} records have a stored embedding" in x for x in lines)


def _doc_rows(ws: Workspace, doc_id: str) -> list[dict[str, Any]]:
    table = ChunkIndex(ws.root / "index")._table(None)
    return list(table.search().where(f"doc_id = '{doc_id}'").limit(1000).to_list())


def test_embeddings_some_missing_and_one_marked_too_high(ws: Workspace, tmp_path: Path) -> None:
    stew = ws.session("stew")
    records = Datasets(stew).records(Datasets(stew).get("depot"))
    index = ChunkIndex(ws.root / "index")
    # A document whose records are UNCLASSIFIED (doc_id and title raise a record to its
    # document's marking, so these are the documents without a SECRET portion).
    doc = next(r.doc_id for r in records if r.marking == "UNCLASSIFIED")
    saved = _doc_rows(ws, doc)
    for row in saved:
        row.pop("_distance", None)
    try:
        index.replace_documents([doc], [])
        out = _export(ws, tmp_path, "jsonl", with_embeddings=True)
        rows = [
            json.loads(line)
            for p in sorted((out / "data").glob("*.jsonl"))
            for line in p.read_text().splitlines()
        ]
        missing = [r for r in rows if r["embedding"] is None]
        assert missing and all(r["doc_id"] == doc for r in missing)
        _, lines = _front_matter(out)
        have = len(rows) - len(missing)
        assert any(f"{have} of {len(rows)} records have a stored embedding" in x for x in lines)
        # A vector marked above its record's marking: the export stops, nothing written.
        u_ids = {r.id for r in records if r.doc_id == doc and r.marking == "UNCLASSIFIED"}
        assert u_ids
        with ws.catalog.transaction() as orm:
            secret = ws.session().intern_marking(orm, parse_marking("SECRET"))
        high = [{**r, "vector_marking_id": secret} if r["chunk_id"] in u_ids else r for r in saved]
        index.replace_documents([doc], high)
        target = tmp_path / "too-high"
        with pytest.raises(NotPermitted, match="embedding is marked SECRET"):
            export_version(ws.session("stew"), "depot", "parquet", target, with_embeddings=True)
        assert not target.exists()
    finally:
        index.replace_documents([doc], saved)


def test_embeddings_not_for_chat(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="with-embeddings"):
        export_version(ws.session("stew"), "depot", "chat", tmp_path / "x", with_embeddings=True)


def test_prompt_template_shapes_chat_messages(ws: Workspace, tmp_path: Path) -> None:
    template_file = tmp_path / "template.yaml"
    template_file.write_text(
        "system: 'Marked ${marking}. Answer as the depot log.'\n"
        "user: 'Title: ${title}. Record ${id}.'\n"
        "assistant: '${text}'\n"
    )
    template = load_prompt_template(template_file)
    out = _export(ws, tmp_path, "chat", prompt_template=template)
    rows = [
        json.loads(line)
        for p in sorted((out / "data").glob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    assert rows
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] == f"Marked {row['marking']}. Answer as the depot log."
        assert row["messages"][1]["content"].endswith(f"Record {row['id']}.")
    assert (out / "prompt_template.yaml").read_text() == template_file.read_text()
    assert "prompt_template.yaml" in (out / "SHA256SUMS").read_text()
    assert verify_export(out).ok


def test_prompt_template_messages_list_and_errors(ws: Workspace, tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"messages": [{"role": "user", "content": "${text}"}]}))
    out = _export(ws, tmp_path, "chat", prompt_template=load_prompt_template(listed))
    row = json.loads(next((out / "data").glob("*.jsonl")).read_text().splitlines()[0])
    assert [m["role"] for m in row["messages"]] == ["user"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("user: '${nonesuch}'\n")
    with pytest.raises(InvalidInput, match="nonesuch"):
        _export(ws, tmp_path, "chat", prompt_template=load_prompt_template(bad))
    for text in ("- a list\n", "tool: x\n", "messages: [{role: robot, content: x}]\n"):
        bad.write_text(text)
        with pytest.raises(InvalidInput):
            load_prompt_template(bad)
    with pytest.raises(InvalidInput, match="chat format only"):
        _export(ws, tmp_path, "jsonl", prompt_template=load_prompt_template(listed))


def test_cli_export_options_and_field_names(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dataset", "create", "--help"])
    out = capsys.readouterr().out
    assert code == 0 and all(name in out.replace("\n", " ") for name in FIELDS)
    code = main(["dataset", "create", "x", "-w", str(ws.root), "--as", "stew", "--field", "titel"])
    err = capsys.readouterr().err
    assert code == 2 and "titel" in err and "section_path" in err and err.count("\n") == 1
    template = tmp_path / "t.yaml"
    template.write_text("user: 'Continue ${title}'\n")
    target = tmp_path / "cli-chat"
    args = ["dataset", "export", "depot", "-w", str(ws.root), "--as", "stew", "--json"]
    code = main(
        [*args, "--format", "chat", "--out", str(target), "--prompt-template", str(template)]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["records"] > 0
    target = tmp_path / "cli-emb"
    code = main([*args, "--format", "parquet", "--out", str(target), "--with-embeddings"])
    assert code == 0
    capsys.readouterr()
    meta, _ = _front_matter(target)
    assert "embedding" in [f["name"] for f in meta["dataset_info"]["features"]]
