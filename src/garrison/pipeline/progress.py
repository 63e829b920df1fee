"""Progress of a pipeline run, as the driver sees it: events for whoever displays them.

The executor reports :class:`ProgressEvent` values to a callback (``run_pipeline(progress=)``);
the command line draws them on stderr. Phases:

* a batch stage of the head or middle (``normalize``, ``dedup``...): ``done``/``total`` in
  batches of documents;
* ``loading model``: the run is about to embed and the model is loading (no count; shown as a
  spinner) -- reported before the first chunk is embedded;
* ``embed``: chunks embedded so far, with a rate (chunks per second) and, once a batch has
  shown how many chunks a document makes, an estimated total and an ETA;
* ``chunk`` (a pipeline without ``embed``) and ``classify``: documents or batches done.

Engines report in two ways. Every engine's batches come back to the driver one by one, and
each completed batch moves the count (the forked local workers and the Ray engine report this
way: from the driver, as tasks complete). A batch run in the driver's own process (the local
engine for small inputs) also reports *inside* the batch: :func:`tick` and :func:`phase`, called
by the embed stage, reach the callback of the run in progress through a context variable, so the
count moves while one long batch embeds. Workers in other processes never see the variable and
stay silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "LOADING_MODEL",
    "ProgressEvent",
    "ProgressFn",
    "Tracker",
    "phase",
    "tick",
]

LOADING_MODEL = "loading model"


@dataclass(frozen=True)
class ProgressEvent:
    """One update: ``phase`` has ``done`` of ``total`` ``unit`` (``total`` None: not known)."""

    phase: str
    done: int
    total: int | None
    unit: str = "batches"
    #: Units per second since the phase began (``embed``: chunks per second).
    rate: float | None = None
    #: Seconds left, estimated (``embed`` once a batch completed).
    eta_s: float | None = None


ProgressFn = Callable[[ProgressEvent], None]

_CURRENT: ContextVar[Tracker | None] = ContextVar("garrison_pipeline_progress", default=None)


def tick(chunks: int) -> None:
    """``chunks`` more chunks embedded in this process (no-op outside a tracked run)."""
    tracker = _CURRENT.get()
    if tracker is not None:
        tracker.embedded(chunks)


def phase(name: str) -> None:
    """This process entered ``name`` (``loading model``; no-op outside a tracked run)."""
    tracker = _CURRENT.get()
    if tracker is not None:
        tracker.entered(name)


def tracking() -> bool:
    """Whether this process reports into a tracked run (the embed stage then reports slices)."""
    return _CURRENT.get() is not None


class Tracker:
    """Turns what the executor sees into :class:`ProgressEvent` values for ``callback``.

    ``clock`` is injectable so tests can check rates and ETAs without sleeping.
    """

    def __init__(
        self, callback: ProgressFn | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.callback = callback
        self.clock = clock
        self._docs_total = 0
        self._docs_done = 0
        self._confirmed = 0  # chunks in completed batches
        self._in_batch = 0  # chunks ticked inside the batch running now
        self._started: float | None = None
        self._base = 0  # chunks already done when the rate's clock started
        self._embedding = False

    def _emit(self, event: ProgressEvent) -> None:
        if self.callback is not None:
            self.callback(event)

    # -- batch phases --------------------------------------------------------------------

    def batches(self, name: str, done: int, total: int) -> None:
        """``done`` of ``total`` batches through ``name``."""
        self._emit(ProgressEvent(name, done, total))

    # -- the chunk and embed phase -------------------------------------------------------

    def start_tail(self, documents: int, *, embeds: bool) -> None:
        """The chunk (and embed) stages are about to run over ``documents`` documents."""
        self._docs_total = documents
        self._docs_done = 0
        self._confirmed = self._in_batch = 0
        self._embedding = embeds
        self._started = None
        self._base = 0
        if documents == 0:
            return
        if embeds:
            self._emit(ProgressEvent(LOADING_MODEL, 0, None, unit="model"))
        else:
            self._emit(ProgressEvent("chunk", 0, documents, unit="documents"))

    def entered(self, name: str) -> None:
        """A stage in this process says what it does now (``loading model``)."""
        if self._embedding and self._started is None:
            self._emit(ProgressEvent(name, 0, None, unit="model"))

    def embedded(self, chunks: int) -> None:
        """``chunks`` more embedded inside the batch running now (in-process engine)."""
        if not self._embedding:
            return
        if self._started is None:
            self._started = self.clock()
            self._base = self._confirmed
        self._in_batch += chunks
        self._emit_embed()

    def batch_done(self, documents: int, chunks: int) -> None:
        """A tail batch of ``documents`` documents came back with ``chunks`` live chunks."""
        self._docs_done += documents
        if not self._embedding:
            self._emit(ProgressEvent("chunk", self._docs_done, self._docs_total, "documents"))
            return
        if self._started is None:
            # Nothing reported from inside the batch (a worker in another process): the rate
            # counts from now on, so the first batch (model load included) is not in it.
            self._started = self.clock()
            self._confirmed += chunks
            self._base = self._confirmed
            self._in_batch = 0
            self._emit_embed()
            return
        self._confirmed += chunks
        self._in_batch = 0
        self._emit_embed()

    def _emit_embed(self) -> None:
        done = self._confirmed + self._in_batch
        assert self._started is not None
        elapsed = self.clock() - self._started
        rate = (done - self._base) / elapsed if elapsed > 0 and done > self._base else None
        total: int | None = None
        eta: float | None = None
        if self._docs_done:
            per_doc = self._confirmed / self._docs_done
            total = max(done, round(per_doc * self._docs_total))
            if rate:
                eta = max(0.0, (total - done) / rate)
        self._emit(ProgressEvent("embed", done, total, "chunks", rate, eta))

    @contextmanager
    def in_process(self) -> Iterator[None]:
        """Let stages running in this thread report into this tracker (:func:`tick`)."""
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)
