"""Evaluation suites: content addressing, item markings from every source, fail-closed JSONL
markings, per-item reader filtering, holdout rules, export and integrity (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.evaluate._suites import KINDS, NewItem, Suites
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditAction
from garrison.store.models import EvalSuiteItemRow, EvalSuiteRow
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""

#: name -> (clearance, roles, citizenship)
USERS = {
    "eve": ("S", ("evaluator",), "USA"),
    "uma": ("U", ("viewer",), "USA"),
    "val": ("U", ("evaluator",), "USA"),
    "sam": ("S", ("viewer",), "USA"),
    "stu": ("S", ("steward",), "USA"),
    "gus": ("S", ("evaluator",), "GBR"),
}


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    system = workspace.session()
    for name, (clearance, roles, nation) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles, citizenship=nation))
    yield workspace
    workspace.close()


def _qa(session: Session, question: str, banner: str, **expected: Any) -> NewItem:
    return NewItem(
        input={"question": question},
        expected={"answer": "an answer", **expected},
        marking=session.parse_marking(banner),
        where=question,
    )


def _mixed(ws: Workspace, name: str = "mixed", *, holdout: bool = False) -> Any:
    eve = ws.session("eve")
    items = [
        _qa(eve, "low question", "UNCLASSIFIED"),
        _qa(eve, "high question", "SECRET//REL TO USA, GBR"),
        _qa(eve, "noforn question", "SECRET//NOFORN"),
    ]
    return Suites(eve).create(name, "qa", items, holdout=holdout, source={"type": "test"})


# -- content addressing ---------------------------------------------------------------------------


def test_same_items_give_the_same_id_and_new_content_the_next_version(ws: Workspace) -> None:
    first = _mixed(ws)
    again = _mixed(ws)
    assert again.id == first.id and again.version == 1
    assert len(first.id) == 64 and first.ref == f"mixed@{first.id[:12]}"
    eve = Suites(ws.session("eve"))
    changed = eve.create(
        "mixed", "qa", [_qa(eve.session, "another", "UNCLASSIFIED")], source={"type": "test"}
    )
    assert changed.id != first.id and changed.version == 2
    # The newest version is what the bare name means; the old one stays reachable by prefix.
    assert eve.get("mixed").id == changed.id
    assert eve.get(f"mixed@{first.id[:8]}").id == first.id
    assert eve.get(first.id).id == first.id
    # Holdout and source are part of the manifest, so of the id.
    held = _mixed(ws, "mixed", holdout=True)
    assert held.id not in {first.id, changed.id}


def test_the_same_content_under_another_name_is_refused(ws: Workspace) -> None:
    first = _mixed(ws)
    with pytest.raises(InvalidInput, match=first.ref):
        _mixed(ws, "other")


def test_item_ids_are_content_hashes_stable_across_suites(ws: Workspace) -> None:
    eve = Suites(ws.session("eve"))
    one = eve.create("one", "qa", [_qa(eve.session, "shared", "UNCLASSIFIED")])
    two = eve.create(
        "two",
        "qa",
        [_qa(eve.session, "shared", "UNCLASSIFIED"), _qa(eve.session, "x", "UNCLASSIFIED")],
    )
    ids_one = [i.id for i in eve.items(one.ref)]
    ids_two = [i.id for i in eve.items(two.ref)]
    assert ids_one[0] == ids_two[0] and len(set(ids_two)) == 2
    # The manifest lists the item ids in order.
    with ws.catalog.transaction() as orm:
        row = orm.get(EvalSuiteRow, two.id)
        assert row is not None and row.manifest["items"] == ids_two


def test_duplicate_and_invalid_items_are_refused_naming_them(ws: Workspace) -> None:
    eve = Suites(ws.session("eve"))
    u = eve.session.parse_marking("U")
    with pytest.raises(InvalidInput, match="repeats"):
        eve.create("d", "qa", [_qa(eve.session, "q", "U"), _qa(eve.session, "q", "U")])
    cases = {
        "qa": ({"question": ""}, {"answer": "a"}),
        "classification": ({"text": "t"}, {}),
        "retrieval": ({"query": "q"}, {"relevant": []}),
        "extraction": ({"text": "t"}, {"json": {"a": 1}, "schema": {"type": "string"}}),
        "generation": ({"prompt": "p", "extra": 1}, {"reference": "r"}),
    }
    assert set(cases) == set(KINDS)
    for kind, (inp, exp) in cases.items():
        with pytest.raises(InvalidInput, match="item 7"):
            eve.create("bad", kind, [NewItem(inp, exp, u, where="item 7")])
    with pytest.raises(InvalidInput, match="kind"):
        eve.create("bad", "essay", [NewItem({"prompt": "p"}, {"reference": "r"}, u)])
    with pytest.raises(InvalidInput, match="at least one"):
        eve.create("empty", "qa", [])
    with pytest.raises(InvalidInput, match="name"):
        eve.create("bad name!", "qa", [_qa(eve.session, "q", "U")])


def test_every_kind_round_trips(ws: Workspace) -> None:
    eve = Suites(ws.session("eve"))
    u = eve.session.parse_marking("U")
    examples = {
        "qa": ({"question": "q?"}, {"answer": "", "answerable": False}),
        "classification": ({"text": "t"}, {"label": 3}),
        "retrieval": ({"query": "q"}, {"relevant": ["c1", "c2"]}),
        "extraction": (
            {"text": "t"},
            {"json": {"a": 1}, "schema": {"type": "object", "required": ["a"]}},
        ),
        "generation": ({"prompt": "p"}, {"reference": "r"}),
    }
    for kind, (inp, exp) in examples.items():
        version = eve.create(f"k-{kind}", kind, [NewItem(inp, exp, u)])
        (item,) = eve.items(version.ref)
        assert item.kind == kind and item.input == inp
        assert item.cluster == item.id  # no source document: its own cluster
        assert item.slices["marking"] == "UNCLASSIFIED"
    (item,) = eve.items("k-classification")
    assert item.expected == {"label": "3"}
    (item,) = eve.items("k-qa")
    assert item.expected == {"answer": "", "sources": [], "answerable": False}


def test_building_needs_the_evaluator_role_and_items_the_builder_may_read(ws: Workspace) -> None:
    sam = Suites(ws.session("sam"))
    with pytest.raises(NotPermitted):
        sam.create("x", "qa", [_qa(sam.session, "q", "U")])
    val = Suites(ws.session("val"))  # an UNCLASSIFIED evaluator
    with pytest.raises(NotPermitted, match="above"):
        val.create("x", "qa", [_qa(val.session, "q", "SECRET")])
    system = ws.session()
    with pytest.raises(NotPermitted):  # above system high: nobody holds it
        Suites(system).create("x", "qa", [_qa(system, "q", "TOP SECRET")])
    assert Suites(system).list() == []


# -- reader filtering -----------------------------------------------------------------------------


def test_readers_see_only_the_items_they_dominate(ws: Workspace) -> None:
    suite = _mixed(ws)
    assert suite.count == 3 and suite.marking.banner() == "SECRET//NOFORN"
    uma = Suites(ws.session("uma"))
    seen = uma.get(suite.ref)
    assert seen.count == 1 and seen.marking.banner() == "UNCLASSIFIED"
    assert [i.input["question"] for i in uma.items(suite.ref)] == ["low question"]
    assert [v.count for v in uma.list()] == [1]
    gus = Suites(ws.session("gus"))  # SECRET, British: no NOFORN
    assert gus.get(suite.ref).count == 2
    assert gus.get(suite.ref).marking.banner() == "SECRET//REL TO USA, GBR"
    assert [i.input["question"] for i in gus.items(suite.ref)] == [
        "low question",
        "high question",
    ]
    # Paging counts readable items only.
    assert [i.position for i in gus.items(suite.ref, offset=1, limit=5)] == [1]
    assert [i.position for i in Suites(ws.session("eve")).items(suite.ref, offset=2)] == [2]


def test_a_suite_with_no_readable_item_looks_missing(ws: Workspace) -> None:
    eve = Suites(ws.session("eve"))
    high = eve.create("secretsuite", "qa", [_qa(eve.session, "hidden words", "SECRET")])
    uma = Suites(ws.session("uma"))
    assert uma.list() == []
    for ref in ("secretsuite", high.ref, high.id, "nosuchsuite"):
        with pytest.raises(NotFound) as found:
            uma.get(ref)
        assert "hidden words" not in str(found.value)
        with pytest.raises(NotFound):
            list(uma.items(ref))
    # The two answers read the same, apart from the name asked for.
    with pytest.raises(NotFound) as a:
        uma.get("secretsuite")
    with pytest.raises(NotFound) as b:
        uma.get("nosuchsuite")
    assert str(a.value).replace("secretsuite", "X") == str(b.value).replace("nosuchsuite", "X")
    denied = [e for e in ws.audit.tail(20) if e.actor == "uma" and e.decision == "deny"]
    assert denied and all(e.action == AuditAction.EVAL_SUITE_READ for e in denied)


def test_version_numbers_count_only_readable_versions(ws: Workspace) -> None:
    eve = Suites(ws.session("eve"))
    eve.create("nums", "qa", [_qa(eve.session, "secret one", "SECRET")])
    low = eve.create("nums", "qa", [_qa(eve.session, "low one", "U")])
    assert eve.get(low.ref).version == 2
    assert Suites(ws.session("uma")).get("nums").version == 1


# -- holdout ---------------------------------------------------------------------------------------


def test_holdout_items_only_to_evaluators_but_metadata_to_readers(ws: Workspace) -> None:
    suite = _mixed(ws, "held", holdout=True)
    sam = Suites(ws.session("sam"))
    seen = sam.get("held")
    assert seen.holdout and seen.count == 3 and seen.marking.banner() == "SECRET//NOFORN"
    assert [v.ref for v in sam.list()] == [suite.ref]
    with pytest.raises(NotPermitted, match="holdout"):
        list(sam.items("held"))
    for user in ("stu", "sam"):
        with pytest.raises(NotPermitted):
            Suites(ws.session(user)).export("held", ws.root / f"{user}.jsonl")
    assert len(list(Suites(ws.session("eve")).items("held"))) == 3
    denied = [e for e in ws.audit.tail(30) if e.actor == "sam" and e.decision == "deny"]
    assert any("holdout" in (e.reason or "") for e in denied)


# -- audit -----------------------------------------------------------------------------------------


def test_create_read_and_export_are_audited(ws: Workspace, tmp_path: Path) -> None:
    suite = _mixed(ws)
    eve = Suites(ws.session("eve"))
    list(eve.items(suite.ref))
    eve.export(suite.ref, tmp_path / "out.jsonl")
    actions = [(e.actor, e.action, e.object_id) for e in ws.audit.tail(10)]
    assert ("eve", AuditAction.EVAL_SUITE_CREATE, suite.id) in actions
    assert ("eve", AuditAction.EVAL_SUITE_READ, suite.id) in actions
    assert ("eve", AuditAction.EVAL_SUITE_EXPORT, suite.id) in actions
    created = [e for e in ws.audit.tail(50) if e.action == AuditAction.EVAL_SUITE_CREATE]
    assert created[-1].object_marking == "SECRET//NOFORN"
    assert created[-1].details["items"] == 3


# -- JSONL -----------------------------------------------------------------------------------------


def _jsonl(path: Path, *rows: Any) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_lines_carry_their_markings(ws: Workspace, tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "s.jsonl",
        {"input": {"text": "fine"}, "expected": {"label": "a"}, "marking": "U"},
        "",
        {"text": "flat form", "label": "b", "marking": "SECRET"},
        {"text": "(S) portion marked", "label": "b", "marking": "SECRET//NOFORN"},
    )
    eve = Suites(ws.session("eve"))
    suite = eve.from_jsonl("j", path, "classification")
    assert suite.marking.banner() == "SECRET//NOFORN" and suite.source["type"] == "jsonl"
    items = list(eve.items(suite.ref))
    assert [i.marking.banner() for i in items] == ["UNCLASSIFIED", "SECRET", "SECRET//NOFORN"]
    assert items[1].input == {"text": "flat form"} and items[1].expected == {"label": "b"}
    assert items[0].slices["source"] == "jsonl"
    # --marking is the marking of lines without one, joined with lines' own.
    path2 = _jsonl(
        tmp_path / "t.jsonl",
        {"text": "no marking", "label": "a"},
        {"text": "noforn", "label": "a", "marking": "S//NF"},
    )
    suite2 = eve.from_jsonl("k", path2, "classification", marking="SECRET")
    assert [i.marking.banner() for i in eve.items(suite2.ref)] == ["SECRET", "SECRET//NOFORN"]


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_markings_fail_closed_for_every_kind(
    ws: Workspace, tmp_path: Path, kind: str
) -> None:
    good_input = {
        "qa": {"question": "(S) What moves?"},
        "classification": {"text": "(S) A text."},
        "retrieval": {"query": "(S) A query."},
        "extraction": {"text": "(S) A text."},
        "generation": {"prompt": "(S) A prompt."},
    }[kind]
    expected = {
        "qa": {"answer": "x"},
        "classification": {"label": "a"},
        "retrieval": {"relevant": ["c1"]},
        "extraction": {"json": {"a": 1}},
        "generation": {"reference": "r"},
    }[kind]
    eve = Suites(ws.session("eve"))
    ok = {"input": good_input, "expected": expected, "marking": "SECRET"}
    cases = {
        "no marking": {"input": good_input, "expected": expected},
        "not valid": {**ok, "marking": "SECRET//NOSUCHTHING"},
        "not a string": {**ok, "marking": 3},
        "portion mark": {**ok, "marking": "UNCLASSIFIED"},
        "invalid portion mark": {
            **ok,
            "input": {k: "(S//NOSUCH) text" for k in good_input},
        },
    }
    for why, row in cases.items():
        path = _jsonl(tmp_path / f"{kind}-{why}.jsonl", ok, row)
        with pytest.raises(InvalidInput, match="line 2") as raised:
            eve.from_jsonl("bad", path, kind)
        assert raised.type is InvalidInput or issubclass(raised.type, InvalidInput), why
    # An unreadable --marking fails the file too, and so does a line that is not JSON.
    with pytest.raises(InvalidInput, match="marking"):
        eve.from_jsonl("bad", _jsonl(tmp_path / "m.jsonl", ok), kind, marking="NOT A MARKING")
    with pytest.raises(InvalidInput, match="line 2"):
        eve.from_jsonl("bad", _jsonl(tmp_path / "n.jsonl", ok, "{not json"), kind)
    # A portion mark in the reference (expected text) counts as well, for the kinds with one.
    if kind in ("qa", "generation"):
        key = "answer" if kind == "qa" else "reference"
        row = {**ok, "marking": "U", "input": {k: "plain" for k in good_input}}
        row["expected"] = {**expected, key: "(S) secret reference"}
        with pytest.raises(InvalidInput, match="portion"):
            eve.from_jsonl("bad", _jsonl(tmp_path / "r.jsonl", row), kind)
    assert Suites(ws.session()).list() == []
    version = eve.from_jsonl("good", _jsonl(tmp_path / f"{kind}.jsonl", ok), kind)
    assert version.marking.banner() == "SECRET"


def test_jsonl_line_above_the_builder_is_refused(ws: Workspace, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "s.jsonl", {"text": "t", "label": "a", "marking": "S//NF"})
    with pytest.raises(NotPermitted):
        Suites(ws.session("gus")).from_jsonl("x", path, "classification")


# -- datasets --------------------------------------------------------------------------------------


def _ingested(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "low.txt").write_text("(U) The greenhouse tomatoes need water every morning.\n")
    (folder / "high.txt").write_text(
        "SECRET\n\n(S) The ottervault cache moves to the eastern depot on Thursday.\n\nSECRET\n"
    )
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))


def test_from_dataset_marks_each_item_like_its_record(ws: Workspace, tmp_path: Path) -> None:
    _ingested(ws, tmp_path)
    version = Datasets(ws.session()).create(
        "ds", Selection(fields=("doc_id", "media_type", "source"))
    )
    eve = Suites(ws.session("eve"))
    ref = f"ds@{version.id[:12]}"
    suite = eve.from_dataset("cls", ref, text_field="text", label_field="source")
    records = {r.id: r for r in Datasets(ws.session()).records(version)}
    items = list(eve.items(suite.ref))
    assert len(items) == len(records) == 2
    for item in items:
        (chunk_id,) = item.sources
        record = records[chunk_id]
        assert item.marking.banner() == record.marking
        assert item.input == {"text": record.text}
        assert item.expected == {"label": record.fields["source"]}
        assert item.cluster == record.doc_id
        assert item.slices["source"] == "dataset:ds" and item.slices["media_type"] == "text/plain"
    assert suite.marking.banner() == "SECRET" and suite.source["dataset"] == version.id
    assert {i.marking.banner() for i in Suites(ws.session("val")).items(suite.ref)} == {
        "UNCLASSIFIED"
    }
    with pytest.raises(InvalidInput, match="no label"):
        eve.from_dataset("cls2", "ds", text_field="text", label_field="nosuchfield")
    with pytest.raises(InvalidInput, match="classification"):
        eve.from_dataset("cls3", "ds", kind="qa", label_field="source")
    # A dataset version the builder may not read answers like a missing one.
    with pytest.raises(NotFound):
        Suites(ws.session("val")).from_dataset("cls4", "ds", label_field="source")


# -- export ----------------------------------------------------------------------------------------


def test_export_writes_readable_items_with_their_markings(ws: Workspace, tmp_path: Path) -> None:
    suite = _mixed(ws)
    out = tmp_path / "gus.jsonl"
    result = Suites(ws.session("gus")).export(suite.ref, out)
    rel = "SECRET//REL TO USA, GBR"
    assert result["items"] == 2 and result["marking"] == rel
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["banner"] == rel and lines[0]["suite"]["id"] == suite.id
    assert [line["marking"] for line in lines[1:]] == ["UNCLASSIFIED", rel]
    assert "noforn question" not in out.read_text()
    with pytest.raises(InvalidInput, match="exists"):
        Suites(ws.session("gus")).export(suite.ref, out)
    # The export reads back as a suite (its header line is skipped) with the same items.
    eve = Suites(ws.session("eve"))
    again = eve.from_jsonl("reimported", out, "qa")
    assert [i.id for i in eve.items(again.ref)] == [
        i.id for i in Suites(ws.session("gus")).items(suite.ref)
    ]
    # Viewers and stewards do not export suites.
    with pytest.raises(NotPermitted):
        Suites(ws.session("sam")).export(suite.ref, tmp_path / "sam.jsonl")
    assert not (tmp_path / "sam.jsonl").exists()


def test_export_refuses_display_only_access(ws: Workspace, tmp_path: Path) -> None:
    system = ws.session()
    system.add_user("dora", SubjectSpec(clearance="S", roles=("evaluator",), citizenship="AUS"))
    eve = Suites(ws.session("eve"))
    eve.create("disp", "qa", [_qa(eve.session, "shown only", "SECRET//DISPLAY ONLY AUS")])
    dora = Suites(ws.session("dora"))
    assert len(list(dora.items("disp"))) == 1
    with pytest.raises(NotPermitted, match="DISPLAY ONLY"):
        dora.export("disp", tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists()


# -- integrity -------------------------------------------------------------------------------------


def test_a_tampered_item_row_fails_closed(ws: Workspace) -> None:
    suite = _mixed(ws)
    with ws.catalog.transaction() as orm:
        low = orm.scalar(select(EvalSuiteItemRow.marking_id).where(EvalSuiteItemRow.position == 0))
        # Lower the NOFORN item's marking to the UNCLASSIFIED one, in the database only.
        orm.execute(
            update(EvalSuiteItemRow).where(EvalSuiteItemRow.position == 2).values(marking_id=low)
        )
    uma = Suites(ws.session("uma"))
    assert [i.input["question"] for i in uma.items(suite.ref)] == ["low question"]
    assert uma.get(suite.ref).count == 1
    assert any(e.action == AuditAction.INTEGRITY for e in ws.audit.tail(20))


def _snapshot_of(ws: Workspace, suite_id: str) -> str:
    with ws.catalog.transaction() as orm:
        row = orm.get(EvalSuiteRow, suite_id)
        assert row is not None
        return row.snapshot


def _forged(ws: Workspace, snapshot: str) -> str:
    data = json.loads(ws.blobs.get(snapshot))
    data["items"][0]["input"]["question"] = "changed"
    return ws.blobs.put(json.dumps(data).encode())


def test_a_suite_row_changed_in_the_database_fails_closed(ws: Workspace) -> None:
    suite = _mixed(ws)
    forged = _forged(ws, _snapshot_of(ws, suite.id))
    with ws.catalog.transaction() as orm:
        orm.execute(update(EvalSuiteRow).where(EvalSuiteRow.id == suite.id).values(snapshot=forged))
    # The suite row's binding covers its snapshot: the row is left out, the suite is missing.
    with pytest.raises(NotFound):
        Suites(ws.session("eve")).get(suite.ref)


def test_a_payload_that_does_not_match_its_item_id_fails_closed(ws: Workspace) -> None:
    suite = _mixed(ws)
    forged = _forged(ws, _snapshot_of(ws, suite.id))
    # Even through a path that re-binds the row, the item's content hash catches the change.
    with ws.catalog.transaction() as orm:
        row = orm.get(EvalSuiteRow, suite.id)
        assert row is not None
        row.snapshot = forged
    eve = Suites(ws.session("eve"))
    assert eve.get(suite.ref).count == 3
    with pytest.raises(CheckFailed):
        list(eve.items(suite.ref))
    assert any(e.action == AuditAction.INTEGRITY for e in ws.audit.tail(5))


def test_malformed_references_answer_like_missing_suites(ws: Workspace) -> None:
    _mixed(ws)
    eve = Suites(ws.session("eve"))
    for ref in ("mixed\x00", "x" * 400, "mixed@\n"):
        with pytest.raises(NotFound):
            eve.get(ref)
    with pytest.raises(InvalidInput):
        eve.get("mixed@")
