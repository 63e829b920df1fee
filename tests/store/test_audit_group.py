"""Group commit: concurrent appends share one write and fsync, and still fail closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from garrison.core.errors import AuditWriteError
from garrison.security import crypto
from garrison.security.audit import AuditEvent
from garrison.store.audit_log import AuditLog

THREADS = 8


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return crypto.generate_signing_key()


@pytest.fixture
def log(tmp_path: Path, key: Ed25519PrivateKey) -> AuditLog:
    d = tmp_path / "audit"
    d.mkdir()
    return AuditLog(d, key, checkpoint_every=5)


class _HeldFirstWrite:
    """Holds the first durable write until every other thread has queued behind it."""

    def __init__(self, log: AuditLog, fail_after_first: bool = False) -> None:
        self.real = log._append_durably
        self.release = threading.Event()
        self.writes = 0
        self.fail_after_first = fail_after_first

    def __call__(self, path: Path, line: bytes, expected_end: int) -> None:
        if path.name == "events.jsonl":
            self.writes += 1
            if self.writes == 1:
                assert self.release.wait(30)
            elif self.fail_after_first:
                raise OSError(5, "Input/output error")
        self.real(path, line, expected_end)


def _append_concurrently(
    log: AuditLog, held: _HeldFirstWrite, details: dict[int, Any] | None = None
) -> Iterator[tuple[int, AuditEvent | Exception]]:
    results: dict[int, AuditEvent | Exception] = {}

    def one(i: int) -> None:
        try:
            results[i] = log.append(f"user{i}", "search", details=(details or {}).get(i, {"i": i}))
        except Exception as exc:
            results[i] = exc

    first = threading.Thread(target=one, args=(0,))
    first.start()
    while held.writes == 0:  # the first append is writing (and held)
        threading.Event().wait(0.01)
    others = [threading.Thread(target=one, args=(i,)) for i in range(1, THREADS)]
    for t in others:
        t.start()
    while len(log._group._queue) < THREADS - 1:  # every other one has queued
        threading.Event().wait(0.01)
    held.release.set()
    for t in [first, *others]:
        t.join(30)
    yield from sorted(results.items())


def test_concurrent_appends_share_a_write(
    log: AuditLog, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldFirstWrite(log)
    monkeypatch.setattr(log, "_append_durably", held)
    results = dict(_append_concurrently(log, held))
    assert held.writes == 2  # the first event alone, then the seven queued behind it at once
    assert log._group.batches == 2 and log._group.events == THREADS
    for i, event in results.items():
        assert isinstance(event, AuditEvent), event
        assert event.actor == f"user{i}" and event.details == {"i": i}
    assert sorted(e.seq for e in results.values() if isinstance(e, AuditEvent)) == list(
        range(1, THREADS + 1)
    )
    assert [e.actor for e in log.events()] == [
        e.actor for e in sorted(results.values(), key=lambda e: getattr(e, "seq", 0))
    ]
    report = log.verify(key.public_key())
    assert report.ok and report.size == THREADS
    assert log.latest_checkpoint() is not None  # crossing checkpoint_every inside a batch


def test_a_failed_batch_fails_every_caller_in_it(
    log: AuditLog, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldFirstWrite(log, fail_after_first=True)
    monkeypatch.setattr(log, "_append_durably", held)
    results = dict(_append_concurrently(log, held))
    assert isinstance(results[0], AuditEvent)
    for i in range(1, THREADS):
        error = results[i]
        assert isinstance(error, AuditWriteError), error
        assert f"user{i}" in error.message and "not carried out" in error.message
    report = log.verify(key.public_key())
    assert report.ok and report.size == 1  # nothing of the failed batch is in the log
    monkeypatch.undo()
    assert log.append("after", "search").seq == 2  # the log goes on


def test_an_unwritable_event_fails_alone(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    held = _HeldFirstWrite(log)
    monkeypatch.setattr(log, "_append_durably", held)
    with pytest.raises(AuditWriteError, match="user9"):
        log.append("user9", "search", details={"bad": object()})  # type: ignore[dict-item]
    held.release.set()
    assert held.writes == 0  # refused before it queued: it never shares a batch
    assert log.append("user1", "search").seq == 1
