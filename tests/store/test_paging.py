"""Keyset pages over the catalog (SQLite and PostgreSQL) and over readable lists."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput
from garrison.store.documents import Documents
from garrison.store.listings import DOCUMENT_SORTS, documents_page
from garrison.store.models import DocumentRow
from garrison.store.paging import (
    MAX_LIMIT,
    Cursor,
    PageSpec,
    check_limit,
    page_items,
)
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

#: (title, filename, marking, source, size): ties and NULLs on purpose.
ROWS = [
    ("Alpha", "a.txt", "UNCLASSIFIED", "/s1", 5),
    (None, "b.txt", "SECRET", "/s1", 5),
    ("Alpha", "c.txt", "UNCLASSIFIED", "/s2", 7),
    (None, None, "UNCLASSIFIED", "/s2", 1),
    ("Delta", "e.txt", "SECRET", "/s1", 9),
    ("beta", "f.txt", "CONFIDENTIAL", "/s3", 5),
    (None, "g.txt", "UNCLASSIFIED", "/s1", 2),
    ("Gamma", "h.txt", "SECRET", "/s3", 5),
    ("Alpha", None, "CONFIDENTIAL", "/s2", 3),
]


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    system = workspace.session()
    system.add_user("una", SubjectSpec(clearance="U"))
    system.add_user("cal", SubjectSpec(clearance="C"))
    start = utc_now()
    with workspace.catalog.transaction() as orm:
        for n, (title, filename, marking, source, size) in enumerate(ROWS):
            orm.add(
                DocumentRow(
                    id=hashlib.sha256(str(n).encode()).hexdigest(),
                    status="parsed",
                    size=size,
                    media_type="text/plain",
                    filename=filename,
                    uri=f"{source}/{filename or n}",
                    source_name=source,
                    title=title,
                    marking_id=system.intern_marking(orm, system.parse_marking(marking)),
                    meta={},
                    # Every other document at the same instant: the id breaks the tie.
                    ingested_at=start + timedelta(seconds=n // 2),
                )
            )
    yield workspace
    workspace.close(checkpoint=False)


def _walk(session: Session, sort: str | None, desc: bool, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    page = documents_page(session, PageSpec(limit=limit, sort=sort, desc=desc))
    total = page.total
    while True:
        ids += [d["id"] for d in page.items]
        assert page.total == total
        if page.next_cursor is None:
            break
        page = documents_page(session, PageSpec(limit=limit, cursor=page.next_cursor))
    # And back again from the last page, through the previous cursors.
    back: list[str] = [d["id"] for d in page.items]
    while page.prev_cursor is not None:
        page = documents_page(session, PageSpec(limit=limit, cursor=page.prev_cursor))
        back = [d["id"] for d in page.items] + back
    assert back == ids
    return ids, total


def test_pages_cover_every_readable_document_once_in_order(ws: Workspace) -> None:
    for user in (None, "una"):
        session = ws.session(user)
        for sort in DOCUMENT_SORTS:
            for desc in (False, True):
                whole = documents_page(session, PageSpec(limit=MAX_LIMIT, sort=sort, desc=desc))
                expected = [d["id"] for d in whole.items]
                for limit in (2,):
                    ids, total = _walk(session, sort, desc, limit)
                    assert ids == expected, (user, sort, desc, limit)
                    assert total == len(expected)
        listed = documents_page(session, PageSpec(limit=MAX_LIMIT)).items
        assert [d["id"] for d in listed] == [d["id"] for d in _listed(session)]


def _listed(session: Session) -> list[dict[str, Any]]:
    return Documents(session).list()


def test_the_order_follows_the_sort_key_with_nulls_last(ws: Workspace) -> None:
    session = ws.session()
    up = documents_page(session, PageSpec(limit=MAX_LIMIT, sort="title")).items
    titles = [d["title"] for d in up]
    present = [t for t in titles if t is not None]
    assert titles == present + [None] * (len(titles) - len(present))
    down = documents_page(session, PageSpec(limit=MAX_LIMIT, sort="title", desc=True)).items
    assert [d["id"] for d in down] == [d["id"] for d in reversed(up)]


def test_totals_count_readable_rows_only(ws: Workspace) -> None:
    expected = {None: 9, "cal": 6, "una": 4}
    for user, count in expected.items():
        page = documents_page(ws.session(user), PageSpec(limit=1))
        assert page.total == count
        assert {d["marking"] for d in page.items} <= {"UNCLASSIFIED", "CONFIDENTIAL", "SECRET"}
    assert documents_page(ws.session("una"), PageSpec(), q="alpha").total == 2


def test_a_row_whose_binding_fails_is_neither_shown_nor_counted(ws: Workspace) -> None:
    session = ws.session("una")
    before = documents_page(session, PageSpec(limit=MAX_LIMIT))
    secret = documents_page(ws.session(), PageSpec(limit=MAX_LIMIT, sort="size"))
    target = next(d for d in secret.items if d["marking"] == "SECRET")
    with ws.catalog.engine.begin() as conn:
        # Re-mark a SECRET row UNCLASSIFIED behind Garrison's back: its binding no longer holds.
        u_id = conn.execute(
            text("SELECT marking_id FROM documents WHERE id = :id"),
            {"id": before.items[0]["id"]},
        ).scalar()
        conn.execute(
            text("UPDATE documents SET marking_id = :m WHERE id = :id"),
            {"m": u_id, "id": target["id"]},
        )
    after = documents_page(ws.session("una"), PageSpec(limit=MAX_LIMIT))
    assert after.total == before.total
    assert target["id"] not in {d["id"] for d in after.items}


def test_a_cursor_naming_a_document_above_the_reader_is_refused(ws: Workspace) -> None:
    high = documents_page(ws.session(), PageSpec(limit=MAX_LIMIT)).items
    secret = next(d for d in high if d["marking"] == "SECRET")
    cursor = Cursor("documents", secret["id"]).encode()
    assert documents_page(ws.session(), PageSpec(cursor=cursor)).total == 9
    with pytest.raises(InvalidInput, match="not one this listing gave"):
        documents_page(ws.session("una"), PageSpec(cursor=cursor))


# -- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text_",
    ["", "%%%", "bm90IGpzb24", "W10", "eyJsIjoieCIsImEiOiJ5In0", "eyJsIjoiZCIsImEiOnRydWV9"],
)
def test_a_cursor_is_decoded_for_its_own_listing_only(text_: str) -> None:
    with pytest.raises(InvalidInput):
        Cursor.decode(text_, "d")


def test_a_cursor_round_trips() -> None:
    cursor = Cursor("d", "abc", before=True, sort="name", desc=True)
    assert Cursor.decode(cursor.encode(), "d") == cursor


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_a_page_size_outside_the_bounds_is_refused(limit: int) -> None:
    with pytest.raises(InvalidInput, match="1 to 500"):
        check_limit(limit)
    assert check_limit(None) == 50 and check_limit(MAX_LIMIT) == MAX_LIMIT


def test_a_readable_list_pages_in_its_own_order_or_by_a_key() -> None:
    items = [{"id": str(n), "name": name} for n, name in enumerate("dbca")]
    sorts: dict[str, Any] = {"order": None, "name": lambda i: i["name"]}

    def walk(sort: str, desc: bool) -> list[str]:
        spec = PageSpec(limit=3, sort=sort, desc=desc)
        out: list[str] = []
        while True:
            page = page_items(
                items, listing="t", record_id=lambda i: i["id"], sorts=sorts, default="order",
                spec=spec,
            )  # fmt: skip
            assert page.total == 4
            out += [i["name"] for i in page.items]
            if page.next_cursor is None:
                return out
            spec = PageSpec(limit=3, cursor=page.next_cursor)

    assert walk("order", False) == list("dbca")
    assert walk("order", True) == list("acbd")
    assert walk("name", False) == list("abcd")
    assert walk("name", True) == list("dcba")
    with pytest.raises(InvalidInput, match="sorts by order, name"):
        page_items(
            items, listing="t", record_id=lambda i: i["id"], sorts=sorts, default="order",
            spec=PageSpec(sort="size"),
        )  # fmt: skip
