"""Every API listing pages: a default and a maximum size, an opaque cursor, a readable total."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import event

from garrison.store.derived import Chunks
from garrison.store.listings import documents_page
from garrison.store.paging import MAX_LIMIT, PageSpec
from tests.api.conftest import Env

#: Every list endpoint of the app (those needing a name are checked with one that exists).
LISTINGS = [
    "/v1/documents",
    "/v1/chunks",
    "/v1/findings",
    "/v1/datasets",
    "/v1/models",
    "/v1/users",
    "/v1/audit",
    "/v1/eval/suites",
    "/v1/eval/runs",
    "/v1/label/projects",
]
#: Who may call each (the admin reads users and the audit log; anyone else the rest).
CALLER = {"/v1/users": "ada", "/v1/audit": "ada"}


def _get(env: Env, path: str, user: str, **params: Any) -> Any:
    return env.client.get(path, params=params, headers=env.auth(user))


def _cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decoded(cursor: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    )
    return decoded


def _walk(env: Env, path: str, user: str, limit: int, **params: Any) -> tuple[list[Any], int]:
    items: list[Any] = []
    cursor = None
    total = -1
    for _ in range(200):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = _get(env, path, user, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"items", "total", "next_cursor", "marking"}
        assert len(body["items"]) <= limit
        assert total in (-1, body["total"])  # the total is the same on every page
        total = body["total"]
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, total
    raise AssertionError("the listing never ended")


@pytest.mark.parametrize("path", LISTINGS)
def test_every_listing_has_the_paged_shape_and_a_default_size(env: Env, path: str) -> None:
    body = _get(env, path, CALLER.get(path, "sam")).json()
    assert set(body) == {"items", "total", "next_cursor", "prev_cursor", "marking"}
    assert len(body["items"]) <= 50 and body["total"] >= len(body["items"])
    if body["total"] <= 50:
        assert body["next_cursor"] is None and len(body["items"]) == body["total"]


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1])
def test_a_page_size_outside_the_bounds_is_refused(env: Env, path: str, limit: int) -> None:
    response = _get(env, path, CALLER.get(path, "sam"), limit=limit)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid-input"


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "bm90IGpzb24",  # base64 of text that is not JSON
        _cursor({"offset": 2}),
        _cursor({"l": "other-listing", "a": "x"}),
        _cursor({"l": "documents", "a": "0" * 64, "b": "1"}),
        _cursor({"l": "documents", "a": ["x"]}),
        _cursor({"l": "documents", "a": "x", "s": "marking"}),
        _cursor({"l": "documents", "a": "x", "d": 7}),
        "A" * 400,
    ],
)
def test_a_cursor_the_listing_did_not_give_is_a_400_with_one_sentence(
    env: Env, path: str, cursor: str
) -> None:
    response = _get(env, path, CALLER.get(path, "sam"), cursor=cursor)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "invalid-input",
        "message": "The cursor is not one this listing gave.",
    }


def test_documents_page_through_everything_once(env: Env) -> None:
    whole = _get(env, "/v1/documents", "sam", limit=MAX_LIMIT).json()["items"]
    items, total = _walk(env, "/v1/documents", "sam", 1)
    assert [d["id"] for d in items] == [d["id"] for d in whole] and total == len(whole) == 3


def test_chunks_page_through_what_the_library_lists(env: Env) -> None:
    ws = env.workspace()
    try:
        for user in ("sam", "una"):
            expected = [c["id"] for c in Chunks(ws.session(user)).list()]
            items, total = _walk(env, "/v1/chunks", user, 1)
            assert [c["id"] for c in items] == expected and total == len(expected)
    finally:
        ws.close(checkpoint=False)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/documents", {}),
        ("/v1/chunks", {}),
        ("/v1/findings", {}),
        ("/v1/documents", {"q": "memo"}),
    ],
)
def test_a_low_readers_total_leaves_out_what_is_above_them(
    env: Env, path: str, params: dict[str, Any]
) -> None:
    high_items, high_total = _walk(env, path, "sam", 2, **params)
    low_items, low_total = _walk(env, path, "una", 2, **params)
    assert low_total == len(low_items) and high_total == len(high_items)
    assert {m["marking"] for m in low_items if "marking" in m} <= {"UNCLASSIFIED"}
    if path == "/v1/documents":
        # una (U) reads the U document only; sam (S) reads all three.
        assert (low_total, high_total) == ((0, 1) if params else (1, 3))
    if path == "/v1/chunks":
        assert low_total < high_total


def test_a_chunk_cursor_names_the_chunk_never_its_document(env: Env) -> None:
    body = _get(env, "/v1/chunks", "una", limit=1).json()
    assert body["next_cursor"] is not None
    decoded = _decoded(body["next_cursor"])
    assert set(decoded) == {"l", "a"} and decoded["a"] == body["items"][0]["id"]
    memo = next(d for d in _get(env, "/v1/documents", "sam").json()["items"])
    assert memo["id"] not in json.dumps(decoded)


def test_a_cursor_naming_a_record_above_the_reader_is_refused_like_garbage(env: Env) -> None:
    high = {c["id"] for c in _get(env, "/v1/chunks", "sam", limit=MAX_LIMIT).json()["items"]}
    low = {c["id"] for c in _get(env, "/v1/chunks", "una", limit=MAX_LIMIT).json()["items"]}
    secret_chunk = sorted(high - low)[0]
    cursor = _cursor({"l": "chunks", "a": secret_chunk})
    assert _get(env, "/v1/chunks", "sam", cursor=cursor).status_code == 200
    refused = _get(env, "/v1/chunks", "una", cursor=cursor)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "The cursor is not one this listing gave."


def test_the_previous_cursor_goes_back(env: Env) -> None:
    first = _get(env, "/v1/documents", "sam", limit=1).json()
    assert first["prev_cursor"] is None
    second = _get(env, "/v1/documents", "sam", limit=1, cursor=first["next_cursor"]).json()
    back = _get(env, "/v1/documents", "sam", limit=1, cursor=second["prev_cursor"]).json()
    assert back["items"] == first["items"]


def test_the_audit_log_pages_back_from_the_newest_events(env: Env) -> None:
    newest = _get(env, "/v1/audit", "ada", limit=3).json()
    seqs = [e["seq"] for e in newest["items"]]
    assert seqs == sorted(seqs) and len(seqs) == 3
    older = _get(env, "/v1/audit", "ada", limit=3, cursor=newest["next_cursor"]).json()
    assert [e["seq"] for e in older["items"]] == [seqs[0] - 3, seqs[0] - 2, seqs[0] - 1]
    assert older["marking"] == newest["marking"] == "SECRET//NOFORN"
    assert len(_get(env, "/v1/audit", "ada", n=2).json()["items"]) == 2


def test_users_page_by_name(env: Env) -> None:
    items, total = _walk(env, "/v1/users", "ada", 2)
    names = [u["name"] for u in items]
    assert names == sorted(names) and total == len(names) >= 5


def test_a_document_page_takes_the_same_queries_whatever_its_size(env: Env) -> None:
    ws = env.workspace()
    try:
        session = ws.session("sam")
        engine = ws.catalog.engine
        counts = []
        for limit in (1, 3):
            seen: list[str] = []

            def count(*args: Any, _seen: list[str] = seen) -> None:
                _seen.append(str(args[2])[:40])

            event.listen(engine, "before_cursor_execute", count)
            try:
                page = documents_page(session, PageSpec(limit=limit))
            finally:
                event.remove(engine, "before_cursor_execute", count)
            assert len(page.items) == limit
            counts.append(len(seen))
        assert counts[0] == counts[1], counts  # no query per document
    finally:
        ws.close(checkpoint=False)
