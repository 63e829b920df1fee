"""A small marked corpus and suites over it, for the run, runner, gate and CLI tests.

The corpus is the assistant's (tests/assist/conftest.py): a harbor-ferry document at each of
U, C, S and TS, each naming a canary word, indexed with the hashing embedder. The QA suite asks
about each ferry; its items are marked like the chunk they cite.

Users: ``eve`` (evaluator, SECRET), ``ted`` (evaluator, TOP SECRET), ``uma`` (viewer, U),
``sam`` (viewer, SECRET), ``ada`` (admin, TOP SECRET; registers models).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from garrison.evaluate._suite_items import NewItem
from garrison.evaluate._suites import Suites, SuiteVersion
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.models import ChunkRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES, FAST, SYSTEM_HIGH, write_corpus

USERS = {
    "eve": ("S", ("evaluator",)),
    "ted": ("TS", ("evaluator",)),
    "uma": ("U", ("viewer",)),
    "sam": ("S", ("viewer",)),
    "ada": ("TS", ("admin",)),
}


def make_workspace(root: Path) -> Workspace:
    workspace = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    write_corpus(root / "in")
    system = workspace.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
    return workspace


def canary_chunks(ws: Workspace) -> dict[str, tuple[str, str, str]]:
    """Canary word -> (chunk id, document id, chunk marking banner)."""
    session = ws.session()
    out: dict[str, tuple[str, str, str]] = {}
    with ws.catalog.transaction() as orm:
        for chunk in orm.scalars(select(ChunkRow)):
            for word in CANARIES:
                if word in chunk.text and word not in out:
                    marking = session.marking_of(orm, chunk.marking_id)
                    assert marking is not None
                    out[word] = (chunk.id, chunk.doc_id, marking.banner())
    assert set(out) == set(CANARIES)
    return out


def qa_items(ws: Workspace, *, words: tuple[str, ...] = tuple(CANARIES)) -> list[NewItem]:
    session = ws.session()
    chunks = canary_chunks(ws)
    items = []
    for word in words:
        chunk_id, doc_id, banner = chunks[word]
        items.append(
            NewItem(
                input={"question": f"When does the harbor ferry {word} leave the north pier?"},
                expected={
                    "answer": f"The harbor ferry {word} leaves the north pier at dawn.",
                    "sources": [chunk_id],
                },
                marking=session.parse_marking(banner),
                sources=(chunk_id,),
                cluster=doc_id,
            )
        )
    return items


def qa_suite(
    ws: Workspace, name: str = "ferries", *, words: tuple[str, ...] | None = None
) -> SuiteVersion:
    items = qa_items(ws, words=words or tuple(CANARIES))
    return Suites(ws.session("ted")).create(name, "qa", items, source={"test": name})


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path_factory.mktemp("evrun"))
    yield workspace
    workspace.close()
