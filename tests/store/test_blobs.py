"""Encrypted, content-addressed blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from garrison.core.errors import CheckFailed, NotFound
from garrison.security.crypto import generate_key
from garrison.store.blobs import LocalBlobStore

CANARY = b"The supply ship MERIDIAN changed course at dawn; canary 7f3a."


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", generate_key())


def test_round_trip_and_idempotence(store: LocalBlobStore) -> None:
    sha = store.put(CANARY)
    assert sha == hashlib.sha256(CANARY).hexdigest()
    first = store.path(sha).read_bytes()
    assert store.put(CANARY) == sha
    assert store.path(sha).read_bytes() == first  # not rewritten
    assert store.get(sha) == CANARY
    assert len(list(store.root.rglob("*"))) == 3  # ab/, ab/cd/, the blob


def test_bytes_are_encrypted_at_rest(store: LocalBlobStore) -> None:
    store.put(CANARY * 10)
    for path in store.root.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert b"MERIDIAN" not in raw
            assert CANARY not in raw


def test_tampering_is_detected(store: LocalBlobStore) -> None:
    sha = store.put(CANARY)
    path = store.path(sha)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckFailed):
        store.get(sha)


def test_a_blob_moved_to_another_name_fails(store: LocalBlobStore) -> None:
    a = store.put(b"a")
    b = store.put(b"b")
    store.path(b).write_bytes(store.path(a).read_bytes())
    with pytest.raises(CheckFailed):
        store.get(b)


def test_wrong_master_key_fails(store: LocalBlobStore) -> None:
    sha = store.put(CANARY)
    other = LocalBlobStore(store.root, generate_key())
    with pytest.raises(CheckFailed):
        other.get(sha)


def test_missing_and_malformed_ids(store: LocalBlobStore) -> None:
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound):
        store.get("../../etc/passwd")
    assert store.delete("0" * 64) is False


@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = LocalBlobStore(tmp_path_factory.mktemp("b"), generate_key())
    assert store.get(store.put(data)) == data


def test_put_many_stores_each_once_in_order(store: LocalBlobStore) -> None:
    first = store.put(b"a")
    datas = [b"b", CANARY, b"b", b"a"]
    digests = store.put_many(datas)
    assert digests == [hashlib.sha256(d).hexdigest() for d in datas]
    assert digests[-1] == first
    for digest, data in zip(digests, datas, strict=True):
        assert store.get(digest) == data
    blobs = [p for p in store.root.rglob("*") if p.is_file()]
    assert len(blobs) == 3 and not any(p.name.startswith(".tmp-") for p in blobs)


def test_put_many_that_fails_leaves_no_temporary_file(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from garrison.core.errors import EnvironmentProblem
    from garrison.store import blobs

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(blobs.os, "fsync", failing)
    with pytest.raises(EnvironmentProblem, match="cannot be written"):
        store.put_many([b"x", b"y", CANARY])
    assert [p for p in store.root.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    assert store.get(store.put_many([b"x"])[0]) == b"x"
