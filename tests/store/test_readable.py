"""``Session.readable``: the one helper that adds a subject's access filter to a query."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from garrison.store.models import FindingRow, InternedMarking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("low", SubjectSpec(clearance="C"))
    with workspace.catalog.transaction() as orm:
        for banner in ("UNCLASSIFIED", "CONFIDENTIAL", "SECRET//NOFORN"):
            system.intern_marking(orm, system.parse_marking(banner))
    return workspace


def _banners(ws: Workspace, name: str | None) -> set[str]:
    session = ws.session(name) if name else ws.session()
    with ws.catalog.transaction() as orm:
        query = session.readable(orm, select(InternedMarking), InternedMarking.id)
        return {row.banner for row in orm.scalars(query)}


def test_rows_are_filtered_by_what_the_subject_may_read(ws: Workspace) -> None:
    assert _banners(ws, "low") == {"UNCLASSIFIED", "CONFIDENTIAL"}
    assert "SECRET//NOFORN" in _banners(ws, None)


def test_an_unmarked_row_fails_closed_unless_allowed(ws: Workspace) -> None:
    session = ws.session("low")
    with ws.catalog.transaction() as orm:
        strict = session.readable(orm, select(FindingRow.id), FindingRow.marking_id)
        loose = session.readable(
            orm, select(FindingRow.id), FindingRow.marking_id, allow_unmarked=True
        )
        assert "IS NULL" not in str(strict)
        assert "IS NULL" in str(loose)


def test_a_query_without_marking_columns_is_refused(ws: Workspace) -> None:
    session = ws.session("low")
    with ws.catalog.transaction() as orm, pytest.raises(ValueError, match="marking column"):
        session.readable(orm, select(InternedMarking))
