"""Signing in with a client certificate, for real: the UI over mutual TLS on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from garrison.api._tls import make_server
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from garrison.web import create_app
from tests.api.test_tls import (  # noqa: F401 - pki is a fixture
    ALICE_DN,
    TIMEOUT_S,
    Pki,
    _context,
    _free_port,
    pki,
)
from tests.web.conftest import WebEnv, csrf_of


@pytest.fixture(scope="module")
def served(web: WebEnv, pki: Pki) -> Iterator[str]:  # noqa: F811 - the imported fixture
    ws = Workspace.open(web.path)
    try:
        ws.session().update_user("stu", SubjectSpec(dn=ALICE_DN))
    finally:
        ws.close(checkpoint=False)
    port = _free_port()
    ready = threading.Event()
    server = make_server(
        create_app(web.path),
        "127.0.0.1",
        port,
        str(pki.server.cert),
        str(pki.server.key),
        str(pki.ca.cert),
        ready=ready,
    )
    thread = threading.Thread(target=server.run, name="web-tls-server", daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT_S), "the server did not start listening"
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)


def test_a_certificate_signs_its_user_in(web: WebEnv, pki: Pki, served: str) -> None:  # noqa: F811
    with httpx.Client(verify=_context(pki, pki.alice), timeout=TIMEOUT_S) as browser:
        first = browser.get(f"{served}/ui/findings")
        assert first.status_code == 303 and first.headers["location"].startswith("/ui/login")
        login = browser.get(f"{served}{first.headers['location']}")
        assert login.status_code == 303 and login.headers["location"] == "/ui/findings"
        cookie = login.headers["set-cookie"]
        assert "garrison_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        page = browser.get(f"{served}/ui/findings")
        assert page.status_code == 200 and "Signed in as <strong>stu</strong>" in page.text
        event = next(e for e in reversed(web.audit_tail(10)) if e.action == "web.login")
        assert (event.actor, event.details["method"]) == ("stu", "certificate")
        # Signing out does not sign straight back in; the button does.
        out = browser.post(f"{served}/ui/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 200 and "Sign in with this certificate" in out.text
        again = browser.get(f"{served}/ui/login")
        assert again.status_code == 200 and ALICE_DN in again.text
        button = browser.post(
            f"{served}/ui/login/certificate",
            data={"csrf": csrf_of(again.text), "next": "/ui/jobs"},
        )
        assert button.status_code == 303 and button.headers["location"] == "/ui/jobs"
        assert browser.get(f"{served}/ui/jobs").status_code == 200


def test_an_unregistered_certificate_is_refused_and_audited(
    web: WebEnv,
    pki: Pki,  # noqa: F811
    served: str,
) -> None:
    with httpx.Client(verify=_context(pki, pki.bob), timeout=TIMEOUT_S) as browser:
        response = browser.get(f"{served}/ui/login")
        assert response.status_code == 401 and "not registered" in response.text
    last = web.audit_tail(1)[0]
    assert (last.action, last.decision) == ("login", "deny")
    assert last.reason == "no subject has this certificate DN"
