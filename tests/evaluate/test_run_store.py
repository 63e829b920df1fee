"""The run tables on both catalog backends: records, markings, sealed transcripts, the cache,
and the integrity check of ``garrison audit verify``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from garrison.core.errors import NotFound
from garrison.evaluate import ItemResult, Runs, SystemSpec
from garrison.evaluate._cache import ResponseCache
from garrison.security.markings import parse_marking
from garrison.store.bindings import first_bad_binding
from garrison.store.models import EvalRunItemRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

M = parse_marking


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET", db_url=catalog_url)
    system = workspace.session()
    system.add_user("eva", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("cal", SubjectSpec(clearance="C", roles=("viewer",)))
    yield workspace
    workspace.close()


def test_runs_items_transcripts_and_cache(ws: Workspace) -> None:
    eva = Runs(ws.session("eva"))
    writer = eva.begin_external("redteam", SystemSpec("assistant", "assistant"), {"n": 2})
    writer.record(
        ItemResult(
            "a", "scored", M("C"), {"leak": 0.0}, {"leak": True}, cluster="d", transcript={"q": "x"}
        )
    )
    writer.record(
        ItemResult("b", "scored", M("S"), {"leak": 1.0}, {"leak": True}, transcript={"q": "y"})
    )
    summary = writer.finish()
    assert summary.marking == M("S") and summary.counts["scored"] == 2
    assert eva.transcript(summary.ref, "a")["q"] == "x"
    assert [r.item_id for r in eva.items(summary.ref)] == ["a", "b"]
    cal = Runs(ws.session("cal"))
    assert cal.list() == []
    with pytest.raises(NotFound):
        cal.get(summary.ref)
    cache = ResponseCache(ws.session("eva"))
    cache.put("k" * 64, {"response": {"text": "hi"}}, M("S"))
    assert cache.get("k" * 64) == ({"response": {"text": "hi"}}, M("S"))
    assert ResponseCache(ws.session("cal")).get("k" * 64) is None  # above cal: a miss
    with ws.catalog.transaction() as orm:
        assert first_bad_binding(ws.catalog.binder, orm) is None


def test_a_tampered_item_marking_fails_closed(ws: Workspace) -> None:
    eva = Runs(ws.session("eva"))
    writer = eva.begin_external("redteam", SystemSpec("assistant", "assistant"), {})
    writer.record(ItemResult("a", "scored", M("S"), {"leak": 0.0}, {"leak": True}))
    summary = writer.finish()
    with ws.catalog.transaction() as orm:
        unclassified = ws.session().intern_marking(orm, M("U"))
        orm.execute(update(EvalRunItemRow).values(marking_id=unclassified))
    # The lowered row no longer verifies: nobody reads it, not even its writer, and
    # `garrison audit verify` names it.
    assert list(eva.items(summary.ref)) == []
    with ws.catalog.transaction() as orm:
        bad = first_bad_binding(ws.catalog.binder, orm)
    assert bad is not None and bad[0] == "eval_run_items"
