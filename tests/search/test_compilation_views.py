"""Compilation rules raise document views and search pages, on every interface (library, API,
CLI, web): the reader sees the raised marking, and what the raised marking puts above them is
withheld -- a document view answers like a missing document, a search page leaves the hit out --
without a word that a rule exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.cli.main import main
from garrison.core.errors import NotFound
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 400, overlap_tokens: 0, respect_sections: false}
  - embed: {model: hashing}
"""
RULE = "falcon-uranium"
FILES = {
    # Each part alone, in documents of their own: every chunk is UNCLASSIFIED.
    "falcon.txt": "(U) Project Falcon keeps to its schedule.\n",
    "uranium.txt": "(U) The uranium order keeps to its schedule.\n",
    "canteen.txt": "(U) The canteen order keeps to its schedule.\n",
    # Both parts in one document of UNCLASSIFIED elements.
    "plan.txt": "(U) Project Falcon is named here.\n\n(U) Its uranium is listed here.\n",
}
QUERY = "schedule"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class World:
    path: Path
    tokens: dict[str, str]
    docs: dict[str, str]
    client: TestClient | None = None

    def open(self) -> Workspace:
        return Workspace.open(self.path)

    def login(self, user: str) -> TestClient:
        assert self.client is not None
        client = TestClient(self.client.app, raise_server_exceptions=False, follow_redirects=False)
        found = CSRF.search(client.get("/ui/login").text)
        assert found
        response = client.post("/ui/login", data={"token": self.tokens[user], "csrf": found[1]})
        assert response.status_code == 303, response.text
        return client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("compiled-views")
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    (root / "in").mkdir()
    for name, text in FILES.items():
        (root / "in" / name).write_text(text)
    system = ws.session()
    system.registry_add_compilation(
        RULE, when=["project falcon"], and_=["uranium"], marking="SECRET//NOFORN",
        reason="The program and its material together.",
    )  # fmt: skip
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    tokens = {}
    for name, clearance in (("una", "U"), ("sam", "S")):
        system.add_user(name, SubjectSpec(clearance=clearance, roles=("viewer",)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = {str(d["filename"]): str(d["id"]) for d in Documents(system).list()}
    ws.close()
    return World(root / "ws", tokens, docs)


@pytest.fixture
def served(world: World) -> Iterator[World]:
    """The same workspace served by the API and the web UI (nothing else opens it meanwhile)."""
    app = create_app(world.path, WebSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(world.path, world.tokens, world.docs, client)


def _texts(hits: list[dict[str, Any]]) -> list[str]:
    return sorted(str(h["snippet"]).replace("*", "") for h in hits)


def _parts(texts: list[str]) -> tuple[bool, bool]:
    joined = " ".join(texts)
    return "Falcon" in joined, "uranium" in joined


# -- library ---------------------------------------------------------------------------------


def test_a_document_view_is_raised_for_a_reader_of_the_raised_marking(world: World) -> None:
    ws = world.open()
    try:
        for elements in (False, True):
            doc = Documents(ws.session("sam")).show(world.docs["plan.txt"], elements=elements)
            assert doc["marking"] == "SECRET//NOFORN" and doc["own_marking"] == "UNCLASSIFIED"
            assert [f["rule"] for f in doc["compilation"]] == [RULE]
        plain = Documents(ws.session("sam")).show(world.docs["falcon.txt"], elements=True)
        assert plain["marking"] == "UNCLASSIFIED" and "compilation" not in plain
    finally:
        ws.close()


def test_a_document_view_raised_above_the_reader_answers_like_a_missing_one(
    world: World,
) -> None:
    ws = world.open()
    try:
        una = Documents(ws.session("una"))
        # The document alone is UNCLASSIFIED: una may list it, never view it.
        assert world.docs["plan.txt"] in {d["id"] for d in una.list()}
        for elements in (False, True):
            with pytest.raises(NotFound) as raised:
                una.show(world.docs["plan.txt"], elements=elements)
            with pytest.raises(NotFound) as missing:
                una.show("0" * 64, elements=elements)
            assert str(raised.value).replace(world.docs["plan.txt"], "X") == str(
                missing.value
            ).replace("0" * 64, "X")
        event = ws.audit.tail(4)[-2]
        assert event.decision == "deny" and event.details.get("compilation") == [RULE]
    finally:
        ws.close()


def test_a_search_page_is_raised_or_withholds_the_hit_that_would_raise_it(world: World) -> None:
    ws = world.open()
    try:
        high = search(ws.session("sam"), QUERY, k=10).to_dict()
        assert _parts(_texts(high["hits"])) == (True, True)
        assert high["marking"] == "SECRET//NOFORN"
        assert [f["rule"] for f in high["findings"]] == [RULE]
        low = search(ws.session("una"), QUERY, k=10).to_dict()
        # One part and the canteen: never both parts on one page una may read.
        assert len(low["hits"]) == 2 and sum(_parts(_texts(low["hits"]))) == 1
        assert low["marking"] == "UNCLASSIFIED" and "findings" not in low
        assert RULE not in json.dumps(low) and low["total"] == high["total"]
        # A ceiling holds the page at its level for a reader who could read more.
        ceiling = search(ws.session("sam"), QUERY, k=10, filters={"max_marking": "U"}).to_dict()
        assert _texts(ceiling["hits"]) == _texts(low["hits"])
        assert ceiling["marking"] == "UNCLASSIFIED"
        event = ws.audit.tail(2)[-1]
        assert event.details.get("withheld") == 1
    finally:
        ws.close()


# -- API ---------------------------------------------------------------------------------------


def _get(world: World, user: str, url: str, **params: Any) -> Any:
    auth = {"Authorization": f"Bearer {world.tokens[user]}"}
    assert world.client is not None
    return world.client.get(url, params=params, headers=auth)


def test_api_and_web_document_and_search(served: World) -> None:
    world = served
    url = f"/v1/documents/{world.docs['plan.txt']}"
    high = _get(world, "sam", url, elements="true")
    assert high.status_code == 200 and high.json()["marking"] == "SECRET//NOFORN"
    assert high.headers["X-Garrison-Marking"] == "SECRET//NOFORN"
    low = _get(world, "una", url)
    missing = _get(world, "una", "/v1/documents/" + "0" * 64)
    assert low.status_code == missing.status_code == 404
    assert RULE not in low.text
    page = _get(world, "una", "/v1/search", q=QUERY, k=10).json()
    assert sum(_parts(_texts(page["hits"]))) == 1 and page["marking"] == "UNCLASSIFIED"
    page = _get(world, "sam", "/v1/search", q=QUERY, k=10)
    assert page.headers["X-Garrison-Marking"] == "SECRET//NOFORN"
    assert _parts(_texts(page.json()["hits"])) == (True, True)
    _web(world)


# -- CLI ---------------------------------------------------------------------------------------


def _cli(
    world: World, capsys: pytest.CaptureFixture[str], user: str, *argv: str
) -> tuple[int, str]:
    code = main([*argv, "-w", str(world.path), "--as", user])
    out, err = capsys.readouterr()
    return code, out + err


def test_cli_docs_show_and_search(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    doc = world.docs["plan.txt"]
    code, out = _cli(world, capsys, "sam", "docs", "show", doc, "--elements")
    assert code == 0 and "marking: SECRET//NOFORN" in out and f"compilation rule {RULE}" in out
    code, out = _cli(world, capsys, "una", "docs", "show", doc)
    missing_code, missing = _cli(world, capsys, "una", "docs", "show", "0" * 64)
    assert code == missing_code == 3 and RULE not in out
    assert out.replace(doc, "X") == missing.replace("0" * 64, "X")
    code, out = _cli(world, capsys, "sam", "search", QUERY, "--json")
    assert code == 0 and json.loads(out)["marking"] == "SECRET//NOFORN"
    code, out = _cli(world, capsys, "una", "search", QUERY)
    assert code == 0 and "SECRET" not in out and RULE not in out
    assert ("Falcon" in out) != ("uranium" in out)


# -- web ---------------------------------------------------------------------------------------


def _banner(html: str) -> str:
    found = re.search(r'class="banner[^"]*"[^>]*>([^<]+)<', html)
    assert found, "no banner on the page"
    return found[1].strip()


def _web(world: World) -> None:
    sam, una = world.login("sam"), world.login("una")
    url = f"/ui/documents/{world.docs['plan.txt']}"
    page = sam.get(url)
    assert page.status_code == 200 and _banner(page.text) == "SECRET//NOFORN"
    low, missing = una.get(url), una.get("/ui/documents/" + "0" * 64)
    assert low.status_code == missing.status_code == 404 and RULE not in low.text
    page = sam.get("/ui/search", params={"q": QUERY})
    assert _banner(page.text) == "SECRET//NOFORN"
    assert "Falcon" in page.text and "uranium" in page.text
    page = una.get("/ui/search", params={"q": QUERY})
    assert _banner(page.text) == "UNCLASSIFIED" and RULE not in page.text
    assert ("Falcon" in page.text) != ("uranium" in page.text)
