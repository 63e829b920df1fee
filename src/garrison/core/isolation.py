"""Run a function on each task in an isolated child process, so one bad file fails alone.

Parsers are the riskiest code Garrison runs: third-party C extensions fed untrusted files. Like
Apache Tika's forked parser servers, :func:`run_isolated` runs ``fn(task)`` for every task in a
forked worker process; a parser that crashes, hangs or eats memory on one file yields a failed
:class:`Outcome` for that file and the run goes on.

How it works
    Workers are made with ``fork`` (``multiprocessing.get_context("fork")``): the worker already
    has every module the parent imported, and ``fn`` is never pickled (a lambda or a closure is
    fine). Workers are forked lazily, when a task needs one, so whatever the parent patched before
    it started iterating is what the workers run. At most ``workers`` tasks run at once and
    results are yielded in completion order; ``tasks`` is consumed lazily, no more than
    ``workers`` ahead of the results.

Worker reuse (``reuse=True``, the default)
    A fork costs a few milliseconds in a big parent, which caps small files at a few dozen a
    second; so by default a worker serves task after task. Each worker loops: receive a pickled
    task over its pipe, run ``fn``, send the result, repeat. The first task of a worker travels
    with the fork itself, so a task that does not pickle still runs (in a fresh worker). A
    worker is retired -- and the next task gets a freshly forked one -- after
    ``max_tasks_per_worker`` tasks, after a ``MemoryError`` (its heap may be fragmented or still
    at the cap), and of course when it crashes or times out (it is killed). Every failure stays
    the failure of the one task that was running, and never touches tasks in other workers.
    ``reuse=False`` forks a fresh child for every task, as Garrison always did: slower, but no
    task can see anything an earlier task left behind.

What a task must not do
    The worker is a copy of the parent, open sockets and files included. It must not use
    anything the parent owns that talks to the outside world -- above all the parent's database
    connections, engines and sessions: a worker writing on the parent's socket corrupts the
    parent's session. ``fn`` should take plain data (a path, bytes, options) and return plain
    data; the parent stores the results. With reuse, ``fn`` must also not leave state behind that
    changes what a later task computes -- module globals, caches that grow without bound,
    monkeypatches, threads, changed working directory or environment, lowered limits: the next
    task in that worker would see them. Recycling after ``max_tasks_per_worker`` tasks bounds
    slow leaks; it does not make such state correct. The worker ends with ``os._exit`` so that no
    ``atexit`` hook or finalizer of the parent's objects (a connection pool saying goodbye to the
    server) runs in it. It flushes ``sys.stdout`` and ``sys.stderr`` after every task.

How results come back
    The worker sends ``("ok", value)``, ``("error", exception)`` or ``("memory", exception)`` over
    its pipe. The value must pickle; tens of megabytes (attachment bytes) are fine, because the
    parent reads a pipe as soon as it is readable. An exception that does not survive pickling
    comes back as a ``RuntimeError`` holding its repr; either way the worker's traceback is
    attached as a note (``exc.__notes__``).

Limits
    ``Limits.timeout_s`` is wall-clock time per task, counted from when the task was handed to a
    worker (its fork, or its send); a worker still running it then is killed with SIGKILL and
    replaced. ``Limits.memory_mb`` caps each worker's address space (``RLIMIT_AS``), set once when
    the worker starts, at what it inherited from the parent at fork **plus** ``memory_mb``, so a
    parent that has mapped a lot (a loaded model, a big Arrow table) does not leave its workers
    no room at all; ``0`` means no cap. Address space is not resident memory: threads and
    ``mmap`` count in full, so leave headroom. The worker also gets ``RLIMIT_CORE`` 0 so that a
    crashing parser does not leave core files behind.

Reason codes (``Outcome.reason`` when ``Outcome.ok`` is false)
    ``"timeout"``       the task was still running after ``timeout_s`` and its worker was killed.
    ``"memory-limit"``  ``fn`` raised ``MemoryError`` (it hit the cap), or the worker was killed
                        by a SIGKILL that Garrison did not send -- most likely the kernel's
                        out-of-memory killer.
    ``"crashed"``       the worker died from a signal (``os.abort()``, a segfault in a C
                        extension) or exited without sending a result (``os._exit(3)``,
                        ``sys.exit()``); ``detail`` names the signal or the exit code. A C library
                        that aborts or segfaults when an allocation fails under the cap shows up
                        here too.
    ``"error"``         ``fn`` raised an ordinary exception, kept in ``Outcome.error``. Callers
                        map their own exception types to their own reasons.

Closing the iterator early (``break``, ``close()``, garbage collection), a ``KeyboardInterrupt``
while it waits, or the end of the tasks kills and reaps every worker: no orphans, no zombies.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext, ForkProcess
from typing import Any, Generic, TypeVar

__all__ = ["Limits", "Outcome", "run_isolated", "run_one"]

T = TypeVar("T")
R = TypeVar("R")

#: How long to wait for a worker that is done (or closed its pipe) to exit before killing it.
_REAP_GRACE_S = 5.0


@dataclass(frozen=True)
class Limits:
    """Wall-clock seconds per task, and megabytes of address space per worker (0: no cap)."""

    timeout_s: float = 120.0
    memory_mb: int = 2048


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """How one task went: ``value`` when ``ok``; otherwise a ``reason`` code and a ``detail``.

    ``reason`` is one of ``"timeout"``, ``"memory-limit"``, ``"crashed"`` or ``"error"`` (see the
    module docstring); ``error`` holds the exception for ``"error"`` and ``"memory-limit"`` when
    the worker raised one. ``seconds`` is the wall-clock time from handing the task over to its
    result.
    """

    ok: bool
    value: R | None = None
    reason: str | None = None
    detail: str | None = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class _Job(Generic[T]):
    task: T
    started: float
    deadline: float


@dataclass
class _Worker(Generic[T]):
    process: ForkProcess
    conn: Connection
    #: Tasks handed to this worker so far, the running one included.
    handed: int
    job: _Job[T] | None


def run_isolated(
    tasks: Iterable[T],
    fn: Callable[[T], R],
    *,
    workers: int = 1,
    limits: Limits = Limits(),
    reuse: bool = True,
    max_tasks_per_worker: int = 500,
    start_method: str = "fork",
) -> Generator[tuple[T, Outcome[R]], None, None]:
    """Run ``fn(task)`` for each task in a forked worker; yield ``(task, outcome)``.

    Results come in completion order, not task order. At most ``workers`` tasks run at once and
    ``tasks`` is read lazily (an endless generator is fine). ``fn`` runs in a copy of this
    process: it must not use the parent's database connections, its return value must pickle,
    and -- with ``reuse`` -- it must not leave state behind that changes later tasks (see the
    module docstring). With ``reuse`` a worker serves up to ``max_tasks_per_worker`` tasks, which
    are pickled to it; ``reuse=False`` forks a fresh child per task. Closing the returned
    iterator kills the workers.

    ``start_method="forkserver"`` makes workers from a clean server process instead of this
    one: use it when this process runs native threads that must not be forked mid-operation
    (LanceDB's runtime, thread pools). Tasks, ``fn`` and results must then pickle, and the
    workers start without what this process patched or loaded.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if not limits.timeout_s > 0:
        raise ValueError(f"Limits.timeout_s must be positive, not {limits.timeout_s}")
    if limits.memory_mb < 0:
        raise ValueError(f"Limits.memory_mb must be 0 (no cap) or positive, not {limits.memory_mb}")
    if max_tasks_per_worker < 1:
        raise ValueError(f"max_tasks_per_worker must be at least 1, not {max_tasks_per_worker}")
    # Fork-per-task is a worker that serves the one task it was forked with.
    per_worker = max_tasks_per_worker if reuse else 1
    if start_method not in ("fork", "forkserver"):
        raise ValueError(f"start_method must be 'fork' or 'forkserver', not {start_method!r}")
    return _run(iter(tasks), fn, workers, limits, per_worker, start_method)


def run_one(
    task: T,
    fn: Callable[[T], R],
    limits: Limits = Limits(),
) -> Outcome[R]:
    """Run ``fn(task)`` in one isolated child and return its :class:`Outcome`."""
    for _, outcome in run_isolated([task], fn, limits=limits):
        return outcome
    raise AssertionError("run_isolated yielded nothing for one task")  # pragma: no cover


def _run(
    pending: Iterator[T],
    fn: Callable[[T], R],
    workers: int,
    limits: Limits,
    per_worker: int,
    start_method: str = "fork",
) -> Generator[tuple[T, Outcome[R]], None, None]:
    ctx: Any = get_context(start_method)
    pool: list[_Worker[T]] = []
    exhausted = False

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and sum(w.job is not None for w in pool) < workers:
            try:
                task = next(pending)
            except StopIteration:
                exhausted = True
                break
            _hand_over(ctx, pool, task, fn, limits, per_worker)

    try:
        while True:
            refill()
            busy = [w for w in pool if w.job is not None]
            if not busy:
                return

            nearest = min(w.job.deadline for w in busy if w.job is not None)
            timeout = None if math.isinf(nearest) else max(0.0, nearest - time.monotonic())
            watched: list[Any] = [w.conn for w in busy]
            watched += [w.process.sentinel for w in busy]
            ready = set(wait(watched, timeout))

            # Readiness first, deadlines second: a worker that finished (or is writing a large
            # result) while the consumer was busy with an earlier yield is not a hang.
            finished: list[tuple[T, Outcome[R]]] = []
            for worker in busy:
                job = worker.job
                assert job is not None
                if worker.conn in ready or worker.process.sentinel in ready:
                    outcome: Outcome[R] = _collect(worker, pool, per_worker)
                elif time.monotonic() >= job.deadline:
                    outcome = _expire(worker, pool, limits)
                else:
                    continue
                finished.append((job.task, outcome))
            # Hand the freed workers their next tasks before yielding: the workers then run
            # while the consumer handles these results (a parser parses the next file while
            # the parent writes the last one to the catalog).
            refill()
            for task, outcome in finished:
                yield task, outcome
    finally:
        # Reached on normal exit, on close() (GeneratorExit at the yield) and on
        # KeyboardInterrupt during wait(): no worker may outlive the iterator. Idle workers hold
        # nothing worth a graceful goodbye (they flushed after their last task), so they are
        # killed like busy ones.
        for worker in pool:
            _kill(worker)
        pool.clear()


def _hand_over(
    ctx: ForkContext,
    pool: list[_Worker[T]],
    task: T,
    fn: Callable[[T], R],
    limits: Limits,
    per_worker: int,
) -> None:
    """Give ``task`` to an idle worker, or to a freshly forked one."""
    idle = next((w for w in pool if w.job is None), None)
    if idle is not None:
        try:
            data = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            # A task that does not pickle can still travel by fork: retire the idle worker to
            # keep within `workers` processes, and fork one that starts with this task.
            _retire(idle, pool)
        else:
            started = time.monotonic()
            try:
                idle.conn.send_bytes(data)
            except OSError:
                # The idle worker died between tasks (the OOM killer picks idle ones too); it had
                # no task, so nothing is lost but the worker.
                _retire(idle, pool)
            else:
                idle.handed += 1
                idle.job = _Job(task, started, started + limits.timeout_s)
                return
    pool.append(_fork(ctx, pool, task, fn, limits, per_worker))


def _fork(
    ctx: ForkContext,
    pool: list[_Worker[T]],
    task: T,
    fn: Callable[[T], R],
    limits: Limits,
    per_worker: int,
) -> _Worker[T]:
    ours, theirs = ctx.Pipe(duplex=True)
    # The worker must not keep copies of the parent's ends -- its own, or other workers' --
    # or it would hold those pipes open: a worker would never see EOF when the parent closes
    # its end, and one process's descriptors would outlive it in another.
    inherited = [ours.fileno()] + [w.conn.fileno() for w in pool]
    if ctx.get_start_method() != "fork":
        inherited = []  # a worker made by a fork server inherits none of our descriptors
    # daemon: should a worker ever escape the iterator's cleanup, multiprocessing's exit hook
    # still terminates it when the parent exits.
    process = ctx.Process(
        target=_worker_main,
        args=(theirs, fn, (task,), limits.memory_mb, per_worker, inherited),
        daemon=True,
    )
    started = time.monotonic()
    try:
        process.start()
    except BaseException:  # fork failed (EAGAIN, ENOMEM): do not leak the pipe
        ours.close()
        theirs.close()
        raise
    # Dropping our copy of the worker's end is what lets us see EOF when the worker dies.
    theirs.close()
    return _Worker(process, ours, 1, _Job(task, started, started + limits.timeout_s))


def _collect(worker: _Worker[T], pool: list[_Worker[T]], per_worker: int) -> Outcome[R]:
    """Read the worker's result if there is one; retire the worker if it is done or dead."""
    job = worker.job
    assert job is not None
    worker.job = None
    message: tuple[str, Any] | None = None
    # poll() is also true at EOF; recv() then raises EOFError, meaning "no result".
    if worker.conn.poll():
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            message = None
        except Exception as exc:  # the bytes arrived whole but would not unpickle here
            message = (
                "error",
                RuntimeError(f"the worker's result could not be unpickled: {exc!r}"),
            )

    if message is not None:
        kind, payload = message
        # A worker that hit the memory cap is retired: its heap may be fragmented or still near
        # the cap, and the next task deserves a clean one. It exits on its own after sending.
        if kind == "memory" or worker.handed >= per_worker:
            _retire(worker, pool)
        seconds = time.monotonic() - job.started
        if kind == "ok":
            return Outcome(ok=True, value=payload, seconds=seconds)
        error: BaseException = payload
        detail = f"{type(error).__name__}: {error}"
        reason = "memory-limit" if kind == "memory" else "error"
        return Outcome(ok=False, reason=reason, detail=detail, error=error, seconds=seconds)

    code, lingered = _retire(worker, pool)
    seconds = time.monotonic() - job.started
    if lingered:
        return Outcome(
            ok=False,
            reason="crashed",
            detail="the worker closed its result pipe without sending a result, and did not exit",
            seconds=seconds,
        )
    if code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGKILL:
            # Garrison's own kills are timeouts and never get here; a SIGKILL from elsewhere is
            # almost always the kernel's out-of-memory killer.
            return Outcome(
                ok=False,
                reason="memory-limit",
                detail="the worker was killed by SIGKILL that Garrison did not send "
                "(most likely the kernel's out-of-memory killer)",
                seconds=seconds,
            )
        return Outcome(
            ok=False,
            reason="crashed",
            detail=f"the worker died from signal {name}",
            seconds=seconds,
        )
    return Outcome(
        ok=False,
        reason="crashed",
        detail=f"the worker exited with code {code} without sending a result",
        seconds=seconds,
    )


def _expire(worker: _Worker[T], pool: list[_Worker[T]], limits: Limits) -> Outcome[R]:
    job = worker.job
    assert job is not None
    _kill(worker)
    pool.remove(worker)
    return Outcome(
        ok=False,
        reason="timeout",
        detail=f"the worker was still running after {limits.timeout_s:g} s and was killed",
        seconds=time.monotonic() - job.started,
    )


def _retire(worker: _Worker[T], pool: list[_Worker[T]]) -> tuple[int, bool]:
    """Drop a worker that is done, dead or unwanted: close its pipe, reap it, kill it if it stays.

    Closing the pipe first is what tells a live idle worker to exit. Returns the exit code and
    whether Garrison had to kill it, so that our own SIGKILL is never taken for the
    out-of-memory killer's.
    """
    worker.conn.close()
    worker.process.join(_REAP_GRACE_S)
    lingered = worker.process.exitcode is None
    if lingered:
        worker.process.kill()
        worker.process.join()
    code = worker.process.exitcode
    assert code is not None  # joined without a timeout
    worker.process.close()
    # Forgotten only now: an interrupt during the join above must leave it to the final kill.
    pool.remove(worker)
    return code, lingered


def _kill(worker: _Worker[T]) -> None:
    """SIGKILL and reap a worker (a no-op signal if it has already exited)."""
    # ValueError: an interrupt landed after _retire released this worker but before the pool
    # forgot it; it is reaped already.
    with contextlib.suppress(ValueError):
        worker.process.kill()
        worker.process.join()
    # Closing frees the pipe and sentinel descriptors now rather than at garbage collection,
    # which matters over a run of a million files.
    worker.conn.close()
    with contextlib.suppress(ValueError):
        worker.process.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"number {number}"


# --- in the worker --------------------------------------------------------------------------


def _worker_main(
    conn: Connection,
    fn: Callable[[Any], Any],
    first: tuple[Any],
    memory_mb: int,
    max_tasks: int,
    inherited: list[int],
) -> None:
    exit_code = 1
    try:
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        _apply_limits(memory_mb)
        for count in range(max_tasks):
            data = b""
            if count:
                try:
                    data = conn.recv_bytes()
                except EOFError:  # the parent is done with us
                    break
            message = _attempt(fn, first, data)
            # Flush before reporting: a blocked stdout then counts against the timeout, and
            # os._exit would otherwise drop buffered output.
            for stream in (sys.stdout, sys.stderr):
                # A closed or broken stream must not cost the result.
                with contextlib.suppress(Exception):
                    stream.flush()
            if _send(conn, message) == "memory":
                break  # the parent retires us; a fragmented heap should not serve another task
        exit_code = 0
    except SystemExit as exc:
        # fn asked to exit: honour its code, as a worker that exits without a result.
        exit_code = exc.code if isinstance(exc.code, int) else 1
    finally:
        # Skip atexit hooks and finalizers: they belong to the parent's objects (database
        # connections, temporary directories) and must run once, in the parent.
        os._exit(exit_code)


def _attempt(fn: Callable[[Any], Any], first: tuple[Any], data: bytes) -> tuple[str, Any]:
    """Run one task: the one forked with us when ``data`` is empty, else the one it pickles."""
    try:
        # Unpickling counts as part of the task: a task too big for the cap is its own failure.
        task = pickle.loads(data) if data else first[0]  # noqa: S301 -- the parent's bytes
        return ("ok", fn(task))
    except MemoryError as exc:
        return ("memory", _portable(exc))
    except Exception as exc:
        return ("error", _portable(exc))


def _send(conn: Connection, message: tuple[str, Any]) -> str:
    """Send ``message``, or the error that stopped it; return the kind that was sent."""
    # Pickling happens before any byte is written, so a failure here leaves the pipe clean for
    # the fallback message.
    try:
        conn.send(message)
        return message[0]
    except MemoryError as exc:
        conn.send(("memory", _portable(exc)))
        return "memory"
    except Exception as exc:
        conn.send(("error", RuntimeError(f"the worker's result could not be pickled: {exc!r}")))
        return "error"


def _apply_limits(memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb <= 0:
        return
    cap = _address_space_bytes() + memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    # Lowering the hard limit too means fn cannot lift the cap again.
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _address_space_bytes() -> int:
    """The address space this process has mapped now (``VmSize``), from ``/proc/self/statm``."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _portable(exc: BaseException) -> BaseException:
    """``exc`` with the worker's traceback as a note, or a RuntimeError if it will not pickle."""
    child_traceback = "".join(traceback.format_exception(exc))
    note = f"Traceback in the isolated worker (pid {os.getpid()}):\n{child_traceback}"
    try:
        exc.add_note(note)
        pickle.loads(pickle.dumps(exc))  # noqa: S301 -- our own bytes, checking the round trip
    except Exception:
        substitute = RuntimeError(f"{exc!r} (the exception could not be pickled)")
        substitute.add_note(note)
        return substitute
    return exc
