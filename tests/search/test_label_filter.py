"""Searching by label: only on predictions the reader may read, and a label only unreadable
predictions carry answers like a label nobody has -- in the library, the CLI and the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from garrison.core.errors import InvalidInput
from garrison.search import search
from garrison.store.models import ChunkRow, PredictionRow
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer
from tests.pipeline.classified import LABELS, classified_workspace, classify_stages, run

QUERY = "report"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("labels")
    tiny = tiny_sentence_transformer(root / "tiny")
    ws, ids = classified_workspace(root, tiny)
    run(ws, classify_stages("{model: topic-s}", "{model: topic-u, over: elements}"))
    yield ws, ids
    ws.close()


def labelled(ws: Workspace, name: str, label: str, *, clearance: str | None = None) -> set[str]:
    """Chunks a prediction ``name=label`` covers (on the chunk or one of its elements), among
    the chunks whose marking ``clearance`` reads (all of them without one)."""
    session = ws.session(clearance) if clearance else ws.session()
    with ws.catalog.transaction() as orm:
        chunks = {
            c.id: c
            for c in orm.scalars(session.readable(orm, select(ChunkRow), ChunkRow.marking_id))
        }
        hits = [p for p in orm.scalars(select(PredictionRow)) if (p.name, p.label) == (name, label)]
    out = set()
    for p in hits:
        for chunk in chunks.values():
            if p.item_id == chunk.id or p.item_id in chunk.element_ids:
                out.add(chunk.id)
    return out


def shown(result: Any) -> dict[str, Any]:
    data = result.to_dict()
    return {k: v for k, v in data.items() if k != "query"}


def test_a_cleared_reader_finds_chunks_by_a_secret_classifiers_label(setup: Any) -> None:
    ws, _ = setup
    found_any = False
    for label in LABELS:
        expected = labelled(ws, "topic-s", label)
        result = search(ws.session("sam"), QUERY, k=100, labels=[f"topic-s={label}"])
        assert {h.chunk_id for h in result.hits} == expected
        assert result.total == len(expected)
        if expected:
            found_any = True
            # The hits reveal a SECRET classifier's output: the result is SECRET.
            assert result.marking.startswith("SECRET")
    assert found_any


def test_an_uncleared_reader_learns_nothing_from_a_secret_label(setup: Any) -> None:
    ws, _ = setup
    ursula = ws.session("ursula")
    nobody = shown(search(ursula, QUERY, k=100, labels=["no-such-model=logistics"]))
    assert nobody["total"] == 0 and nobody["hits"] == [] and nobody["facets"] == {}
    for label in [*LABELS, "no-such-label"]:
        result = search(ursula, QUERY, k=100, labels=[f"topic-s={label}"])
        assert shown(result) == nobody
    # Without the filter the same reader sees chunks (the filter is what hides them).
    assert search(ursula, QUERY, k=100).total > 0


def test_an_uncleared_reader_filters_on_a_classifier_they_dominate(setup: Any) -> None:
    ws, _ = setup
    ursula = ws.session("ursula")
    seen: set[str] = set()
    for label in LABELS:
        expected = labelled(ws, "topic-u", label, clearance="ursula")
        result = search(ursula, QUERY, k=100, labels=[f"topic-u={label}"])
        assert {h.chunk_id for h in result.hits} == expected
        assert all(h.marking == "UNCLASSIFIED" for h in result.hits)
        assert result.marking == "UNCLASSIFIED"
        seen |= expected
    assert seen
    # Two names must both match; two labels of one name are either.
    both = search(ursula, QUERY, k=100, labels=[f"topic-u={LABELS[0]}", f"topic-u={LABELS[1]}"])
    assert both.total == len(seen)
    mixed = search(ursula, QUERY, k=100, labels=[f"topic-u={LABELS[0]}", "topic-s=logistics"])
    assert mixed.total == 0


def test_a_ceiling_leaves_out_predictions_above_it(setup: Any) -> None:
    ws, _ = setup
    sam = ws.session("sam")
    label = next(lb for lb in LABELS if labelled(ws, "topic-s", lb))
    capped = search(
        sam, QUERY, k=100, filters={"max_marking": "UNCLASSIFIED"}, labels=[f"topic-s={label}"]
    )
    assert capped.total == 0 and capped.marking == "UNCLASSIFIED"


@pytest.mark.parametrize("bad", ["topic-s", "=logistics", "topic-s=", "  "])
def test_a_malformed_label_filter_is_refused(setup: Any, bad: str) -> None:
    ws, _ = setup
    with pytest.raises(InvalidInput, match="NAME=LABEL"):
        search(ws.session("sam"), QUERY, labels=[bad])


def test_cli_and_api_take_labels(setup: Any) -> None:
    import typer
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from garrison.api import create_app
    from garrison.cli import _search
    from garrison.store.tokens import create_token

    ws, _ = setup
    label = next(lb for lb in LABELS if labelled(ws, "topic-s", lb))
    expected = labelled(ws, "topic-s", label)
    app = typer.Typer()
    _search.register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    args = ["search", QUERY, "-k", "100", "--json", "-w", str(ws.root), "--label"]
    out = runner.invoke(app, [*args, f"topic-s={label}", "--as", "sam"])
    assert out.exit_code == 0, out.output
    assert {h["chunk_id"] for h in json.loads(out.output)["hits"]} == expected
    low = runner.invoke(app, [*args, f"topic-s={label}", "--as", "ursula"])
    assert low.exit_code == 0 and json.loads(low.output)["hits"] == []
    tokens = {u: create_token(ws.session(), u, 30)[1] for u in ("sam", "ursula")}
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        for user, want in (("sam", expected), ("ursula", set())):
            response = client.get(
                "/v1/search",
                params={"q": QUERY, "k": 100, "label": f"topic-s={label}"},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            assert response.status_code == 200, response.text
            assert {h["chunk_id"] for h in response.json()["hits"]} == want
        bad = client.get(
            "/v1/search",
            params={"q": QUERY, "label": "nolabel"},
            headers={"Authorization": f"Bearer {tokens['sam']}"},
        )
        assert bad.status_code == 400
