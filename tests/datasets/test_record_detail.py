"""Dataset records keep their full marking: for every attribute a banner drops from a classified
roll-up, a record is never marked lower than its source, access checks read the full marking,
exports carry it, and a snapshot made before it was stored fails closed (stale)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import NotPermitted
from garrison.datasets import Datasets, DatasetVersion, Selection
from garrison.datasets.export import export_version
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.label import LabelProjects, next_task, submit
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import Marking, access_expression, dominates, parse_marking
from garrison.store.bindings import update_bound
from garrison.store.models import DatasetVersionRow, DocumentRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
"""
SYSTEM_HIGH = "(TS//SAR-BP/GB/TC//NF//NODIS)"
#: File -> (its portions, one chunk; the access term its banner loses).
CASES = {
    "doe-ucni": (("(U//UCNI) The site plan.", "(S//NF) The vault note."), "AEA:UCNI"),
    "dod-ucni": (("(U//DCNI) The site map.", "(S//NF) The guard note."), "AEA:DCNI"),
    "hvsaco": (("(S//HVSACO) The cover story.", "(S//SAR-BP//NF) The program note."), "SAP:HVSACO"),
    "exdis": (("(S//NF//XD) The cable summary.", "(C//NF//ND) The envoy note."), "NONIC:EXDIS"),
    "limdis": (("(U//DS) The visit plan.", "(S//NF) The escort note."), "NONIC:LIMDIS"),
    "sbu": (("(U//SBU) The roster.", "(S//NF) The duty note."), "NONIC:SBU"),
    "cui": (("(CUI//PRVCY) The staff file.", "(S//NF) The posting note."), "DISSEM:CUI"),
    "programs": (
        (
            "(TS//SAR-BP//NF) The first.",
            "(S//SAR-GB//NF) The second.",
            "(S//SAR-TC//NF) The third.",
        ),
        "SAP:GB",
    ),
}  # fmt: skip
#: Briefings that together read every case.
FULL = SubjectSpec(
    clearance="TS",
    roles=("steward", "annotator"),
    sap=("SAR-BP", "SAR-GB", "SAR-TC", "HVSACO"),
    aea=("UCNI", "DCNI"),
    nonic=("EXDIS", "NODIS", "LIMDIS", "SBU"),
    grants=("CUI",),
)


def _term(marking: Marking, term: str) -> bool:
    return term in access_expression(marking).split("&")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("record-detail")
    workspace = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    (root / "in").mkdir()
    for name, (portions, _) in CASES.items():
        (root / "in" / f"{name}.txt").write_text("\n\n".join(portions) + "\n")
    (root / "in" / "plain.txt").write_text("(S//NF) The plain note.\n")
    system = workspace.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("full", FULL)
    # Cleared for the programs and NOFORN, but none of the briefings the banners drop.
    system.add_user(
        "bare",
        SubjectSpec(clearance="TS", roles=("annotator",), sap=("SAR-BP", "SAR-GB", "SAR-TC")),
    )
    Datasets(workspace.session("full")).create(
        "detail", Selection(kind="documents", fields=("doc_id", "uri"))
    )
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def version(ws: Workspace) -> DatasetVersion:
    return Datasets(ws.session("full")).get("detail")


def _by_case(ws: Workspace, version: DatasetVersion) -> dict[str, object]:
    records = Datasets(ws.session("full")).records(version)
    return {Path(str(r.fields["uri"])).stem: r for r in records}


def test_every_case_is_one_record_whose_banner_loses_a_term(
    ws: Workspace, version: DatasetVersion
) -> None:
    records = _by_case(ws, version)
    assert set(records) == {*CASES, "plain"}
    for name, (_, term) in CASES.items():
        record = records[name]
        # The premise: re-reading the banner drops the term (or names no program at all).
        try:
            again = parse_marking(record.marking)  # type: ignore[attr-defined]
        except Exception:
            again = None
        assert again is None or not _term(again, term), name
        assert _term(record.detail, term), name  # type: ignore[attr-defined]


