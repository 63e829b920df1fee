"""Dataset records are marked with what they show; versions go stale when a source's marking
rises; version references are exact or unambiguous."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.datasets._records import record_marking
from garrison.datasets.card import banner_colors as banner_colours
from garrison.datasets.card import build_card
from garrison.datasets.export import export_version
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import parse_marking
from garrison.store.bindings import update_bound
from garrison.store.models import ChunkRow, DocumentRow, ElementRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 400, overlap_tokens: 0}
"""
TEXT_ONLY = ("language", "source")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("record-markings")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    # An UNCLASSIFIED paragraph in a SECRET document, under a SECRET heading.
    (folder / "mixed.md").write_text(
        "# (S//NF) Operation Canary\n\n"
        "(U) The depot opens at nine and closes at five every working day.\n\n"
        "(S//NF) The convoy leaves at midnight along the northern route.\n"
    )
    # An UNCLASSIFIED document on its own, in another source.
    plain = root / "plain"
    plain.mkdir()
    (plain / "plain.md").write_text(
        "# (U) Opening hours\n\n(U) The canteen opens at noon for every shift.\n"
    )
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED", source="m"))
    ingest_paths(system, [str(plain)], IngestOptions(default_marking="UNCLASSIFIED", source="p"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    yield workspace
    workspace.close()


@pytest.mark.parametrize("kind", ["chunks", "elements"])
def test_document_fields_carry_the_document_marking(ws: Workspace, kind: str) -> None:
    datasets = Datasets(ws.session("stew"))
    sel = {"kind": kind, "source": "m", "max_marking": "UNCLASSIFIED"}
    # The text alone of the (U) paragraph is UNCLASSIFIED...
    low = datasets.create(f"text-{kind}", Selection(**sel, fields=TEXT_ONLY))
    assert low.marking.banner() == "UNCLASSIFIED"
    texts = [r.text for r in datasets.records(low)]
    assert any("depot opens" in t for t in texts)
    assert not any("Canary" in t or "convoy" in t for t in texts)
    # ... but a record that shows its SECRET document's id, title or uri is SECRET: under an
    # UNCLASSIFIED ceiling nothing of it is left.
    for shown in ("doc_id", "title", "uri"):
        with pytest.raises(InvalidInput, match="empty"):
            datasets.create(f"doc-{kind}-{shown}", Selection(**sel, fields=(shown,)))
    full = datasets.create(f"full-{kind}", Selection(kind=kind, source="m", fields=("doc_id",)))
    assert full.marking.banner() == "SECRET//NOFORN"
    assert {r.marking for r in datasets.records(full)} == {"SECRET//NOFORN"}


def test_section_path_carries_its_headings_markings(ws: Workspace) -> None:
    datasets = Datasets(ws.session("stew"))
    with pytest.raises(InvalidInput, match="empty"):
        datasets.create(
            "sections",
            Selection(
                kind="chunks", source="m", max_marking="UNCLASSIFIED", fields=("section_path",)
            ),
        )
    # An UNCLASSIFIED heading keeps an UNCLASSIFIED record UNCLASSIFIED.
    plain = datasets.create(
        "sections-plain",
        Selection(kind="chunks", source="p", max_marking="UNCLASSIFIED", fields=("section_path",)),
    )
    assert plain.marking.banner() == "UNCLASSIFIED"
    assert any(r.fields["section_path"] for r in datasets.records(plain))


def test_an_unreadable_heading_is_withheld(ws: Workspace) -> None:
    # An UNCLASSIFIED steward reads only the plain document; for it every heading is readable,
    # and in the mixed document nothing is (its document is SECRET).
    datasets = Datasets(ws.session("ustew"))
    version = datasets.create("u-sections", Selection(kind="chunks", fields=("section_path",)))
    records = datasets.records(version)
    assert records and all("Canary" not in str(r.fields) for r in records)
    assert version.marking.banner() == "UNCLASSIFIED"


def test_unrecorded_heading_markings_fail_closed() -> None:
    u, s = parse_marking("UNCLASSIFIED"), parse_marking("SECRET//NOFORN")
    assert record_marking("chunk", u, s, None, ["section_path"]) == s
    assert record_marking("chunk", u, s, [u], ["section_path"]) == u
    assert record_marking("chunk", u, s, None, ["language"]) == u
    assert record_marking("element", u, s, [], ["doc_id"]) == s
    with pytest.raises(KeyError):
        record_marking("chunk", u, None, None, ["title"])


def test_card_covers_only_the_records_it_describes(ws: Workspace) -> None:
    datasets = Datasets(ws.session("stew"))
    version = datasets.create(
        "card-low", Selection(max_marking="UNCLASSIFIED", fields=("source", "media_type"))
    )
    card = build_card(version, datasets.records(version)).data
    total = version.record_count
    assert card["banner"]["text"] == version.marking.banner() == "UNCLASSIFIED"
    # Only the UNCLASSIFIED records it holds: the plain document, none of the mixed one's.
    assert sum(card["sources"]["sources"].values()) == total == card["counts"]["records"]
    assert set(card["counts"]["by_marking"]) == {"UNCLASSIFIED"}


def test_version_references(ws: Workspace) -> None:
    stew = Datasets(ws.session("stew"))
    a = stew.create("ref", Selection(source="m", fields=TEXT_ONLY), seed=1)
    b = stew.create("ref", Selection(source="p", fields=TEXT_ONLY), seed=1)
    other = stew.create("f", Selection(source="p", fields=("language",)), seed=2)
    assert stew.get("ref").id == b.id  # NAME: its latest version
    assert stew.get(f"ref@{a.id[:10]}").id == a.id
    assert stew.get(a.id).id == a.id  # a full id
    # A bare prefix is not a reference: `f` is the dataset named f, never a version id
    # starting with f.
    assert stew.get("f").id == other.id
    with pytest.raises(NotFound):
        stew.get(a.id[:12])
    # A prefix two readable versions share is an error (exit 2): 17 versions, 16 first digits.
    by_first: dict[str, str] = {}
    for seed in range(17):
        vid = stew.create("amb", Selection(source="p", fields=TEXT_ONLY), seed=seed).id
        if vid[0] in by_first:
            break
        by_first[vid[0]] = vid
    with pytest.raises(InvalidInput, match="ambiguous") as ambiguous:
        stew.get(f"amb@{vid[0]}")
    assert ambiguous.value.exit_code == 2
    assert stew.get(f"amb@{vid[:20]}").id == vid
    with pytest.raises(NotFound):
        stew.get("ref@zz")


def test_dataset_show_f_does_not_return_another_dataset(ws: Workspace) -> None:
    stew = Datasets(ws.session("stew"))
    version = stew.create("show-f", Selection(source="p", fields=("source",)), seed=99)
    prefix = version.id[0]
    if any(v.name == prefix for v in stew.list()):
        pytest.skip("a dataset is named like the prefix")
    with pytest.raises(NotFound):
        stew.get(prefix)


def _cli(capsys: pytest.CaptureFixture[str], ws: Workspace, *argv: str) -> tuple[int, str]:
    code = main([*argv, "-w", str(ws.root), "--as", "stew"])
    out, err = capsys.readouterr()
    return code, out + err


def test_cli_references(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    stew = Datasets(ws.session("stew"))
    ids = [stew.create("cli", Selection(source="p", fields=TEXT_ONLY), seed=s).id for s in (7, 8)]
    code, out = _cli(capsys, ws, "dataset", "show", f"cli@{ids[0][:8]}", "--json")
    assert code == 0 and json.loads(out)["id"] == ids[0]
    assert json.loads(out)["status"] == "current"
    # A bare id prefix names a dataset, not a version: not found (exit 3).
    if not any(v.name == ids[0][:1] for v in stew.list()):
        code, _ = _cli(capsys, ws, "dataset", "show", ids[0][:1])
        assert code == 3
    # A reference with an empty version is malformed (exit 2), like an ambiguous one.
    code, out = _cli(capsys, ws, "dataset", "show", "cli@")
    assert code == 2


def test_one_banner_colour_table() -> None:
    pytest.importorskip("fastapi")
    from garrison import web
    from garrison.datasets import banner_colors

    assert web.BANNER_STYLES is banner_colors.BANNER_STYLES
    assert web.banner_style is banner_colors.banner_style
    secret = parse_marking("SECRET//NOFORN")
    style = banner_colors.banner_style(secret)
    assert banner_colours(secret) == (style.background, style.color) == ("#C8102E", "#FFFFFF")


def _raise_document(ws: Workspace, uri_part: str, banner: str) -> None:
    """Raise a document and everything in it, as a new location or a re-ingest would."""
    system = ws.session()
    with ws.catalog.transaction() as orm:
        marking_id = system.intern_marking(orm, system.parse_marking(banner))
        doc_ids = [d.id for d in orm.scalars(select(DocumentRow)) if d.uri and uri_part in d.uri]
        assert doc_ids
        # update_bound, not a bulk update(): the rows stay bound (and readable).
        raised = {"marking_id": marking_id}
        update_bound(orm, DocumentRow, doc_ids, raised)
        for model in (ElementRow, ChunkRow):
            ids = list(orm.scalars(select(model.id).where(model.doc_id.in_(doc_ids))))
            update_bound(orm, model, ids, raised)
    system.forget_cached_markings()


def test_a_raised_source_makes_a_version_stale(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stew = ws.session("stew")
    datasets = Datasets(stew)
    version = datasets.create("stale", Selection(source="p", fields=("source",)))
    assert version.status == "current" and version.to_dict()["status"] == "current"
    _raise_document(ws, "plain.md", "CONFIDENTIAL//NOFORN")
    again = Datasets(ws.session("stew"))
    shown = again.get(version.id)
    assert shown.stale and shown.to_dict()["status"] == "stale-marking"
    assert {v.id: v.status for v in again.list()}[version.id] == "stale-marking"
    code, out = _cli(capsys, ws, "dataset", "ls")
    assert code == 0 and "stale-marking" in out
    code, out = _cli(
        capsys,
        ws,
        "dataset",
        "export",
        version.id,
        "--format",
        "jsonl",
        "--out",
        str(tmp_path / "cli"),
    )
    assert code == 4 and "stale-marking" in out
    with pytest.raises(NotPermitted, match="stale-marking") as refused:
        export_version(ws.session("stew"), version.id, "jsonl", tmp_path / "out")
    assert refused.value.exit_code == 4
    assert not (tmp_path / "out").exists()
    # Re-created by a steward, the version is current (and exportable) again.
    fresh = again.create("stale", Selection(source="p", fields=("source",)))
    assert fresh.id != version.id and fresh.status == "current"
    assert fresh.marking.banner() == "CONFIDENTIAL//NOFORN"
    export_version(ws.session("stew"), fresh.id, "jsonl", tmp_path / "fresh")
