"""Failed logins are rate limited per client address; a flood is audited as one event per window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from garrison.api import _login_limit
from garrison.api._login_limit import AGGREGATE_REASON, OTHER_CLIENTS, LoginLimiter
from garrison.core.clock import set_clock
from garrison.security.audit import AuditEvent
from garrison.store.session import SubjectSpec
from garrison.store.tokens import AuthenticationFailed, create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app

LIMIT = 5
WINDOW = 60
#: A window boundary (a multiple of WINDOW seconds since the epoch) near now, plus a little.
WINDOW_START = datetime.fromtimestamp(time.time() // WINDOW * WINDOW, UTC)
START = WINDOW_START + timedelta(seconds=3)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


BAD = {"Authorization": "Bearer gt_0123456789abcdef_" + "A" * 43}
#: Malformed: refused before any catalog lookup, which keeps the flood quick.
JUNK = {"Authorization": "Bearer not-a-token"}


class Clock:
    """A clock the test moves by hand, so no window rolls over by accident."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock()
    set_clock(c)
    try:
        yield c
    finally:
        set_clock(None)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace whose garrison.toml allows LIMIT failures per WINDOW, and a viewer's token.

    Each test serves it with a fresh app (a fresh limiter) and its own client addresses.
    """
    path = tmp_path_factory.mktemp("limit") / "ws"
    ws = Workspace.init(path, system_high="SECRET")
    ws.config.model_copy(
        update={"login_failures_per_window": LIMIT, "login_window_seconds": WINDOW}
    ).dump(path)
    system = ws.session()
    system.add_user("una", SubjectSpec(clearance="U", roles=("viewer",)))
    token = create_token(system, "una", 30)[1]
    ws.close()
    return path, token


def _events(path: Path) -> list[AuditEvent]:
    ws = Workspace.open(path)
    try:
        return ws.audit.tail(None)
    finally:
        ws.close(checkpoint=False)


def _logins(events: list[AuditEvent]) -> list[AuditEvent]:
    return [e for e in events if e.action == "login"]


def test_a_flood_is_refused_and_audited_as_one_event_per_window(
    served: tuple[Path, str], clock: Clock
) -> None:
    path, token = served
    app = create_app(path)
    before = len(_events(path))
    flooder = TestClient(app, client=("10.0.0.66", 4000), raise_server_exceptions=False)
    statuses = [flooder.get("/v1/me", headers=BAD).status_code for _ in range(LIMIT + 5)]
    statuses += [flooder.get("/v1/me", headers=JUNK).status_code for _ in range(995 - LIMIT)]
    assert statuses[:LIMIT] == [401] * LIMIT
    assert set(statuses[LIMIT:]) == {429}
    last = flooder.get("/v1/me", headers=BAD)
    assert last.status_code == 429
    assert last.json()["error"]["code"] == "too-many-requests"
    assert last.headers["Retry-After"] == str(WINDOW - 3)
    # Only the failures under the limit are in the log so far, each naming its client.
    events = _events(path)
    assert len(events) - before == LIMIT
    assert all(e.details["client"] == "10.0.0.66" for e in events[before:])

    # Valid credentials keep working, from another address and from the flooding one alike.
    other = TestClient(app, client=("10.0.0.7", 4000), raise_server_exceptions=False)
    assert other.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    me = flooder.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    # Another address's failures are its own: audited one by one, answered 401.
    assert other.get("/v1/me").status_code == 401
    assert _events(path)[-1].details == {"client": "10.0.0.7"}

    # The window ends: the next request writes the aggregate, and the log still verifies.
    clock.now += timedelta(seconds=WINDOW)
    assert other.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    logins = _logins(_events(path)[before:])
    aggregated = [e for e in logins if e.details.get("aggregated")]
    assert len(aggregated) == 1
    agg = aggregated[0]
    assert (agg.actor, agg.decision, agg.reason) == ("anonymous", "deny", AGGREGATE_REASON)
    assert agg.details == {
        "aggregated": True,
        "client": "10.0.0.66",
        "count": 1001 - LIMIT,
        "reasons": {"malformed token": 995 - LIMIT, "unknown token or wrong secret": 6},
        "window_start": _iso(WINDOW_START),
        "window_seconds": WINDOW,
        "limit": LIMIT,
    }
    # 1,001 bad logins and one from another address: LIMIT + 1 + 1 login events in all.
    assert len(logins) == LIMIT + 2
    ws = Workspace.open(path)
    try:
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close(checkpoint=False)


def test_a_new_window_starts_a_new_count(served: tuple[Path, str], clock: Clock) -> None:
    path, _ = served
    before = len(_events(path))
    client = TestClient(create_app(path), client=("10.0.1.1", 4000))
    assert [client.get("/v1/me").status_code for _ in range(LIMIT + 2)] == [401] * LIMIT + [429] * 2
    clock.now += timedelta(seconds=WINDOW - 3)  # exactly the next window's start
    assert [client.get("/v1/me").status_code for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    clock.now += timedelta(seconds=WINDOW)
    client.get("/v1/health")  # not a login: no aggregate yet
    client.get("/v1/me", headers=BAD)
    aggregated = [e for e in _logins(_events(path)[before:]) if e.details.get("aggregated")]
    assert [(e.details["count"], e.details["window_start"]) for e in aggregated] == [
        (2, _iso(WINDOW_START)),
        (1, _iso(WINDOW_START + timedelta(seconds=WINDOW))),
    ]
    assert aggregated[0].details["reasons"] == {"no credentials": 2}


def test_stopping_the_server_writes_the_current_windows_aggregate(
    served: tuple[Path, str], clock: Clock
) -> None:
    path, _ = served
    before = len(_events(path))
    with TestClient(create_app(path), client=("10.0.2.1", 4000)) as client:
        for _ in range(LIMIT + 3):
            client.get("/v1/me", headers={"Authorization": "Basic abc"})
    last = _events(path)[before:]
    agg = [e for e in _logins(last) if e.details.get("aggregated")]
    assert [e.details["count"] for e in agg] == [3]
    assert agg[0].details["reasons"] == {"malformed Authorization header": 3}


def test_web_sign_in_counts_against_the_same_limit(served: tuple[Path, str], clock: Clock) -> None:
    path, token = served
    app = create_app(path)
    client = TestClient(app, client=("10.0.3.1", 4000))
    for _ in range(LIMIT):
        assert client.get("/v1/me", headers=BAD).status_code == 401
    form = client.get("/ui/login")
    csrf = form.cookies.get("garrison_login_csrf") or client.cookies.get("garrison_login_csrf")
    assert csrf
    refused = client.post("/ui/login", data={"token": "gt_nope", "csrf": csrf})
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text
    assert refused.headers["Retry-After"] == str(WINDOW - 3)
    # A form without its CSRF token is a failed sign-in too, and is refused the same way.
    assert client.post("/ui/login", data={"token": "x"}).status_code == 429
    # The right token still signs in from that address.
    form = client.get("/ui/login")
    csrf = client.cookies.get("garrison_login_csrf")
    ok = client.post("/ui/login", data={"token": token, "csrf": csrf}, follow_redirects=False)
    assert ok.status_code in (302, 303)
    # The web's own failures below the limit are audited one by one, with the client.
    other = TestClient(app, client=("10.0.0.8", 4000))
    other.get("/ui/login")
    csrf = other.cookies.get("garrison_login_csrf")
    assert other.post("/ui/login", data={"token": "gt_nope", "csrf": csrf}).status_code == 401
    last = _events(path)[-1]
    assert (last.action, last.reason, last.details) == (
        "login",
        "malformed token",
        {"client": "10.0.0.8"},
    )


def test_addresses_past_the_table_share_one_entry(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_login_limit, "MAX_CLIENTS", 3)
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET")
    try:
        limiter = LoginLimiter(limit=1, window_seconds=WINDOW)
        refused = 0
        for i in range(10):
            for _ in range(2):
                try:
                    with limiter.attempt(ws, f"10.1.0.{i}"):
                        raise AuthenticationFailed("no credentials")
                except _login_limit.TooManyLoginFailures:
                    refused += 1
                except AuthenticationFailed:
                    pass
        assert limiter.flush(ws) == 4
        agg = [e for e in ws.audit.tail(None) if e.details.get("aggregated")]
        by_client = {e.details["client"]: e.details["count"] for e in agg}
        # Three tracked addresses (one refusal each) and the rest sharing one entry.
        assert by_client == {"10.1.0.0": 1, "10.1.0.1": 1, "10.1.0.2": 1, OTHER_CLIENTS: 13}
        assert refused == 16
    finally:
        ws.close(checkpoint=False)


def test_the_limiter_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        LoginLimiter(limit=0)
    with pytest.raises(ValueError, match="window"):
        LoginLimiter(window_seconds=0)
