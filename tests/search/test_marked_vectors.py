"""Marked vectors in search: a reader ranks only on vectors they dominate, embeds queries only
with models they may use, and learns nothing of vectors above them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import NotFound
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, open_embedder
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import _search as search_module
from garrison.search import search
from garrison.search._search import TEXT_ONLY, rrf
from garrison.security.audit import AuditAction
from garrison.security.markings import parse_marking
from garrison.store.derived import Chunks, Lineage
from garrison.store.index import VECTOR_MARKING, ChunkIndex
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer

PIPELINE = """
name: marked
stages:
  - normalize: {{}}
  - chunk: {{model: hashing, max_tokens: 48, overlap_tokens: 0}}
  - embed: {{model: {model}}}
"""

DOCS = {
    "u-convoy.txt": "(U) The convoy report lists fuel supply at the northern depot.",
    "u-convoy2.txt": "(U) A second convoy crossed the bridge with cargo for the warehouse.",
    "u-harbor.txt": "(U) The harbor vessel cargo manifest is due on the schedule.",
    "u-weather.txt": "(U) A weather storm closed the runway for aircraft maintenance.",
    "s-radar.txt": "SECRET\n\n(S) The radar intercept signal came from sector bravo.\n\nSECRET\n",
    "s-convoy.txt": "SECRET\n\n(S) The convoy patrol crossed the river at grid delta.\n\nSECRET\n",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


def _workspace(root: Path, tiny: Path, model: str) -> Workspace:
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("ursula", SubjectSpec(clearance="U", roles=("viewer",)))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("viewer",)))
    folder = root / "in"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text + "\n")
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    models = Models(workspace.session("stew"))
    models.register(kind="embedder", name="tiny-u", folder=tiny, marking=parse_marking("U"))
    models.register(kind="embedder", name="tiny-s", folder=tiny, marking=parse_marking("S"))
    spec = parse_pipeline(PIPELINE.format(model=model), source="marked.yaml")
    run_pipeline(workspace.session("stew"), spec)
    return workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Iterator[Workspace]:
    """Every chunk, UNCLASSIFIED ones included, embedded by the SECRET-trained model."""
    workspace = _workspace(tmp_path_factory.mktemp("secret-model"), tiny, "tiny-s")
    yield workspace
    workspace.close()


def _events(ws: Workspace, action: AuditAction, actor: str) -> list[Any]:
    return [e for e in ws.audit.events() if e.action == action.value and e.actor == actor]


def test_an_unclassified_reader_searches_full_text_only(ws: Workspace) -> None:
    uses_before = len(_events(ws, AuditAction.MODEL_USE, "ursula"))
    result = search(ws.session("ursula"), "convoy cargo", k=10)
    assert result.mode == "text" and result.notes == (TEXT_ONLY,)
    data = result.to_dict()
    assert data["mode"] == "text" and data["notes"] == [TEXT_ONLY]
    assert result.hits and {h.marking for h in result.hits} == {"UNCLASSIFIED"}
    # Only full-text matches: no hit the vector branch alone would bring.
    for hit in result.hits:
        assert "**convoy**" in hit.snippet or "**cargo**" in hit.snippet
    # Scores are those of the text ranking alone.
    assert [h.score for h in result.hits] == [
        round(s, 8) for _, s in rrf([[h.chunk_id for h in result.hits]])
    ]
    # The reader never embedded the query.
    assert len(_events(ws, AuditAction.MODEL_USE, "ursula")) == uses_before


def test_secret_vectors_change_nothing_an_unclassified_reader_sees(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ws.session("ursula")
    queries = ["convoy", "cargo manifest", "weather runway", "radar signal", "bridge"]
    real = [search(session, q, k=20).to_dict() for q in queries]
    # The same searches with no vector branch at all: identical totals, facets, hits, scores.
    monkeypatch.setattr(search_module, "_vector_order", lambda *args, **kwargs: None)
    assert [search(session, q, k=20).to_dict() for q in queries] == real
    assert all(r["total"] == len(r["hits"]) for r in real)
    assert all(set(r["facets"]["marking"]) <= {"UNCLASSIFIED"} for r in real)


def test_full_text_finds_unclassified_chunks_embedded_by_a_secret_model(ws: Workspace) -> None:
    result = search(ws.session("ursula"), "weather", k=5)
    assert [h.marking for h in result.hits] == ["UNCLASSIFIED"]
    assert result.total == 1 and result.facets["marking"] == {"UNCLASSIFIED": 1}


def test_an_unclassified_reader_cannot_embed_with_the_secret_model(ws: Workspace) -> None:
    ref = Models(ws.session("stew")).resolve("tiny-s").ref
    denied_before = len(_events(ws, AuditAction.MODEL_READ, "ursula"))
    with pytest.raises(NotFound) as hidden:
        open_embedder(ws.session("ursula"), ref, purpose="search")
    with pytest.raises(NotFound) as missing:
        open_embedder(ws.session("ursula"), "tiny-x@0123456789ab", purpose="search")
    assert str(hidden.value).replace(ref, "X") == str(missing.value).replace(
        "tiny-x@0123456789ab", "X"
    )
    denied = _events(ws, AuditAction.MODEL_READ, "ursula")[denied_before:]
    assert [e.decision for e in denied] == ["deny", "deny"]


def test_a_secret_reader_gets_vector_search(ws: Workspace) -> None:
    version = Models(ws.session("stew")).resolve("tiny-s")
    result = search(ws.session("sam"), "convoy", k=20)
    assert result.mode == "hybrid" and result.notes == ()
    # The vector branch ranks every readable vector: chunks without the word come back too.
    assert any("**convoy**" not in h.snippet for h in result.hits)
    assert result.total == 3  # the full-text count is unchanged by vectors
    uses = _events(ws, AuditAction.MODEL_USE, "sam")
    assert uses and uses[-1].object_id == version.id
    assert uses[-1].details["purpose"] == "search"


def test_a_ceiling_below_the_vectors_leaves_full_text_only(ws: Workspace) -> None:
    result = search(ws.session("sam"), "convoy", k=10, filters={"max_marking": "U"})
    assert result.mode == "text"
    assert {h.marking for h in result.hits} == {"UNCLASSIFIED"}


def test_chunks_and_lineage_withhold_the_model_from_readers_below_it(ws: Workspace) -> None:
    ref = Models(ws.session("stew")).resolve("tiny-s").ref
    low = Chunks(ws.session("ursula")).list()
    high = Chunks(ws.session("sam")).list()
    assert low and {c["marking"] for c in low} == {"UNCLASSIFIED"}
    assert {c["embedding_model"] for c in low} == {None}
    assert {c["embedding_model"] for c in high} == {ref}
    chunk_id = str(low[0]["id"])
    seen_low = Lineage(ws.session("ursula")).of(chunk_id)
    seen_high = Lineage(ws.session("sam")).of(chunk_id)
    assert ref not in str(seen_low) and "tiny-s" not in str(seen_low)
    assert ref in str(seen_high)
    assert "embed" in str(seen_high) and "'embed'" not in str(seen_low)


def test_an_unclassified_model_gives_an_unclassified_reader_hybrid_search(
    tmp_path: Path, tiny: Path
) -> None:
    workspace = _workspace(tmp_path, tiny, "tiny-u")
    try:
        version = Models(workspace.session("stew")).resolve("tiny-u")
        result = search(workspace.session("ursula"), "convoy", k=20)
        assert result.mode == "hybrid"
        assert {h.marking for h in result.hits} == {"UNCLASSIFIED"}
        assert any("**convoy**" not in h.snippet for h in result.hits)
        uses = _events(workspace, AuditAction.MODEL_USE, "ursula")
        assert [u.object_id for u in uses] == [version.id]
        assert {c["embedding_model"] for c in Chunks(workspace.session("ursula")).list()} == {
            version.ref
        }
        # A removed model is used by no one: search falls back to full text.
        Models(workspace.session("stew")).remove("tiny-u", "retired")
        assert search(workspace.session("ursula"), "convoy", k=20).mode == "text"
    finally:
        workspace.close()


def test_an_index_from_before_vectors_were_marked(tmp_path: Path, tiny: Path) -> None:
    import lancedb

    workspace = _workspace(tmp_path, tiny, "hashing")
    try:
        index = ChunkIndex(workspace.root / "index")
        old = index._table(None).to_arrow().drop_columns([VECTOR_MARKING])
        db = lancedb.connect(str(workspace.root / "index"))
        db.drop_table("chunks")
        db.create_table("chunks", data=old)
        assert VECTOR_MARKING not in index.columns()
        # Rows without the column count as marked like their chunks.
        low = search(workspace.session("ursula"), "convoy", k=20)
        assert low.mode == "hybrid" and {h.marking for h in low.hits} == {"UNCLASSIFIED"}
        assert any("**convoy**" not in h.snippet for h in low.hits)
        # The next write adds the column, filled from each row's chunk marking.
        spec = parse_pipeline(PIPELINE.format(model="hashing"), source="marked.yaml")
        first_doc = sorted(r["doc_id"] for r in old.to_pylist())[0]
        run_pipeline(workspace.session("stew"), spec, doc_ids=[first_doc], full=True)
        rows = index._table(None).to_arrow().to_pylist()
        assert VECTOR_MARKING in index.columns() and len(rows) == old.num_rows
        assert all(r[VECTOR_MARKING] == r["marking_id"] for r in rows)
    finally:
        workspace.close()


def test_the_cli_says_when_search_is_full_text_only(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from garrison.cli.main import main

    base = ["search", "convoy", "--workspace", str(ws.root)]
    assert main([*base, "--as", "ursula", "--json"]) == 0
    low = json.loads(capsys.readouterr().out)
    assert low["mode"] == "text" and low["notes"] == [TEXT_ONLY]
    assert main([*base, "--as", "ursula"]) == 0
    assert TEXT_ONLY in capsys.readouterr().out
    assert main([*base, "--as", "sam", "--json"]) == 0
    high = json.loads(capsys.readouterr().out)
    assert high["mode"] == "hybrid" and high["notes"] == []
    assert main([*base, "--as", "sam"]) == 0
    assert TEXT_ONLY not in capsys.readouterr().out


def test_the_web_search_page_says_when_it_is_full_text_only(ws: Workspace) -> None:
    from fastapi.testclient import TestClient

    from garrison.store.tokens import create_token
    from garrison.web import create_app
    from tests.web.conftest import csrf_of

    system = ws.session()
    tokens = {user: create_token(system, user, 30)[1] for user in ("ursula", "sam")}
    pages = {}
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as app:
        for user, token in tokens.items():
            login = app.get("/ui/login")
            signed = app.post("/ui/login", data={"token": token, "csrf": csrf_of(login.text)})
            assert signed.status_code in (200, 303), signed.text
            pages[user] = app.get("/ui/search", params={"q": "convoy"}).text
            app.cookies.clear()
    assert TEXT_ONLY in pages["ursula"] and "close in meaning" not in pages["ursula"]
    assert TEXT_ONLY not in pages["sam"] and "close in meaning" in pages["sam"]
