"""Access rules the web UI must keep: original downloads are exports, sessions end when their
credential or access does, and job pages show only what the viewer may read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.api._auth import CLIENT_DN_KEY
from garrison.core.clock import utc_now
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.store.documents import Documents, Jobs
from garrison.store.models import FindingRow, TokenRow
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token, list_tokens, revoke_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.web.conftest import WebEnv, csrf_of

SYSTEM_HIGH = "SECRET//REL TO USA, GBR"
DISPLAY_ONLY = "SECRET//REL TO USA, GBR/DISPLAY ONLY FRA"
SECRET_TEXT = (
    f"{SYSTEM_HIGH}\n\n(U) The depot opened on Monday.\n\n"
    f"(S//REL TO USA, GBR) Reserve fuel moves to depot HARROW on Thursday.\n\n{SYSTEM_HIGH}\n"
)
FILES = {
    "public.txt": "(U) The quarterly maintenance report covers forty trucks at the depot.\n",
    "scan.txt": "(U) A scanned annex follows; some of its pages could not be read.\n",
    "secret.txt": SECRET_TEXT,
    "down.txt": SECRET_TEXT.replace("HARROW", "KESTREL"),
}
USERS = {
    "stew": ("S", "USA", ("steward",)),  # dominates system high
    "pierre": ("S", "FRA", ("steward",)),  # reads DISPLAY ONLY FRA, may not export it
    "low": ("U", "USA", ("steward",)),
    "conf": ("C", "USA", ("steward",)),
    "cal": ("C", "USA", ("admin",)),
    "vic": ("S", "USA", ("viewer",)),
}
#: Users whose tokens, status or clearance the session tests change (one test each).
DISPOSABLE = ("rita", "eddie", "dora", "lou", "ray", "cert", "cora")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    root = tmp_path_factory.mktemp("holes")
    path = root / "ws"
    ws = Workspace.init(path, system_high=SYSTEM_HIGH)
    main = root / "main"
    main.mkdir()
    for name, text in FILES.items():
        (main / name).write_text(text)
    fra = root / "fra"
    fra.mkdir()
    (fra / "fra.txt").write_text(
        f"{DISPLAY_ONLY}\n\n(S//REL TO USA, GBR/DISPLAY ONLY FRA) The liaison plan for the "
        f"depot.\n\n{DISPLAY_ONLY}\n"
    )
    system = ws.session()
    ingest_paths(system, [str(main)], IngestOptions(default_marking="UNCLASSIFIED"))
    ingest_paths(system, [str(fra)], IngestOptions(default_marking=DISPLAY_ONLY, source="fra"))
    tokens = {}
    for name, (clearance, country, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=country, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    for name in DISPOSABLE:
        system.add_user(name, SubjectSpec(clearance="S", roles=("steward",)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = {d["filename"]: d["id"] for d in Documents(system).list()}
    # A part of scan.txt was never read: its bytes may hold anything up to system high.
    with ws.catalog.transaction() as orm:
        orm.add(
            FindingRow(
                doc_id=docs["scan.txt"],
                kind="unreadable-content",
                detail="page 2 could not be read",
                created_at=utc_now(),
            )
        )
    # down.txt is lowered to UNCLASSIFIED; its bytes still hold the SECRET paragraph.
    Documents(ws.session("stew")).downgrade(docs["down.txt"], "UNCLASSIFIED", "sanitized copy")
    ws.close()
    app = create_app(path, WebSettings())
    with TestClient(app):
        web = WebEnv(path=path, app=app, tokens=tokens, docs=docs)
        yield web
        for client in web.clients:
            client.close()


def _system(env: WebEnv) -> tuple[Workspace, Any]:
    ws = Workspace.open(env.path)
    return ws, ws.session()


def _last(env: WebEnv, action: str) -> Any:
    return next(e for e in reversed(env.audit_tail(30)) if e.action == action)


# -- original download: an export -------------------------------------------------------------


def test_display_only_access_never_downloads_the_original(env: WebEnv) -> None:
    doc = env.docs["fra.txt"]
    pierre = env.login("pierre")
    page = pierre.get(f"/ui/documents/{doc}")
    assert page.status_code == 200  # DISPLAY ONLY FRA: pierre may read it...
    assert "Download the original" not in page.text
    response = pierre.get(f"/ui/documents/{doc}/original")
    assert response.status_code == 403  # ...but never take it out
    assert b"liaison" not in response.content
    denied = _last(env, "doc.original")
    assert denied.decision == "deny" and "DISPLAY ONLY" in (denied.reason or "")
    # A steward whose access comes through REL TO may export it.
    stew = env.login("stew")
    assert "Download the original" in stew.get(f"/ui/documents/{doc}").text
    ok = stew.get(f"/ui/documents/{doc}/original")
    assert ok.status_code == 200 and b"liaison plan" in ok.content


def test_unread_content_downloads_only_to_stewards_who_dominate_system_high(env: WebEnv) -> None:
    doc = env.docs["scan.txt"]
    low = env.login("low")
    page = low.get(f"/ui/documents/{doc}")
    assert page.status_code == 200 and "Download the original" not in page.text
    response = low.get(f"/ui/documents/{doc}/original")
    assert response.status_code == 403 and b"scanned annex" not in response.content
    assert _last(env, "doc.original").decision == "deny"
    ok = env.login("stew").get(f"/ui/documents/{doc}/original")
    assert ok.status_code == 200 and ok.content.startswith(b"(U) A scanned annex")
    # The download is marked with what the bytes may hold: system high.
    assert ok.headers["x-garrison-marking"] == SYSTEM_HIGH
    allowed = _last(env, "doc.original")
    assert allowed.decision == "allow" and allowed.object_marking == SYSTEM_HIGH


def test_a_downgraded_document_downloads_only_to_who_dominates_its_original(env: WebEnv) -> None:
    doc = env.docs["down.txt"]
    low = env.login("low")
    assert low.get(f"/ui/documents/{doc}").status_code == 200  # readable since the downgrade
    response = low.get(f"/ui/documents/{doc}/original")
    assert response.status_code == 403 and b"KESTREL" not in response.content
    ok = env.login("stew").get(f"/ui/documents/{doc}/original")
    assert ok.status_code == 200 and b"KESTREL" in ok.content
    assert ok.headers["x-garrison-marking"] == SYSTEM_HIGH


def test_original_download_still_needs_the_steward_role(env: WebEnv) -> None:
    vic = env.login("vic")
    assert vic.get(f"/ui/documents/{env.docs['public.txt']}/original").status_code == 403
    ok = env.login("low").get(f"/ui/documents/{env.docs['public.txt']}/original")
    assert ok.status_code == 200 and ok.headers["x-garrison-marking"] == "UNCLASSIFIED"


# -- sessions end with their credential or the subject's access --------------------------------


def _ended(client: TestClient) -> bool:
    response = client.get("/ui/documents")
    return response.status_code == 303 and "/ui/login" in response.headers["location"]


def _token_id(env: WebEnv, user: str) -> str:
    ws, system = _system(env)
    try:
        return next(t["id"] for t in list_tokens(system) if t["user"] == user)
    finally:
        ws.close(checkpoint=False)


def test_revoking_the_token_ends_its_web_session(env: WebEnv) -> None:
    browser = env.login("rita")
    assert browser.get("/ui/documents").status_code == 200
    ws, system = _system(env)
    try:
        revoke_token(system, _token_id(env, "rita"))
    finally:
        ws.close(checkpoint=False)
    assert _ended(browser)
    event = _last(env, "web.session-end")
    assert (event.actor, event.reason) == ("rita", "token revoked")
    assert _ended(browser)  # and it stays ended


def test_an_expired_token_ends_its_web_session(env: WebEnv) -> None:
    ws, system = _system(env)
    try:
        token_id, secret = create_token(system, "eddie", 1)
    finally:
        ws.close(checkpoint=False)
    browser = env.client()
    page = browser.get("/ui/login")
    login = browser.post("/ui/login", data={"token": secret, "csrf": csrf_of(page.text)})
    assert login.status_code == 303
    assert browser.get("/ui/documents").status_code == 200
    # A day later the token has expired; the session (idle 8 h, at most 12 h) would not have,
    # had it been used all along: move only the token's expiry into the past.
    ws = Workspace.open(env.path)
    try:
        with ws.catalog.transaction() as orm:
            row = orm.get(TokenRow, token_id)
            assert row is not None
            row.expires_at = utc_now() - timedelta(seconds=1)
    finally:
        ws.close(checkpoint=False)
    assert _ended(browser)
    assert _last(env, "web.session-end").reason == "token expired"


def test_disabling_the_user_ends_the_web_session(env: WebEnv) -> None:
    browser = env.login("dora")
    assert browser.get("/ui/documents").status_code == 200
    ws, system = _system(env)
    try:
        system.update_user("dora", SubjectSpec(disabled=True))
    finally:
        ws.close(checkpoint=False)
    assert _ended(browser)
    ws, system = _system(env)
    try:
        system.update_user("dora", SubjectSpec(disabled=False))
    finally:
        ws.close(checkpoint=False)
    assert _ended(browser)  # re-enabling does not bring the old session back


def test_lowering_the_clearance_ends_the_web_session(env: WebEnv) -> None:
    browser = env.login("lou")
    secret_doc = f"/ui/documents/{env.docs['secret.txt']}"
    assert browser.get(secret_doc).status_code == 200
    ws, system = _system(env)
    try:
        system.update_user("lou", SubjectSpec(clearance="U"))
    finally:
        ws.close(checkpoint=False)
    response = browser.get(secret_doc)
    assert response.status_code == 303 and b"HARROW" not in response.content
    assert _last(env, "web.session-end").reason == "subject's access was lowered since sign-in"
    assert _ended(browser)


def test_raising_access_keeps_the_web_session(env: WebEnv) -> None:
    browser = env.login("ray")
    ws, system = _system(env)
    try:
        system.update_user("ray", SubjectSpec(grants=("ORCON",)))
    finally:
        ws.close(checkpoint=False)
    assert browser.get("/ui/documents").status_code == 200


class _WithDn:
    """The app as served with mutual TLS: every request carries a verified client DN."""

    def __init__(self, app: Any, dn: str) -> None:
        self.app, self.dn = app, dn

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, CLIENT_DN_KEY: self.dn}
        await self.app(scope, receive, send)


@pytest.mark.parametrize(
    "change",
    [
        SubjectSpec(dn="CN=someone else,O=Garrison"),
        SubjectSpec(clearance="C"),
        SubjectSpec(disabled=True),
    ],
    ids=["certificate-reassigned", "clearance-lowered", "disabled"],
)
def test_certificate_sessions_end_too(env: WebEnv, change: SubjectSpec, request: Any) -> None:
    user = {"certificate-reassigned": "cert", "clearance-lowered": "cora", "disabled": "cert"}[
        request.node.callspec.id
    ]
    dn = f"CN={user},O=Garrison,C=US"
    ws, system = _system(env)
    try:
        system.update_user(user, SubjectSpec(dn=dn, disabled=False, clearance="S"))
    finally:
        ws.close(checkpoint=False)
    browser = TestClient(_WithDn(env.app, dn), follow_redirects=False)
    env.clients.append(browser)
    assert browser.get("/ui/login").status_code == 303  # signed in by the certificate
    assert browser.get("/ui/documents").status_code == 200
    ws, system = _system(env)
    try:
        system.update_user(user, change)
    finally:
        ws.close(checkpoint=False)
    assert _ended(browser)


# -- jobs: only what the viewer may read ------------------------------------------------------


def _main_job(env: WebEnv) -> str:
    ws, system = _system(env)
    try:
        jobs = Jobs(system).list()
    finally:
        ws.close(checkpoint=False)
    return next(j["id"] for j in jobs if "fra" not in j["params"].get("source", ""))


def test_job_page_shows_only_readable_files_and_counts(env: WebEnv) -> None:
    job = _main_job(env)
    page = env.login("conf").get(f"/ui/jobs/{job}")
    assert page.status_code == 200
    assert "secret.txt" not in page.text and "public.txt" in page.text
    counts = re.search(r"<dt>Counts</dt><dd>(.*?)</dd>", page.text, re.S)
    assert counts is not None
    # public, scan and down (now UNCLASSIFIED) are readable at C; secret.txt is not.
    assert "files: 3" in counts.group(1) and "parsed: 3" in counts.group(1)
    full = env.login("stew").get(f"/ui/jobs/{job}")
    assert "secret.txt" in full.text and "files: 4" in full.text


def test_jobs_list_counts_only_readable_documents(env: WebEnv) -> None:
    page = env.login("conf").get("/ui/jobs")
    assert page.status_code == 200
    assert ">3/3<" in page.text.replace(" ", "") or "3/3" in page.text
    assert "4/4" not in page.text
    assert "4/4" in env.login("stew").get("/ui/jobs").text


def _stdout_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The server's side only: the test client logs its own requests (it is not the server).
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("garrison", "uvicorn", "fastapi"))
    ]


def test_no_access_log_of_paths_or_queries(env: WebEnv, caplog: pytest.LogCaptureFixture) -> None:
    metrics = env.app.state.metrics
    metrics.flush()
    before = metrics.total
    with caplog.at_level("DEBUG"):
        browser = env.login("stew")
        browser.get("/ui/search", params={"q": "HARROW fuel"})
        browser.get(f"/ui/documents/{env.docs['secret.txt']}")
        snap = metrics.flush()
    assert metrics.total - before >= 4 and snap.requests >= 4
    logged = "\n".join(_stdout_lines(caplog))
    assert "http.requests count=" in logged
    for secret in ("HARROW", env.docs["secret.txt"], "/ui/", "search", "q="):
        assert secret not in logged


def test_the_server_runs_without_uvicorn_access_log(
    env: WebEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from garrison.cli.main import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    assert main(["serve", "-w", str(env.path), "--port", "8999"]) == 0
    assert seen["access_log"] is False
    assert seen["log_config"]["loggers"]["uvicorn.access"]["handlers"] == []


def test_web_errors_join_the_exception_tree() -> None:
    from garrison.core.errors import CsrfFailed, GarrisonError, LoginRequired, NotPermitted
    from garrison.web import _core

    assert issubclass(LoginRequired, NotPermitted) and issubclass(CsrfFailed, NotPermitted)
    assert issubclass(LoginRequired, GarrisonError) and LoginRequired().exit_code == 4
    assert _core.LoginRequired is LoginRequired and _core.CsrfFailed is CsrfFailed
