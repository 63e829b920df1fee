"""Verifying the audit log and the catalog's marking bindings: what ``garrison audit verify``
runs. The durable writing side is :mod:`garrison.store.audit_log`.

The log is recomputed from ``events.jsonl`` alone (``state.json`` is never trusted): signatures,
gap-free sequence numbers, Merkle roots against every signed checkpoint, and optionally against
a checkpoint kept elsewhere. Then every row of every bound catalog table is checked against its
binding (:mod:`garrison.store.bindings`), and the first bad row is named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from sqlalchemy.orm import Session as OrmSession

from garrison.security import crypto, merkle
from garrison.security.audit import Checkpoint, event_signature_message
from garrison.store.bindings import Binder, count_checked, first_bad_binding

if TYPE_CHECKING:
    from garrison.store.audit_log import AuditLog

__all__ = ["VerifyReport", "check_bindings", "verify_log"]


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_log` (and :func:`check_bindings`).

    ``size`` is the number of event lines found; ``first_bad_seq`` the first sequence number whose
    record is missing, altered or out of place (``None`` when the events themselves are sound but
    a checkpoint is not); ``problem`` one sentence (``None`` when ``ok``); ``checkpoints_checked``
    how many checkpoints (stored, plus ``against``) were verified; ``bad_checkpoint`` the 1-based
    line in ``checkpoints.jsonl`` of a bad stored checkpoint.
    """

    ok: bool
    size: int
    first_bad_seq: int | None
    problem: str | None
    checkpoints_checked: int
    bad_checkpoint: int | None = None
    #: Whether the log itself is sound (``ok`` may still be False for a bad binding).
    log_ok: bool = True
    #: ``table:id`` of the first catalog row whose marking binding does not verify.
    bad_binding: str | None = None
    #: How many bound catalog rows were checked (all of them when every one verifies).
    bindings_checked: int = 0


