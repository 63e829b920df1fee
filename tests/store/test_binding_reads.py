"""No decision is taken from a marking id whose row does not verify: the column queries of the
store (run planning, light states, search totals and facets, dataset staleness, reader
positions, jobs, the original-download decision) recompute each row's binding, leave a row
edited in the catalog out and audit it. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from garrison.cli.main import main
from garrison.datasets import Datasets
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.catalog_reads import catalog_view
from garrison.store.datasets import current_markings
from garrison.store.derived import Chunks
from garrison.store.documents import Jobs, _whole_marking
from garrison.store.models import ChunkRow, DocumentRow, ElementRow, ElementState
from garrison.store.pipeline_state import light_states, plan_rows
from garrison.store.session import SubjectSpec
from garrison.store.views import ReaderView
from garrison.store.workspace import Workspace
from tests.store.test_bindings import FAST, _build, _integrity_events, _marking_id, _raw, _target


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = _build(tmp_path, catalog_url)
    workspace.session().add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    yield workspace
    workspace.close()


def _lower(ws: Workspace, table: str, rid: str) -> None:
    """Edit one row's marking down to UNCLASSIFIED, as someone with the catalog file would."""
    column = "element_id" if table == "element_states" else "id"
    u = _marking_id(ws, "UNCLASSIFIED")
    _raw(ws, f"UPDATE {table} SET marking_id = :u WHERE {column} = :rid", u=u, rid=rid)


def _readable_to_ursula(ws: Workspace, word: str) -> list[str]:
    ursula = ws.session("ursula")
    texts = [c["text"] for c in Chunks(ursula).list()]
    texts += [h.snippet for h in search(ursula, word).hits]
    return [t for t in texts if word in t]


# -- the helper -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [DocumentRow, ElementRow, ElementState, ChunkRow])
def test_verify_columns_recomputes_the_full_binding(ws: Workspace, model: type[Any]) -> None:
    which = "secret-doc" if model is DocumentRow else "secret-chunk"
    which = "secret-element" if model in (ElementRow, ElementState) else which
    rid = _target(ws, which)
    table = model.__tablename__
    binder = ws.catalog.binder
    with ws.catalog.transaction() as orm:
        rows = list(orm.execute(select(*binding_columns(model, "x_"))))
        assert rows and verify_columns(binder, rows, (model, "x_")) == rows
    _lower(ws, table, rid)
    key = "x_element_id" if model is ElementState else "x_id"
    with ws.catalog.transaction() as orm:
        rows = list(orm.execute(select(*binding_columns(model, "x_"))))
        kept = verify_columns(binder, rows, (model, "x_"))
    assert len(kept) == len(rows) - 1
    assert all(r._mapping[key] != rid for r in kept)
    assert len(_integrity_events(ws, f"{table}:{rid}")) == 1


def test_an_outer_join_that_found_nothing_is_absent_not_bad(ws: Workspace) -> None:
    with ws.catalog.transaction() as orm:
        query = select(ChunkRow.id.label("chunk"), *binding_columns(DocumentRow, "d_")).outerjoin(
            DocumentRow, DocumentRow.id == "no such document"
        )
        rows = list(orm.execute(query))
    assert rows and all(r.d_id is None for r in rows)
    assert verify_columns(ws.catalog.binder, rows, (DocumentRow, "d_")) == rows


# -- the pipeline ---------------------------------------------------------------------------------


def test_plan_rows_and_light_states_leave_tampered_rows_out(ws: Workspace) -> None:
    system = ws.session()
    doc = _target(ws, "secret-doc")
    element = _target(ws, "secret-element")
    before = plan_rows(system, None)
    assert doc in {d for d, _ in before.inputs}
    assert element in {e for _, e, _ in before.elements}
    assert element in {s.element_id for s in light_states(system, [doc])}
    _lower(ws, "element_states", element)
    assert element not in {s.element_id for s in light_states(system, [doc])}
    assert len(_integrity_events(ws, f"element_states:{element}")) == 1
    _lower(ws, "elements", element)
    after = plan_rows(system, None)
    assert element not in {e for _, e, _ in after.elements}
    assert len(_integrity_events(ws, f"elements:{element}")) == 1
    _lower(ws, "documents", doc)
    after = plan_rows(system, None)
    assert doc not in {d for d, _ in after.inputs}
    assert doc not in {d for d, _, _ in after.elements}
    assert after.inputs and len(_integrity_events(ws, f"documents:{doc}")) == 1


