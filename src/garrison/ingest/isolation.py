"""Run a function on each task in its own short-lived child process, so one bad file fails alone.

Parsers are the riskiest code Garrison runs: third-party C extensions fed untrusted files. Like
Apache Tika's forked parsers, :func:`run_isolated` runs ``fn(task)`` for every task in a fresh
child process; a parser that crashes, hangs or eats memory on one file yields a failed
:class:`Outcome` for that file and the run goes on.

How it works
    Each task gets a child made with ``fork`` (``multiprocessing.get_context("fork")``): forking
    is cheap and the child already has every module the parent imported, and ``fn`` and the task
    are never pickled (a lambda or a closure is fine). At most ``workers`` children run at once
    and results are yielded in completion order; ``tasks`` is consumed lazily, no more than
    ``workers`` ahead of the results.

What the child must not do
    The child is a copy of the parent, open sockets and files included. It must not use anything
    the parent owns that talks to the outside world -- above all the parent's database
    connections, engines and sessions: a child writing on the parent's socket corrupts the
    parent's session. ``fn`` should take plain data (a path, bytes, options) and return plain
    data; the parent stores the results. The child ends with ``os._exit`` so that no ``atexit``
    hook or finalizer of the parent's objects (a connection pool saying goodbye to the server)
    runs in it. It flushes ``sys.stdout`` and ``sys.stderr`` before it reports.

How results come back
    The child sends ``("ok", value)`` or ``("error", exception)`` over a one-way pipe. The value
    must pickle; tens of megabytes (attachment bytes) are fine, because the parent reads a pipe
    as soon as it is readable instead of waiting for the child to exit first. An exception that
    does not survive pickling comes back as a ``RuntimeError`` holding its repr; either way the
    child's traceback is attached as a note (``exc.__notes__``).

Limits
    ``Limits.timeout_s`` is wall-clock time per task, counted from the fork; a child still running
    then is killed with SIGKILL. ``Limits.memory_mb`` caps the child's address space
    (``RLIMIT_AS``) at what it inherited from the parent at fork **plus** ``memory_mb``, so a
    parent that has mapped a lot (a loaded model, a big Arrow table) does not leave its children
    no room at all; ``0`` means no cap. Address space is not resident memory: threads and
    ``mmap`` count in full, so leave headroom. The child also gets ``RLIMIT_CORE`` 0 so that a
    crashing parser does not leave core files behind.

Reason codes (``Outcome.reason`` when ``Outcome.ok`` is false)
    ``"timeout"``       the child was still running after ``timeout_s`` and was killed.
    ``"memory-limit"``  the child raised ``MemoryError`` (it hit the cap), or it was killed by a
                        SIGKILL that Garrison did not send -- most likely the kernel's
                        out-of-memory killer.
    ``"crashed"``       the child died from a signal (``os.abort()``, a segfault in a C extension)
                        or exited without sending a result (``os._exit(3)``, ``sys.exit()``);
                        ``detail`` names the signal or the exit code. A C library that aborts
                        or segfaults when an allocation fails under the cap shows up here too.
    ``"error"``         ``fn`` raised an ordinary exception, kept in ``Outcome.error``. Callers
                        map their own exception types to their own reasons.

Closing the iterator early (``break``, ``close()``, garbage collection) or a ``KeyboardInterrupt``
while it waits kills and reaps every child still running: no orphans, no zombies.
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

#: How long to wait for a child that has reported (or closed its pipe) to exit before killing it.
_REAP_GRACE_S = 5.0


@dataclass(frozen=True)
class Limits:
    """What one child may use: wall-clock seconds, and megabytes of address space (0: no cap)."""

    timeout_s: float = 120.0
    memory_mb: int = 2048


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """How one task went: ``value`` when ``ok``; otherwise a ``reason`` code and a ``detail``.

    ``reason`` is one of ``"timeout"``, ``"memory-limit"``, ``"crashed"`` or ``"error"`` (see the
    module docstring); ``error`` holds the exception for ``"error"`` and ``"memory-limit"`` when
    the child raised one. ``seconds`` is the wall-clock time from fork to result.
    """

    ok: bool
    value: R | None = None
    reason: str | None = None
    detail: str | None = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class _Running(Generic[T]):
    task: T
    process: ForkProcess
    conn: Connection
    started: float
    deadline: float


def run_isolated(
    tasks: Iterable[T],
    fn: Callable[[T], R],
    *,
    workers: int = 1,
    limits: Limits = Limits(),
) -> Generator[tuple[T, Outcome[R]], None, None]:
    """Run ``fn(task)`` for each task in its own forked child; yield ``(task, outcome)``.

    Results come in completion order, not task order. At most ``workers`` children run at once
    and ``tasks`` is read lazily (an endless generator is fine). ``fn`` runs in a copy of this
    process: it must not use the parent's database connections (see the module docstring), and
    its return value must pickle. Closing the returned iterator kills the children still running.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if not limits.timeout_s > 0:
        raise ValueError(f"Limits.timeout_s must be positive, not {limits.timeout_s}")
    if limits.memory_mb < 0:
        raise ValueError(f"Limits.memory_mb must be 0 (no cap) or positive, not {limits.memory_mb}")
    return _run(iter(tasks), fn, workers, limits)


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
    pending: Iterator[T], fn: Callable[[T], R], workers: int, limits: Limits
) -> Generator[tuple[T, Outcome[R]], None, None]:
    ctx = get_context("fork")
    running: list[_Running[T]] = []
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) < workers:
                try:
                    task = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                running.append(_start(ctx, task, fn, limits))
            if not running:
                return

            nearest = min(r.deadline for r in running)
            timeout = None if math.isinf(nearest) else max(0.0, nearest - time.monotonic())
            watched: list[Any] = [r.conn for r in running]
            watched += [r.process.sentinel for r in running]
            ready = set(wait(watched, timeout))

            # Readiness first, deadlines second: a child that finished (or is writing a large
            # result) while the consumer was busy with an earlier yield is not a hang.
            finished: list[tuple[_Running[T], Outcome[R]]] = []
            for run in list(running):
                if run.conn in ready or run.process.sentinel in ready:
                    finished.append((run, _collect(run)))
                elif time.monotonic() >= run.deadline:
                    finished.append((run, _expire(run, limits)))
                else:
                    continue
                running.remove(run)
            for run, outcome in finished:
                yield run.task, outcome
    finally:
        # Reached on normal exit, on close() (GeneratorExit at the yield) and on
        # KeyboardInterrupt during wait(): no child may outlive the iterator.
        for run in running:
            _kill(run)


