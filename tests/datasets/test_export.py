"""Dataset exports: round trips per format, checksums and signatures, refusals, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, DatasetVersion, Selection, SnapshotRecord
from garrison.datasets import export as export_module
from garrison.datasets.export import export_public_key, export_version
from garrison.datasets.verify import verify_export
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security import crypto
from garrison.store.keys import dataset_signing_key
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.conftest import require

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 32, overlap_tokens: 4}
"""
DO_MARKING = "SECRET//REL TO USA, GBR/DISPLAY ONLY FRA"
FIELDS = ("doc_id", "source", "title", "section_path", "token_count", "element_ids")


def _paragraphs(tag: str, n: int, doc: int = 0) -> str:
    return "".join(
        f"({tag}) Paragraph {i} of report {doc} on depot number {i * 7 + doc} and its trucks.\n\n"
        for i in range(n)
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("export")
    workspace = Workspace.init(root / "ws", system_high="SECRET//REL TO USA, GBR")
    main = root / "main"
    main.mkdir()
    for i in range(8):
        secret = i % 2 == 1
        banner = "SECRET//REL TO USA, GBR\n\n" if secret else ""
        (main / f"doc{i}.txt").write_text(
            banner
            + _paragraphs("U", 2, i)
            + (_paragraphs("S//REL TO USA, GBR", 1, i) if secret else "")
            + banner
        )
    shared = root / "shared"
    shared.mkdir()
    (shared / "fra.txt").write_text(
        f"{DO_MARKING}\n\n" + _paragraphs("S//REL TO USA, GBR/DISPLAY ONLY FRA", 2) + DO_MARKING
    )
    system = workspace.session()
    ingest_paths(system, [str(main)], IngestOptions(default_marking="UNCLASSIFIED", source="main"))
    ingest_paths(system, [str(shared)], IngestOptions(default_marking=DO_MARKING, source="fra"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("low", SubjectSpec(clearance="C", roles=("steward",)))
    system.add_user("vic", SubjectSpec(clearance="S", roles=("viewer",)))
    system.add_user("pierre", SubjectSpec(clearance="S", citizenship="FRA", roles=("steward",)))
    stew = workspace.session("stew")
    Datasets(stew).create(
        "main",
        Selection(source="main", fields=FIELDS),
        ratios={"train": 0.5, "validation": 0.25, "test": 0.25},
        seed=1,
    )
    Datasets(stew).create("fra", Selection(source="fra", fields=FIELDS))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def version(ws: Workspace) -> DatasetVersion:
    return Datasets(ws.session("stew")).get("main")


@pytest.fixture(scope="module")
def records(ws: Workspace, version: DatasetVersion) -> list[SnapshotRecord]:
    return Datasets(ws.session("stew")).records(version)


@pytest.fixture(scope="module")
def trusted(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "dataset.pub"
    export_public_key(ws.root, path)
    return path


@pytest.fixture(scope="module")
def jsonl_export(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jsonl") / "out"
    export_version(ws.session("stew"), "main", "jsonl", out)
    return out


def _expected(records: list[SnapshotRecord]) -> list[tuple[str, str, str, str]]:
    return sorted((r.id, r.text, r.marking, r.split) for r in records)


def _got(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return sorted((r["id"], r["text"], r["marking"], r["split"]) for r in rows)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_fixture_has_several_splits_and_markings(records: list[SnapshotRecord]) -> None:
    assert {r.split for r in records} == {"train", "validation", "test"}
    assert {r.marking for r in records} == {"UNCLASSIFIED", "SECRET//REL TO USA, GBR"}


def test_jsonl_round_trip_and_layout(
    jsonl_export: Path, version: DatasetVersion, records: list[SnapshotRecord]
) -> None:
    rows = [
        json.loads(line)
        for path in sorted((jsonl_export / "data").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert _got(rows) == _expected(records)
    by_id = {r.id: r for r in records}
    assert all(row["section_path"] == by_id[row["id"]].fields["section_path"] for row in rows)
    names = {p.name for p in jsonl_export.iterdir()}
    assert names == {
        "BANNER.txt",
        "README.md",
        "SHA256SUMS",
        "card.html",
        "card.json",
        "card.md",
        "data",
        "manifest.json",
        "manifest.sig",
    }
    assert (jsonl_export / "BANNER.txt").read_text().strip() == version.marking.banner()
    manifest = (jsonl_export / "manifest.json").read_bytes()
    assert json.loads(manifest) == version.manifest
    # Canonical JSON: its hash is the version id.
    assert hashlib.sha256(manifest).hexdigest() == version.id
    for card_file in ("card.md", "card.html", "card.json"):
        assert version.marking.banner() in (jsonl_export / card_file).read_text()
    card = json.loads((jsonl_export / "card.json").read_text())
    assert "jsonl" in json.dumps(card)


def test_every_checksum_matches(jsonl_export: Path) -> None:
    lines = (jsonl_export / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert [line.split("  ", 1)[1] for line in lines] == sorted(listed)
    on_disk = {
        p.relative_to(jsonl_export).as_posix()
        for p in jsonl_export.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "manifest.sig")
    }
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((jsonl_export / name).read_bytes()).hexdigest() == digest


def test_parquet_round_trip(
    ws: Workspace, tmp_path: Path, version: DatasetVersion, records: list[SnapshotRecord]
) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    result = export_version(ws.session("stew"), "main", "parquet", tmp_path / "pq")
    assert result.version_id == version.id and result.records == len(records)
    assert result.marking == version.marking.banner() and result.format == "parquet"
    assert sorted(p.name for p in (tmp_path / "pq" / "data").iterdir()) == [
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    rows = [
        row
        for split in ("train", "validation", "test")
        for row in pq.read_table(tmp_path / "pq" / "data" / f"{split}.parquet").to_pylist()
    ]
    assert _got(rows) == _expected(records)
    assert set(FIELDS) <= set(rows[0])
    by_id = {r.id: r for r in records}
    assert all(json.loads(r["element_ids"]) == by_id[r["id"]].fields["element_ids"] for r in rows)
    assert "data/train.parquet" in result.files and "manifest.sig" in result.files
    assert verify_export(tmp_path / "pq", None).ok


def test_hf_round_trip_offline(
    ws: Workspace,
    tmp_path: Path,
    records: list[SnapshotRecord],
    trusted: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import datasets  # type: ignore[import-untyped]
    except ImportError:
        require(False, "the datasets library is not installed (pip install datasets)")
    export_version(ws.session("stew"), "main", "hf", tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf" / "hf"))
    assert set(loaded) == {"train", "validation", "test"}
    rows = [row for split in loaded.values() for row in split]
    assert _got(rows) == _expected(records)
    assert all(row["split"] == name for name, split in loaded.items() for row in split)
    assert verify_export(tmp_path / "hf", trusted).ok


def test_chat_format(ws: Workspace, tmp_path: Path, records: list[SnapshotRecord]) -> None:
    export_version(ws.session("stew"), "main", "chat", tmp_path / "chat")
    rows = [
        json.loads(line)
        for path in (tmp_path / "chat" / "data").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    by_id = {r.id: r for r in records}
    assert sorted(r["id"] for r in rows) == sorted(by_id)
    for row in rows:
        system, user, assistant = row["messages"]
        assert system == {"role": "system", "content": f"Classification: {row['marking']}"}
        assert user["role"] == "user" and user["content"]
        assert assistant == {"role": "assistant", "content": by_id[row["id"]].text}
        assert row["marking"] == by_id[row["id"]].marking


def test_verify_passes_with_the_trusted_key(jsonl_export: Path, trusted: Path) -> None:
    result = verify_export(jsonl_export, trusted)
    assert result.ok and result.signature_checked and result.problem is None
    assert result.key_id == crypto.fingerprint(crypto.load_public_key(trusted.read_bytes()))
    unchecked = verify_export(jsonl_export, None)
    assert unchecked.ok and not unchecked.signature_checked and unchecked.problem is None
    assert unchecked.note


def test_verify_accepts_a_raw_public_key(ws: Workspace, jsonl_export: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.key"
    raw.write_bytes(crypto.public_key_bytes(dataset_signing_key(ws.root).public_key()))
    assert verify_export(jsonl_export, raw).ok


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_verify_names_a_modified_file(jsonl_export: Path, tmp_path: Path, trusted: Path) -> None:
    out = _copy(jsonl_export, tmp_path / "x")
    with (out / "data" / "train.jsonl").open("a") as fh:
        fh.write('{"id": "injected"}\n')
    result = verify_export(out, trusted)
    assert not result.ok and result.bad_file == "data/train.jsonl"
    assert "modified" in (result.problem or "")


def test_verify_names_an_added_file(jsonl_export: Path, tmp_path: Path, trusted: Path) -> None:
    out = _copy(jsonl_export, tmp_path / "x")
    (out / "data" / "extra.jsonl").write_text("{}\n")
    result = verify_export(out, trusted)
    assert not result.ok and result.bad_file == "data/extra.jsonl"


def test_verify_names_a_deleted_file(jsonl_export: Path, tmp_path: Path, trusted: Path) -> None:
    out = _copy(jsonl_export, tmp_path / "x")
    (out / "card.html").unlink()
    result = verify_export(out, trusted)
    assert not result.ok and result.bad_file == "card.html"
    assert "missing" in (result.problem or "")


def test_verify_catches_rewritten_checksums(
    jsonl_export: Path, tmp_path: Path, trusted: Path
) -> None:
    out = _copy(jsonl_export, tmp_path / "x")
    target = out / "data" / "test.jsonl"
    target.write_text(target.read_text().replace("depot", "DEPOT"))
    sums = (out / "SHA256SUMS").read_text().splitlines()
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (out / "SHA256SUMS").write_text(
        "".join(
            (f"{digest}  data/test.jsonl" if line.endswith("  data/test.jsonl") else line) + "\n"
            for line in sums
        )
    )
    assert verify_export(out, None).ok  # checksums alone cannot tell
    result = verify_export(out, trusted)
    assert not result.ok and result.bad_file == "SHA256SUMS"


def test_verify_against_another_key_fails(jsonl_export: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        crypto.generate_signing_key()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    result = verify_export(jsonl_export, other)
    assert not result.ok and result.signature_checked and result.bad_file == "manifest.sig"


def test_signing_key_is_created_once_with_mode_0600(ws: Workspace) -> None:
    first = dataset_signing_key(ws.root)
    path = ws.root / "keys" / "dataset-ed25519.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = dataset_signing_key(ws.root)
    assert crypto.public_key_bytes(first.public_key()) == crypto.public_key_bytes(
        second.public_key()
    )


def test_public_key_export_refuses_to_overwrite(ws: Workspace, trusted: Path) -> None:
    before = trusted.read_bytes()
    with pytest.raises(InvalidInput):
        export_public_key(ws.root, trusted)
    assert trusted.read_bytes() == before


def test_public_key_export_through_a_session_is_audited(ws: Workspace, tmp_path: Path) -> None:
    key_id = export_public_key(ws.session("vic"), tmp_path / "k.pem")
    assert key_id == crypto.fingerprint(crypto.load_public_key((tmp_path / "k.pem").read_bytes()))
    event = ws.audit.tail(1)[0]
    assert (event.actor, event.action, event.object_id) == ("vic", "dataset.key-export", key_id)


def test_non_empty_output_directory_is_refused(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput):
        export_version(ws.session("stew"), "main", "jsonl", out)
    assert _leftovers(out) == ["keep.txt"]
    assert _leftovers(tmp_path) == ["busy"]


def test_an_empty_output_directory_is_used(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    export_version(ws.session("stew"), "main", "jsonl", out)
    assert (out / "manifest.sig").is_file()
    assert _leftovers(tmp_path) == ["empty"]


def test_a_viewer_may_not_export(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotPermitted):
        export_version(ws.session("vic"), "main", "jsonl", tmp_path / "out")
    assert _leftovers(tmp_path) == []
    [event] = [e for e in ws.audit.tail(5) if e.actor == "vic"][-1:]
    assert event.action == "dataset.export" and event.decision == "deny"


def test_a_steward_who_cannot_read_it_gets_not_found(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        export_version(ws.session("low"), "main", "jsonl", tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_display_only_access_cannot_export(ws: Workspace, tmp_path: Path) -> None:
    pierre = ws.session("pierre")
    version = Datasets(pierre).get("fra")  # readable through DISPLAY ONLY FRA...
    assert version.marking.banner() == DO_MARKING
    with pytest.raises(NotPermitted, match="DISPLAY ONLY"):
        export_version(pierre, "fra", "jsonl", tmp_path / "out")
    assert _leftovers(tmp_path) == []
    event = [e for e in ws.audit.tail(5) if e.actor == "pierre"][-1]
    assert (event.action, event.decision) == ("dataset.export", "deny")
    assert event.object_id == version.id
    # ...while a USA steward may export the same version.
    assert export_version(ws.session("stew"), "fra", "jsonl", tmp_path / "ok").records > 0


def test_a_failure_mid_export_leaves_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        written.extend(os.listdir(next(tmp_path.iterdir())))
        raise RuntimeError("card generator crashed")

    monkeypatch.setattr(export_module, "build_card", broken)
    with pytest.raises(RuntimeError):
        export_version(ws.session("stew"), "main", "jsonl", tmp_path / "out")
    assert "data" in written and "manifest.json" in written  # it did get part way
    assert _leftovers(tmp_path) == []


def test_exports_are_audited(ws: Workspace, tmp_path: Path, version: DatasetVersion) -> None:
    export_version(ws.session("stew"), "main", "parquet", tmp_path / "out")
    event = [e for e in ws.audit.tail(5) if e.action == "dataset.export"][-1]
    assert event.actor == "stew" and event.decision == "allow"
    assert event.object_id == version.id
    assert event.object_marking == version.marking.banner()
    assert event.details["format"] == "parquet"
    assert event.details["records"] == version.record_count
    assert event.details["out"] == str(tmp_path / "out")
