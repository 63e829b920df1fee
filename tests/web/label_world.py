"""A served workspace for the labeling pages: marked records (U, C, S) in a dataset, an image,
labeling projects of every task type, and stewards, annotators and reviewers of different
clearances with tokens."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.label import LabelProjects
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace

PIPELINE = """
name: plain
stages:
  - normalize: {}
"""
MARKS = [("U", "UNCLASSIFIED"), ("C", "CONFIDENTIAL"), ("S", "SECRET")]
TOPICS = ["logistics", "weather", "personnel"]
#: User -> (clearance, roles).
USERS = {
    "stew": ("S", ("steward",)),
    "ann_u": ("U", ("annotator",)),
    "ann_c": ("C", ("annotator",)),
    "ann_s": ("S", ("annotator",)),
    "ann_s2": ("S", ("annotator",)),
    "rev": ("S", ("reviewer",)),
    "rev_u": ("U", ("reviewer",)),
    "rev_c": ("C", ("reviewer",)),
    "view": ("S", ("viewer",)),
}
N_RECORDS = 6
#: A record whose text has a character outside the BMP before its span-worthy words, so span
#: offsets are checked in code points (what the library keeps), not UTF-16 units.
ENTITY_TEXT = "(U) Convoy 🚚 met Colonel Avery at Port Sable on Tuesday."
SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "topics": ("classification", {"classes": TOPICS, "instructions": "Pick the topic."}),
    "tags": ("classification", {"classes": TOPICS, "multi": True}),
    "entities": ("spans", {"span_types": ["PERSON", "PLACE"]}),
    "prefs": ("preference", {"separator": " versus "}),
    "answers": ("answer", {"instructions": "Summarize the record in a few words."}),
}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@dataclass
class LabelEnv:
    path: Path
    app: FastAPI
    tokens: dict[str, str]
    #: Record id -> (banner, topic, text) of the text dataset.
    records: dict[str, tuple[str, str, str]]
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        client = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        self.clients.append(client)
        return client

    def login(self, user: str) -> TestClient:
        client = self.client()
        page = client.get("/ui/login")
        response = client.post(
            "/ui/login", data={"token": self.tokens[user], "csrf": csrf_of(page.text)}
        )
        assert response.status_code == 303, response.text
        return client

    def session(self, user: str) -> Any:
        return self.app.state.workspace.get().session(user)


def _png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (160, 120), (240, 240, 240))
    for x in range(40, 100):
        for y in range(30, 80):
            image.putpixel((x, y), (30, 90, 200))
    exif = Image.Exif()
    exif[0x010F] = "GarrisonCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif)
    return out.getvalue()


def write_corpus(folder: Path) -> None:
    (folder / "text").mkdir(parents=True)
    for i in range(N_RECORDS):
        portion, banner = MARKS[i % 3]
        topic = TOPICS[i % len(TOPICS)]
        (folder / "text" / f"r{i:02d}.txt").write_text(
            f"{banner}\n\n({portion}) Report {i} is about {topic} versus item {i} of the "
            f"harbor's {topic} ledger.\n\n{banner}\n"
        )
    (folder / "text" / "entity.txt").write_text(f"UNCLASSIFIED\n\n{ENTITY_TEXT}\n\nUNCLASSIFIED\n")
    (folder / "image").mkdir()
    (folder / "image" / "yard.png").write_bytes(_png())


def build_label_workspace(
    root: Path,
) -> tuple[Path, dict[str, str], dict[str, tuple[str, str, str]]]:
    path = root / "ws"
    ws = Workspace.init(path, system_high="SECRET")
    folder = root / "in"
    write_corpus(folder)
    system = ws.session()
    ingest_paths(system, [str(folder / "text")], IngestOptions(default_marking="UNCLASSIFIED"))
    ingest_paths(system, [str(folder / "image")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="plain.yaml"))
    tokens = {}
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    datasets = Datasets(system)
    text = datasets.create(
        "reports", Selection(kind="elements", media_type="text/plain", fields=())
    )
    records: dict[str, tuple[str, str, str]] = {}
    for record in datasets.records(text):
        topic = next((t for t in TOPICS if t in record.text), "")
        records[record.id] = (record.marking, topic, record.text)
    steward = ws.session("stew")
    projects = LabelProjects(steward)
    topic_records = {r for r, (_, t, _) in records.items() if t}
    for name, (task_type, schema) in SCHEMAS.items():
        chosen = None
        if name == "entities":
            chosen = {r: system.parse_marking(m) for r, (m, t, _) in records.items() if not t}
        elif name in ("topics", "tags", "prefs", "answers"):
            chosen = {r: system.parse_marking(records[r][0]) for r in topic_records}
        projects.create(
            name,
            text.id,
            task_type,
            schema,
            marking="UNCLASSIFIED",
            overlap=2,
            review_rate=1.0 if name in ("topics", "answers") else 0.0,
            records=chosen,
        )
    # A calibration batch of one UNCLASSIFIED gold record, passed only by a right answer.
    calibration = sorted(r for r, (m, t, _) in records.items() if t and m == "UNCLASSIFIED")[0]
    projects.create(
        "calib",
        text.id,
        "classification",
        SCHEMAS["topics"][1],
        marking="UNCLASSIFIED",
        records={r: system.parse_marking(records[r][0]) for r in topic_records},
        gold={calibration: records[calibration][1]},
        calibration=1,
        calibration_threshold=1.0,
    )
    images = datasets.create(
        "yard",
        Selection(kind="elements", media_type="image/png", fields=("doc_id", "type", "fields")),
    )
    projects.create(
        "boxes",
        images.id,
        "boxes",
        {"classes": ["truck", "crate"]},
        marking="UNCLASSIFIED",
        overlap=2,
    )
    ws.close()
    return path, tokens, records
