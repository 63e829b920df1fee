"""run_isolated: one child per task, and a crash, hang or memory blow-up fails only its task."""

from __future__ import annotations

import ctypes
import faulthandler
import itertools
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from garrison.ingest.isolation import Limits, Outcome, run_isolated, run_one

FAST = Limits(timeout_s=10.0, memory_mb=0)


class ParserFailed(Exception):
    """A parser's own error type: must come back as itself, not as a generic one."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(path, why)
        self.path = path
        self.why = why


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.handle = lambda: None  # lambdas do not pickle


def _log(path: Path, *fields: object) -> None:
    # One short O_APPEND write per line is atomic, so concurrent children do not interleave.
    line = " ".join(str(f) for f in fields) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _logged_pids(path: Path) -> list[int]:
    return [int(line.split()[0]) for line in path.read_text().splitlines()]


def _assert_reaped(pids: list[int]) -> None:
    """Every pid was our child and has been reaped: not running, not a zombie."""
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert multiprocessing.active_children() == []
    assert _zombie_children() == []


def _zombie_children() -> list[int]:
    zombies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; the fields after its closing paren do not.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state == "Z":
            zombies.append(int(entry.name))
    return zombies


def _sleep_then_echo(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_results_come_back_in_completion_order() -> None:
    results = list(run_isolated([0.8, 0.1, 0.3], _sleep_then_echo, workers=2, limits=FAST))

    # 0.8 and 0.1 start together; 0.3 takes the slot 0.1 frees and still ends before 0.8.
    assert [task for task, _ in results] == [0.1, 0.3, 0.8]
    for task, outcome in results:
        assert outcome.ok, outcome
        assert outcome.value == task
        assert outcome.reason is None
        assert outcome.seconds >= task


def test_run_one_returns_the_value() -> None:
    outcome = run_one("pdf", lambda kind: {"kind": kind, "pid": os.getpid()}, FAST)

    assert outcome.ok
    assert outcome.value is not None
    assert outcome.value["kind"] == "pdf"
    assert outcome.value["pid"] != os.getpid()  # it really ran elsewhere


def test_an_exception_comes_back_as_error_with_its_type() -> None:
    def parse(path: str) -> str:
        raise ParserFailed(path, "truncated header")

    outcome = run_one("a.docx", parse, FAST)

    assert not outcome.ok
    assert outcome.reason == "error"
    assert isinstance(outcome.error, ParserFailed)
    assert (outcome.error.path, outcome.error.why) == ("a.docx", "truncated header")
    assert outcome.detail is not None and outcome.detail.startswith("ParserFailed")
    # The child's traceback travels as a note, since the traceback object itself cannot.
    assert "truncated header" in "".join(outcome.error.__notes__)
    assert "in parse" in "".join(outcome.error.__notes__)


def test_an_exception_that_does_not_pickle_becomes_a_runtime_error() -> None:
    def parse(_: int) -> None:
        raise Unpicklable()

    outcome = run_one(1, parse, FAST)

    assert outcome.reason == "error"
    assert type(outcome.error) is RuntimeError
    assert "Unpicklable" in str(outcome.error)


def test_a_hang_times_out_while_the_others_complete(tmp_path: Path) -> None:
    log = tmp_path / "pids"

    def parse(task: str) -> str:
        _log(log, os.getpid(), task)
        if task == "hangs":
            time.sleep(3600)
        return task

    limits = Limits(timeout_s=1.0, memory_mb=0)
    started = time.monotonic()
    outcomes = dict(run_isolated(["hangs", "a", "b", "c"], parse, workers=2, limits=limits))
    elapsed = time.monotonic() - started

    assert outcomes["hangs"].reason == "timeout"
    assert outcomes["hangs"].detail == "the worker was still running after 1 s and was killed"
    assert 1.0 <= outcomes["hangs"].seconds < 3.0
    assert all(outcomes[t].ok and outcomes[t].value == t for t in "abc")
    assert elapsed < 3.0
    _assert_reaped(_logged_pids(log))


def test_allocating_beyond_the_cap_is_memory_limit() -> None:
    def allocate(megabytes: int) -> int:
        chunks = [bytearray(16 * 1024 * 1024) for _ in range(megabytes // 16)]
        return len(chunks)

    limits = Limits(timeout_s=20.0, memory_mb=300)
    outcomes = dict(run_isolated([4096, 64], allocate, workers=2, limits=limits))

    assert outcomes[4096].reason == "memory-limit"
    assert isinstance(outcomes[4096].error, MemoryError)
    # The cap leaves ordinary work alone.
    assert outcomes[64].ok and outcomes[64].value == 4


def test_one_huge_allocation_is_memory_limit() -> None:
    outcome = run_one(64, lambda gb: len(bytes(gb * 1024**3)), Limits(memory_mb=300))

    assert outcome.reason == "memory-limit"


def test_abort_is_crashed_naming_sigabrt() -> None:
    def abort(_: None) -> None:
        faulthandler.disable()  # pytest's handler would dump a stack into the test output
        os.abort()

    outcome = run_one(None, abort, FAST)

    assert outcome.reason == "crashed"
    assert outcome.detail == "the worker died from signal SIGABRT"
    assert outcome.error is None


def test_a_segfault_is_crashed_naming_sigsegv() -> None:
    def segfault(address: int) -> bytes:
        faulthandler.disable()  # pytest's handler would dump a stack into the test output
        return ctypes.string_at(address)

    outcome = run_one(0, segfault, FAST)

    assert outcome.reason == "crashed"
    assert outcome.detail == "the worker died from signal SIGSEGV"


@pytest.mark.parametrize(
    ("exit_in_child", "code"),
    [(lambda: os._exit(3), 3), (lambda: exit(4), 4)],
    ids=["os._exit", "sys.exit"],
)
def test_exiting_without_a_result_is_crashed(exit_in_child: object, code: int) -> None:
    outcome = run_one(exit_in_child, lambda f: f(), FAST)  # type: ignore[operator]

    assert outcome.reason == "crashed"
    assert outcome.detail == f"the worker exited with code {code} without sending a result"


def test_a_sigkill_from_outside_is_taken_for_the_oom_killer() -> None:
    outcome = run_one(None, lambda _: os.kill(os.getpid(), signal.SIGKILL), FAST)

    assert outcome.reason == "memory-limit"
    assert outcome.detail is not None and "out-of-memory killer" in outcome.detail


def test_a_30_mb_result_round_trips() -> None:
    size = 30 * 1024 * 1024
    expected = bytes(range(256)) * (size // 256)

    outcome = run_one(size, lambda n: bytes(range(256)) * (n // 256), Limits(timeout_s=10.0))

    assert outcome.ok
    assert outcome.value == expected


def test_no_more_than_workers_children_at_once(tmp_path: Path) -> None:
    log = tmp_path / "spans"

    def work(task: int) -> int:
        start = time.monotonic()
        time.sleep(0.15)
        _log(log, os.getpid(), start, time.monotonic())
        return task

    results = list(run_isolated(range(7), work, workers=3, limits=FAST))

    assert sorted(task for task, _ in results) == list(range(7))
    spans = [tuple(map(float, line.split()[1:])) for line in log.read_text().splitlines()]
    assert len({line.split()[0] for line in log.read_text().splitlines()}) == 7  # fresh child each
    # CLOCK_MONOTONIC is system-wide, so times from different children compare.
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 2 <= most <= 3  # concurrency happened, and never beyond `workers`


def test_an_endless_task_stream_is_read_lazily_and_close_kills_the_children(
    tmp_path: Path,
) -> None:
    log = tmp_path / "pids"
    pulled = []

    def tasks() -> Iterator[int]:
        for n in itertools.count():
            pulled.append(n)
            yield n

    def work(n: int) -> int:
        _log(log, os.getpid(), n)
        if n >= 5:
            time.sleep(3600)  # still running when the consumer walks away
        return n

    results = run_isolated(tasks(), work, workers=2, limits=FAST)
    first = [next(results) for _ in range(5)]
    results.close()

    assert sorted(task for task, _ in first) == [0, 1, 2, 3, 4]
    assert len(pulled) <= 5 + 2  # never more than `workers` ahead
    _assert_reaped(_logged_pids(log))


def test_keyboard_interrupt_kills_the_children(tmp_path: Path) -> None:
    log = tmp_path / "pids"

    def hang(_: int) -> None:
        _log(log, os.getpid())
        time.sleep(3600)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        # Timers are not inherited across fork, so only the parent is interrupted.
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            list(run_isolated(range(2), hang, workers=2, limits=FAST))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    _assert_reaped(_logged_pids(log))


def test_the_child_does_not_run_the_parents_exit_hooks(tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"

    def register_and_return(_: None) -> str:
        import atexit

        atexit.register(marker.write_text, "ran")
        return "done"

    assert run_one(None, register_and_return, FAST).value == "done"
    assert not marker.exists()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        run_isolated([1], str, workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        run_isolated([1], str, limits=Limits(timeout_s=0))


def test_outcome_is_frozen() -> None:
    outcome: Outcome[int] = Outcome(ok=True, value=1)
    with pytest.raises(AttributeError):
        outcome.ok = False  # type: ignore[misc]
