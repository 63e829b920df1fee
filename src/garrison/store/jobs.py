"""The job lifecycle: one context manager for start, progress, finish and failure.

``with job(session, "ingest", params) as running:`` records a ``running`` job row and audits
``job.start``; ``running.set_total`` and ``running.progress`` keep its counters current; when
the block ends the row becomes ``completed``, or ``failed`` with the error when the block
raised (the exception goes on), and ``job.finish`` is audited either way. What the finished
job reports -- its counts and audit details -- comes from the summary the caller registered
with ``running.summarize``, read at the end, so it reflects the work actually done.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from garrison.core.clock import utc_now
from garrison.security.audit import AuditAction
from garrison.store.models import JobRow
from garrison.store.session import Session

__all__ = ["JobSummary", "RunningJob", "job", "mark_stale_jobs"]


@dataclass
class JobSummary:
    """What a finished job records: its counts, items done (and total), audit details."""

    counts: dict[str, Any] = field(default_factory=dict)
    done: int | None = None
    total: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class RunningJob:
    """A job in progress (see :func:`job`)."""

    def __init__(self, session: Session, job_id: str) -> None:
        self.session = session
        self.id = job_id
        self._summary: Callable[[], JobSummary] = JobSummary

    def set_total(self, total: int) -> None:
        """How many items the job will handle."""
        self._update(total=total)

    def progress(self, done: int) -> None:
        """How many items it has handled so far."""
        self._update(done=done)

    def summarize(self, summary: Callable[[], JobSummary]) -> None:
        """Register what the job reports when it ends (called once, at the end)."""
        self._summary = summary

    def _update(self, **values: Any) -> None:
        with self.session.workspace.catalog.transaction() as orm:
            orm.execute(update(JobRow).where(JobRow.id == self.id).values(**values))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_stale_jobs(session: Session) -> int:
    """Jobs left ``running`` by a process that no longer exists become ``interrupted``."""
    with session.workspace.catalog.transaction() as orm:
        stale = [
            j
            for j in orm.scalars(select(JobRow).where(JobRow.status == "running"))
            if not _pid_alive(j.pid)
        ]
        for row in stale:
            row.status = "interrupted"
            row.finished_at = utc_now()
    return len(stale)


@contextmanager
def job(
    session: Session,
    kind: str,
    params: dict[str, Any],
    *,
    start_details: dict[str, Any] | None = None,
) -> Iterator[RunningJob]:
    """A job of ``kind`` run by ``session``'s subject, from start to finish or failure.

    Jobs a dead process left running are marked ``interrupted`` first. ``start_details`` are
    the ``job.start`` audit details (default: the kind and ``params``).
    """
    mark_stale_jobs(session)
    running = RunningJob(session, uuid.uuid4().hex)
    with session.workspace.catalog.transaction() as orm:
        orm.add(
            JobRow(
                id=running.id,
                kind=kind,
                status="running",
                actor=session.subject.name,
                pid=os.getpid(),
                params=params,
                counts={},
                done=0,
                started_at=utc_now(),
            )
        )
    session.audit(
        AuditAction.JOB_START,
        object_id=running.id,
        details=start_details if start_details is not None else {"kind": kind, **params},
    )
    status, error = "completed", None
    try:
        yield running
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish(running, status, error)


def _finish(running: RunningJob, status: str, error: str | None) -> None:
    summary = running._summary()
    values: dict[str, Any] = {
        "status": status,
        "counts": summary.counts,
        "error": error,
        "finished_at": utc_now(),
    }
    if summary.done is not None:
        values["done"] = summary.done
    if summary.total is not None:
        values["total"] = summary.total
    running._update(**values)
    running.session.audit(
        AuditAction.JOB_FINISH,
        object_id=running.id,
        decision="allow" if status == "completed" else "error",
        reason=error,
        details={"status": status, **summary.details},
    )
