"""API tokens: admin-only, hashed at rest, audited; authentication fails one way for all causes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from garrison.core.clock import set_clock
from garrison.core.errors import NotFound, NotPermitted
from garrison.store.models import TokenRow
from garrison.store.session import SubjectSpec
from garrison.store.tokens import (
    AuthenticationFailed,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    subject_for_dn,
)
from garrison.store.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("ada", SubjectSpec(clearance="S", roles=("admin",)))
    system.add_user("vic", SubjectSpec(clearance="U", dn="CN=vic,O=Garrison"))
    yield workspace
    workspace.close()


def test_create_authenticate_list_revoke(ws: Workspace) -> None:
    admin = ws.session("ada")
    token_id, secret = create_token(admin, "vic", 7)
    assert secret.startswith(f"gt_{token_id}_")
    assert ws.audit.tail(1)[0].action == "token.create"
    assert authenticate(ws, secret) == "vic"
    with ws.catalog.transaction() as orm:
        row = orm.scalars(select(TokenRow)).one()
        assert secret not in (row.secret_sha256, row.id) and len(row.secret_sha256) == 64
    listed = list_tokens(admin)
    assert [(t["id"], t["user"], t["state"]) for t in listed] == [(token_id, "vic", "active")]
    assert secret not in repr(listed) and row.secret_sha256 not in repr(listed)
    revoke_token(admin, token_id)
    assert ws.audit.tail(1)[0].action == "token.revoke"
    assert list_tokens(admin)[0]["state"] == "revoked"
    with pytest.raises(AuthenticationFailed):
        authenticate(ws, secret)


def test_only_admins_manage_tokens(ws: Workspace) -> None:
    viewer = ws.session("vic")
    with pytest.raises(NotPermitted):
        create_token(viewer, "vic", 1)
    with pytest.raises(NotPermitted):
        list_tokens(viewer)
    with pytest.raises(NotPermitted):
        revoke_token(viewer, "0" * 16)
    assert ws.audit.tail(1)[0].decision == "deny"
    with pytest.raises(NotFound):
        create_token(ws.session("ada"), "nobody", 1)
    with pytest.raises(NotFound):
        revoke_token(ws.session("ada"), "0" * 16)


def test_expired_token_fails(ws: Workspace) -> None:
    _, secret = create_token(ws.session("ada"), "vic", 1)
    set_clock(lambda: datetime.now(UTC) + timedelta(days=2))
    try:
        with pytest.raises(AuthenticationFailed):
            authenticate(ws, secret)
    finally:
        set_clock(None)
    last = ws.audit.tail(1)[0]
    assert (last.action, last.decision, last.reason) == ("login", "deny", "token expired")


@pytest.mark.parametrize(
    "secret", ["", "gt_", "gt_zz_abc", "x" * 5000, "gt_0123456789abcdef_" + "A" * 43]
)
def test_bad_secrets_fail_alike_and_are_audited_without_the_secret(
    ws: Workspace, secret: str
) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        authenticate(ws, secret)
    assert info.value.message == AuthenticationFailed().message
    last = ws.audit.tail(1)[0]
    assert last.action == "login" and last.decision == "deny" and last.reason
    if secret:
        assert secret not in last.model_dump_json()


def test_dn_maps_to_subject(ws: Workspace) -> None:
    assert subject_for_dn(ws, "CN=vic,O=Garrison") == "vic"
    with pytest.raises(AuthenticationFailed):
        subject_for_dn(ws, "CN=eve")
