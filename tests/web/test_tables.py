"""The UI's tables page, sort and filter on the server, over readable rows only.

The served workspace (tests/web/conftest.py) has four parsed documents at U, C, C and S and a
spill; the pages here are two rows long, so every table has more than one page.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.store.documents import Documents
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.browser import serve
from tests.web.conftest import WebEnv, csrf_of
from tests.web.test_browser import GREEN, Browsing, browser  # noqa: F401 (a fixture)

_NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
_PREV = re.compile(r'<a rel="prev" href="([^"]+)"')
_DOC = re.compile(r'<a href="/ui/documents/([0-9a-f]{64})">')
_TOTAL = re.compile(r"Documents you may read \((\d+)\)")


@pytest.fixture(scope="module")
def small(web: WebEnv) -> Iterator[Any]:
    """The same workspace served with two rows a page; ``login(user)`` gives a client."""
    app = create_app(web.path, WebSettings(page_size=2))
    clients: list[TestClient] = []

    def login(user: str) -> TestClient:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        clients.append(client)
        page = client.get("/ui/login")
        signed = client.post(
            "/ui/login", data={"token": web.tokens[user], "csrf": csrf_of(page.text)}
        )
        assert signed.status_code == 303
        return client

    with TestClient(app):
        yield login
    for client in clients:
        client.close()


def _readable(web: WebEnv, user: str) -> list[dict[str, Any]]:
    ws = Workspace.open(web.path)
    try:
        return Documents(ws.session(user)).list(status="parsed")
    finally:
        ws.close(checkpoint=False)


def _link(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return html_lib.unescape(found.group(1)) if found else None


def _walk(client: TestClient, url: str) -> list[str]:
    """Every page from ``url`` on, following the next links: the document ids in order."""
    seen: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        ids = _DOC.findall(response.text)
        assert 1 <= len(ids) <= 2
        seen += ids
        next_url = _link(_NEXT, response.text)
        pages += 1
        assert pages < 10
    return seen


@pytest.mark.parametrize("user", ["sam", "una"])
def test_the_documents_table_pages_through_readable_documents_only(
    web: WebEnv, small: Any, user: str
) -> None:
    client = small(user)
    readable = _readable(web, user)
    first = client.get("/ui/documents")
    # The total counts what this reader may read, never a row above them.
    assert _TOTAL.search(first.text).group(1) == str(len(readable))  # type: ignore[union-attr]
    assert f"{min(2, len(readable))} of {len(readable)} shown" in first.text
    seen = _walk(client, "/ui/documents")
    assert seen == [d["id"] for d in readable]  # oldest first, each once
    unreadable = set(web.docs.values()) - {d["id"] for d in readable}
    assert not unreadable & set(seen)


def test_a_later_page_links_back_to_the_one_before(web: WebEnv, small: Any) -> None:
    client = small("sam")
    first = client.get("/ui/documents")
    assert _link(_PREV, first.text) is None
    second = client.get(_link(_NEXT, first.text) or "")
    previous = _link(_PREV, second.text)
    assert previous is not None
    back = client.get(previous)
    assert _DOC.findall(back.text) == _DOC.findall(first.text)


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_the_documents_table_sorts_by_a_column_across_pages(
    web: WebEnv, small: Any, direction: str
) -> None:
    client = small("sam")
    readable = {d["id"]: d for d in _readable(web, "sam")}
    seen = _walk(client, f"/ui/documents?sort=name&dir={direction}")
    names = [str(readable[i]["title"] or readable[i]["filename"]) for i in seen]
    assert sorted(seen) == sorted(readable)
    assert names == sorted(names, reverse=direction == "desc")
    page = client.get(f"/ui/documents?sort=name&dir={direction}").text
    state = "ascending" if direction == "asc" else "descending"
    assert f'aria-sort="{state}"><a class="sort"' in page
    # The column header flips the direction; the others start ascending.
    other = "desc" if direction == "asc" else "asc"
    assert f'href="/ui/documents?sort=name&amp;dir={other}"' in page
    assert 'href="/ui/documents?sort=source&amp;dir=asc"' in page


def test_a_column_the_table_does_not_sort_by_is_refused(small: Any) -> None:
    client = small("sam")
    response = client.get("/ui/documents?sort=marking")
    assert response.status_code == 400
    assert "sorts by" in response.text


@pytest.mark.parametrize("cursor", ["garbage", "eyJsIjoiZG9jdW1lbnRzIiwiYSI6Inh4In0", "e30"])
def test_a_cursor_the_table_did_not_give_is_a_plain_error(small: Any, cursor: str) -> None:
    response = small("sam").get(f"/ui/documents?cursor={cursor}")
    assert response.status_code == 400
    assert "The cursor is not one this listing gave." in response.text
    assert 'id="banner-top"' in response.text and "UNCLASSIFIED" in response.text


def test_a_cursor_to_a_document_above_the_reader_is_refused_like_garbage(
    web: WebEnv, small: Any
) -> None:
    import base64
    import json

    memo = web.docs["memo.txt"]  # SECRET
    raw = json.dumps({"l": "documents", "a": memo}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    low = small("una").get(f"/ui/documents?cursor={cursor}")
    assert low.status_code == 400 and "not one this listing gave" in low.text
    high = small("sam").get(f"/ui/documents?cursor={cursor}")
    assert high.status_code == 200


def test_the_filter_box_matches_names_of_readable_documents_only(web: WebEnv, small: Any) -> None:
    high = small("sam").get("/ui/documents?q=MEMO")
    assert _DOC.findall(high.text) == [web.docs["memo.txt"]]
    assert 'name="q" value="MEMO"' in high.text
    assert "Documents you may read (1)" in high.text
    low = small("una").get("/ui/documents?q=memo")
    assert _DOC.findall(low.text) == []
    assert "No document you may read matches" in low.text
    # The filter travels with the pager and the sort links.
    paged = small("sam").get("/ui/documents?q=.txt").text
    assert "q=.txt" in (_link(_NEXT, paged) or "")
    assert "q=.txt&amp;sort=name" in paged


def test_the_other_tables_page_and_sort(web: WebEnv, small: Any) -> None:
    steward = small("stu")
    jobs = steward.get("/ui/jobs?sort=kind&dir=asc")
    assert jobs.status_code == 200 and 'aria-sort="ascending"' in jobs.text
    assert "Jobs (" in jobs.text
    findings = steward.get("/ui/findings?state=all&sort=kind")
    assert findings.status_code == 200 and "shown" in findings.text
    for path in ("/ui/models?sort=name", "/ui/label?sort=name", "/ui/eval?sort=status"):
        response = small("sam").get(path)
        assert response.status_code == 200, path
        assert 'class="table-filter"' in response.text
    assert small("sam").get("/ui/models?sort=secretness").status_code == 400


def test_tables_keep_the_strict_content_security_policy(small: Any) -> None:
    response = small("sam").get("/ui/documents?sort=name&dir=desc&q=txt")
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "script-src 'self'" in policy
    assert "<script>" not in response.text and " onclick=" not in response.text


# -- in Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_url(web: WebEnv) -> Iterator[str]:
    with serve(create_app(web.path, WebSettings(page_size=2))) as url:
        yield url


def test_a_reader_clicks_to_page_two_and_sorts_in_chromium(
    web: WebEnv,
    browser: Any,  # noqa: F811
    small_url: str,
) -> None:
    b = Browsing(browser, small_url)
    try:
        b.login(web.tokens["sam"])
        b.page.get_by_role("link", name="Documents").first.click()
        b.page.wait_for_url("**/ui/documents")
        rows = b.page.locator("table.documents tbody tr")
        assert rows.count() == 2
        first = rows.all_inner_texts()
        b.page.get_by_role("link", name="Next").click()
        b.page.wait_for_url("**/ui/documents?cursor=*")
        assert b.page.locator("table.documents tbody tr").count() >= 1
        assert b.page.locator("table.documents tbody tr").all_inner_texts() != first
        b.page.get_by_role("link", name="Previous").click()
        b.page.wait_for_url("**/ui/documents?cursor=*")
        assert b.page.locator("table.documents tbody tr").all_inner_texts() == first
        # Sort by the document column, then reverse it.
        b.page.get_by_role("link", name="Document", exact=True).click()
        b.page.wait_for_url("**/ui/documents?sort=name&dir=asc")
        header = b.page.locator("th[aria-sort='ascending']")
        assert header.inner_text().startswith("Document")
        up = b.page.locator("table.documents tbody tr td:nth-child(2)").all_inner_texts()
        assert up == sorted(up)
        b.page.get_by_role("link", name="Document ▲").click()
        b.page.wait_for_url("**/ui/documents?sort=name&dir=desc")
        down = b.page.locator("table.documents tbody tr td:nth-child(2)").all_inner_texts()
        assert down == sorted(down, reverse=True) and down != up
        # The filter box narrows the table on the server.
        b.page.get_by_label("Filter by name or title").fill("memo")
        b.page.get_by_role("button", name="Filter").click()
        b.page.wait_for_url("**/ui/documents?q=memo*")
        assert b.page.locator("table.documents tbody tr").count() == 1
        b.assert_banner("SECRET//NOFORN", "rgb(200, 16, 46)")
    finally:
        b.close()
