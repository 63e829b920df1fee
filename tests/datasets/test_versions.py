"""Dataset versions: identity, splits without leakage, diffs, deletion, and no read-up."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.datasets import DatasetRecord, Datasets, Selection, assign_splits, parse_ratios
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
stages:
  - normalize: {}
  - pii: {default_action: mask}
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 48, overlap_tokens: 8}
  - embed: {model: hashing}
"""
#: Fields that show nothing of the document beyond the record's own text.
TEXT_ONLY = ("language", "media_type", "source")
RATIOS = {"train": 0.6, "validation": 0.2, "test": 0.2}

SHARED = "The convoy schedule for the northern depots changes every second week of the month."


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("datasets")
    folder = root / "in"
    folder.mkdir()
    marks = ["(U)", "(C)", "(S//NF)", "(S//REL TO USA, GBR)"]
    for i in range(24):
        paragraphs = [
            f"{marks[(i + j) % 4]} Report {i} paragraph {j}: depot {i % 5} logged {j * 7} "
            "pallets of spare parts and two trucks for the exercise."
            for j in range(3)
        ]
        if i % 6 == 0:  # near-identical paragraphs across documents: one duplicate cluster
            paragraphs.append(f"(U) {SHARED}")
        (folder / f"r{i:02d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="CONFIDENTIAL//NOFORN"))
    run_pipeline(system, parse_pipeline(FAST, source="fast"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("conf", SubjectSpec(clearance="C", roles=("steward",)))
    system.add_user("brit", SubjectSpec(clearance="S", citizenship="GBR", roles=("viewer",)))
    yield workspace
    workspace.close()


def test_same_data_and_selection_give_the_same_id(ws: Workspace) -> None:
    datasets = Datasets(ws.session("stew"))
    first = datasets.create("logs", Selection(), ratios=RATIOS, seed=3)
    again = datasets.create("logs", Selection(), ratios=RATIOS, seed=3)
    other_seed = datasets.create("logs", Selection(), ratios=RATIOS, seed=4)
    assert first.id == again.id != other_seed.id
    assert first.marking.banner() == "SECRET//NOFORN"  # the join of its members
    assert first.record_count == len(first.manifest["records"]) > 20
    assert {r["split"] for r in first.manifest["records"]} == {"train", "validation", "test"}
    # The frozen records match the manifest: ids, content hashes, splits, markings.
    import hashlib

    frozen = {r.id: r for r in datasets.records(first)}
    for entry in first.manifest["records"]:
        record = frozen[entry["id"]]
        assert hashlib.sha256(record.text.encode()).hexdigest() == entry["sha256"]
        assert (record.split, record.marking) == (entry["split"], entry["marking"])


def test_documents_and_duplicate_clusters_never_straddle_splits(ws: Workspace) -> None:
    # Elements: duplicates stay in (as dup_of members); chunks are made from canonical ones only.
    version = Datasets(ws.session()).create(
        "leak", Selection(kind="elements"), ratios=RATIOS, seed=11
    )
    records = Datasets(ws.session()).records(version)
    by_doc: dict[str, set[str]] = {}
    for record in records:
        by_doc.setdefault(record.doc_id, set()).add(record.split)
    assert all(len(splits) == 1 for splits in by_doc.values())
    shared = [r for r in records if SHARED.split()[1] in r.text and "convoy schedule" in r.text]
    assert len(shared) >= 2
    assert len({r.split for r in shared}) == 1  # the near-duplicate cluster stays together


def test_ceilings_and_selection_flags(ws: Workspace) -> None:
    datasets = Datasets(ws.session("stew"))
    # Without document fields, a record shows only its text: the ceiling selects on that.
    low = datasets.create("low", Selection(max_marking="CONFIDENTIAL//NOFORN", fields=TEXT_ONLY))
    assert low.marking.banner() in ("CONFIDENTIAL//NOFORN", "CONFIDENTIAL", "UNCLASSIFIED")
    canonical = datasets.create("canon", Selection(kind="elements", canonical_only=True))
    everything = datasets.create("all", Selection(kind="elements"))
    assert canonical.record_count < everything.record_count
    with pytest.raises(NotPermitted, match="ceiling"):
        Datasets(ws.session("conf")).create("x", Selection(max_marking="SECRET//NOFORN"))
    with pytest.raises(InvalidInput, match="empty"):
        datasets.create("none", Selection(language="zz"))


def test_diff_and_delete(ws: Workspace) -> None:
    datasets = Datasets(ws.session("stew"))
    a = datasets.create(
        "d", Selection(max_marking="CONFIDENTIAL//NOFORN", fields=TEXT_ONLY), seed=1
    )
    b = datasets.create("d", Selection(fields=TEXT_ONLY), seed=1)
    change = datasets.diff(a.id, b.id)
    assert change["added"] and not change["removed"] and change["selection_changed"]
    datasets.delete(f"d@{a.id[:12]}")
    assert ws.audit.tail(1)[0].action == "dataset.delete"
    with pytest.raises(NotFound):
        datasets.get(a.id)
    with pytest.raises(NotPermitted):
        Datasets(ws.session("brit")).delete(b.id)


def test_parse_ratios() -> None:
    assert parse_ratios("train=0.8,validation=0.1,test=0.1") == {
        "train": 0.8,
        "validation": 0.1,
        "test": 0.1,
    }
    for bad in ("train=0.5", "dev=1.0", "train=x", "train=1.5,test=-0.5"):
        with pytest.raises(InvalidInput):
            parse_ratios(bad)


# -- no read-up on every dataset read path ---------------------------------------------------


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    clearance=st.sampled_from(["U", "C", "S", "TS"]),
    country=st.sampled_from(["USA", "GBR", "FRA"]),
)
def test_no_read_up_on_dataset_paths(ws: Workspace, clearance: str, country: str) -> None:
    system = Datasets(ws.session())
    versions = {
        ceiling: system.create(f"ceil-{ceiling}", Selection(max_marking=ceiling, fields=TEXT_ONLY))
        for ceiling in (
            "UNCLASSIFIED",
            "CONFIDENTIAL//NOFORN",
            "SECRET//REL TO USA, GBR",
            "SECRET//NOFORN",
        )
    }
    name = f"u{clearance}{country}"
    system_session = ws.session()
    with contextlib.suppress(InvalidInput):  # created by an earlier example
        system_session.add_user(
            name, SubjectSpec(clearance=clearance, citizenship=country, roles=("viewer",))
        )
    subject = ws.session(name)
    listed = {v.id for v in Datasets(subject).list()}
    for version in versions.values():
        readable = bool(subject.can_read(version.marking))
        assert (version.id in listed) == readable
        if readable:
            assert Datasets(subject).get(version.id).id == version.id
        else:
            with pytest.raises(NotFound) as hidden:
                Datasets(subject).get(version.id)
            with pytest.raises(NotFound) as missing:
                Datasets(subject).get("f" * 64)
            assert str(hidden.value).replace(version.id, "X") == str(missing.value).replace(
                "f" * 64, "X"
            )


# -- the split algorithm on its own ---------------------------------------------------------


def _records(docs: int, per_doc: int, clusters: list[tuple[int, int]]) -> list[DatasetRecord]:
    marking = parse_marking("UNCLASSIFIED")
    out = []
    for d, k in itertools.product(range(docs), range(per_doc)):
        rid = f"d{d}k{k}"
        out.append(
            DatasetRecord(
                rid,
                "chunk",
                f"doc{d}",
                f"text {rid}",
                marking,
                {"language": "en" if d % 2 else "fr"},
                cluster=rid,
            )
        )
    index = {r.id: r for r in out}
    for a, b in clusters:  # record a of doc x duplicates record b of doc y
        index[f"d{b}k0"].cluster = f"d{a}k0"
    return out


@given(
    docs=st.integers(min_value=1, max_value=40),
    per_doc=st.integers(min_value=1, max_value=4),
    pairs=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=10),
    seed=st.integers(0, 1000),
)
def test_split_assignment_is_leakage_free_and_deterministic(
    docs: int, per_doc: int, pairs: list[tuple[int, int]], seed: int
) -> None:
    clusters = [(a, b) for a, b in pairs if a < docs and b < docs]
    records = _records(docs, per_doc, clusters)
    splits = assign_splits(records, RATIOS, seed=seed)
    assert splits == assign_splits(records, RATIOS, seed=seed)
    assert set(splits) == {r.id for r in records}
    by_doc: dict[str, set[str]] = {}
    for record in records:
        by_doc.setdefault(record.doc_id, set()).add(splits[record.id])
    assert all(len(s) == 1 for s in by_doc.values())
    ids = {r.id for r in records}
    for record in records:  # every duplicate sits with the record its cluster points at
        if record.cluster in ids:
            assert splits[record.id] == splits[record.cluster]


def test_split_ratios_are_respected_on_many_groups() -> None:
    records = _records(500, 2, [])
    splits = assign_splits(records, RATIOS, seed=5)
    counts = {name: sum(1 for s in splits.values() if s == name) for name in RATIOS}
    for name, ratio in RATIOS.items():
        assert abs(counts[name] / len(records) - ratio) < 0.02


def test_stratified_splits_balance_each_stratum() -> None:
    records = _records(400, 1, [])
    splits = assign_splits(records, RATIOS, seed=2, stratify="language")
    for language in ("en", "fr"):
        members = [r for r in records if r.fields["language"] == language]
        train = sum(1 for r in members if splits[r.id] == "train")
        assert abs(train / len(members) - 0.6) < 0.03


def test_no_read_up_on_card_and_export(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from garrison.cli.main import main

    system = Datasets(ws.session())
    secret = system.create("nru-secret", Selection(max_marking="SECRET//NOFORN"))
    low = system.create("nru-low", Selection(max_marking="UNCLASSIFIED", fields=TEXT_ONLY))
    root = str(ws.root)
    with contextlib.suppress(InvalidInput):
        ws.session().add_user("cstew", SubjectSpec(clearance="C", roles=("steward",)))
    capsys.readouterr()
    # The SECRET version: exit 3 with the same sentence as a version that does not exist.
    for path in (["dataset", "card"], ["dataset", "show"]):
        assert main([*path, secret.id, "-w", root, "--as", "cstew"]) == 3
        hidden = capsys.readouterr().err.replace(secret.id, "X")
        assert main([*path, "0" * 64, "-w", root, "--as", "cstew"]) == 3
        assert hidden == capsys.readouterr().err.replace("0" * 64, "X")
    out = tmp_path / "export"
    assert (
        main(
            [
                "dataset",
                "export",
                secret.id,
                "--format",
                "jsonl",
                "--out",
                str(out),
                "-w",
                root,
                "--as",
                "cstew",
            ]
        )
        == 3
    )
    assert not out.exists()
    assert "nru-secret" not in capsys.readouterr().out
    # What the steward may read, it may export; the listing shows only that.
    assert (
        main(
            [
                "dataset",
                "export",
                low.id,
                "--format",
                "jsonl",
                "--out",
                str(out),
                "-w",
                root,
                "--as",
                "cstew",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["dataset", "ls", "-w", root, "--as", "cstew", "--json"]) == 0
    import json

    names = {v["name"] for v in json.loads(capsys.readouterr().out)}
    assert "nru-low" in names and "nru-secret" not in names
    assert main(["dataset", "card", low.id, "-w", root, "--as", "cstew"]) == 0
    card = capsys.readouterr().out
    assert card.splitlines()[0] == card.strip().splitlines()[-1]  # banner top and bottom


def test_cli_export_verify_and_tampering(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from garrison.cli.main import main

    root = str(ws.root)
    assert (
        main(
            [
                "dataset",
                "create",
                "cli-ds",
                "--split",
                "train=0.5,validation=0.25,test=0.25",
                "-w",
                root,
                "--as",
                "stew",
            ]
        )
        == 0
    )
    out = tmp_path / "exp"
    assert (
        main(
            [
                "dataset",
                "export",
                "cli-ds",
                "--format",
                "parquet",
                "--out",
                str(out),
                "-w",
                root,
                "--as",
                "stew",
            ]
        )
        == 0
    )
    key = tmp_path / "key.pem"
    assert main(["key", "export", "--out", str(key), "-w", root]) == 0
    assert main(["verify", str(out), "--trusted-key", str(key)]) == 0
    assert main(["verify", str(out)]) == 0
    assert "NOT checked" in capsys.readouterr().out
    # A second export into the same, now non-empty, directory: exit 2, nothing changed.
    before = sorted(p.name for p in out.rglob("*"))
    assert (
        main(
            [
                "dataset",
                "export",
                "cli-ds",
                "--format",
                "jsonl",
                "--out",
                str(out),
                "-w",
                root,
                "--as",
                "stew",
            ]
        )
        == 2
    )
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not list(tmp_path.glob(".exp.tmp-*"))
    data = next(out.glob("data/*.parquet"))
    data.write_bytes(data.read_bytes() + b"\0")
    capsys.readouterr()
    assert main(["verify", str(out), "--trusted-key", str(key)]) == 1
    assert data.name in capsys.readouterr().err
    assert main(["dataset", "show", "no-such-dataset", "-w", root]) == 3
    assert main(["dataset", "create", "empty", "--language", "zz", "-w", root]) == 2
    assert (
        main(
            [
                "dataset",
                "export",
                "cli-ds",
                "--format",
                "csv",
                "--out",
                str(tmp_path / "x"),
                "-w",
                root,
            ]
        )
        == 2
    )


def test_rows_of_one_table_split_by_row_and_duplicate_rows_stay_together() -> None:
    marking = parse_marking("UNCLASSIFIED")
    rows = [
        DatasetRecord(f"r{i}", "element", "table", f"row {i}", marking, {"type": "Record"}, f"r{i}")
        for i in range(300)
    ]
    rows[7].cluster = "r3"  # row 7 duplicates row 3
    prose = [
        DatasetRecord(
            f"p{i}", "element", "memo", f"para {i}", marking, {"type": "Paragraph"}, f"p{i}"
        )
        for i in range(20)
    ]
    splits = assign_splits([*rows, *prose], RATIOS, seed=1)
    row_counts = {name: sum(1 for r in rows if splits[r.id] == name) for name in RATIOS}
    assert all(abs(row_counts[n] / len(rows) - RATIOS[n]) < 0.05 for n in RATIOS)
    assert splits["r7"] == splits["r3"]
    # Paragraphs of one document still never straddle splits.
    assert len({splits[p.id] for p in prose}) == 1
