"""Hybrid search: ranking, fusion, filters, and the no-read-up property over results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import garrison.search
from garrison.core.errors import InvalidInput
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import SearchResult, rrf, search, snippet
from garrison.store.derived import Chunks
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""

#: Canary word -> (portion mark, banner) of the document that alone holds it.
CANARIES = {
    "zebrafox": ("U", "UNCLASSIFIED"),
    "quokkamoon": ("C", "CONFIDENTIAL"),
    "walruspeak": ("S", "SECRET"),
    "narwhalglow": ("S//NF", "SECRET//NOFORN"),
    "kestrelrel": ("S//REL TO USA, GBR", "SECRET//REL TO USA, GBR"),
}
SUBJECTS = [(c, n) for c in ("U", "C", "S") for n in ("USA", "GBR")]


def _name(clearance: str, nation: str) -> str:
    return f"{clearance.lower()}{nation.lower()}"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("search")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    for word, (portion, banner) in CANARIES.items():
        (folder / f"{word}.txt").write_text(
            f"{banner}\n\n({portion}) The harbor report mentions {word} near the north pier "
            f"and the crane schedule for {word}.\n\n{banner}\n"
        )
    # The memo mixes portions: its UNCLASSIFIED paragraph is readable to all, its SECRET one not.
    (folder / "memo.txt").write_text(
        "SECRET\n\n(U) The lynxbridge ferry timetable changes on Monday.\n\n"
        "(S) The ottervault cache moves to the eastern depot on Thursday.\n\nSECRET\n"
    )
    # Prefilter check: the best "convoy" matches are SECRET; fewer, weaker ones are U.
    for n in range(12):
        (folder / f"convoy-s{n}.txt").write_text(
            f"SECRET\n\n(S) convoy convoy convoy route {n} secret schedule.\n\nSECRET\n"
        )
    for n in range(4):
        (folder / f"convoy-u{n}.txt").write_text(
            f"(U) A long unclassified note number {n} about trucks, fuel, weather, roads, "
            f"drivers, maintenance and, once, the convoy.\n"
        )
    other = root / "other"
    other.mkdir()
    (other / "garden.txt").write_text("(U) The greenhouse tomatoes need water every morning.\n")
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    ingest_paths(
        system, [str(other)], IngestOptions(default_marking="UNCLASSIFIED", source="garden")
    )
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    for clearance, nation in SUBJECTS:
        system.add_user(
            _name(clearance, nation),
            SubjectSpec(clearance=clearance, citizenship=nation, roles=("viewer",)),
        )
    system.add_user("nobody", SubjectSpec(clearance="U", roles=("viewer",), sci=()))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def chunks(ws: Workspace) -> list[dict[str, object]]:
    return Chunks(ws.session()).list()


def _readable_by(session: Session, banner: str) -> bool:
    return bool(session.can_read(session.parse_marking(banner)))


def test_exports() -> None:
    assert sorted(garrison.search.__all__) == sorted(
        ["FILTER_KEYS", "MAX_K", "RRF_K", "SearchHit", "SearchResult", "rrf", "search", "snippet"]
    )


def test_relevant_hits_first_with_snippet_locator_and_marking(ws: Workspace) -> None:
    result = search(ws.session(), "walruspeak", k=5)
    top = result.hits[0]
    assert "**walruspeak**" in top.snippet
    assert top.marking == "SECRET"
    assert result.total == 1
    assert result.facets["marking"] == {"SECRET": 1}
    # The join of every hit (the vector branch brings others, e.g. the NOFORN one).
    assert result.marking == "SECRET//NOFORN"
    assert isinstance(top.locator, dict) and isinstance(top.section_path, list)
    data = result.to_dict()
    assert {"chunk_id", "doc_id", "score", "snippet", "marking", "locator"} <= set(data["hits"][0])


def test_vector_branch_finds_near_text_without_exact_terms(ws: Workspace) -> None:
    # "tomatoes greenhouse water" shares hashing features with the garden note.
    result = search(ws.session(), "greenhouse tomatoes", k=3)
    assert "tomatoes" in result.hits[0].snippet


def test_fusion_is_deterministic_and_rrf_is_exact(ws: Workspace) -> None:
    assert rrf([["a", "b"], ["b", "c"]]) == [
        ("b", 1 / 62 + 1 / 61),
        ("a", 1 / 61),
        ("c", 1 / 62),
    ]
    assert rrf([["x"], ["y"]]) == [("x", 1 / 61), ("y", 1 / 61)]  # ties by id
    first = search(ws.session(), "harbor crane schedule", k=10).to_dict()
    again = search(ws.session(), "harbor crane schedule", k=10).to_dict()
    assert first == again
    scores = [h["score"] for h in first["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_k_is_filled_from_readable_data(ws: Workspace) -> None:
    # The twelve SECRET convoy chunks outrank the four U ones; a postfilter over the top k
    # would return nothing to a U reader.
    system = search(ws.session(), "convoy", k=4)
    assert all(h.marking == "SECRET" for h in system.hits)
    reader = search(ws.session("uusa"), "convoy", k=4)
    assert len(reader.hits) == 4
    assert all(h.marking == "UNCLASSIFIED" for h in reader.hits)
    assert all("**convoy**" in h.snippet for h in reader.hits)
    assert reader.total == 4 and system.total == 16
    assert reader.facets["marking"] == {"UNCLASSIFIED": 4}


def test_filters(ws: Workspace, chunks: list[dict[str, object]]) -> None:
    system = ws.session()
    doc = next(str(c["doc_id"]) for c in chunks if "quokkamoon" in str(c["text"]))
    result = search(system, "harbor report", k=20, filters={"doc": doc})
    assert result.hits and {h.doc_id for h in result.hits} == {doc}
    garden = search(system, "harbor tomatoes", k=20, filters={"source": "garden"})
    assert garden.hits and all("tomatoes" in h.snippet for h in garden.hits)
    assert garden.facets["source"] == {"garden": 1}
    ceiling = search(system, "harbor report", k=50, filters={"max_marking": "CONFIDENTIAL"})
    assert {h.marking for h in ceiling.hits} <= {"UNCLASSIFIED", "CONFIDENTIAL"}
    assert "walruspeak" not in json.dumps(ceiling.to_dict())
    languages = search(system, "harbor", k=5).facets["language"]
    if languages:
        language = next(iter(languages))
        assert search(system, "harbor", filters={"language": language}).hits
    assert search(system, "harbor", filters={"language": "xx"}).hits == []
    assert search(system, "harbor", filters={"ingested_to": "2000-01-01"}).hits == []
    assert search(system, "harbor", filters={"ingested_from": "2000-01-01"}).hits
    assert search(system, "harbor", filters={"media_type": "text/plain"}).hits
    with pytest.raises(InvalidInput, match="colour"):
        search(system, "harbor", filters={"colour": "red"})
    with pytest.raises(InvalidInput):
        search(system, "harbor", filters={"doc": "x' OR '1'='1"})
    with pytest.raises(InvalidInput):
        search(system, "harbor", filters={"ingested_from": "yesterday"})
    # Quotes in values are escaped, not interpreted.
    assert search(system, "harbor", filters={"source": "x' OR 'a'='a"}).hits == []


def test_bounds_and_empty_results(ws: Workspace, tmp_path: Path) -> None:
    for k in (0, 1001):
        with pytest.raises(InvalidInput):
            search(ws.session(), "harbor", k=k)
    with pytest.raises(InvalidInput):
        search(ws.session(), "   ")
    empty = Workspace.init(tmp_path / "empty", system_high="SECRET")
    try:
        result = search(empty.session(), "anything")
        assert result == SearchResult(query="anything", k=10)
        assert result.marking == "UNCLASSIFIED" and result.total == 0
    finally:
        empty.close()


def test_search_is_audited_without_hit_text(ws: Workspace) -> None:
    search(ws.session("cusa"), "quokkamoon", k=3)
    event = ws.audit.tail(1)[0]
    assert event.action == "search" and event.actor == "cusa"
    assert event.details["query_length"] == len("quokkamoon")
    assert event.details["k"] == 3 and int(str(event.details["hits"])) >= 1
    assert "quokkamoon" not in json.dumps(event.details)


def test_snippet_window_and_highlight() -> None:
    text = "word " * 100 + "target here " + "tail " * 100
    out = snippet(text, "Target")
    assert "**target**" in out and len(out.replace("**", "")) <= 240


QUERIES = st.one_of(
    st.sampled_from([*CANARIES, "lynxbridge", "ottervault", "harbor", "convoy", "pier crane"]),
    st.lists(
        st.sampled_from([*CANARIES, "ottervault", "report", "the"]), min_size=2, max_size=4
    ).map(" ".join),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20).filter(str.strip),
)


@settings(max_examples=60)
@given(subject=st.sampled_from(SUBJECTS), query=QUERIES, k=st.integers(1, 30))
def test_no_read_up(
    ws: Workspace,
    chunks: list[dict[str, object]],
    subject: tuple[str, str],
    query: str,
    k: int,
) -> None:
    session = ws.session(_name(*subject))
    result = search(session, query, k=k)
    shown = result.to_dict()
    del shown["query"]  # the subject's own words, echoed back
    dump = json.dumps(shown).lower()
    readable_text = " ".join(
        str(c["text"]).lower() for c in chunks if _readable_by(session, str(c["marking"]))
    )
    for word in [*CANARIES, "ottervault", "lynxbridge"]:
        if word not in readable_text:
            assert word not in dump, (subject, query, word)
    for hit in result.hits:
        assert _readable_by(session, hit.marking)
    for banner in result.facets.get("marking", {}):
        assert _readable_by(session, banner)
    assert _readable_by(session, result.marking)
    # total counts readable chunks only: for a single canary word, exactly the readable
    # chunks holding it.
    if query in CANARIES:
        expected = sum(
            1
            for c in chunks
            if query in str(c["text"]).lower() and _readable_by(session, str(c["marking"]))
        )
        assert result.total == expected
        assert sum(result.facets["marking"].values()) == expected
    assert len(result.hits) <= k


def test_cli_search(ws: Workspace) -> None:
    import typer
    from typer.testing import CliRunner

    from garrison.cli import _search

    # A bare app with only ``search`` (garrison.cli.main registers it the same way).
    app = typer.Typer()
    _search.register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    out = runner.invoke(
        app, ["search", "walruspeak", "-k", "3", "--json", "-w", str(ws.root), "--as", "cusa"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {"hits", "total", "marking"} <= set(data)
    del data["query"]
    assert "walruspeak" not in json.dumps(data) and data["total"] == 0
    human = runner.invoke(app, ["search", "convoy", "-w", str(ws.root), "--as", "uusa"])
    assert human.exit_code == 0 and "convoy" in human.output
    bad = runner.invoke(app, ["search", "x", "--filter", "colour=red", "-w", str(ws.root)])
    assert isinstance(bad.exception, InvalidInput) and "colour" in str(bad.exception)
