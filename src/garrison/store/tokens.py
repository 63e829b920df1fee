"""API bearer tokens: created, listed and revoked by admins; checked on every API request.

A token's secret (``gt_<token id>_<random>``) is shown once, when it is created. The catalog keeps
only its SHA-256, so a copy of the catalog grants nothing. Every change is audited, and so is
every failed login -- with a reason, never with the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import select

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.policy import Action
from garrison.security.subjects import ANONYMOUS_SUBJECT_NAME, SYSTEM_SUBJECT_NAME
from garrison.store.models import SubjectRow, TokenRow
from garrison.store.session import Session
from garrison.store.workspace import Workspace

__all__ = [
    "TOKEN_PREFIX",
    "AuthenticationFailed",
    "authenticate",
    "create_token",
    "list_tokens",
    "revoke_token",
    "subject_for_dn",
    "token_id_of",
    "token_problem",
]

TOKEN_PREFIX = "gt_"  # noqa: S105 - a prefix, not a secret
_SECRET = re.compile(r"gt_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
#: Compared against when the token id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"garrison-no-such-token").hexdigest()
_MAX_DAYS = 3650


class AuthenticationFailed(NotPermitted):
    """The request's credentials are missing, malformed, unknown, expired or revoked.

    One type and one sentence for every cause, so a caller learns nothing about which tokens or
    certificates exist; the audit log records the cause.
    """

    code = "unauthenticated"

    def __init__(
        self,
        reason: str | None = None,
        *,
        actor: str = ANONYMOUS_SUBJECT_NAME,
        object_id: str | None = None,
    ) -> None:
        super().__init__(
            "Authentication failed: send a valid API token (Authorization: Bearer ...) or a "
            "client certificate."
        )
        #: Why, for the audit log only (never shown to the caller).
        self.reason = reason
        #: Whom the failure is recorded against: the token's owner when it was known.
        self.actor = actor
        #: The token id the attempt named, if any.
        self.object_id = object_id


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without their (UTC) zone.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _token_dict(row: TokenRow, now: datetime) -> dict[str, Any]:
    expires = _aware(row.expires_at)
    revoked = _aware(row.revoked_at)
    created = _aware(row.created_at)
    state = "revoked" if revoked else ("expired" if expires and expires <= now else "active")
    return {
        "id": row.id,
        "user": row.user,
        "created_by": row.created_by,
        "created_at": created.isoformat() if created else None,
        "expires_at": expires.isoformat() if expires else None,
        "revoked_at": revoked.isoformat() if revoked else None,
        "state": state,
    }


def create_token(
    session: Session, user: str, expires_in_days: int | None = None
) -> tuple[str, str]:
    """A new token for ``user`` (admin); returns ``(token_id, secret)``. Audited.

    The secret is returned only here; store it now. ``expires_in_days`` None means no expiry.
    """
    session.require(Action.MANAGE_TOKENS, AuditAction.TOKEN_CREATE, object_id=user)
    if user == SYSTEM_SUBJECT_NAME:
        raise InvalidInput("The system session acts only at the console; it cannot have tokens.")
    if expires_in_days is not None and not 1 <= expires_in_days <= _MAX_DAYS:
        raise InvalidInput(f"A token expires in 1 to {_MAX_DAYS} days.")
    session.get_user(user)  # NotFound for an unknown user
    token_id = secrets.token_hex(8)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = utc_now()
    expires = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    details = {"user": user, "expires_at": expires.isoformat() if expires else None}
    with session._write(AuditAction.TOKEN_CREATE, object_id=token_id, details=details) as orm:
        orm.add(
            TokenRow(
                id=token_id,
                user=user,
                secret_sha256=_hash(secret),
                created_by=session.subject.name,
                created_at=now,
                expires_at=expires,
                revoked_at=None,
            )
        )
    return token_id, secret


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Every token, oldest first, with its state (admin); never a secret or its hash."""
    session.require(Action.MANAGE_TOKENS, AuditAction.TOKEN_LIST)
    now = utc_now()
    with session.workspace.catalog.transaction() as orm:
        rows = orm.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))
        tokens = [_token_dict(r, now) for r in rows]
    session.audit(AuditAction.TOKEN_LIST, details={"count": len(tokens)})
    return tokens


