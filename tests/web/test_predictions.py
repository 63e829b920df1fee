"""The web UI shows predictions only to readers who may read them, and the banner covers them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from garrison.store.documents import Documents
from garrison.store.models import PredictionRow
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.web import WebSettings, create_app
from tests.models.tiny import tiny_sentence_transformer
from tests.pipeline.classified import LABELS, classified_workspace, classify_stages, run
from tests.web.conftest import csrf_of
from tests.web.test_pages import banner


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("web-predictions")
    tiny = tiny_sentence_transformer(root / "tiny")
    ws, _ = classified_workspace(root, tiny)
    run(ws, classify_stages("{model: topic-s}", "{model: topic-u, over: elements}"))
    system = ws.session()
    tokens = {}
    for name, clearance in (("uv", "U"), ("sv", "S")):
        system.add_user(name, SubjectSpec(clearance=clearance, roles=("viewer",)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = {d["filename"]: d["id"] for d in Documents(system).list()}
    with ws.catalog.transaction() as orm:
        chunk_labels = {p.label for p in orm.scalars(select(PredictionRow)) if p.name == "topic-s"}
    path = ws.root
    ws.close()
    app = create_app(path, WebSettings())
    with TestClient(app):
        clients: list[TestClient] = []

        def login(user: str) -> TestClient:
            client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
            clients.append(client)
            page = client.get("/ui/login")
            response = client.post(
                "/ui/login", data={"token": tokens[user], "csrf": csrf_of(page.text)}
            )
            assert response.status_code == 303, response.text
            return client

        yield {"login": login, "docs": docs, "chunk_labels": chunk_labels}
        for client in clients:
            client.close()


def badges(html: str) -> list[str]:
    return re.findall(r"<span class=\"badge prediction\"[^>]*>(.*?\(\d\.\d\d\))</span>", html)


def test_an_uncleared_reader_sees_only_readable_predictions(served: dict[str, Any]) -> None:
    doc_id = served["docs"]["report-00.txt"]  # an UNCLASSIFIED document
    page = served["login"]("uv").get(f"/ui/documents/{doc_id}")
    assert page.status_code == 200
    shown = badges(page.text)
    assert shown and all("topic-u" in b and "(U)" in b for b in shown)
    assert "topic-s" not in page.text and "Predictions on chunks" not in page.text
    assert banner(page.text) == ("banner-u", "UNCLASSIFIED")


def test_a_cleared_reader_sees_the_secret_predictions_and_a_secret_banner(
    served: dict[str, Any],
) -> None:
    doc_id = served["docs"]["report-00.txt"]
    page = served["login"]("sv").get(f"/ui/documents/{doc_id}")
    assert page.status_code == 200
    assert "Predictions on chunks" in page.text and "topic-s" in page.text
    assert any(label in page.text for label in served["chunk_labels"])
    assert "(S)" in page.text
    # The text is UNCLASSIFIED; the SECRET classifier's predictions raise the page.
    assert banner(page.text) == ("banner-s", "SECRET")


def test_search_by_label_in_the_web_ui(served: dict[str, Any]) -> None:
    label = sorted(served["chunk_labels"])[0]
    assert label in LABELS
    query = f"/ui/search?q=report&label=topic-s%3D{label}"
    high = served["login"]("sv").get(query)
    assert high.status_code == 200 and 'class="hit"' in high.text
    assert banner(high.text)[0] == "banner-s"
    low = served["login"]("uv").get(query)
    assert low.status_code == 200 and 'class="hit"' not in low.text
    assert "No readable passage matches" in low.text
    assert banner(low.text) == ("banner-u", "UNCLASSIFIED")
    nobody = served["login"]("uv").get("/ui/search?q=report&label=nobody%3Dx")
    strip = re.compile(r'name="csrf" value="[^"]+"|value="[^"]*"')
    assert strip.sub("", nobody.text) == strip.sub("", low.text)
