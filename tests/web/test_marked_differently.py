"""Duplicates marked differently: on the findings page only for stewards who dominate both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app
from tests.web.conftest import csrf_of
from tests.web.test_pages import banner

PIPELINE = """
name: dedup
stages:
  - normalize: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
TEXT = (
    "The shared paragraph about the northern ferry schedule, the harbor cranes and the "
    "eastern pier repeats in two places with the same words."
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict, str]]:
    root = tmp_path_factory.mktemp("dup")
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    (folder / "low.txt").write_text(f"(U) {TEXT}\n")
    (folder / "high.txt").write_text(f"SECRET//NOFORN\n\n(S//NF) {TEXT}\n\nSECRET//NOFORN\n")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="dedup.yaml"))
    tokens = {}
    for name, clearance in (("hi", "S"), ("lo", "U")):
        system.add_user(name, SubjectSpec(clearance=clearance, roles=("steward",)))
        tokens[name] = create_token(system, name, 1)[1]
    high = next(d["id"] for d in Documents(system).list() if d["filename"] == "high.txt")
    kinds = {f["kind"] for f in Documents(system).findings()}
    assert "duplicate-marked-differently" in kinds, kinds
    ws.close()
    with TestClient(create_app(root / "ws"), follow_redirects=False) as client:
        yield client, tokens, high


def _findings_as(client: TestClient, token: str) -> str:
    client.cookies.clear()
    page = client.get("/ui/login")
    client.post("/ui/login", data={"token": token, "csrf": csrf_of(page.text)})
    return client.get("/ui/findings").text


def test_a_steward_who_dominates_both_sees_it_marked_with_the_join(served) -> None:
    client, tokens, _high = served
    html = _findings_as(client, tokens["hi"])
    assert "(S//NF)</span> duplicate-marked-differently" in html
    assert banner(html) == ("banner-s", "SECRET//NOFORN")


def test_a_lower_steward_sees_nothing_of_the_higher_copy(served) -> None:
    client, tokens, high = served
    html = _findings_as(client, tokens["lo"])
    assert "<td> duplicate-marked-differently" not in html and 'id="finding-' not in html
    assert high not in html and "high.txt" not in html
    assert banner(html) == ("banner-u", "UNCLASSIFIED")
