"""Markings bound to their data: every write is bound, a row edited behind Garrison's back is
unreadable by everyone and audited, ``audit verify`` names it, and migration 0008 binds the
rows of a workspace made before it. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.orm import aliased

from garrison.cli.main import main
from garrison.core.errors import CheckFailed
from garrison.datasets import Datasets, Selection
from garrison.evaluate._suites import Suites
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import register_shipped_models
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.bindings import (
    Binder,
    bound_tables,
    first_bad_binding,
    spec_for,
    verify_rows,
)
from garrison.store.catalog import HEAD_REVISION, Catalog, resolve_url
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.keys import BINDING_KEY
from garrison.store.models import (
    ChunkRow,
    DatasetVersionRow,
    DocumentRow,
    ElementRow,
    ElementState,
    EvalSuiteItemRow,
    EvalSuiteRow,
    FindingRow,
    InternedMarking,
    LabelProjectRow,
    LabelReviewRow,
    LabelRow,
    LabelTaskRow,
    ModelVersionRow,
    PredictionRow,
)
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""

MODELS = {
    "markings": InternedMarking,
    "documents": DocumentRow,
    "elements": ElementRow,
    "element_states": ElementState,
    "chunks": ChunkRow,
    "findings": FindingRow,
    "dataset_versions": DatasetVersionRow,
    "model_versions": ModelVersionRow,
    "predictions": PredictionRow,
    "eval_suites": EvalSuiteRow,
    "eval_suite_items": EvalSuiteItemRow,
}
#: Bound tables the ingest, pipeline and dataset fixture writes nothing to.
LABEL_MODELS = {
    "label_projects": LabelProjectRow,
    "label_tasks": LabelTaskRow,
    "labels": LabelRow,
    "label_reviews": LabelReviewRow,
}
OPAQUE = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models.tiny import tiny_sentence_transformer

    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


def _classify(ws: Workspace, tiny: Path, root: Path) -> None:
    """Predictions (a classify stage over the chunks), so the predictions table has rows."""
    from garrison.models import Models
    from tests.pipeline.classified import make_head

    models = Models(ws.session("stew"))
    embedder = models.register(kind="embedder", name="tiny", folder=tiny)
    head = make_head(root / "head", tiny, embedder.id)
    models.register(kind="classifier", name="topic", folder=head, base=embedder.id)
    run_pipeline(ws.session(), parse_pipeline(FAST + "  - classify: {model: topic}\n"))


def _build(root: Path, catalog_url: str | None, tiny: Path | None = None) -> Workspace:
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    folder = root / "in"
    folder.mkdir()
    (folder / "secret.txt").write_text(
        "SECRET\n\n(S) The walruspeak cache moves to the eastern depot.\n\nSECRET\n"
    )
    (folder / "open.txt").write_text("(U) The zebrafox ferry timetable changes on Monday.\n")
    (folder / "conf.txt").write_text("(C) The zebrafox ferry timetable changes on Monday.\n")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("sam", SubjectSpec(clearance="S"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    Datasets(ws.session("stew")).create("all", Selection(fields=("doc_id", "token_count")))
    Suites(system).from_dataset("all", "all", label_field="token_count")
    assert register_shipped_models(system)
    if tiny is not None:
        _classify(ws, tiny, root)
    return ws


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None, tiny: Path) -> Iterator[Workspace]:
    workspace = _build(tmp_path, catalog_url, tiny)
    yield workspace
    workspace.close()


def _raw(ws: Workspace, sql: str, **params: Any) -> None:
    """Change the catalog as someone with the database file would, bypassing Garrison."""
    if ws.catalog.backend == "sqlite":
        path = ws.catalog.engine.url.database
        assert path is not None
        conn = sqlite3.connect(path)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()
        return
    engine = create_engine(ws.catalog.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _marking_id(ws: Workspace, banner: str) -> int:
    with ws.catalog.transaction() as orm:
        found = orm.scalar(select(InternedMarking.id).where(InternedMarking.banner == banner))
    assert found is not None, banner
    return found


def _secret_chunk(ws: Workspace) -> str:
    secret = _marking_id(ws, "SECRET")
    with ws.catalog.transaction() as orm:
        chunk = orm.scalar(select(ChunkRow.id).where(ChunkRow.marking_id == secret))
    assert chunk is not None
    return chunk


def _integrity_events(ws: Workspace, object_id: str) -> list[Any]:
    return [e for e in ws.audit.tail() if e.action == "integrity" and e.object_id == object_id]


# -- every write is bound -------------------------------------------------------------------------


def test_every_row_written_by_ingest_pipeline_and_datasets_is_bound(ws: Workspace) -> None:
    with ws.catalog.transaction() as orm:
        for table, model in MODELS.items():
            assert orm.scalar(select(func.count()).select_from(model)), f"no {table} rows"
            unbound = select(func.count()).select_from(model).where(model.binding.is_(None))
            assert orm.scalar(unbound) == 0, table
        assert first_bad_binding(ws.catalog.binder, orm) is None
        finding_ids = list(orm.scalars(select(FindingRow.id)))
    assert finding_ids and all(OPAQUE.match(f) for f in finding_ids)
    report = ws.session().audit_verify()
    assert report.ok and report.bad_binding is None and report.bindings_checked > 10


def test_binding_key_is_a_0600_key_of_its_own(ws: Workspace) -> None:
    path = ws.root / BINDING_KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32


def test_a_downgrade_rebinds_what_it_changes(ws: Workspace) -> None:
    stew = ws.session("stew")
    secret = _marking_id(ws, "SECRET")
    confidential = _marking_id(ws, "CONFIDENTIAL")
    with ws.catalog.transaction() as orm:
        doc = orm.scalar(select(DocumentRow.id).where(DocumentRow.marking_id == secret))
    assert doc is not None
    Documents(stew).downgrade(doc, "CONFIDENTIAL", "reviewed")
    with ws.catalog.transaction() as orm:
        assert first_bad_binding(ws.catalog.binder, orm) is None
        row = orm.get(DocumentRow, doc)
        assert row is not None and row.marking_id == confidential


def test_generic_api_covers_table_id_markings_and_content() -> None:
    binder = Binder(b"k" * 32)
    base = binder.bind("models", "m1", [3, [4, 5]], {"weights": "abc"})
    assert binder.verify("models", "m1", [3, [4, 5]], {"weights": "abc"}, base)
    for changed in (
        binder.bind("suites", "m1", [3, [4, 5]], {"weights": "abc"}),
        binder.bind("models", "m2", [3, [4, 5]], {"weights": "abc"}),
        binder.bind("models", "m1", [2, [4, 5]], {"weights": "abc"}),
        binder.bind("models", "m1", [3, [4]], {"weights": "abc"}),
        binder.bind("models", "m1", [3, [4, 5]], {"weights": "abd"}),
        Binder(b"j" * 32).bind("models", "m1", [3, [4, 5]], {"weights": "abc"}),
    ):
        assert changed != base
    assert not binder.verify("models", "m1", [3, [4, 5]], {"weights": "abc"}, None)


def test_a_catalog_opened_without_the_key_reads_no_bound_row(ws: Workspace) -> None:
    other = Catalog(ws.catalog.url)
    try:
        with other.transaction() as orm:
            assert list(orm.scalars(select(ChunkRow))) == []
            assert list(orm.scalars(select(InternedMarking))) == []
    finally:
        other.dispose()


# -- tampering, across every bound table ----------------------------------------------------------

#: (table, SQL that edits one row of it behind Garrison's back, how to find that row)
TAMPERING = [
    ("markings", "UPDATE markings SET expression = 'CLS:U' WHERE id = :rid", "secret-marking"),
    (
        "markings",
        "UPDATE markings SET banner = 'UNCLASSIFIED' WHERE id = :rid",
        "secret-marking",
    ),
    ("markings", "UPDATE markings SET key = key || ' ' WHERE id = :rid", "secret-marking"),
    ("documents", "UPDATE documents SET marking_id = :u WHERE id = :rid", "secret-doc"),
    ("elements", "UPDATE elements SET marking_id = :u WHERE id = :rid", "secret-element"),
    ("elements", "UPDATE elements SET text = 'edited' WHERE id = :rid", "secret-element"),
    (
        "element_states",
        "UPDATE element_states SET marking_id = :u WHERE element_id = :rid",
        "secret-element",
    ),
    ("chunks", "UPDATE chunks SET marking_id = :u WHERE id = :rid", "secret-chunk"),
    ("chunks", "UPDATE chunks SET text = 'edited' WHERE id = :rid", "secret-chunk"),
    ("findings", "UPDATE findings SET detail = 'edited' WHERE id = :rid", "finding"),
    ("findings", "UPDATE findings SET marking_id = :u WHERE id = :rid", "finding"),
    (
        "dataset_versions",
        "UPDATE dataset_versions SET marking_id = :u WHERE id = :rid",
        "dataset",
    ),
    ("predictions", "UPDATE predictions SET marking_id = :u WHERE id = :rid", "prediction"),
    ("predictions", "UPDATE predictions SET label = 'edited' WHERE id = :rid", "prediction"),
    ("eval_suites", "UPDATE eval_suites SET marking_id = :u WHERE id = :rid", "suite"),
    ("eval_suite_items", "UPDATE eval_suite_items SET marking_id = :u WHERE id = :rid", "item"),
]


def _target(ws: Workspace, which: str) -> str:
    secret = _marking_id(ws, "SECRET")
    with ws.catalog.transaction() as orm:
        found: Any = {
            "secret-marking": lambda: secret,
            "secret-doc": lambda: orm.scalar(
                select(DocumentRow.id).where(DocumentRow.marking_id == secret)
            ),
            "secret-element": lambda: orm.scalar(
                select(ElementRow.id).where(ElementRow.marking_id == secret)
            ),
            "secret-chunk": lambda: orm.scalar(
                select(ChunkRow.id).where(ChunkRow.marking_id == secret)
            ),
            "finding": lambda: orm.scalar(select(FindingRow.id).limit(1)),
            "dataset": lambda: orm.scalar(select(DatasetVersionRow.id)),
            "suite": lambda: orm.scalar(select(EvalSuiteRow.id)),
            "item": lambda: orm.scalar(
                select(EvalSuiteItemRow.id).where(EvalSuiteItemRow.marking_id == secret)
            ),
            "prediction": lambda: orm.scalar(
                select(PredictionRow.id).where(PredictionRow.marking_id == secret)
            ),
        }[which]()
    assert found is not None, which
    return str(found)


@pytest.mark.parametrize(("table", "sql", "which"), TAMPERING, ids=lambda v: str(v)[:40])
def test_an_edited_row_is_unreadable_by_everyone_audited_and_named(
    ws: Workspace, table: str, sql: str, which: str
) -> None:
    rid = _target(ws, which)
    _raw(ws, sql, rid=int(rid) if table == "markings" else rid, u=_marking_id(ws, "UNCLASSIFIED"))
    spec = spec_for(table)
    assert spec is not None
    key: Any = int(rid) if table == "markings" else rid
    system = ws.session()
    for _ in range(2):  # read twice: audited once
        with ws.catalog.transaction() as orm:
            assert orm.get(MODELS[table], key) is None
            everything = list(orm.scalars(select(MODELS[table])))
            assert all(str(getattr(r, spec.id_column)) != rid for r in everything)
            aliased_rows = list(orm.scalars(select(aliased(MODELS[table]))))
            assert len(aliased_rows) == len(everything)
    assert len(_integrity_events(ws, f"{table}:{rid}")) == 1
    report = system.audit_verify()
    assert not report.ok
    assert report.bad_binding == f"{table}:{rid}"
    assert rid in (report.problem or "")
    # The log itself is sound: it still takes events.
    assert not ws.log_damaged


def test_verify_rows_drops_and_audits_rows_held_by_a_caller(ws: Workspace) -> None:
    rid = _secret_chunk(ws)
    system = ws.session()
    with ws.catalog.transaction() as orm:
        chunk = orm.get(ChunkRow, rid)
        assert chunk is not None
        chunk_rows = list(orm.scalars(select(ChunkRow)))
        chunk.text = "changed in memory, never flushed"
        kept = verify_rows(system, orm, chunk_rows)
        assert chunk not in kept and len(kept) == len(chunk_rows) - 1
        assert verify_rows(system, orm, [chunk]) == []
        orm.rollback()
    events = _integrity_events(ws, f"chunks:{rid}")
    assert len(events) == 1 and events[0].actor == "system" and events[0].decision == "deny"


# -- the two attacks end to end, through the CLI and the read paths -------------------------------


def test_chunk_remarked_in_the_catalog_file_is_never_shown_and_verify_exits_1(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = _secret_chunk(ws)
    u = _marking_id(ws, "UNCLASSIFIED")
    before_u = {c["id"] for c in Chunks(ws.session("ursula")).list()}
    assert rid not in before_u
    assert any(h.chunk_id == rid for h in search(ws.session("sam"), "walruspeak").hits)
    _raw(ws, "UPDATE chunks SET marking_id = :u WHERE id = :rid", u=u, rid=rid)
    for name in ("ursula", "sam", None):
        session = ws.session(name)
        assert rid not in {c["id"] for c in Chunks(session).list()}
        assert all(h.chunk_id != rid for h in search(session, "walruspeak").hits)
    capsys.readouterr()
    assert main(["audit", "verify", "-w", str(ws.root)]) == 1
    captured = capsys.readouterr()
    assert rid in captured.out + captured.err
    assert main(["audit", "verify", "-w", str(ws.root), "--json"]) == 1
    assert f'"bad_binding": "chunks:{rid}"' in capsys.readouterr().out


@pytest.mark.parametrize("column", ["expression", "banner"])
def test_an_edited_marking_row_is_never_readable_and_verify_exits_1(
    ws: Workspace, column: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _marking_id(ws, "SECRET")
    u = _marking_id(ws, "UNCLASSIFIED")
    with ws.catalog.transaction() as orm:
        u_row = orm.get(InternedMarking, u)
        assert u_row is not None
        u_value = getattr(u_row, column)
    _raw(ws, f"UPDATE markings SET {column} = :v WHERE id = :rid", v=u_value, rid=secret)
    for name in ("ursula", "sam", None):
        session = ws.session(name)
        with ws.catalog.transaction() as orm:
            assert secret not in session.readable_marking_ids(orm)
            with pytest.raises(CheckFailed, match="integrity"):
                session.marking_of(orm, secret)
        assert all(c["marking"] != "SECRET" for c in Chunks(session).list())
        assert all("walruspeak" not in h.snippet for h in search(session, "walruspeak").hits)
    capsys.readouterr()
    assert main(["audit", "verify", "-w", str(ws.root)]) == 1
    captured = capsys.readouterr()
    assert f"marking {secret}" in captured.out + captured.err


# -- migration 0008 -------------------------------------------------------------------------------


def test_migration_0008_binds_a_workspace_made_before_it(
    tmp_path: Path, catalog_url: str | None
) -> None:
    from alembic import command

    ws = _build(tmp_path, catalog_url)
    root = ws.root
    with ws.catalog.transaction() as orm:
        # Suites are made after 0007: going back to it drops them.
        kept = {t: m for t, m in MODELS.items() if not t.startswith("eval_")}
        counts = {t: orm.scalar(select(func.count()).select_from(m)) for t, m in kept.items()}
    ws.close()
    # Back to 0007, as a workspace made before bindings existed: no binding columns, counter
    # finding ids, and no binding key.
    catalog = Catalog(resolve_url(ws.config.catalog_url, root))
    with catalog.engine.begin() as conn:
        command.downgrade(catalog._alembic_config(conn), "0007")
    with catalog.engine.connect() as conn:
        insp = inspect(conn)
        assert not insp.has_table("model_versions")  # made by 0009
        later = ("model_versions", "predictions", "eval_suites", "eval_suite_items")
        before_models = [t for t in MODELS if t not in later]
        assert all("binding" not in {c["name"] for c in insp.get_columns(t)} for t in before_models)
        old_ids = [r[0] for r in conn.execute(text("SELECT id FROM findings ORDER BY id"))]
    catalog.dispose()
    assert old_ids == list(range(1, len(old_ids) + 1))
    os.unlink(root / BINDING_KEY)

    assert main(["migrate", "-w", str(root)]) == 0
    assert stat.S_IMODE((root / BINDING_KEY).stat().st_mode) == 0o600
    with Workspace.open(root) as ws2:
        assert ws2.catalog.revision() == HEAD_REVISION == "0015"
        with ws2.catalog.transaction() as orm:
            assert first_bad_binding(ws2.catalog.binder, orm) is None
            now = {t: orm.scalar(select(func.count()).select_from(m)) for t, m in kept.items()}
            finding_ids = list(orm.scalars(select(FindingRow.id)))
        assert now == counts
        assert finding_ids and all(OPAQUE.match(f) for f in finding_ids)
        assert ws2.session().audit_verify().ok
        # Reads work as before, through every path.
        assert any("walruspeak" in h.snippet for h in search(ws2.session("sam"), "walruspeak").hits)
        hits = search(ws2.session("ursula"), "walruspeak").hits
        assert all("walruspeak" not in h.snippet for h in hits)
        assert Chunks(ws2.session("ursula")).list()
        found = Documents(ws2.session("stew")).findings()
        assert found
        Documents(ws2.session("stew")).resolve(str(found[0]["id"]), "checked")
        # Evaluation runs' tables are bound too (tests/evaluate/test_run_store.py).
        runs = ["eval_runs", "eval_run_items", "eval_cache"]
        # And compilation rules (tests/security/test_compilation_rules.py).
        rules = ["compilation_rules"]
        assert sorted(bound_tables()) == sorted([*MODELS, *runs, *LABEL_MODELS, *rules])


# -- opaque ids ------------------------------------------------------------------------------------


def test_finding_and_job_ids_are_opaque_and_docs_resolve_takes_one(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    more = tmp_path / "more"
    more.mkdir()
    (more / "x.txt").write_text("(U) Another note.\n")
    system = ws.session()
    jobs = [
        ingest_paths(system, [str(more)], IngestOptions(default_marking="UNCLASSIFIED")).job_id
        for _ in range(2)
    ]
    assert all(OPAQUE.match(j) for j in jobs) and jobs[0] != jobs[1]
    capsys.readouterr()
    assert main(["docs", "findings", "-w", str(ws.root), "--as", "stew", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    ids = [f["id"] for f in found]
    assert ids and all(isinstance(i, str) and OPAQUE.match(i) for i in ids)
    # A guessed counter names nothing: it answers like any unknown id.
    assert main(["docs", "resolve", "1", "--note", "x", "-w", str(ws.root), "--as", "stew"]) == 3
    argv = ["docs", "resolve", ids[0], "--note", "checked", "-w", str(ws.root), "--as", "stew"]
    assert main(argv) == 0
    event = ws.audit.tail(1)[0]
    assert (event.action, event.object_id) == ("finding.resolve", ids[0])


def test_nothing_new_is_marked_with_a_tampered_marking(ws: Workspace, tmp_path: Path) -> None:
    secret = _marking_id(ws, "SECRET")
    _raw(ws, "UPDATE markings SET expression = 'CLS:U' WHERE id = :rid", rid=secret)
    system = ws.session()
    with ws.catalog.transaction() as orm, pytest.raises(CheckFailed, match=f"marking {secret}"):
        system.intern_marking(orm, system.parse_marking("SECRET"))
    # Other markings still intern as before.
    confidential = _marking_id(ws, "CONFIDENTIAL")
    with ws.catalog.transaction() as orm:
        assert system.intern_marking(orm, system.parse_marking("CONFIDENTIAL")) == confidential


def test_tampered_rows_are_missing_from_every_library_read_path(ws: Workspace) -> None:
    from garrison.core.errors import NotFound
    from garrison.store.derived import Lineage

    u = _marking_id(ws, "UNCLASSIFIED")
    element = _target(ws, "secret-element")
    chunk = _target(ws, "secret-chunk")
    with ws.catalog.transaction() as orm:
        element_row = orm.get(ElementRow, element)
        assert element_row is not None
        doc = element_row.doc_id
        version = orm.scalar(select(DatasetVersionRow.id))
    assert version is not None
    _raw(ws, "UPDATE elements SET marking_id = :u WHERE id = :rid", u=u, rid=element)
    _raw(ws, "UPDATE chunks SET marking_id = :u WHERE id = :rid", u=u, rid=chunk)
    _raw(ws, "UPDATE dataset_versions SET marking_id = :u WHERE id = :rid", u=u, rid=version)
    for name in ("ursula", "sam", "stew", None):
        session = ws.session(name)
        for record in (element, chunk):
            with pytest.raises(NotFound):
                Lineage(session).of(record)
        try:
            shown = Documents(session).show(doc, elements=True)
        except NotFound:
            shown = {"elements": []}
        assert all(e["id"] != element for e in shown.get("elements", []))
        with pytest.raises(NotFound):
            Datasets(session).get(version)
        assert all(v.id != version for v in Datasets(session).list())


def test_update_bound_rebinds_good_rows_and_never_launders_a_bad_one(ws: Workspace) -> None:
    from garrison.store.bindings import update_bound

    confidential = _marking_id(ws, "CONFIDENTIAL")
    with ws.catalog.transaction() as orm:
        ids = list(orm.scalars(select(ElementRow.id)))
    assert len(ids) >= 3
    bad = _target(ws, "secret-element")
    _raw(ws, "UPDATE elements SET text = 'edited' WHERE id = :rid", rid=bad)
    with ws.catalog.transaction() as orm:
        changed = update_bound(orm, ElementRow, ids, {"marking_id": confidential, "page": 7})
    assert sorted(changed) == sorted(i for i in ids if i != bad)
    with ws.catalog.transaction() as orm:
        for element_id in changed:
            row = orm.get(ElementRow, element_id)
            assert row is not None and (row.marking_id, row.page) == (confidential, 7)
        assert orm.get(ElementRow, bad) is None
        found = first_bad_binding(ws.catalog.binder, orm)
    assert found is not None and found[:2] == ("elements", bad)


def test_a_remembered_record_still_fails_once_a_field_changes() -> None:
    from garrison.store.bindings import Binder, spec_for

    binder = Binder(bytes(32))
    spec = spec_for("chunks")
    assert spec is not None
    row: dict[str, Any] = {
        "id": "c1",
        "marking_id": 1,
        "section_marking_ids": [1, 2],
        **{c: f"value of {c}" for c in spec.content},
    }
    for column in spec.marking_lists:
        row.setdefault(column, [1])
    row["binding"] = binder.bind_values(spec, row.get)
    assert binder.verify_values(spec, row.get)
    assert binder.verify_values(spec, row.get)  # remembered
    changed = [
        {**row, "marking_id": 2},
        {**row, "marking_id": 1.0},  # equal in Python, bound differently
        {**row, "marking_id": True},
        {**row, spec.content[0]: "edited"},
        {**row, "id": "c2"},
    ]
    if spec.marking_lists:
        changed.append({**row, spec.marking_lists[0]: [9]})
    for edited in changed:
        assert not binder.verify_values(spec, edited.get), edited
        assert not binder.verify_values(spec, edited.get, remember=False)


def test_a_binders_memory_of_verified_records_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.store import bindings
    from garrison.store.bindings import Binder, spec_for

    monkeypatch.setattr(bindings, "VERIFIED_LIMIT", 3)
    binder = Binder(bytes(32))
    spec = spec_for("findings")
    assert spec is not None
    for n in range(10):
        row: dict[str, Any] = {"id": f"f{n}", "marking_id": 1}
        row.update({c: f"{c} {n}" for c in spec.content})
        row["binding"] = binder.bind_values(spec, row.get)
        assert binder.verify_values(spec, row.get)
        assert len(binder._verified) <= 3