def test_a_record_is_never_marked_lower_than_its_source(
    ws: Workspace, version: DatasetVersion
) -> None:
    records = _by_case(ws, version)
    session = ws.session()
    with ws.catalog.transaction() as orm:
        for name, record in records.items():
            document = orm.get(DocumentRow, record.doc_id)  # type: ignore[attr-defined]
            assert document is not None
            source = session.marking_of(orm, document.marking_id)
            assert source is not None
            detail = record.detail  # type: ignore[attr-defined]
            assert dominates(detail, source), name
            assert detail.to_dict() == source.to_dict(), name
    # The version is the join of its records, so it keeps every term too.
    for _, term in CASES.values():
        assert _term(version.marking, term)
    assert version.status == "current"
    for entry in version.manifest["records"]:
        frozen = Marking.from_dict(entry["marking_detail"])
        assert frozen.banner() == entry["marking"]


def test_access_to_records_uses_the_full_marking(ws: Workspace, version: DatasetVersion) -> None:
    """Labeling hands records out one at a time, each at its own marking: a reader without the
    briefings a banner drops gets none of those records. The programs' record is read by its
    programs (its banner's ``SAR-MULTIPLE PROGRAMS`` would need ``SAP:MULTIPLE``, never
    granted), so a reader briefed on all three gets it."""
    LabelProjects(ws.session("full")).create(
        "detail", "detail", "answer", {"instructions": "Say it."}, overlap=2,
        marking="SECRET//NOFORN",
    )  # fmt: skip
    bare = ws.session("bare")
    seen = []
    while (task := next_task(bare, "detail")) is not None:
        seen.append(task.text)
        submit(bare, task.id, "ok", marking="SECRET//NOFORN")
    assert sorted(seen) == ["The first.\n\nThe second.\n\nThe third.", "The plain note."]
    full = ws.session("full")
    count = 0
    while (task := next_task(full, "detail")) is not None:
        count += 1
        submit(full, task.id, "ok", marking="SECRET//NOFORN")
    assert count == len(CASES) + 1


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_exports_carry_the_full_marking(ws: Workspace, fmt: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_version(ws.session("full"), "detail", fmt, out)
    if fmt == "jsonl":
        rows = [
            json.loads(line)
            for path in sorted((out / "data").glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]
    else:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        rows = [
            {**r, "marking_detail": json.loads(r["marking_detail"])}
            for path in sorted((out / "data").glob("*.parquet"))
            for r in pq.read_table(path).to_pylist()
        ]
    by_case = {Path(r["uri"]).stem: r for r in rows}
    for name, (_, term) in CASES.items():
        detail = Marking.from_dict(by_case[name]["marking_detail"])
        assert _term(detail, term), name
        assert detail.banner() == by_case[name]["marking"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert all("marking_detail" in r for r in manifest["records"])


def test_a_snapshot_without_the_full_marking_is_stale(
    ws: Workspace, version: DatasetVersion, tmp_path: Path
) -> None:
    """A version frozen before records kept their full marking still reads (by banner) but
    is stale, so it is never exported as less restricted than its sources."""
    import pyarrow.parquet as pq

    blobs = ws.blobs
    table = pq.read_table(io.BytesIO(blobs.get(version.snapshot))).drop_columns(["marking_detail"])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    old = blobs.put(sink.getvalue())
    system = ws.session()
    with ws.catalog.transaction() as orm:
        update_bound(orm, DatasetVersionRow, [version.id], {"snapshot": old})
    try:
        reread = Datasets(ws.session("full")).get("detail")
        records = Datasets(system).records(reread)
        assert {r.marking for r in records} >= {"SECRET//NOFORN"}
        assert reread.status == "stale-marking"
        with pytest.raises(NotPermitted):
            export_version(ws.session("full"), "detail", "jsonl", tmp_path / "old")
    finally:
        with ws.catalog.transaction() as orm:
            update_bound(orm, DatasetVersionRow, [version.id], {"snapshot": version.snapshot})