def revoke_token(session: Session, token_id: str) -> dict[str, Any]:
    """Revoke a token (admin) so that it no longer authenticates anyone. Audited."""
    session.require(Action.MANAGE_TOKENS, AuditAction.TOKEN_REVOKE, object_id=token_id[:64])
    with session._write(AuditAction.TOKEN_REVOKE, object_id=token_id[:64]) as orm:
        row = orm.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"No token with id {token_id}.")
        if row.revoked_at is not None:
            raise InvalidInput(f"Token {token_id} is already revoked.")
        row.revoked_at = utc_now()
        orm.flush()
        return _token_dict(row, utc_now())


def _deny(
    workspace: Workspace,
    actor: str,
    reason: str,
    object_id: str | None = None,
    *,
    audit: bool = True,
) -> NoReturn:
    if audit:
        workspace.audit.append(
            actor, AuditAction.LOGIN, object_id=object_id, decision="deny", reason=reason
        )
    raise AuthenticationFailed(reason, actor=actor, object_id=object_id)


def authenticate(workspace: Workspace, secret: str, *, audit: bool = True) -> str:
    """The name of the subject ``secret`` belongs to; AuthenticationFailed (audited) otherwise.

    ``audit=False`` leaves recording the failure to the caller, from the exception's ``reason``,
    ``actor`` and ``object_id`` (the servers' login limiter does, so a flood is counted, not
    written event by event).
    """
    match = _SECRET.fullmatch(secret)
    if match is None:
        _deny(workspace, ANONYMOUS_SUBJECT_NAME, "malformed token", audit=audit)
    token_id = match.group(1)
    with workspace.catalog.read() as orm:
        row = orm.get(TokenRow, token_id)
    expected = row.secret_sha256 if row is not None else _DUMMY_HASH
    same = hmac.compare_digest(_hash(secret), expected)
    if row is None or not same:
        _deny(
            workspace,
            ANONYMOUS_SUBJECT_NAME,
            "unknown token or wrong secret",
            token_id,
            audit=audit,
        )
    now = utc_now()
    if row.revoked_at is not None:
        _deny(workspace, row.user, "token revoked", token_id, audit=audit)
    expires = _aware(row.expires_at)
    if expires is not None and expires <= now:
        _deny(workspace, row.user, "token expired", token_id, audit=audit)
    return row.user


def subject_for_dn(workspace: Workspace, dn: str, *, audit: bool = True) -> str:
    """The subject whose client-certificate DN is ``dn``; AuthenticationFailed (audited) if none.

    ``audit`` as for :func:`authenticate`.
    """
    with workspace.catalog.read() as orm:
        name = orm.scalar(select(SubjectRow.name).where(SubjectRow.dn == dn))
    if name is None:
        _deny(workspace, ANONYMOUS_SUBJECT_NAME, "no subject has this certificate DN", audit=audit)
    return name


def token_id_of(secret: str) -> str | None:
    """The token id inside a well-formed secret (None if malformed); checks nothing else."""
    match = _SECRET.fullmatch(secret.strip())
    return match.group(1) if match else None


def token_problem(workspace: Workspace, token_id: str, user: str) -> str | None:
    """Why token ``token_id`` no longer authenticates ``user`` (None while it does).

    A session begun with a token lasts only as long as the token: revoked, expired, deleted or
    handed to someone else, it ends the session (the web UI asks on every request).
    """
    with workspace.catalog.read() as orm:
        row = orm.get(TokenRow, token_id)
        if row is None or row.user != user:
            return "token no longer exists"
        if row.revoked_at is not None:
            return "token revoked"
        expires = _aware(row.expires_at)
    if expires is not None and expires <= utc_now():
        return "token expired"
    return None
