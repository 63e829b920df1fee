"""A small marked dataset (UNCLASSIFIED, CONFIDENTIAL and SECRET records) with stewards,
annotators of different clearances and a reviewer, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: plain
stages:
  - normalize: {}
"""
#: Portion mark and banner by record number modulo 3.
MARKS = [("U", "UNCLASSIFIED"), ("C", "CONFIDENTIAL"), ("S", "SECRET")]
TOPICS = ["logistics", "weather", "personnel"]
#: User -> (clearance, role).
USERS = {
    "stew": ("S", "steward"),
    "lowstew": ("U", "steward"),
    "ann_u": ("U", "annotator"),
    "ann_c": ("C", "annotator"),
    "ann_s": ("S", "annotator"),
    "ann_s2": ("S", "annotator"),
    "rev": ("S", "reviewer"),
    "rev_u": ("U", "reviewer"),
    "view": ("S", "viewer"),
}
N_RECORDS = 12


@dataclass
class LabelWorld:
    ws: Workspace
    dataset: str
    #: Record id -> (banner, topic, text).
    records: dict[str, tuple[str, str, str]]


def write_corpus(folder: Path, n: int = N_RECORDS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        portion, banner = MARKS[i % 3]
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"r{i:02d}.txt").write_text(
            f"{banner}\n\n({portion}) Report {i} is about {topic}: item {i} of the "
            f"harbor's {topic} ledger.\n\n{banner}\n"
        )


def build_world(root: Path, db_url: str | None = None, n: int = N_RECORDS) -> LabelWorld:
    ws = Workspace.init(root / "ws", system_high="TOP SECRET", db_url=db_url)
    write_corpus(root / "in", n)
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="plain.yaml"))
    for name, (clearance, role) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=(role,)))
    version = Datasets(system).create("reports", Selection(kind="elements", fields=()))
    records = {}
    for record in Datasets(system).records(version):
        topic = next(t for t in TOPICS if t in record.text)
        records[record.id] = (record.marking, topic, record.text)
    return LabelWorld(ws, version.id, records)


@pytest.fixture
def world(tmp_path: Path, catalog_url: str | None) -> Iterator[LabelWorld]:
    built = build_world(tmp_path, catalog_url)
    yield built
    built.ws.close()


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[LabelWorld]:
    built = build_world(tmp_path)
    yield built
    built.ws.close()