def _start(ctx: ForkContext, task: T, fn: Callable[[T], R], limits: Limits) -> _Running[T]:
    receiver, sender = ctx.Pipe(duplex=False)
    # daemon: should a child ever escape the iterator's cleanup, multiprocessing's exit hook
    # still terminates it when the parent exits.
    process = ctx.Process(
        target=_child_main, args=(sender, fn, task, limits.memory_mb), daemon=True
    )
    started = time.monotonic()
    try:
        process.start()
    except BaseException:  # fork failed (EAGAIN, ENOMEM): do not leak the pipe
        receiver.close()
        sender.close()
        raise
    # The parent must drop its copy of the sending end, or it would never see EOF when the
    # child dies without a result.
    sender.close()
    return _Running(task, process, receiver, started, started + limits.timeout_s)


def _collect(run: _Running[T]) -> Outcome[R]:
    """Read the child's message if there is one, then reap the child."""
    message: tuple[str, Any] | None = None
    # poll() is also true at EOF; recv() then raises EOFError, meaning "no result".
    if run.conn.poll():
        try:
            message = run.conn.recv()
        except (EOFError, OSError):
            message = None
        except Exception as exc:  # the bytes arrived whole but would not unpickle here
            message = (
                "error",
                RuntimeError(f"the worker's result could not be unpickled: {exc!r}"),
            )
    code, lingered = _reap(run)
    seconds = time.monotonic() - run.started

    if message is not None:
        kind, payload = message
        if kind == "ok":
            return Outcome(ok=True, value=payload, seconds=seconds)
        error: BaseException = payload
        detail = f"{type(error).__name__}: {error}"
        if kind == "memory":
            return Outcome(
                ok=False, reason="memory-limit", detail=detail, error=error, seconds=seconds
            )
        return Outcome(ok=False, reason="error", detail=detail, error=error, seconds=seconds)

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


def _expire(run: _Running[T], limits: Limits) -> Outcome[R]:
    _kill(run)
    return Outcome(
        ok=False,
        reason="timeout",
        detail=f"the worker was still running after {limits.timeout_s:g} s and was killed",
        seconds=time.monotonic() - run.started,
    )


def _reap(run: _Running[T]) -> tuple[int, bool]:
    """Join a child that has reported or closed its pipe, killing it if it lingers.

    Returns the exit code and whether Garrison had to kill it, so that our own SIGKILL is never
    taken for the out-of-memory killer's.
    """
    run.process.join(_REAP_GRACE_S)
    lingered = run.process.exitcode is None
    if lingered:
        run.process.kill()
        run.process.join()
    code = run.process.exitcode
    assert code is not None  # joined without a timeout
    _release(run)
    return code, lingered


def _kill(run: _Running[T]) -> None:
    """SIGKILL and reap a child (a no-op signal if it has already exited)."""
    # ValueError: an interrupt landed after _collect released this child but before the loop
    # forgot it; it is reaped already.
    with contextlib.suppress(ValueError):
        run.process.kill()
        run.process.join()
    _release(run)


def _release(run: _Running[T]) -> None:
    # Closing frees the pipe and sentinel descriptors now rather than at garbage collection,
    # which matters over a run of a million files.
    run.conn.close()
    run.process.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"number {number}"


# --- in the child ---------------------------------------------------------------------------


def _child_main(conn: Connection, fn: Callable[[Any], Any], task: Any, memory_mb: int) -> None:
    exit_code = 1
    try:
        _apply_limits(memory_mb)
        message: tuple[str, Any]
        try:
            message = ("ok", fn(task))
        except MemoryError as exc:
            message = ("memory", _portable(exc))
        except SystemExit as exc:
            # fn asked to exit: honour its code, as a child that exits without a result.
            exit_code = exc.code if isinstance(exc.code, int) else 1
            return
        except Exception as exc:
            message = ("error", _portable(exc))
        # Flush before reporting: a blocked stdout then counts against the timeout, and
        # os._exit below would otherwise drop buffered output.
        for stream in (sys.stdout, sys.stderr):
            # A closed or broken stream must not cost the result.
            with contextlib.suppress(Exception):
                stream.flush()
        _send(conn, message)
        exit_code = 0
    finally:
        # Skip atexit hooks and finalizers: they belong to the parent's objects (database
        # connections, temporary directories) and must run once, in the parent.
        os._exit(exit_code)


def _send(conn: Connection, message: tuple[str, Any]) -> None:
    # Pickling happens before any byte is written, so a failure here leaves the pipe clean for
    # the fallback message.
    try:
        conn.send(message)
    except MemoryError as exc:
        conn.send(("memory", _portable(exc)))
    except Exception as exc:
        conn.send(("error", RuntimeError(f"the worker's result could not be pickled: {exc!r}")))


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
    """``exc`` with the child's traceback as a note, or a RuntimeError if it will not pickle."""
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
