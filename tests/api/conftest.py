"""A workspace with marked documents, chunks and users at several clearances, served by the API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from garrison.api import create_app
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditEvent
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - quality: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""

USERS = {
    # name: (clearance, roles)
    "ada": ("S", ("admin",)),
    "sam": ("S", ("viewer",)),
    "una": ("U", ("viewer",)),
    "lou": ("S", ("viewer",)),  # lowered to U by a test
    "stu": ("S", ("steward",)),
}


@dataclass
class Env:
    """The served workspace: its path, the API client and a token per user."""

    path: Path
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def workspace(self) -> Workspace:
        return Workspace.open(self.path)

    def audit_tail(self, n: int) -> list[AuditEvent]:
        ws = self.workspace()
        try:
            return ws.audit.tail(n)
        finally:
            ws.close(checkpoint=False)


def build_workspace(root: Path) -> tuple[Path, dict[str, str]]:
    """Ingest portion-marked text, run the hashing pipeline, add users with tokens."""
    path = root / "ws"
    ws = Workspace.init(path, system_high="SECRET//NOFORN")
    # One server answers every test of a module, fuzzing without credentials included: the
    # failed-login limit (tests/api/test_login_limit.py) must not turn those 401s into 429s.
    ws.config.model_copy(update={"login_failures_per_window": 100_000}).dump(path)
    folder = root / "in"
    folder.mkdir()
    (folder / "memo.txt").write_text(
        "SECRET//NOFORN\n\n(U) The depot opened on Monday for the convoy.\n\n"
        "(S//NF) Reserve fuel moves to depot HARROW on Thursday night.\n\nSECRET//NOFORN\n"
    )
    (folder / "public.txt").write_text(
        "(U) The quarterly maintenance report covers forty trucks at the depot.\n"
    )
    (folder / "conf.txt").write_text(
        "(C) Convoy schedules for the depot are reviewed every week by the planners.\n"
    )
    ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(ws.session(), parse_pipeline(FAST, source="fast.yaml"))
    system = ws.session()
    tokens = {}
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    system.update_user("ada", SubjectSpec(dn="CN=ada,O=Garrison,C=US"))
    ws.close()
    return path, tokens


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    path, tokens = build_workspace(tmp_path_factory.mktemp("api"))
    with TestClient(create_app(path), raise_server_exceptions=False) as client:
        yield Env(path=path, client=client, tokens=tokens)
