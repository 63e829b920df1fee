"""Group commit for the audit log: concurrent appends in one process share one write and fsync.

A server handles many requests at once and each one audits before it answers. Written one by
one, their events queue on the log's lock and each pays for its own fsync. Instead, a thread
that appends while another is writing leaves its event in a queue and waits; when the write in
progress returns, the first waiting thread takes everything queued (its own event included) and
writes it as one batch -- one lock, one write, one fsync -- then hands on to the next waiter, if
any. A lone caller (the command line) writes at once, as before.

Nothing is given up: every caller still returns only once its own event is durable, and a batch
that cannot be written fails every caller in it (each gets the error, so each request fails
closed). No background thread is kept: the callers write, in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.security.audit import AuditEvent

__all__ = ["GroupCommit"]

#: One event to write: the actor and :meth:`AuditLog.append`'s keyword arguments.
Entry = tuple[str, Mapping[str, Any]]


@dataclass(eq=False)
class _Waiting:
    entry: Entry
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to write the next batch, not because it was written
    event: AuditEvent | None = None
    error: BaseException | None = None


class GroupCommit:
    """Batches concurrent :meth:`submit` calls into calls of ``write``.

    ``write(entries)`` records the entries durably, in order, and returns their events; on
    failure it raises, and then none of them is recorded. ``fail(entry, exc)`` is the exception
    a caller whose batch failed receives.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Entry]], list[AuditEvent]],
        fail: Callable[[Entry, BaseException], BaseException],
    ) -> None:
        self._write = write
        self._fail = fail
        self._mutex = threading.Lock()
        self._queue: list[_Waiting] = []
        self._writing = False
        #: How many batches and events were written (for tests and benchmarks).
        self.batches = 0
        self.events = 0

    def submit(self, actor: str, spec: Mapping[str, Any]) -> AuditEvent:
        """Record one event; returns once it is durable, raises if its batch failed."""
        me = _Waiting((actor, spec))
        with self._mutex:
            self._queue.append(me)
            lead = not self._writing
            self._writing = True
        if not lead:
            me.done.wait()
            lead = me.lead
        if lead:
            self._write_batch()
        if me.error is not None:
            raise me.error
        assert me.event is not None
        return me.event

    def _write_batch(self) -> None:
        """Write everything queued, then wake the next writer (or stand down)."""
        with self._mutex:
            batch, self._queue = self._queue, []
        try:
            try:
                events = self._write([w.entry for w in batch])
            except Exception as exc:  # every caller in the batch fails, closed
                for waiting in batch:
                    waiting.error = self._fail(waiting.entry, exc)
            else:
                self.batches += 1
                self.events += len(events)
                for waiting, event in zip(batch, events, strict=True):
                    waiting.event = event
        finally:
            with self._mutex:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._writing = False
            for waiting in batch:
                if waiting.event is None and waiting.error is None:
                    waiting.error = RuntimeError("the audit batch was not written")
                if not waiting.lead:
                    waiting.done.set()
