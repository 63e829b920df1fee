"""A served workspace for the web UI: marked documents, a finding, a spill, users with tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditEvent
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.api.conftest import FAST

USERS = {
    # name: (clearance, roles)
    "ada": ("S", ("admin",)),
    "sam": ("S", ("viewer",)),
    "una": ("U", ("viewer",)),
    "stu": ("S", ("steward",)),
    "cal": ("C", ("admin",)),  # an admin below system high: no audit log
}

FILES = {
    "memo.txt": "SECRET//NOFORN\n\n(U) The depot opened on Monday for the convoy.\n\n"
    "(S//NF) Reserve fuel moves to depot HARROW on Thursday night.\n\nSECRET//NOFORN\n",
    "public.txt": "(U) The quarterly maintenance report covers forty trucks at the depot.\n",
    "conf.txt": "(C) Convoy schedules for the depot are reviewed every week by the planners.\n",
    "unmarked.txt": "CONFIDENTIAL\n\n(C) The depot roster is attached.\n\n"
    "The canteen menu changes weekly at the depot.\n\nCONFIDENTIAL\n",
    "spill.txt": "TOP SECRET//NOFORN\n\n(TS//NF) The depot spillword plan.\n\nTOP SECRET//NOFORN\n",
}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@dataclass
class WebEnv:
    """The served workspace: its path, the app, a token per user and each document's id."""

    path: Path
    app: FastAPI
    tokens: dict[str, str]
    docs: dict[str, str]  # file name -> document id (the spill under "spill.txt")
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        """A fresh browser (its own cookie jar), not signed in."""
        client = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        self.clients.append(client)
        return client

    def login(self, user: str) -> TestClient:
        """A browser signed in as ``user`` with their token."""
        client = self.client()
        page = client.get("/ui/login")
        response = client.post(
            "/ui/login", data={"token": self.tokens[user], "csrf": csrf_of(page.text)}
        )
        assert response.status_code == 303, response.text
        return client

    def audit_tail(self, n: int) -> list[AuditEvent]:
        ws = Workspace.open(self.path)
        try:
            return ws.audit.tail(n)
        finally:
            ws.close(checkpoint=False)


def build_web_workspace(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Ingest the files, run the hashing pipeline, add users with tokens."""
    path = root / "ws"
    ws = Workspace.init(path, system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    tokens = {}
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    system.update_user("ada", SubjectSpec(dn="CN=ada,O=Garrison,C=US"))
    docs = {d["filename"] or "spill.txt": d["id"] for d in Documents(system).list()}
    ws.close()
    return path, tokens, docs


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    path, tokens, docs = build_web_workspace(tmp_path_factory.mktemp("web"))
    app = create_app(path, WebSettings())
    with TestClient(app):  # runs the lifespan: the workspace is closed at the end
        env = WebEnv(path=path, app=app, tokens=tokens, docs=docs)
        yield env
        for client in env.clients:
            client.close()
