"""Catalog access for evaluation runs: runs, their items' results, and the response cache.

Every table is marked and bound. A run is marked with the join of its items' and responses'
markings (what a full report on it reveals) and is listed, shown or reported only to a reader
who dominates that marking; to anyone else it looks missing. An item result is marked with its
item's marking joined with its response's and is read under that marking only. Transcripts and
cached responses are sealed (AES-256-GCM under a random data key wrapped by the workspace master
key), bound by associated data to the run and item, or to the cache key, so a sealed value
copied to another row fails to open.

Every query that returns marked rows goes through :meth:`Session.readable`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import CheckFailed, InvalidInput, NotFound
from garrison.security import crypto
from garrison.security.markings import Marking, join
from garrison.store.keys import read_master_key
from garrison.store.models import EvalCacheRow, EvalRunItemRow, EvalRunRow
from garrison.store.session import Session

__all__ = [
    "Sealer",
    "add_run",
    "all_item_rows",
    "cache_get",
    "cache_put",
    "find_run",
    "item_row_id",
    "readable_item_rows",
    "readable_runs",
    "recorded_item_ids",
    "remove_error_items",
    "run_row",
    "runs_with_readable_items",
    "set_status",
    "write_item",
]

_MAGIC = b"GRE1"
_REF_MIN = 6


class Sealer:
    """Seals and opens evaluation values with the workspace master key."""

    def __init__(self, session: Session) -> None:
        ws = session.workspace
        self._master = read_master_key(ws.root / ws.config.master_key_file)

    def seal(self, value: Any, aad: bytes) -> str:
        payload = json.dumps(value, sort_keys=True, default=str).encode("utf-8")
        data_key = crypto.generate_key()
        wrapped = crypto.wrap_key(self._master, data_key, aad)
        sealed = _MAGIC + struct.pack(">H", len(wrapped)) + wrapped
        sealed += crypto.seal(data_key, payload, aad)
        return base64.b64encode(sealed).decode("ascii")

    def open(self, text: str, aad: bytes, what: str) -> Any:
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
            if raw[:4] != _MAGIC or len(raw) < 6:
                raise ValueError("bad header")
            (n,) = struct.unpack(">H", raw[4:6])
            data_key = crypto.unwrap_key(self._master, raw[6 : 6 + n], aad)
            return json.loads(crypto.open_sealed(data_key, raw[6 + n :], aad))
        except Exception as exc:  # any failure to open is an integrity failure
            raise CheckFailed(f"The sealed {what} fails its integrity check.") from exc


def transcript_aad(run_id: str, item_id: str) -> bytes:
    return b"garrison-eval-transcript\x00" + run_id.encode() + b"\x00" + item_id.encode()


def cache_aad(key: str) -> bytes:
    return b"garrison-eval-cache\x00" + key.encode("ascii")


def item_row_id(run_id: str, item_id: str) -> str:
    return hashlib.sha256(f"{run_id}\x00{item_id}".encode()).hexdigest()[:32]


# -- runs ---------------------------------------------------------------------------------------


def add_run(orm: OrmSession, session: Session, row: EvalRunRow, marking: Marking) -> None:
    row.marking_id = session.intern_marking(orm, marking)
    orm.add(row)


def readable_runs(session: Session, orm: OrmSession) -> list[tuple[EvalRunRow, Marking]]:
    """Runs whose marking the subject dominates, newest first."""
    query = select(EvalRunRow).order_by(EvalRunRow.created_at.desc(), EvalRunRow.id)
    out = []
    for row in orm.scalars(session.readable(orm, query, EvalRunRow.marking_id)):
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            out.append((row, marking))
    return out


def find_run(session: Session, orm: OrmSession, ref: str) -> tuple[EvalRunRow, Marking]:
    """The readable run ``ref`` names (its id or a prefix of at least 6 hex digits, with an
    optional ``RUN-`` or ``run:`` prefix); NotFound otherwise, exactly as for a missing one."""
    text = ref.strip().lower()
    for prefix in ("run-", "run:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if len(text) < _REF_MIN or len(text) > 32 or any(c not in "0123456789abcdef" for c in text):
        raise NotFound(f"No evaluation run {ref[:64]!r}.")
    query = select(EvalRunRow).where(EvalRunRow.id.startswith(text, autoescape=True))
    rows = list(orm.scalars(session.readable(orm, query, EvalRunRow.marking_id).limit(2)))
    if not rows:
        raise NotFound(f"No evaluation run {ref[:64]!r}.")
    if len(rows) > 1:
        raise InvalidInput(f"Run {ref!r} is ambiguous: give more of its id.")
    marking = session.marking_of(orm, rows[0].marking_id)
    if marking is None:
        raise NotFound(f"No evaluation run {ref[:64]!r}.")
    return rows[0], marking


def set_status(
    orm: OrmSession, session: Session, row: EvalRunRow, status: str, marking: Marking
) -> None:
    row.status = status
    row.marking_id = session.intern_marking(orm, marking)
    if status == "complete":
        row.finished_at = utc_now()


# -- items --------------------------------------------------------------------------------------


def write_item(
    orm: OrmSession,
    session: Session,
    sealer: Sealer,
    run: EvalRunRow,
    values: Mapping[str, Any],
    marking: Marking,
    transcript: Mapping[str, Any],
) -> None:
    """Add one item's result to ``run`` and raise the run's marking to cover it."""
    row_id = item_row_id(run.id, str(values["item_id"]))
    orm.execute(delete(EvalRunItemRow).where(EvalRunItemRow.id == row_id))
    row = EvalRunItemRow(
        id=row_id,
        run_id=run.id,
        marking_id=session.intern_marking(orm, marking),
        transcript=sealer.seal(dict(transcript), transcript_aad(run.id, str(values["item_id"]))),
        created_at=utc_now(),
        **values,
    )
    orm.add(row)
    current = session.marking_of(orm, run.marking_id)
    raised = join(current, marking) if current is not None else marking
    run.marking_id = session.intern_marking(orm, raised)


def recorded_item_ids(orm: OrmSession, run_id: str, statuses: Sequence[str]) -> set[str]:
    """Item ids ``run_id`` already holds results for (ids only: nothing marked is returned)."""
    query = select(EvalRunItemRow.item_id).where(
        EvalRunItemRow.run_id == run_id, EvalRunItemRow.status.in_(list(statuses))
    )
    return set(orm.scalars(query))


def remove_error_items(orm: OrmSession, run_id: str) -> None:
    orm.execute(
        delete(EvalRunItemRow).where(
            EvalRunItemRow.run_id == run_id, EvalRunItemRow.status == "error"
        )
    )


def runs_with_readable_items(session: Session, orm: OrmSession, prefix: str) -> set[str]:
    """The ids starting with ``prefix`` of runs holding at least one item result the session
    may read (the run itself may be marked higher)."""
    query = select(EvalRunItemRow.run_id).where(
        EvalRunItemRow.run_id.startswith(prefix, autoescape=True)
    )
    return set(orm.scalars(session.readable(orm, query, EvalRunItemRow.marking_id)))


def run_row(orm: OrmSession, run_id: str) -> EvalRunRow | None:
    """The run row ``run_id`` (no access check: callers decide what of it to show)."""
    return orm.scalar(select(EvalRunRow).where(EvalRunRow.id == run_id))


def all_item_rows(orm: OrmSession, run_id: str) -> list[EvalRunItemRow]:
    """Every item row of a run, readable or not (for the run's own status counts only)."""
    return list(orm.scalars(select(EvalRunItemRow).where(EvalRunItemRow.run_id == run_id)))


def item_count(orm: OrmSession, run_id: str) -> int:
    query = select(func.count()).select_from(EvalRunItemRow).where(EvalRunItemRow.run_id == run_id)
    return int(orm.scalar(query) or 0)


def readable_item_rows(
    session: Session, orm: OrmSession, run_id: str, item_id: str | None = None
) -> Iterator[tuple[EvalRunItemRow, Marking]]:
    """The run's item results the subject may read, in position order."""
    query = select(EvalRunItemRow).where(EvalRunItemRow.run_id == run_id)
    if item_id is not None:
        query = query.where(EvalRunItemRow.item_id == item_id)
    query = session.readable(orm, query, EvalRunItemRow.marking_id).order_by(
        EvalRunItemRow.position, EvalRunItemRow.item_id
    )
    for row in orm.scalars(query):
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            yield row, marking


# -- the response cache -------------------------------------------------------------------------


def cache_get(
    session: Session, orm: OrmSession, sealer: Sealer, key: str
) -> tuple[dict[str, Any], Marking] | None:
    """The cached response under ``key`` when the subject may read it (else None: ask again)."""
    query = select(EvalCacheRow).where(EvalCacheRow.key == key)
    row = orm.scalar(session.readable(orm, query, EvalCacheRow.marking_id))
    if row is None:
        return None
    marking = session.marking_of(orm, row.marking_id)
    if marking is None:
        return None
    value = sealer.open(row.response, cache_aad(key), "cached response")
    return dict(value), marking


def cache_put(
    session: Session,
    orm: OrmSession,
    sealer: Sealer,
    key: str,
    value: Mapping[str, Any],
    marking: Marking,
) -> None:
    orm.execute(delete(EvalCacheRow).where(EvalCacheRow.key == key))
    orm.add(
        EvalCacheRow(
            key=key,
            marking_id=session.intern_marking(orm, marking),
            response=sealer.seal(dict(value), cache_aad(key)),
            created_at=utc_now(),
        )
    )