@pytest.mark.parametrize("table", ["elements", "element_states", "documents"])
def test_a_lowered_marking_is_never_laundered_by_a_run(
    ws: Workspace, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = _target(ws, "secret-doc" if table == "documents" else "secret-element")
    assert not _readable_to_ursula(ws, "walruspeak")
    _lower(ws, table, rid)
    run_pipeline(ws.session(), parse_pipeline(FAST, source="fast.yaml"))
    assert not _readable_to_ursula(ws, "walruspeak")
    capsys.readouterr()
    assert main(["run", "-w", str(ws.root)]) == 0
    assert not _readable_to_ursula(ws, "walruspeak")
    # Nothing the runs wrote carries the lowered marking with a valid binding.
    u = _marking_id(ws, "UNCLASSIFIED")
    with ws.catalog.transaction() as orm:
        lowered = list(orm.scalars(select(ChunkRow).where(ChunkRow.marking_id == u)))
    assert all("walruspeak" not in c.text for c in lowered)
    capsys.readouterr()
    if table != "element_states":  # the runs rewrote the element's state
        assert main(["audit", "verify", "-w", str(ws.root)]) == 1
    assert _integrity_events(ws, f"{table}:{rid}")


# -- search, datasets, reader views ---------------------------------------------------------------


def test_a_tampered_chunk_is_not_counted_in_search_totals_or_facets(ws: Workspace) -> None:
    rid = _secret_chunk_id(ws)
    sam = ws.session("sam")
    before = search(sam, "walruspeak")
    assert before.total == 1 and before.facets["marking"] == {"SECRET": 1}
    _lower(ws, "chunks", rid)
    for name in ("sam", "ursula", None):
        result = search(ws.session(name), "walruspeak")
        assert result.total == 0, name
        assert all(h.chunk_id != rid for h in result.hits)
        assert not any(result.facets.get("marking", {}).values())
    with catalog_view(sam) as view:
        assert view.current([{"chunk_id": rid, "marking_id": 0, "doc_id": "x"}]) == []
    assert len(_integrity_events(ws, f"chunks:{rid}")) == 1


def _secret_chunk_id(ws: Workspace) -> str:
    return _target(ws, "secret-chunk")


def test_current_markings_never_report_a_tampered_row(ws: Workspace) -> None:
    system = ws.session()
    doc = _target(ws, "secret-doc")
    chunk = _target(ws, "secret-chunk")
    element = _target(ws, "secret-element")
    now = current_markings(system, doc_ids=[doc], chunk_ids=[chunk], element_ids=[element])
    assert {now.documents[doc].banner()} == {now.items[chunk][0].banner()} == {"SECRET"}
    assert now.items[element][0].banner() == "SECRET" and not now.failed
    for table, rid in (("documents", doc), ("chunks", chunk), ("elements", element)):
        _lower(ws, table, rid)
    now = current_markings(system, doc_ids=[doc], chunk_ids=[chunk], element_ids=[element])
    assert doc not in now.documents and chunk not in now.items and element not in now.items
    assert now.failed == {doc, chunk, element}


@pytest.mark.parametrize("table", ["documents", "chunks"])
def test_a_tampered_source_makes_a_dataset_version_stale_never_fresh(
    ws: Workspace, table: str
) -> None:
    stew = ws.session("stew")
    (version,) = Datasets(stew).list()
    assert not version.stale
    marking = version.marking.banner()
    # Lowered, the marking would still be dominated by the version's: a version judged by it
    # would stay fresh. The row fails its check instead, so the version is stale.
    _lower(ws, table, _target(ws, "secret-doc" if table == "documents" else "secret-chunk"))
    (after,) = Datasets(ws.session("stew")).list()
    assert after.stale and after.marking.banner() == marking


def test_reader_positions_and_element_ids_ignore_tampered_rows(ws: Workspace) -> None:
    element = _target(ws, "secret-element")
    with ws.catalog.transaction() as orm:
        row = orm.get(ElementRow, element)
        assert row is not None
        doc, seq = row.doc_id, row.seq
    _lower(ws, "elements", element)
    ursula = ws.session("ursula")
    with ws.catalog.transaction() as orm:
        view = ReaderView(ursula, orm)
        assert view.readable_elements([element]) == []
        # The lowered element is not counted among the positions ursula may read.
        view.seq("element", doc, seq)
        assert view._positions[("element", doc)] == {}


# -- jobs and the original download ---------------------------------------------------------------


def test_jobs_do_not_show_an_item_by_a_tampered_document_marking(ws: Workspace) -> None:
    doc = _target(ws, "secret-doc")

    def counts() -> dict[str, Any]:
        (job,) = [j for j in Jobs(ws.session("ustew")).list() if j["kind"] == "ingest"]
        return dict(job["counts"])

    before = counts()
    # ustew reads only the UNCLASSIFIED file of the three.
    assert before["files"] == before["parsed"] == 1
    _lower(ws, "documents", doc)
    assert counts() == before
    with ws.catalog.transaction() as orm:
        assert orm.get(DocumentRow, doc) is None
    assert len(_integrity_events(ws, f"documents:{doc}")) == 1


def test_original_download_treats_a_tampered_part_as_unknown(
    tmp_path: Path, catalog_url: str | None
) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        with zipfile.ZipFile(folder / "bundle.zip", "w") as z:
            z.writestr("open.txt", "(U) The zebrafox ferry timetable changes on Monday.\n")
            z.writestr("secret.txt", "SECRET\n\n(S) The walruspeak cache moves.\n\nSECRET\n")
        system = ws.session()
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        with ws.catalog.transaction() as orm:
            docs = {d.filename: d.id for d in orm.scalars(select(DocumentRow))}
            element = orm.scalar(select(ElementRow.id).where(ElementRow.doc_id == docs["open.txt"]))
        assert element is not None

        def whole() -> str:
            with ws.catalog.transaction() as orm:
                root = orm.get(DocumentRow, docs["bundle.zip"])
                assert root is not None
                return _whole_marking(system, orm, root).banner()

        assert whole() == "SECRET"
        high = ws.system_high.banner()
        assert high != "SECRET"
        # A member's element edited: its marking is unknown, so the file is system high.
        _raw(ws, "UPDATE elements SET text = 'edited' WHERE id = :rid", rid=element)
        assert whole() == high
        _raw(ws, "UPDATE elements SET text = 'x' WHERE id = :rid", rid=element)
        # A member document edited down: the same.
        _lower(ws, "documents", docs["secret.txt"])
        assert whole() == high
    finally:
        ws.close()
