"""What a reader sees of a chunk, an element or a hit: headings above the reader are withheld,
a document above the reader is never referenced, and ``seq`` never counts hidden records.

Every read path is checked: search, ``chunks ls``, lineage, the web pages and the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from garrison.core.errors import NotFound
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.derived import Chunks, Lineage
from garrison.store.documents import Documents
from garrison.store.models import ChunkRow, DocumentRow, ElementRow
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.views import visible_headings
from garrison.store.workspace import Workspace
from garrison.web import create_app

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
#: The SECRET heading's words: never shown to the UNCLASSIFIED reader.
HEADING = "bluefalconop"
#: The UNCLASSIFIED paragraph under it.
LOW_WORD = "harborferry"
#: The SECRET paragraph beside it.
HIGH_WORD = "ottervault"
#: An all-UNCLASSIFIED document with an UNCLASSIFIED heading, for the readable-document case.
OPEN_HEADING = "gardenplan"
OPEN_WORD = "tomatowater"


@dataclass
class Env:
    ws: Workspace
    secret_doc: str
    open_doc: str
    client: TestClient
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("views")
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    (folder / "operation.md").write_text(
        f"# (S//NF) Operation {HEADING}\n\n"
        f"(S//NF) The {HIGH_WORD} cache moves to the eastern depot.\n\n"
        f"(U) The {LOW_WORD} timetable changes on Monday.\n\n"
        f"(S//NF) The second {HIGH_WORD} note stays here.\n\n"
        f"(U) The second {LOW_WORD} note is about the weather.\n"
    )
    (folder / "garden.md").write_text(
        f"# (U) The {OPEN_HEADING}\n\n(U) The {OPEN_WORD} schedule is every morning.\n"
    )
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    docs = {d["filename"]: d for d in Documents(system).list()}
    assert docs["operation.md"]["marking"] == "SECRET//NOFORN"
    tokens = {}
    for name, clearance in (("low", "U"), ("high", "S")):
        system.add_user(
            name, SubjectSpec(clearance=clearance, citizenship="USA", roles=("viewer",))
        )
        tokens[name] = create_token(system, name, 30)[1]
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        yield Env(ws, docs["operation.md"]["id"], docs["garden.md"]["id"], client, tokens)
    ws.close()


def _api(env: Env, user: str, path: str, **params: Any) -> Any:
    response = env.client.get(
        path, params=params, headers={"Authorization": f"Bearer {env.tokens[user]}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _browser(env: Env, user: str) -> TestClient:
    browser = TestClient(env.client.app, raise_server_exceptions=False, follow_redirects=False)
    page = browser.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    signed = browser.post("/ui/login", data={"token": env.tokens[user], "csrf": csrf.group(1)})
    assert signed.status_code == 303, signed.text
    return browser


def _low_chunks(env: Env) -> list[dict[str, Any]]:
    return [c for c in Chunks(env.ws.session("low")).list() if LOW_WORD in c["text"]]


# -- the rule ----------------------------------------------------------------------------------


def test_visible_headings_withholds_and_fails_closed() -> None:
    readable = frozenset({1})
    assert visible_headings(["a", "b", "c"], [1, 2, 1], readable, 1) == ["a", "c"]
    # No markings recorded: every heading is at the document's marking.
    assert visible_headings(["a", "b"], None, readable, 2) == []
    assert visible_headings(["a", "b"], None, readable, 1) == ["a", "b"]
    # A list shorter than the path, or a null entry: the document's marking.
    assert visible_headings(["a", "b"], [1], readable, 2) == ["a"]
    assert visible_headings(["a", "b"], [None, 1], readable, 2) == ["b"]
    # A document with no marking (not parsed) makes such headings unreadable.
    assert visible_headings(["a"], None, readable, None) == []


# -- a SECRET heading over an UNCLASSIFIED paragraph ------------------------------------------


def test_chunks_ls_withholds_the_heading_the_document_and_seq(env: Env) -> None:
    chunks = _low_chunks(env)
    assert len(chunks) == 2
    text = json.dumps(chunks)
    assert HEADING not in text and HIGH_WORD not in text and env.secret_doc not in text
    for chunk in chunks:
        assert chunk["section_path"] == [] and "doc_id" not in chunk
    # Positions among what the reader may read, not the stored seq (which has gaps).
    assert sorted(c["seq"] for c in chunks) == [0, 1]
    with env.ws.catalog.transaction() as orm:
        stored = sorted(
            orm.scalars(
                select(ChunkRow.seq).where(
                    ChunkRow.doc_id == env.secret_doc, ChunkRow.text.contains(LOW_WORD)
                )
            )
        )
    assert stored != [0, 1]
    # The cleared reader sees all of it.
    high = [c for c in Chunks(env.ws.session("high")).list() if LOW_WORD in c["text"]]
    assert all(c["doc_id"] == env.secret_doc for c in high)
    assert all(HEADING in " ".join(c["section_path"]) for c in high)
    assert sorted(c["seq"] for c in high) == stored


def test_chunks_of_an_unreadable_document_answer_like_a_missing_one(env: Env) -> None:
    low = env.ws.session("low")
    assert Chunks(low).list(doc_id=env.secret_doc) == Chunks(low).list(doc_id="0" * 64) == []
    assert Chunks(env.ws.session("high")).list(doc_id=env.secret_doc)
    with pytest.raises(NotFound):
        Documents(low).show(env.secret_doc)


def test_search_hit_withholds_the_heading_and_the_document(env: Env) -> None:
    result = search(env.ws.session("low"), LOW_WORD).to_dict()
    hits = [h for h in result["hits"] if LOW_WORD in h["snippet"]]
    assert result["total"] == 2 and len(hits) == 2
    text = json.dumps(result)
    assert HEADING not in text and env.secret_doc not in text
    for hit in hits:
        assert "doc_id" not in hit and hit["section_path"] == [] and hit["locator"] == {}
    # A doc filter on the unreadable document finds nothing, like a missing document.
    assert search(env.ws.session("low"), LOW_WORD, filters={"doc": env.secret_doc}).hits == []
    high = [
        h
        for h in search(env.ws.session("high"), LOW_WORD).to_dict()["hits"]
        if LOW_WORD in h["snippet"]
    ]
    assert len(high) == 2
    assert all(h["doc_id"] == env.secret_doc and h["section_path"] for h in high)
    assert all(h["locator"] for h in high)


def test_lineage_withholds_the_heading_the_document_and_seq(env: Env) -> None:
    low = env.ws.session("low")
    for chunk in _low_chunks(env):
        tree = Lineage(low).of(chunk["id"])
        text = json.dumps(tree)
        assert HEADING not in text and env.secret_doc not in text and HIGH_WORD not in text
        assert tree["section_path"] == [] and tree["seq"] in (0, 1)
        (element,) = tree["parents"]
        assert element["parents"] == [] and element["section_path"] == []
        assert element["seq"] in (0, 1)
        again = Lineage(low).of(element["id"])
        assert env.secret_doc not in json.dumps(again)
    with pytest.raises(NotFound):
        Lineage(low).of(env.secret_doc)


def test_api_withholds_the_heading_and_the_document(env: Env) -> None:
    chunks = _api(env, "low", "/v1/chunks")["items"]
    hits = [
        h for h in _api(env, "low", "/v1/search", q=LOW_WORD)["hits"] if LOW_WORD in h["snippet"]
    ]
    assert len(hits) == 2
    lineage = [_api(env, "low", f"/v1/lineage/{h['chunk_id']}") for h in hits]
    text = json.dumps([chunks, hits, lineage])
    assert HEADING not in text and env.secret_doc not in text and HIGH_WORD not in text
    assert all("doc_id" not in h for h in hits)
    assert _api(env, "low", "/v1/chunks", doc_id=env.secret_doc)["items"] == []
    high = [
        h for h in _api(env, "high", "/v1/search", q=LOW_WORD)["hits"] if LOW_WORD in h["snippet"]
    ]
    assert high and all(h["doc_id"] == env.secret_doc for h in high)


def test_web_pages_withhold_the_heading_and_the_document(env: Env) -> None:
    browser = _browser(env, "low")
    try:
        page = browser.get("/ui/search", params={"q": LOW_WORD})
        assert page.status_code == 200 and LOW_WORD in page.text
        pages = [page.text]
        for chunk in _low_chunks(env):
            lineage = browser.get(f"/ui/lineage/{chunk['id']}")
            assert lineage.status_code == 200
            pages.append(lineage.text)
        for html in pages:
            assert HEADING not in html and env.secret_doc not in html
            assert env.secret_doc[:12] not in html
        high = _browser(env, "high")
        shown = high.get("/ui/search", params={"q": LOW_WORD}).text
        high.close()
        assert HEADING in shown and env.secret_doc in shown
    finally:
        browser.close()


def test_readable_document_keeps_its_reference_headings_and_seq(env: Env) -> None:
    low = env.ws.session("low")
    chunks = Chunks(low).list(doc_id=env.open_doc)
    body = next(c for c in chunks if OPEN_WORD in c["text"])
    assert body["doc_id"] == env.open_doc
    with env.ws.catalog.transaction() as orm:
        stored = orm.get(ChunkRow, body["id"])
        assert stored is not None and body["seq"] == stored.seq
    assert OPEN_HEADING in " ".join(body["section_path"])
    doc = Documents(low).show(env.open_doc, elements=True)
    assert any(OPEN_HEADING in " ".join(e.get("section_path", [])) for e in doc["elements"])
    page = _browser(env, "low")
    try:
        html = page.get(f"/ui/documents/{env.open_doc}").text
    finally:
        page.close()
    assert OPEN_HEADING in html


def test_heading_markings_travel_from_elements_to_chunks(env: Env, tmp_path: Path) -> None:
    """Element data's ``section_marking_ids`` reach the chunk: a heading recorded as
    UNCLASSIFIED in a SECRET document is shown to the UNCLASSIFIED reader of its chunk; one
    recorded as SECRET, or with no marking recorded, is not."""
    system = env.ws.session()
    with env.ws.catalog.transaction() as orm:
        low_id = system.intern_marking(orm, system.parse_marking("UNCLASSIFIED"))
        for element in orm.scalars(select(ElementRow).where(ElementRow.doc_id == env.secret_doc)):
            path = (element.data or {}).get("section_path")
            if path:
                element.data = {**element.data, "section_marking_ids": [low_id] * len(path)}
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"), full=True)
    with env.ws.catalog.transaction() as orm:
        rows = list(orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == env.secret_doc)))
        assert rows and all(r.section_marking_ids == [low_id] * len(r.section_path) for r in rows)
    try:
        shown = _low_chunks(env)
        assert shown and all(HEADING in " ".join(c["section_path"]) for c in shown)
        assert all("doc_id" not in c for c in shown)  # the document is still not readable
    finally:
        with env.ws.catalog.transaction() as orm:
            for element in orm.scalars(
                select(ElementRow).where(ElementRow.doc_id == env.secret_doc)
            ):
                data = dict(element.data or {})
                data.pop("section_marking_ids", None)
                element.data = data
        run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"), full=True)
    assert all(c["section_path"] == [] for c in _low_chunks(env))
    # With no heading markings recorded, the sink writes the document's marking for each.
    with env.ws.catalog.transaction() as orm:
        doc = orm.get(DocumentRow, env.secret_doc)
        assert doc is not None
        rows = list(orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == env.secret_doc)))
        assert all(r.section_marking_ids == [doc.marking_id] * len(r.section_path) for r in rows)
