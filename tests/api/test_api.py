"""The REST API: authentication, roles, markings, not-found indistinguishability, error shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.api import CLIENT_DN_KEY, MARKING_HEADER, create_app
from garrison.store.session import SubjectSpec
from garrison.store.tokens import revoke_token

from .conftest import Env


def error_of(body: Any) -> tuple[str, str]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"], body["error"]["message"]


CONTENT = [
    "/v1/documents",
    "/v1/chunks",
    "/v1/search?q=depot",
    "/v1/findings",
    "/v1/datasets",
    "/v1/models",
    "/v1/users",
    "/v1/audit?n=5",
    "/v1/me",
]


@pytest.mark.parametrize("path", CONTENT)
def test_every_content_response_is_marked(env: Env, path: str) -> None:
    response = env.client.get(path, headers=env.auth("ada"))
    assert response.status_code == 200
    body = response.json()
    assert body["marking"] == response.headers[MARKING_HEADER]


def test_document_listing_is_marked_with_the_join(env: Env) -> None:
    high = env.client.get("/v1/documents", headers=env.auth("sam"))
    assert {d["marking"] for d in high.json()["items"]} == {
        "UNCLASSIFIED",
        "CONFIDENTIAL",
        "SECRET//NOFORN",
    }
    assert high.json()["marking"] == high.headers[MARKING_HEADER] == "SECRET//NOFORN"
    low = env.client.get("/v1/documents", headers=env.auth("una"))
    assert [d["filename"] for d in low.json()["items"]] == ["public.txt"]
    assert low.json()["marking"] == "UNCLASSIFIED"
    empty = env.client.get("/v1/documents?status=spilled", headers=env.auth("sam"))
    assert empty.json() == {
        "items": [],
        "marking": "UNCLASSIFIED",
        "total": 0,
        "next_cursor": None,
        "prev_cursor": None,
    }


def test_chunks_and_document_with_elements_are_marked(env: Env) -> None:
    docs = env.client.get("/v1/documents", headers=env.auth("sam")).json()["items"]
    conf = next(d for d in docs if d["filename"] == "conf.txt")
    chunks = env.client.get(f"/v1/chunks?doc_id={conf['id']}", headers=env.auth("sam")).json()
    assert chunks["items"] and chunks["marking"] == "CONFIDENTIAL"
    memo = next(d for d in docs if d["filename"] == "memo.txt")
    shown = env.client.get(f"/v1/documents/{memo['id']}?elements=true", headers=env.auth("sam"))
    assert shown.headers[MARKING_HEADER] == "SECRET//NOFORN"
    assert {e["marking"] for e in shown.json()["elements"]} >= {"UNCLASSIFIED", "SECRET//NOFORN"}
    tree = env.client.get(f"/v1/lineage/{chunks['items'][0]['id']}", headers=env.auth("sam"))
    assert tree.status_code == 200 and tree.json()["marking"] == "CONFIDENTIAL"


def test_forbidden_and_missing_ids_answer_alike_and_denials_are_audited(env: Env) -> None:
    docs = env.client.get("/v1/documents", headers=env.auth("sam")).json()["items"]
    secret_id = next(d["id"] for d in docs if d["filename"] == "memo.txt")
    missing_id = "f" * len(secret_id)
    forbidden = env.client.get(f"/v1/documents/{secret_id}", headers=env.auth("una"))
    missing = env.client.get(f"/v1/documents/{missing_id}", headers=env.auth("una"))
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.text.replace(secret_id, "ID") == missing.text.replace(missing_id, "ID")
    assert dict(forbidden.headers) == dict(missing.headers) | {
        "content-length": forbidden.headers["content-length"]
    }
    assert error_of(forbidden.json()) == ("not-found", f"No document with id {secret_id}.")
    denied = [e for e in env.audit_tail(10) if e.action == "doc.read" and e.decision == "deny"]
    assert [e.object_id for e in denied][-2:] == [secret_id, missing_id]
    assert denied[-2].actor == "una"
    # The same for lineage: an unreadable chunk looks like a missing one.
    chunks = env.client.get("/v1/chunks", headers=env.auth("sam")).json()["items"]
    secret_chunk = next(c["id"] for c in chunks if c["marking"] == "SECRET//NOFORN")
    a = env.client.get(f"/v1/lineage/{secret_chunk}", headers=env.auth("una"))
    b = env.client.get(f"/v1/lineage/{'0' * len(secret_chunk)}", headers=env.auth("una"))
    assert a.status_code == b.status_code == 404
    assert a.text.replace(secret_chunk, "ID") == b.text.replace("0" * len(secret_chunk), "ID")


def test_search_returns_only_readable_hits(env: Env) -> None:
    low = env.client.get("/v1/search", params={"q": "depot fuel"}, headers=env.auth("una"))
    high = env.client.get("/v1/search", params={"q": "depot fuel"}, headers=env.auth("sam"))
    assert low.status_code == high.status_code == 200
    assert {h["marking"] for h in low.json()["hits"]} == {"UNCLASSIFIED"}
    assert low.json()["marking"] == low.headers[MARKING_HEADER] == "UNCLASSIFIED"
    assert "SECRET//NOFORN" in {h["marking"] for h in high.json()["hits"]}
    assert high.json()["marking"] == "SECRET//NOFORN"
    assert all("HARROW" not in h["snippet"] for h in low.json()["hits"])
    filtered = env.client.get(
        "/v1/search",
        params={"q": "depot", "filter": ["max_marking=CONFIDENTIAL"]},
        headers=env.auth("sam"),
    )
    assert filtered.status_code == 200
    assert "SECRET//NOFORN" not in {h["marking"] for h in filtered.json()["hits"]}
    bad = env.client.get(
        "/v1/search", params={"q": "x", "filter": "nokey"}, headers=env.auth("sam")
    )
    assert bad.status_code == 400 and error_of(bad.json())[0] == "invalid-input"


@pytest.mark.parametrize("path", ["/v1/users", "/v1/audit"])
def test_admin_only_endpoints(env: Env, path: str) -> None:
    denied = env.client.get(path, headers=env.auth("sam"))
    assert denied.status_code == 403
    assert error_of(denied.json())[0] == "not-permitted"
    assert env.audit_tail(1)[0].decision == "deny" and env.audit_tail(1)[0].actor == "sam"
    assert env.client.get(path, headers=env.auth("ada")).status_code == 200


def test_audit_is_marked_at_system_high(env: Env) -> None:
    response = env.client.get("/v1/audit?n=2", headers=env.auth("ada"))
    assert response.headers[MARKING_HEADER] == "SECRET//NOFORN"
    assert len(response.json()["items"]) == 2


@pytest.mark.parametrize("path", ["/v1/documents", "/v1/findings", "/v1/datasets", "/v1/me"])
def test_viewer_reads(env: Env, path: str) -> None:
    assert env.client.get(path, headers=env.auth("una")).status_code == 200


def test_me_shows_own_attributes(env: Env) -> None:
    me = env.client.get("/v1/me", headers=env.auth("una")).json()
    assert me["name"] == "una" and me["clearance"] == "U" and "CLS:U" in me["authorizations"]


def test_clearance_lowered_between_requests_sees_less(env: Env) -> None:
    before = env.client.get("/v1/documents", headers=env.auth("lou")).json()["items"]
    assert len(before) == 3
    ws = env.workspace()
    try:
        ws.session().update_user("lou", SubjectSpec(clearance="U"))
    finally:
        ws.close()
    after = env.client.get("/v1/documents", headers=env.auth("lou")).json()
    assert [d["filename"] for d in after["items"]] == ["public.txt"]
    assert after["marking"] == "UNCLASSIFIED"
    hits = env.client.get("/v1/search?q=depot", headers=env.auth("lou")).json()["hits"]
    assert {h["marking"] for h in hits} == {"UNCLASSIFIED"}


def test_client_certificate_dn_authenticates(env: Env) -> None:
    app = env.client.app

    async def with_dn(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, CLIENT_DN_KEY: dn}
        await app(scope, receive, send)

    dn = "CN=ada,O=Garrison,C=US"
    client = TestClient(with_dn)
    assert client.get("/v1/me").json()["name"] == "ada"
    dn = "CN=mallory,O=Elsewhere"
    response = client.get("/v1/me")
    assert response.status_code == 401 and error_of(response.json())[0] == "unauthenticated"
    last = env.audit_tail(1)[0]
    assert last.action == "login" and last.decision == "deny"


def _forge(secret: str) -> str:
    head, _, tail = secret.rpartition("_")
    return f"{head}_{'A' if tail[0] != 'A' else 'B'}{tail[1:]}"


def test_auth_failures_share_one_answer_and_are_audited(env: Env) -> None:
    ws = env.workspace()
    try:
        from garrison.store.tokens import create_token

        admin = ws.session("ada")
        revoked_id, revoked = create_token(admin, "sam", 5)
        revoke_token(admin, revoked_id)
    finally:
        ws.close()
    cases = {
        "no credentials": {},
        "malformed Authorization header": {"Authorization": "Basic abc"},
        "malformed token": {"Authorization": "Bearer not-a-token"},
        "unknown token or wrong secret": {"Authorization": f"Bearer {_forge(env.tokens['sam'])}"},
        "token revoked": {"Authorization": f"Bearer {revoked}"},
    }
    bodies = set()
    for reason, headers in cases.items():
        response = env.client.get("/v1/documents", headers=headers)
        assert response.status_code == 401, reason
        assert response.headers["www-authenticate"] == "Bearer"
        error_of(response.json())
        bodies.add(response.text)
        last = env.audit_tail(1)[0]
        assert (last.action, last.decision, last.reason) == ("login", "deny", reason)
        assert env.tokens["sam"][10:] not in last.model_dump_json()
    assert len(bodies) == 1


def test_health_needs_no_auth_and_has_no_content(env: Env) -> None:
    response = env.client.get("/v1/health")
    assert response.status_code == 204 and response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nowhere", 404, "not-found"),
        ("GET", "/nowhere", 404, "not-found"),
        ("POST", "/v1/documents", 405, "method-not-allowed"),
        ("DELETE", "/v1/me", 405, "method-not-allowed"),
        ("GET", "/v1/search?q=x&k=0", 422, "invalid-input"),
        ("GET", "/v1/search?q=x&k=abc", 422, "invalid-input"),
        ("GET", "/v1/search", 422, "invalid-input"),
        ("GET", "/v1/audit?n=-1", 422, "invalid-input"),
        ("GET", "/v1/documents?status=weird", 422, "invalid-input"),
        ("GET", "/v1/search?q=x&filter=nokey", 400, "invalid-input"),
        ("GET", "/v1/datasets/nothing", 404, "not-found"),
    ],
)
def test_one_error_shape(env: Env, method: str, path: str, status: int, code: str) -> None:
    response = env.client.request(method, path, headers=env.auth("ada"))
    assert response.status_code == status
    assert error_of(response.json())[0] == code
    assert MARKING_HEADER not in response.headers


def test_unexpected_errors_keep_the_shape(env: Env) -> None:
    app = create_app(env.path / "missing")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/me", headers=env.auth("ada"))
    assert response.status_code == 503
    assert error_of(response.json())[0] == "workspace"


def test_models_are_marked_and_an_unreadable_one_looks_missing(env: Env, tmp_path: Any) -> None:
    from garrison.models import Models
    from garrison.security.markings import parse_marking

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"api-secret-weights")
    ws = env.workspace()
    try:
        secret_id = (
            Models(ws.session())
            .register(
                kind="classifier",
                name="api-secret",
                folder=weights,
                marking=parse_marking("SECRET//NOFORN"),
            )
            .id
        )
    finally:
        ws.close(checkpoint=False)
    high = env.client.get("/v1/models", headers=env.auth("sam"))
    assert high.status_code == 200
    assert secret_id in {m["id"] for m in high.json()["items"]}
    assert high.json()["marking"] == high.headers[MARKING_HEADER] == "SECRET//NOFORN"
    shown = env.client.get(f"/v1/models/api-secret@{secret_id[:12]}", headers=env.auth("sam"))
    assert shown.status_code == 200 and shown.json()["id"] == secret_id
    assert shown.json()["marking"] == "SECRET//NOFORN"
    low = env.client.get("/v1/models", headers=env.auth("una"))
    assert low.status_code == 200
    assert secret_id not in {m["id"] for m in low.json()["items"]}
    assert low.json()["marking"] == "UNCLASSIFIED"
    missing_id = "f" * 64
    forbidden = env.client.get(f"/v1/models/{secret_id}", headers=env.auth("una"))
    missing = env.client.get(f"/v1/models/{missing_id}", headers=env.auth("una"))
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.text.replace(secret_id, "ID") == missing.text.replace(missing_id, "ID")


def test_token_revoked_between_requests_fails_the_next_one(env: Env) -> None:
    from garrison.store.tokens import create_token

    ws = env.workspace()
    try:
        token_id, secret = create_token(ws.session("ada"), "sam", 5)
    finally:
        ws.close()
    headers = {"Authorization": f"Bearer {secret}"}
    assert env.client.get("/v1/me", headers=headers).status_code == 200
    ws = env.workspace()
    try:
        revoke_token(ws.session("ada"), token_id)
    finally:
        ws.close()
    response = env.client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    last = env.audit_tail(1)[0]
    assert (last.action, last.reason) == ("login", "token revoked")


def test_token_expired_between_requests_fails_the_next_one(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from garrison.core.clock import utc_now
    from garrison.store import tokens
    from garrison.store.tokens import create_token

    ws = env.workspace()
    try:
        secret = create_token(ws.session("ada"), "sam", 1)[1]
    finally:
        ws.close()
    headers = {"Authorization": f"Bearer {secret}"}
    assert env.client.get("/v1/me", headers=headers).status_code == 200
    later = utc_now() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(tokens, "utc_now", lambda: later)
    response = env.client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    last = env.audit_tail(1)[0]
    assert (last.action, last.reason) == ("login", "token expired")


def test_worker_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.api._app import DEFAULT_WORKER_THREADS, WORKER_THREADS_ENV, worker_threads
    from garrison.core.errors import InvalidInput

    monkeypatch.delenv(WORKER_THREADS_ENV, raising=False)
    assert worker_threads() == DEFAULT_WORKER_THREADS
    monkeypatch.setenv(WORKER_THREADS_ENV, "3")
    assert worker_threads() == 3
    for bad in ("0", "-1", "many", "257"):
        monkeypatch.setenv(WORKER_THREADS_ENV, bad)
        with pytest.raises(InvalidInput):
            worker_threads()