class _Tamper(Exception):
    """Internal: verify found a problem; carries the report fields."""

    def __init__(
        self, problem: str, first_bad_seq: int | None, bad_checkpoint: int | None = None
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.first_bad_seq = first_bad_seq
        self.bad_checkpoint = bad_checkpoint


def _parse_checkpoints(data: bytes, public_key: Ed25519PublicKey) -> list[tuple[int, Checkpoint]]:
    """Parse and signature-check every stored checkpoint; raise ``_Tamper`` at the first bad one."""
    from garrison.store.audit_log import CHECKPOINTS_FILE

    result: list[tuple[int, Checkpoint]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw:
            continue
        try:
            cp = Checkpoint.from_json(raw)
        except ValidationError:
            raise _Tamper(
                f"Checkpoint {lineno} in {CHECKPOINTS_FILE} is not a valid checkpoint.",
                None,
                lineno,
            ) from None
        if not cp.verify(public_key):
            raise _Tamper(
                f"Checkpoint {lineno} (size {cp.size}) has an invalid signature: it was forged, "
                "altered, or signed by another key.",
                None,
                lineno,
            )
        result.append((lineno, cp))
    return result


def _check_roots(items: list[tuple[Checkpoint, int | None]], frontier: merkle.Frontier) -> int:
    """Compare checkpoints of the frontier's size with its root; return how many matched."""
    if not items:
        return 0
    current = frontier.root()
    for cp, line in items:
        if cp.root_bytes != current:
            if line is None:
                problem = (
                    f"The log's first {cp.size} events do not match the given checkpoint, so "
                    "the log was rewritten or rolled back."
                )
            else:
                problem = (
                    f"Checkpoint {line} (size {cp.size}) does not match the log: its root "
                    f"differs from the root of the first {cp.size} events."
                )
            raise _Tamper(problem, None, line)
    return len(items)


def verify_log(
    log: AuditLog, public_key: Ed25519PublicKey, *, against: Checkpoint | None = None
) -> VerifyReport:
    """Recompute the whole log from ``events.jsonl`` and check it (never trusts state.json).

    Checks, reporting the first failure: every stored checkpoint is well formed and signed by
    ``public_key``; every event line parses, has ``seq`` exactly one more than the previous
    line, and carries a valid signature; each checkpoint's root equals the recomputed root at
    its size; the log is not shorter than any checkpoint. With ``against`` (a checkpoint kept
    elsewhere), it must be validly signed and match the log's prefix of its size.
    """
    # The log module reads the files; imported here because it imports this module.
    from garrison.store.audit_log import EVENTS_FILE, _lines, _parse_event_line

    events_limit, checkpoint_data = log._snapshot()
    checked = 0
    try:
        checkpoints = _parse_checkpoints(checkpoint_data, public_key)
        # Tree sizes to check roots at: (size, checkpoint, its line or None for `against`).
        targets: dict[int, list[tuple[Checkpoint, int | None]]] = {}
        for lineno, cp in checkpoints:
            targets.setdefault(cp.size, []).append((cp, lineno))
        if against is not None:
            if not against.verify(public_key):
                raise _Tamper(
                    "The checkpoint given to compare against has an invalid signature or "
                    "was signed by another key.",
                    None,
                )
            targets.setdefault(against.size, []).append((against, None))

        frontier = merkle.Frontier()
        checked += _check_roots(targets.get(0, []), frontier)
        for lineno, raw, complete in _lines(log.events_path, events_limit):
            expected = frontier.size + 1
            if not complete:
                raise _Tamper(
                    f"The last line of {EVENTS_FILE} (event {expected}) is incomplete.",
                    expected,
                )
            try:
                event, sig = _parse_event_line(raw)
            except ValueError:
                raise _Tamper(
                    f"Line {lineno} of {EVENTS_FILE} is not a valid audit record, so event "
                    f"{expected} is damaged.",
                    expected,
                ) from None
            if event.seq > expected:
                raise _Tamper(
                    f"Event {expected} is missing: line {lineno} holds event {event.seq}, "
                    "so events were deleted or reordered.",
                    expected,
                )
            if event.seq < expected:
                raise _Tamper(
                    f"Line {lineno} holds event {event.seq} where event {expected} belongs, "
                    "so an event was inserted or the lines were reordered.",
                    expected,
                )
            leaf = event.leaf_hash()
            if not crypto.verify_signature(public_key, event_signature_message(leaf), sig):
                raise _Tamper(
                    f"Event {expected} does not match its signature: it was modified or forged.",
                    expected,
                )
            frontier.append(leaf)
            checked += _check_roots(targets.get(frontier.size, []), frontier)

        valid = frontier.size
        longest = max(targets, default=0)
        if longest > valid:
            cp, line = max(
                (item for size, items in targets.items() if size > valid for item in items),
                key=lambda item: item[0].size,
            )
            which = "the given checkpoint" if line is None else f"checkpoint {line}"
            raise _Tamper(
                f"The log ends at event {valid} but {which} covers {cp.size} events, so the "
                "log was truncated or rolled back.",
                valid + 1,
                line,
            )
    except _Tamper as tamper:
        # Keep counting lines so ``size`` describes the file even when verification stopped.
        counted = sum(1 for _ in _lines(log.events_path, events_limit))
        return VerifyReport(
            ok=False,
            size=counted,
            first_bad_seq=tamper.first_bad_seq,
            problem=tamper.problem,
            checkpoints_checked=checked,
            bad_checkpoint=tamper.bad_checkpoint,
            log_ok=False,
        )
    return VerifyReport(
        ok=True, size=valid, first_bad_seq=None, problem=None, checkpoints_checked=checked
    )


def check_bindings(report: VerifyReport, binder: Binder, orm: OrmSession) -> VerifyReport:
    """``report`` with the catalog's bindings checked too: not ok, naming the first bad row, when
    a binding does not verify (a problem in the log itself stays the one reported)."""
    bad = first_bad_binding(binder, orm)
    if bad is None:
        return dataclasses.replace(report, bindings_checked=count_checked(orm))
    table, record_id, checked = bad
    name = f"{table}:{record_id}"
    problem = report.problem or (
        f"The {_ROW_NAMES.get(table, table)} {record_id} (table {table}) does not match its "
        "binding: its marking or content was changed outside Garrison, so it is unreadable."
    )
    return dataclasses.replace(
        report, ok=False, problem=problem, bad_binding=name, bindings_checked=checked
    )


_ROW_NAMES = {
    "markings": "marking",
    "documents": "document",
    "elements": "element",
    "element_states": "element state",
    "chunks": "chunk",
    "findings": "finding",
    "dataset_versions": "dataset version",
}
