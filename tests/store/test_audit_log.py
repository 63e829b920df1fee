"""The audit log on disk: appends, checkpoints, proofs, concurrency, and every kind of tampering."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from garrison.core.errors import AuditWriteError, CheckFailed, InvalidInput, NotFound
from garrison.security import crypto, merkle
from garrison.security.audit import AuditEvent, Checkpoint
from garrison.store.audit_log import AuditLog, VerifyReport


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return crypto.generate_signing_key()


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audit"
    d.mkdir()
    return d


def make_log(audit_dir: Path, key: Ed25519PrivateKey, n: int, every: int = 100) -> AuditLog:
    log = AuditLog(audit_dir, key, checkpoint_every=every)
    for i in range(n):
        log.append(
            "alice" if i % 2 else "system",
            "user.add",
            object_id=f"user-{i + 1}",
            object_marking="UNCLASSIFIED",
            decision="allow" if i % 3 else "deny",
            reason=None if i % 3 else "role forbids it",
            details={"i": i, "note": "é"},
        )
    return log


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def write_lines(path: Path, content: list[str]) -> None:
    path.write_text("".join(content), encoding="utf-8")


def assert_bad(report: VerifyReport, first_bad_seq: int | None, words: str) -> None:
    assert not report.ok
    assert report.first_bad_seq == first_bad_seq
    assert report.problem is not None
    assert words in report.problem
    assert report.problem.endswith(".")


# --- types -------------------------------------------------------------------------------------


def test_event_canonical_bytes_are_sorted_compact_utf8_with_z_time() -> None:
    when = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    event = AuditEvent(seq=1, time=when, actor="system", action="workspace.init", details={"é": 1})
    raw = event.canonical_bytes()
    assert (
        raw
        == (
            '{"action":"workspace.init","actor":"system","decision":"allow","details":{"é":1},'
            '"format":1,"object_id":null,"object_marking":null,"reason":null,"seq":1,'
            '"time":"2024-05-01T12:30:00.000000Z"}'
        ).encode()
    )
    # Parsing the canonical form and serializing again is the identity (leaf hashes rely on it).
    assert AuditEvent.model_validate_json(raw).canonical_bytes() == raw
    with pytest.raises(ValidationError):
        AuditEvent(seq=1, time=datetime(2024, 5, 1), actor="a", action="b")
    with pytest.raises(ValidationError):
        AuditEvent(seq=0, time=when, actor="a", action="b")
    with pytest.raises(ValidationError):
        event.model_copy().__setattr__("actor", "mallory")


def test_checkpoint_sign_verify_and_domain_separation(key: Ed25519PrivateKey) -> None:
    cp = Checkpoint.sign(key, size=3, root=b"\x01" * 32, time=datetime(2024, 1, 1, tzinfo=UTC))
    assert cp.verify(key.public_key())
    assert cp.key_id == crypto.fingerprint(key.public_key())
    assert cp.message().startswith(b"garrison-audit-checkpoint-v1\n")
    assert not cp.verify(crypto.generate_signing_key().public_key())
    assert not cp.model_copy(update={"size": 4}).verify(key.public_key())
    assert Checkpoint.from_json(cp.to_json()) == cp
    assert b'"time":"2024-01-01T00:00:00.000000Z"' in cp.to_json()


# --- appending ---------------------------------------------------------------------------------


def test_append_assigns_seqs_and_stores_readable_state(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 5)
    assert log.size == 5
    events = list(log.events())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].actor == "system"
    assert events[0].decision == "deny"
    assert events[0].time.tzinfo is not None
    assert [e.seq for e in log.tail(2)] == [4, 5]
    assert log.tail(0) == []
    assert len(log.tail()) == 5

    record = json.loads(lines(log.events_path)[2])
    assert set(record) == {"event", "sig"}
    assert record["event"]["seq"] == 3
    assert record["event"]["time"].endswith("Z")
    state = json.loads(log.state_path.read_text())
    assert state["size"] == 5
    assert state["events_bytes"] == log.events_path.stat().st_size
    leaves = [e.leaf_hash() for e in events]
    assert merkle.Frontier.from_hex(5, state["frontier"]).root() == merkle.root(leaves)
    assert state["last_leaf"] == leaves[-1].hex()
    assert oct(log.events_path.stat().st_mode & 0o777) == "0o600"
    assert log.verify(key.public_key()) == VerifyReport(True, 5, None, None, 0)


def test_checkpoint_written_every_n_events(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 7, every=3)
    sizes = [json.loads(line)["size"] for line in lines(log.checkpoints_path)]
    assert sizes == [3, 6]
    latest = log.latest_checkpoint()
    assert latest is not None
    assert latest.size == 6
    report = log.verify(key.public_key())
    assert report.ok
    assert report.checkpoints_checked == 2


def test_checkpoint_is_not_duplicated(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 4)
    assert log.latest_checkpoint() is None
    first = log.checkpoint()
    assert first.size == 4
    assert first.verify(key.public_key())
    assert log.checkpoint() == first
    assert len(lines(log.checkpoints_path)) == 1
    log.append("bob", "token.create")
    assert log.checkpoint().size == 5
    assert len(lines(log.checkpoints_path)) == 2


def test_empty_log_verifies_and_checkpoints(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = AuditLog(audit_dir, key)
    assert log.size == 0
    assert log.tail() == []
    cp = log.checkpoint()
    assert cp.size == 0
    assert cp.root_bytes == merkle.EMPTY_ROOT
    assert log.verify(key.public_key()).ok


def test_append_to_unwritable_directory_fails_closed(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    log = make_log(audit_dir, key, 2)
    audit_dir.chmod(0o500)
    try:
        with pytest.raises(AuditWriteError) as info:
            log.append("alice", "dataset.export")
    finally:
        audit_dir.chmod(0o700)
    assert "the action was not carried out" in str(info.value)
    assert info.value.exit_code == 5
    assert log.size == 2
    assert log.verify(key.public_key()).ok


def test_append_to_read_only_events_file_fails_closed(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    log = make_log(audit_dir, key, 2)
    log.events_path.chmod(0o400)
    try:
        with pytest.raises(AuditWriteError, match=r"could not record 'dataset\.export'"):
            log.append("alice", "dataset.export")
    finally:
        log.events_path.chmod(0o600)


def test_append_fails_closed_when_the_directory_refuses_writes(
    audit_dir: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chmod test above is skipped as root; this one simulates EACCES so it always runs.
    log = make_log(audit_dir, key, 2)
    real_open = os.open

    def refuse(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR) and Path(path).parent == audit_dir:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(AuditWriteError, match="permission denied") as info:
        log.append("alice", "dataset.export")
    assert str(info.value).endswith("the action was not carried out.")
    monkeypatch.undo()
    assert log.size == 2
    assert log.verify(key.public_key()).ok


def test_disk_full_mid_write_leaves_no_partial_line(
    audit_dir: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = make_log(audit_dir, key, 2)
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 100:  # an event line: write part of it, then run out of space
            real_write(fd, bytes(data)[:50])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(AuditWriteError, match="no space left on device"):
        log.append("alice", "dataset.export")
    monkeypatch.undo()
    assert log.verify(key.public_key()).ok
    assert log.append("alice", "dataset.export").seq == 3
    assert log.verify(key.public_key()).ok


def test_append_to_missing_directory_fails_closed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = AuditLog(tmp_path / "nowhere", key)
    with pytest.raises(AuditWriteError, match="the action was not carried out"):
        log.append("alice", "user.add")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(AuditWriteError):
        log.checkpoint()


def test_append_with_unserializable_details_fails_closed(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = AuditLog(audit_dir, key)
    with pytest.raises(AuditWriteError):
        log.append("alice", "user.add", details={"x": float("nan")})
    with pytest.raises(AuditWriteError):
        log.append("alice", "user.add", details={"x": object()})  # type: ignore[dict-item]
    assert log.size == 0


def test_stale_state_is_rebuilt_and_torn_line_dropped(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 3)
    saved_state = log.state_path.read_bytes()
    log.append("alice", "user.add")
    # Crash after the event was fsynced but before the state was saved, then a torn write.
    log.state_path.write_bytes(saved_state)
    with log.events_path.open("ab") as f:
        f.write(b'{"event":{"seq":5')
    event = log.append("alice", "user.update")
    assert event.seq == 5
    assert log.verify(key.public_key()).ok
    log.state_path.unlink()
    assert log.append("alice", "user.update").seq == 6
    assert log.verify(key.public_key()).ok


def test_append_refuses_to_build_on_a_tampered_log(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 4)
    content = lines(log.events_path)
    write_lines(log.events_path, content[:3])
    with pytest.raises(AuditWriteError, match="shorter than recorded"):
        log.append("alice", "user.add")
    write_lines(log.events_path, [*content[:3], content[3].replace("user-4", "user-X")])
    with pytest.raises(AuditWriteError, match="last event changed"):
        log.append("alice", "user.add")


# --- reading, export, proofs ---------------------------------------------------------------------


def test_export_and_load_checkpoint(
    audit_dir: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 5)
    path = tmp_path / "kept" / "cp.json"
    path.parent.mkdir()
    cp = log.export_checkpoint(path)
    assert Checkpoint.from_file(path) == cp
    assert cp.size == 5
    assert log.verify(key.public_key(), against=cp).checkpoints_checked == 2

    with pytest.raises(InvalidInput, match="could not be read"):
        Checkpoint.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": "many"}')
    with pytest.raises(InvalidInput, match="does not hold a valid audit checkpoint"):
        Checkpoint.from_file(bad)


def test_inclusion_and_consistency_proofs_verify(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 13, every=5)
    old = log.latest_checkpoint()
    assert old is not None
    assert old.size == 10
    new = log.checkpoint()
    for seq in (1, 7, 13):
        proof = log.inclusion_proof(seq)
        assert proof.verify(new.root_bytes)
        assert proof.leaf_hash == log.tail()[seq - 1].leaf_hash()
    assert log.inclusion_proof(4, size=10).verify(old.root_bytes)
    assert not log.inclusion_proof(4).verify(old.root_bytes)
    consistency = log.consistency_proof(old.size)
    assert consistency.new_size == 13
    assert consistency.verify(old.root_bytes, new.root_bytes)
    assert not consistency.verify(new.root_bytes, new.root_bytes)
    with pytest.raises(NotFound):
        log.inclusion_proof(14)
    with pytest.raises(InvalidInput):
        log.consistency_proof(14)
    with pytest.raises(InvalidInput):
        log.inclusion_proof(1, size=99)


def test_events_raises_on_damaged_line(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 3)
    content = lines(log.events_path)
    write_lines(log.events_path, [content[0], "garbage\n", content[2]])
    with pytest.raises(CheckFailed, match="Line 2 of the audit log is damaged"):
        log.tail()


# --- tampering: one test per kind, each naming the first bad seq ---------------------------------


def test_tamper_modified_event(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    record = json.loads(content[5])
    assert record["event"]["decision"] == "allow"
    record["event"]["decision"] = "deny"  # still valid JSON and a valid event, but not signed
    content[5] = json.dumps(record) + "\n"
    write_lines(log.events_path, content)
    assert_bad(log.verify(key.public_key()), 6, "Event 6 does not match its signature")


def test_tamper_unparseable_event(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    content[2] = content[2][:40] + "\n"
    write_lines(log.events_path, content)
    assert_bad(log.verify(key.public_key()), 3, "Line 3 of events.jsonl is not a valid")


def test_tamper_deleted_event(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    del content[3]
    write_lines(log.events_path, content)
    report = log.verify(key.public_key())
    assert_bad(report, 4, "Event 4 is missing")
    assert report.size == 9


def test_tamper_inserted_forged_event(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    # The attacker writes a well-formed event with the next seq, signed with their own key.
    forged = AuditEvent(
        seq=7, time=datetime.now(UTC), actor="mallory", action="dataset.export", details={}
    )
    attacker = crypto.generate_signing_key()
    sig = crypto.sign(attacker, b"garrison-audit-event-v1\n" + forged.leaf_hash())
    line = '{"event":' + forged.canonical_bytes().decode() + ',"sig":"' + sig.hex() + '"}\n'
    content.insert(6, line)
    write_lines(log.events_path, content)
    report = log.verify(key.public_key())
    assert_bad(report, 7, "Event 7 does not match its signature")
    assert report.size == 11


def test_tamper_inserted_replayed_event(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    content.insert(6, content[2])  # a genuine, validly signed line copied elsewhere
    write_lines(log.events_path, content)
    assert_bad(log.verify(key.public_key()), 7, "Line 7 holds event 3 where event 7 belongs")


def test_tamper_reordered_events(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10)
    content = lines(log.events_path)
    content[4], content[7] = content[7], content[4]
    write_lines(log.events_path, content)
    assert_bad(log.verify(key.public_key()), 5, "Event 5 is missing: line 5 holds event 8")


def test_tamper_truncated_log_detected_by_stored_checkpoints(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 10, every=5)
    log.checkpoint()
    write_lines(log.events_path, lines(log.events_path)[:7])
    report = log.verify(key.public_key())
    assert_bad(report, 8, "The log ends at event 7 but checkpoint 2 covers 10 events")
    assert report.size == 7


def test_tamper_truncated_log_with_checkpoints_and_state_rolled_back(
    audit_dir: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 7, every=5)
    log.checkpoint()
    saved_checkpoints = log.checkpoints_path.read_bytes()
    saved_state = log.state_path.read_bytes()
    for _ in range(3):
        log.append("alice", "dataset.export")
    kept = log.export_checkpoint(tmp_path / "kept.json")
    assert kept.size == 10

    # Cut the tail and roll checkpoints.jsonl and state.json back to match: self-consistent.
    write_lines(log.events_path, lines(log.events_path)[:7])
    log.checkpoints_path.write_bytes(saved_checkpoints)
    log.state_path.write_bytes(saved_state)
    assert log.verify(key.public_key()).ok  # nothing inside the folder betrays it...
    report = log.verify(key.public_key(), against=Checkpoint.from_file(tmp_path / "kept.json"))
    assert_bad(report, 8, "The log ends at event 7 but the given checkpoint covers 10 events")


def test_tamper_rolled_back_log_detected_only_against_exported_checkpoint(
    audit_dir: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 6, every=4)
    log.checkpoint()
    backup = tmp_path / "old-audit"
    shutil.copytree(audit_dir, backup)
    for _ in range(4):
        log.append("alice", "dataset.export")
    kept = log.export_checkpoint(tmp_path / "kept.json")

    shutil.rmtree(audit_dir)
    shutil.copytree(backup, audit_dir)
    assert log.verify(key.public_key()).ok
    assert_bad(log.verify(key.public_key(), against=kept), 7, "the given checkpoint covers 10")

    # Rolled back and then grown past the kept size: the prefix no longer matches.
    for _ in range(5):
        log.append("mallory", "user.add")
    report = log.verify(key.public_key(), against=kept)
    assert_bad(report, None, "The log's first 10 events do not match the given checkpoint")
    assert report.size == 11


def test_tamper_forged_checkpoint_signature(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10, every=5)
    content = lines(log.checkpoints_path)
    record = json.loads(content[1])
    record["signature"] = crypto.sign(crypto.generate_signing_key(), b"x").hex()
    content[1] = json.dumps(record) + "\n"
    write_lines(log.checkpoints_path, content)
    report = log.verify(key.public_key())
    assert_bad(report, None, "Checkpoint 2 (size 10) has an invalid signature")
    assert report.bad_checkpoint == 2


def test_tamper_modified_checkpoint_root(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 10, every=5)
    content = lines(log.checkpoints_path)
    record = json.loads(content[0])
    record["root"] = "00" * 32
    content[0] = json.dumps(record) + "\n"
    write_lines(log.checkpoints_path, content)
    report = log.verify(key.public_key())
    assert_bad(report, None, "Checkpoint 1 (size 5) has an invalid signature")
    assert report.bad_checkpoint == 1

    # Even a correctly signed checkpoint (a stolen key, a bug) must match the recomputed root.
    wrong = Checkpoint.sign(key, size=5, root=b"\x00" * 32)
    content[0] = wrong.to_json().decode() + "\n"
    write_lines(log.checkpoints_path, content)
    report = log.verify(key.public_key())
    assert_bad(report, None, "Checkpoint 1 (size 5) does not match the log")
    assert report.bad_checkpoint == 1


def test_tamper_forged_against_checkpoint(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 3)
    kept = log.checkpoint()
    forged = kept.model_copy(update={"size": 2})
    assert_bad(log.verify(key.public_key(), against=forged), None, "invalid signature")


def test_verify_with_another_key_fails_at_first_event(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 3)
    other = crypto.generate_signing_key().public_key()
    assert_bad(log.verify(other), 1, "Event 1 does not match its signature")


def test_tamper_torn_last_line(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(audit_dir, key, 3)
    with log.events_path.open("ab") as f:
        f.write(b'{"event":')
    assert_bad(log.verify(key.public_key()), 4, "The last line of events.jsonl (event 4)")


# --- concurrency -------------------------------------------------------------------------------


def _append_many(directory: str, raw_key: bytes, worker: int, count: int) -> None:
    log = AuditLog(Path(directory), crypto.load_private_key(raw_key), checkpoint_every=17)
    for i in range(count):
        log.append(f"worker-{worker}", "search.query", details={"i": i})


def test_concurrent_appends_from_several_processes(audit_dir: Path, key: Ed25519PrivateKey) -> None:
    raw = crypto.private_key_bytes(key, encoding="raw")
    # spawn: each worker is a fresh interpreter, like a server and a CLI appending side by side.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(audit_dir), raw, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    log = AuditLog(audit_dir, key)
    events = log.tail()
    assert [e.seq for e in events] == list(range(1, 201))
    for w in range(4):
        mine = [e.details["i"] for e in events if e.actor == f"worker-{w}"]
        assert mine == list(range(50))  # each process's own events stay in its order
    assert log.size == 200
    report = log.verify(key.public_key())
    assert report.ok
    assert report.size == 200
    assert report.checkpoints_checked == 200 // 17


def test_append_many_is_one_durable_batch_with_per_event_signatures(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = AuditLog(audit_dir, key, checkpoint_every=4)
    log.append("system", "first")
    events = log.append_many(
        "steward",
        [{"action": "ingest.document", "object_id": f"d{i}", "details": {"i": i}} for i in range(5)]
        + [{"action": "ingest.spill", "decision": "deny", "reason": "spill"}],
    )
    assert [e.seq for e in events] == [2, 3, 4, 5, 6, 7]
    assert [e.seq for e in log.events()] == list(range(1, 8))
    assert events[-1].decision == "deny"
    assert log.append_many("steward", []) == []
    # The batch crossed a multiple of checkpoint_every: a checkpoint covers it.
    latest = log.latest_checkpoint()
    assert latest is not None and latest.size == 7
    state = json.loads(log.state_path.read_text())
    assert state["size"] == 7
    assert state["events_bytes"] == log.events_path.stat().st_size
    assert log.append("system", "after").seq == 8
    assert log.verify(key.public_key()).ok


def test_append_many_fails_closed_and_writes_nothing(
    audit_dir: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(audit_dir, key, 2)
    before = log.events_path.read_bytes()
    with pytest.raises(AuditWriteError):
        log.append_many("steward", [{"action": "ok"}, {"object_id": "no action"}])
    with pytest.raises(AuditWriteError):
        log.append_many("steward", [{"action": "ok"}, {"action": "x", "details": {"b": object()}}])
    assert log.events_path.read_bytes() == before
    assert log.verify(key.public_key()).ok
