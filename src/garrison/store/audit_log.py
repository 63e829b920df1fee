"""The audit log on disk: append-only events, a Merkle tree over them, signed checkpoints.

Layout of the audit directory (``<workspace>/audit/``), all files 0600::

    events.jsonl       one line per event: {"event": <canonical event JSON>, "sig": "<hex>"}
                       sig = Ed25519(b"garrison-audit-event-v1\\n" || leaf hash)
    checkpoints.jsonl  one signed checkpoint (tree head) per line, canonical JSON
    state.json         {"format", "size", "frontier", "last_leaf", "events_bytes"}: a cache that
                       lets append run in O(log n); verify never reads it
    lock               taken with flock(LOCK_EX) by writers, so processes can append concurrently

Fail closed: :meth:`AuditLog.append` either returns after the event is durably on disk (written
and fsynced) or raises :class:`~garrison.core.errors.AuditWriteError`; callers carry out an
action only after it returns.

Tamper evidence: each event is signed, so a modified or forged event is named by its sequence
number; sequence numbers are gap-free, so deleted, inserted and reordered lines are named too;
checkpoints commit to the Merkle root, so truncation is caught while checkpoints survive; and a
checkpoint exported and kept elsewhere (``verify(..., against=...)``) catches truncation and
rollback even when every file in the directory was rewritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import JsonValue, ValidationError

from garrison.core.clock import utc_now
from garrison.core.errors import (
    AuditWriteError,
    CheckFailed,
    EnvironmentProblem,
    GarrisonError,
    InvalidInput,
    NotFound,
    disk_full,
)
from garrison.security import crypto, merkle
from garrison.security.audit import (
    AuditAction,
    AuditEvent,
    Checkpoint,
    Decision,
    canonical_json,
    event_signature_message,
)
from garrison.store.audit_group import GroupCommit
from garrison.store.audit_verify import VerifyReport, verify_log

__all__ = [
    "CHECKPOINTS_FILE",
    "EVENTS_FILE",
    "LOCK_FILE",
    "STATE_FILE",
    "AuditLog",
    "VerifyReport",
]

EVENTS_FILE = "events.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
_STATE_FORMAT = 1
_FILE_MODE = 0o600


@dataclass
class _State:
    size: int
    frontier: merkle.Frontier
    last_leaf: bytes | None
    events_bytes: int


class _Damaged(Exception):
    """Internal: the on-disk log cannot be appended to safely (message is one sentence)."""


class AuditLog:
    """The append-only, signed, Merkle-hashed audit log kept in ``directory``.

    ``directory`` is the audit folder itself (``<workspace>/audit``); it must already exist (the
    workspace creates it), because a missing audit folder must stop actions, not be recreated.
    Events are signed and checkpoints written with ``signing_key``; a checkpoint is written
    automatically after every ``checkpoint_every`` events. Safe for concurrent appends from
    several processes. The constructor does no I/O.
    """

    def __init__(
        self, directory: Path, signing_key: Ed25519PrivateKey, *, checkpoint_every: int = 100
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.directory = Path(directory)
        self.checkpoint_every = checkpoint_every
        self._key = signing_key
        self._group = GroupCommit(self._write_entries, self._append_error)

    def _raise_if_full(self, exc: BaseException) -> None:
        """A full disk is said as such, with where (still an ``AuditWriteError``: the action
        that needed the record was not carried out)."""
        full = disk_full(exc, f"the audit log ({self.directory})")
        if full is not None:
            raise AuditWriteError(
                f"{full.message[:-1]}; the action that needed the record was not carried out."
            ) from exc

    # --- paths -----------------------------------------------------------------------------

    @property
    def events_path(self) -> Path:
        """Path of ``events.jsonl``."""
        return self.directory / EVENTS_FILE

    @property
    def checkpoints_path(self) -> Path:
        """Path of ``checkpoints.jsonl``."""
        return self.directory / CHECKPOINTS_FILE

    @property
    def state_path(self) -> Path:
        """Path of ``state.json``."""
        return self.directory / STATE_FILE

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half of the signing key (what verifiers need)."""
        return self._key.public_key()

    # --- writing ---------------------------------------------------------------------------

    def append(
        self,
        actor: str,
        action: AuditAction,
        *,
        object_id: str | None = None,
        object_marking: str | None = None,
        decision: Decision = "allow",
        reason: str | None = None,
        details: dict[str, JsonValue] | None = None,
    ) -> AuditEvent:
        """Record one event durably and return it (with its assigned ``seq`` and ``time``).

        Raises ``AuditWriteError`` on any failure (disk full, permissions, missing or damaged
        log, an unserializable ``details``); the caller must then not carry out the action.
        Concurrent calls in one process share one write and one fsync
        (:mod:`garrison.store.audit_group`); each still returns only once its event is durable.
        """
        spec = {
            "action": action,
            "object_id": object_id,
            "object_marking": object_marking,
            "decision": decision,
            "reason": reason,
            "details": details,
        }
        try:
            _event(actor, spec, seq=1, time=utc_now()).canonical_bytes()  # fails alone, early
        except (ValueError, TypeError, KeyError) as exc:
            raise self._append_error((actor, spec), exc) from exc
        return self._group.submit(actor, spec)

    def _append_error(self, entry: tuple[str, Mapping[str, Any]], exc: BaseException) -> Exception:
        actor, spec = entry
        if isinstance(exc, AuditWriteError):
            return exc
        full = disk_full(exc, f"the audit log ({self.directory})")
        if full is not None:
            error = AuditWriteError(
                f"{full.message[:-1]}; the action that needed the record was not carried out."
            )
        else:
            error = AuditWriteError(
                f"The audit log could not record {str(spec.get('action'))!r} by {actor!r} "
                f"({_why(exc)}); the action was not carried out."
            )
        error.__cause__ = exc
        return error

    def append_many(self, actor: str, events: Sequence[Mapping[str, Any]]) -> list[AuditEvent]:
        """Record several events durably with one write and one fsync; all or none.

        Each mapping holds :meth:`append`'s keyword arguments (``action`` required). The events
        take consecutive sequence numbers under one lock and are each signed exactly as
        :meth:`append` signs them, so verify sees no difference. Raises ``AuditWriteError`` on
        any failure, and then none of the events is in the log.
        """
        if not events:
            return []
        first_action = str(events[0].get("action"))
        try:
            return self._write_entries([(actor, spec) for spec in events])
        except (OSError, ValueError, TypeError, KeyError, _Damaged) as exc:
            self._raise_if_full(exc)
            raise AuditWriteError(
                f"The audit log could not record {len(events)} events, the first "
                f"{first_action!r}, by {actor!r} ({_why(exc)}); the actions were not carried out."
            ) from exc

    def _write_entries(self, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[AuditEvent]:
        """Append ``(actor, spec)`` entries under the lock with one write and one fsync; all or
        none. Raises what failed (OSError, ValueError, ``_Damaged``...) untranslated."""
        with self._lock():
            state = self._load_state_for_write()
            now = utc_now()
            out: list[AuditEvent] = []
            leaves: list[bytes] = []
            chunks: list[bytes] = []
            for offset, (actor, spec) in enumerate(entries, start=1):
                event = _event(actor, spec, seq=state.size + offset, time=now)
                entry = event.canonical_bytes()
                leaf = merkle.leaf_hash(entry)
                sig = crypto.sign(self._key, event_signature_message(leaf))
                # Built by hand rather than re-dumped so the stored event is byte-for-byte the
                # canonical entry that was hashed and signed.
                chunks.append(b'{"event":' + entry + b',"sig":"' + sig.hex().encode() + b'"}\n')
                leaves.append(leaf)
                out.append(event)
            data = b"".join(chunks)
            self._append_durably(self.events_path, data, state.events_bytes)
            before = state.size
            for leaf in leaves:
                state.frontier.append(leaf)
            state.size += len(leaves)
            state.last_leaf = leaves[-1]
            state.events_bytes += len(data)
            self._save_state(state)
            if state.size // self.checkpoint_every > before // self.checkpoint_every:
                self._write_checkpoint(state)
        return out

    def checkpoint(self) -> Checkpoint:
        """Sign and append a checkpoint of the current size and root, and return it.

        If the latest stored checkpoint already covers the current tree, it is returned and
        nothing is written. Raises ``AuditWriteError`` when the checkpoint cannot be written.
        """
        try:
            with self._lock():
                state = self._load_state_for_write()
                try:
                    latest = self._latest_checkpoint_or_none()
                except _Damaged:
                    # A damaged line is verify's to report; a fresh checkpoint after it is sound.
                    latest = None
                if (
                    latest is not None
                    and latest.size == state.size
                    and latest.root_bytes == state.frontier.root()
                    and latest.key_id == crypto.fingerprint(self.public_key)
                ):
                    return latest
                return self._write_checkpoint(state)
        except (OSError, ValueError, _Damaged) as exc:
            self._raise_if_full(exc)
            raise AuditWriteError(
                f"The audit log could not write a checkpoint ({_why(exc)})."
            ) from exc

    def export_checkpoint(self, path: Path) -> Checkpoint:
        """Checkpoint the log now and write that checkpoint to ``path`` as JSON.

        Keep the file away from the workspace: ``verify(..., against=Checkpoint.from_file(path))``
        then detects truncation or rollback even if the whole audit folder is replaced.
        """
        cp = self.checkpoint()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(cp.to_json() + b"\n")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise EnvironmentProblem(
                f"The checkpoint could not be written to {path} ({_why(exc)})."
            ) from exc
        return cp

    # --- reading ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of events in the log (from the state cache when it matches the file)."""
        state = self._read_state()
        try:
            actual = self.events_path.stat().st_size
        except FileNotFoundError:
            return 0
        if state is not None and state.events_bytes == actual:
            return state.size
        return sum(1 for _, _, complete in _lines(self.events_path) if complete)

    def events(self) -> Iterator[AuditEvent]:
        """Yield every event in file order.

        A final line still being written by another process is skipped. Raises ``CheckFailed``
        on a damaged line (run :meth:`verify` to locate tampering precisely).
        """
        for lineno, raw, complete in _lines(self.events_path):
            if not complete:
                return
            try:
                event, _ = _parse_event_line(raw)
            except ValueError as exc:
                raise CheckFailed(
                    f"Line {lineno} of the audit log is damaged; run `garrison audit verify`."
                ) from exc
            yield event

    def tail(self, n: int | None = None) -> list[AuditEvent]:
        """Return the last ``n`` events (all of them when ``n`` is None), oldest first."""
        if n is None:
            return list(self.events())
        if n <= 0:
            return []
        return list(deque(self.events(), maxlen=n))

    def latest_checkpoint(self) -> Checkpoint | None:
        """Return the last stored checkpoint, or None if there is none.

        Raises ``CheckFailed`` when the last checkpoint line is damaged. The checkpoint's
        signature is not checked here; :meth:`verify` does that.
        """
        try:
            return self._latest_checkpoint_or_none()
        except _Damaged as exc:
            raise CheckFailed(str(exc)) from exc

    def inclusion_proof(self, seq: int, *, size: int | None = None) -> merkle.InclusionProof:
        """Return a proof that event ``seq`` is in the tree of the first ``size`` events.

        ``size`` defaults to the current log size; pass a checkpoint's size to verify the proof
        with ``proof.verify(checkpoint.root_bytes)``. Raises ``NotFound`` for a ``seq`` outside
        the tree and ``InvalidInput`` for a ``size`` larger than the log.
        """
        leaves = self._leaf_hashes()
        tree_size = _check_size(size, len(leaves))
        if not 1 <= seq <= tree_size:
            raise NotFound(f"Event {seq} is not in an audit tree of {tree_size} events.")
        path = merkle.inclusion_proof(leaves[:tree_size], seq - 1)
        return merkle.InclusionProof(
            index=seq - 1, size=tree_size, leaf_hash=leaves[seq - 1], path=tuple(path)
        )

    def consistency_proof(
        self, old_size: int, new_size: int | None = None
    ) -> merkle.ConsistencyProof:
        """Return a proof that the log's first ``old_size`` events are a prefix of its first
        ``new_size`` (default: all) events; verify with ``proof.verify(old_root, new_root)``.

        Raises ``InvalidInput`` when the sizes are out of order or larger than the log.
        """
        leaves = self._leaf_hashes()
        tree_size = _check_size(new_size, len(leaves))
        if not 0 <= old_size <= tree_size:
            raise InvalidInput(
                f"The old size {old_size} must be between 0 and the new size {tree_size}."
            )
        path = merkle.consistency_proof(leaves[:tree_size], old_size)
        return merkle.ConsistencyProof(old_size=old_size, new_size=tree_size, path=tuple(path))

    # --- verification ----------------------------------------------------------------------

    def verify(
        self, public_key: Ed25519PublicKey, *, against: Checkpoint | None = None
    ) -> VerifyReport:
        """Recompute the whole log from ``events.jsonl`` and check it (never trusts state.json);
        see :func:`garrison.store.audit_verify.verify_log`."""
        return verify_log(self, public_key, against=against)

    # --- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # The lock file is separate from events.jsonl so that readers and verify never contend
        # with the data file's own handles, and so it can be created without touching the log.
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _snapshot(self) -> tuple[int, bytes]:
        """Return (bytes of events.jsonl to read, contents of checkpoints.jsonl) at one instant.

        Taken under a shared lock when possible, so a concurrent append is either wholly in the
        snapshot or wholly out; the events file only grows, so reading up to the recorded size
        later sees exactly the snapshot. Verifying a read-only copy works without the lock.
        """
        lock_fd: int | None = None
        with contextlib.suppress(OSError):
            lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDONLY)
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
        try:
            try:
                events_size = self.events_path.stat().st_size
            except FileNotFoundError:
                events_size = 0
            try:
                checkpoint_data = self.checkpoints_path.read_bytes()
            except FileNotFoundError:
                checkpoint_data = b""
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        return events_size, checkpoint_data

    def _read_state(self) -> _State | None:
        """Parse state.json; None when missing or malformed (it is only a cache)."""
        try:
            raw = json.loads(self.state_path.read_bytes())
            if raw.get("format") != _STATE_FORMAT:
                return None
            size = int(raw["size"])
            last = raw["last_leaf"]
            return _State(
                size=size,
                frontier=merkle.Frontier.from_hex(size, raw["frontier"]),
                last_leaf=bytes.fromhex(last) if last is not None else None,
                events_bytes=int(raw["events_bytes"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _load_state_for_write(self) -> _State:
        """Return the state to append from, rebuilding it when the cache is stale (lock held).

        The cache is trusted only if it matches the events file's length and last line; a
        longer file means a crash between writing an event and saving the state, so the state
        is rebuilt; a shorter file or a different last line means the log was changed behind
        our back, and appending would bury that, so we refuse.
        """
        if not self.directory.is_dir():
            raise FileNotFoundError(2, "the audit directory does not exist", str(self.directory))
        state = self._read_state()
        try:
            actual = self.events_path.stat().st_size
        except FileNotFoundError:
            actual = 0
        if state is None or actual > state.events_bytes:
            return self._rebuild_state()
        if actual < state.events_bytes:
            raise _Damaged("the events file is shorter than recorded; run `garrison audit verify`")
        if state.size and _last_leaf(self.events_path) != state.last_leaf:
            raise _Damaged(
                "the last event changed since it was written; run `garrison audit verify`"
            )
        return state

    def _rebuild_state(self) -> _State:
        """Recompute the state by reading every event (lock held); drop a torn final line."""
        frontier = merkle.Frontier()
        public_key = self.public_key
        last: bytes | None = None
        offset = 0
        for lineno, raw, complete in _lines(self.events_path):
            if not complete:
                # A line without its newline is a write that crashed before fsync returned, so
                # no caller ever acted on it: remove it rather than leave the log unparseable.
                with open(self.events_path, "r+b") as f:
                    f.truncate(offset)
                    os.fsync(f.fileno())
                break
            try:
                event, sig = _parse_event_line(raw)
            except ValueError as exc:
                raise _Damaged(
                    f"line {lineno} of the events file is damaged; run `garrison audit verify`"
                ) from exc
            last = event.leaf_hash()
            # Lines past the cached state were not seen by this process: accept them only if
            # they are in sequence and signed by us, so a forged line is never built upon.
            if event.seq != frontier.size + 1 or not crypto.verify_signature(
                public_key, event_signature_message(last), sig
            ):
                raise _Damaged(
                    f"line {lineno} of the events file is out of sequence or not signed by this "
                    "workspace; run `garrison audit verify`"
                )
            frontier.append(last)
            offset += len(raw) + 1
        state = _State(size=frontier.size, frontier=frontier, last_leaf=last, events_bytes=offset)
        self._save_state(state)
        return state

    def _save_state(self, state: _State) -> None:
        """Rewrite state.json atomically (lock held).

        Not fsynced: the state is a cache checked against the events file on every append, so a
        lost or stale state after a crash is rebuilt rather than trusted.
        """
        data = canonical_json(
            {
                "format": _STATE_FORMAT,
                "size": state.size,
                "frontier": state.frontier.to_hex(),
                "last_leaf": state.last_leaf.hex() if state.last_leaf is not None else None,
                "events_bytes": state.events_bytes,
            }
        )
        tmp = self.directory / (STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        try:
            _write_all(fd, data + b"\n")
        finally:
            os.close(fd)
        os.replace(tmp, self.state_path)

    def _write_checkpoint(self, state: _State) -> Checkpoint:
        """Sign the state's tree head and append it to checkpoints.jsonl (lock held)."""
        cp = Checkpoint.sign(self._key, size=state.size, root=state.frontier.root())
        path = self.checkpoints_path
        try:
            end = path.stat().st_size
        except FileNotFoundError:
            end = 0
        self._append_durably(path, cp.to_json() + b"\n", end)
        return cp

    def _append_durably(self, path: Path, line: bytes, expected_end: int) -> None:
        """Append ``line`` to ``path`` and fsync; on failure, cut any partial write (lock held)."""
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
        try:
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                # Best effort: leave no half line behind (e.g. disk full mid-write), so the log
                # stays parseable and the failed event simply never happened.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, expected_end)
                raise
        finally:
            os.close(fd)
        if created:
            # Make the new directory entry itself durable, not only the file's contents.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _latest_checkpoint_or_none(self) -> Checkpoint | None:
        raw = _last_line(self.checkpoints_path)
        if raw is None:
            return None
        try:
            return Checkpoint.from_json(raw)
        except ValueError as exc:
            raise _Damaged(
                "The latest audit checkpoint is damaged; run `garrison audit verify`."
            ) from exc

    def _leaf_hashes(self) -> list[bytes]:
        return [event.leaf_hash() for event in self.events()]


# --- helpers -------------------------------------------------------------------------------


def _event(actor: str, spec: Mapping[str, Any], *, seq: int, time: datetime) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        time=time,
        actor=actor,
        action=spec["action"],
        object_id=spec.get("object_id"),
        object_marking=spec.get("object_marking"),
        decision=spec.get("decision", "allow"),
        reason=spec.get("reason"),
        details=spec.get("details") or {},
    )


def _lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (1-based line number, line without newline, whether it ended with a newline).

    Reads at most ``limit`` bytes; a missing file has no lines.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed by the with below; missing file is empty
    except FileNotFoundError:
        return
    with f:
        offset = 0
        for lineno, raw in enumerate(f, start=1):
            if limit is not None and offset + len(raw) > limit:
                raw = raw[: limit - offset]
                if raw:
                    yield lineno, raw.rstrip(b"\n"), False
                return
            offset += len(raw)
            complete = raw.endswith(b"\n")
            yield lineno, raw[:-1] if complete else raw, complete


def _last_line(path: Path) -> bytes | None:
    """Return the last complete line of ``path`` (without newline), or None if there is none."""
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed by the with below; missing file is empty
    except FileNotFoundError:
        return None
    with f:
        end = f.seek(0, os.SEEK_END)
        pos, buf = end, b""
        while pos > 0:
            step = min(4096, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            # Drop anything after the final newline: a line still being written is not complete.
            stop = buf.rfind(b"\n")
            if stop < 0:
                continue
            start = buf.rfind(b"\n", 0, stop)
            if start >= 0 or pos == 0:
                return buf[start + 1 : stop]
        return None


def _last_leaf(path: Path) -> bytes | None:
    raw = _last_line(path)
    if raw is None:
        return None
    try:
        event, _ = _parse_event_line(raw)
    except ValueError:
        return None
    return event.leaf_hash()


def _parse_event_line(raw: bytes) -> tuple[AuditEvent, bytes]:
    """Parse one events.jsonl line into (event, signature); ``ValueError`` when malformed."""
    obj: Any = json.loads(raw)
    if not isinstance(obj, dict) or set(obj) != {"event", "sig"} or not isinstance(obj["sig"], str):
        raise ValueError("not an audit event record")
    sig = bytes.fromhex(obj["sig"])
    return AuditEvent.model_validate(obj["event"]), sig


def _check_size(size: int | None, available: int) -> int:
    if size is None:
        return available
    if not 0 <= size <= available:
        raise InvalidInput(f"The audit log has {available} events, so a tree of {size} is unknown.")
    return size


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``; ``os.write`` may write less than asked (e.g. near a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _why(exc: BaseException) -> str:
    """A short lowercase reason for an error message, without a trailing period."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror.lower()
        if exc.filename:
            text += f": {exc.filename}"
        return text
    if isinstance(exc, ValidationError):
        return "the event is not valid"
    if isinstance(exc, GarrisonError):
        return exc.message.rstrip(".")
    return str(exc).rstrip(".") or type(exc).__name__
