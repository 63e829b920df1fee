"""run_isolated: a crash, hang or memory blow-up fails only its task, with or without worker reuse.

Most tests run in both modes (the ``reuse`` fixture). Where one task's failure is the point, it
runs as the *second* task of a one-worker run (:func:`_second`), so that with reuse it reaches a
worker that has already served a task, over the pipe, as in production.
"""

from __future__ import annotations

import ctypes
import faulthandler
import itertools
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from garrison.core.isolation import Limits, Outcome, run_isolated, run_one

FAST = Limits(timeout_s=10.0, memory_mb=0)
WARM_UP = "warm-up"

#: Mutated by tasks, to show what recycling resets (tasks must not do this; see the docstring).
_calls_in_this_process = 0


@pytest.fixture(params=[True, False], ids=["reuse", "fork-per-task"])
def reuse(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _second(
    task: object, fn: Callable[[object], object], limits: Limits, reuse: bool
) -> Outcome[object]:
    """The outcome of ``fn(task)`` run after a warm-up task in a one-worker run."""

    def wrapped(item: object) -> object:
        return os.getpid() if item == WARM_UP else fn(item)

    results = list(run_isolated([WARM_UP, task], wrapped, workers=1, limits=limits, reuse=reuse))
    assert [t for t, _ in results] == [WARM_UP, task]
    assert results[0][1].ok
    return results[1][1]


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


def test_results_come_back_in_completion_order(reuse: bool) -> None:
    tasks = [0.8, 0.1, 0.3]
    results = list(run_isolated(tasks, _sleep_then_echo, workers=2, limits=FAST, reuse=reuse))

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


def test_an_exception_comes_back_as_error_with_its_type(reuse: bool) -> None:
    def parse(path: object) -> str:
        raise ParserFailed(str(path), "truncated header")

    outcome = _second("a.docx", parse, FAST, reuse)

    assert not outcome.ok
    assert outcome.reason == "error"
    assert isinstance(outcome.error, ParserFailed)
    assert (outcome.error.path, outcome.error.why) == ("a.docx", "truncated header")
    assert outcome.detail is not None and outcome.detail.startswith("ParserFailed")
    # The child's traceback travels as a note, since the traceback object itself cannot.
    assert "truncated header" in "".join(outcome.error.__notes__)
    assert "in parse" in "".join(outcome.error.__notes__)


def test_an_exception_that_does_not_pickle_becomes_a_runtime_error(reuse: bool) -> None:
    def parse(_: object) -> None:
        raise Unpicklable()

    outcome = _second(1, parse, FAST, reuse)

    assert outcome.reason == "error"
    assert type(outcome.error) is RuntimeError
    assert "Unpicklable" in str(outcome.error)


def test_a_hang_times_out_while_the_others_complete(tmp_path: Path, reuse: bool) -> None:
    log = tmp_path / "pids"

    def parse(task: str) -> str:
        _log(log, os.getpid(), task)
        if task == "hangs":
            time.sleep(3600)
        return task

    limits = Limits(timeout_s=1.0, memory_mb=0)
    started = time.monotonic()
    tasks = ["hangs", "a", "b", "c"]
    outcomes = dict(run_isolated(tasks, parse, workers=2, limits=limits, reuse=reuse))
    elapsed = time.monotonic() - started

    assert outcomes["hangs"].reason == "timeout"
    assert outcomes["hangs"].detail == "the worker was still running after 1 s and was killed"
    assert 1.0 <= outcomes["hangs"].seconds < 3.0
    assert all(outcomes[t].ok and outcomes[t].value == t for t in "abc")
    assert elapsed < 3.0
    _assert_reaped(_logged_pids(log))


def test_allocating_beyond_the_cap_is_memory_limit(reuse: bool) -> None:
    def allocate(megabytes: int) -> int:
        chunks = [bytearray(16 * 1024 * 1024) for _ in range(megabytes // 16)]
        return len(chunks)

    limits = Limits(timeout_s=20.0, memory_mb=300)
    outcomes = dict(run_isolated([4096, 64], allocate, workers=2, limits=limits, reuse=reuse))

    assert outcomes[4096].reason == "memory-limit"
    assert isinstance(outcomes[4096].error, MemoryError)
    # The cap leaves ordinary work alone.
    assert outcomes[64].ok and outcomes[64].value == 4


def test_one_huge_allocation_is_memory_limit(reuse: bool) -> None:
    def allocate(gigabytes: object) -> int:
        assert isinstance(gigabytes, int)
        return len(bytes(gigabytes * 1024**3))

    outcome = _second(64, allocate, Limits(memory_mb=300), reuse)

    assert outcome.reason == "memory-limit"


def test_abort_is_crashed_naming_sigabrt(reuse: bool) -> None:
    def abort(_: object) -> None:
        faulthandler.disable()  # pytest's handler would dump a stack into the test output
        os.abort()

    outcome = _second(None, abort, FAST, reuse)

    assert outcome.reason == "crashed"
    assert outcome.detail == "the worker died from signal SIGABRT"
    assert outcome.error is None


def test_a_segfault_is_crashed_naming_sigsegv(reuse: bool) -> None:
    def segfault(address: object) -> bytes:
        assert isinstance(address, int)
        faulthandler.disable()  # pytest's handler would dump a stack into the test output
        return ctypes.string_at(address)

    outcome = _second(0, segfault, FAST, reuse)

    assert outcome.reason == "crashed"
    assert outcome.detail == "the worker died from signal SIGSEGV"


@pytest.mark.parametrize(
    ("how", "code"), [("os._exit", 3), ("sys.exit", 4)], ids=["os._exit", "sys.exit"]
)
def test_exiting_without_a_result_is_crashed(how: str, code: int, reuse: bool) -> None:
    def leave(_: object) -> None:
        if how == "os._exit":
            os._exit(code)
        exit(code)

    outcome = _second(None, leave, FAST, reuse)

    assert outcome.reason == "crashed"
    assert outcome.detail == f"the worker exited with code {code} without sending a result"


def test_a_sigkill_from_outside_is_taken_for_the_oom_killer(reuse: bool) -> None:
    outcome = _second(None, lambda _: os.kill(os.getpid(), signal.SIGKILL), FAST, reuse)

    assert outcome.reason == "memory-limit"
    assert outcome.detail is not None and "out-of-memory killer" in outcome.detail


def test_a_30_mb_task_and_result_round_trip(reuse: bool) -> None:
    size = 30 * 1024 * 1024
    expected = bytes(range(256)) * (size // 256)

    def double(blob: object) -> bytes:
        assert isinstance(blob, bytes)
        return blob[::-1][::-1]

    # With reuse the task itself crosses the pipe too, as file bytes do in the engine.
    outcome = _second(expected, double, Limits(timeout_s=10.0), reuse)

    assert outcome.ok
    assert outcome.value == expected


def test_no_more_than_workers_tasks_at_once(tmp_path: Path, reuse: bool) -> None:
    log = tmp_path / "spans"

    def work(task: int) -> int:
        start = time.monotonic()
        time.sleep(0.15)
        _log(log, os.getpid(), start, time.monotonic())
        return task

    results = list(run_isolated(range(7), work, workers=3, limits=FAST, reuse=reuse))

    assert sorted(task for task, _ in results) == list(range(7))
    spans = [tuple(map(float, line.split()[1:])) for line in log.read_text().splitlines()]
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert len(pids) == (3 if reuse else 7)  # never more workers than slots; or fresh each
    # CLOCK_MONOTONIC is system-wide, so times from different children compare.
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 2 <= most <= 3  # concurrency happened, and never beyond `workers`


def test_an_endless_task_stream_is_read_lazily_and_close_kills_the_children(
    tmp_path: Path, reuse: bool
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

    results = run_isolated(tasks(), work, workers=2, limits=FAST, reuse=reuse)
    first = [next(results) for _ in range(5)]
    results.close()

    assert sorted(task for task, _ in first) == [0, 1, 2, 3, 4]
    assert len(pulled) <= 5 + 2  # never more than `workers` ahead
    _assert_reaped(_logged_pids(log))


def test_keyboard_interrupt_kills_the_children(tmp_path: Path, reuse: bool) -> None:
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
            list(run_isolated(range(2), hang, workers=2, limits=FAST, reuse=reuse))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    _assert_reaped(_logged_pids(log))


def test_the_child_does_not_run_the_parents_exit_hooks(tmp_path: Path, reuse: bool) -> None:
    marker = tmp_path / "hook-ran"

    def register_and_return(_: object) -> str:
        import atexit

        atexit.register(marker.write_text, "ran")
        return "done"

    # Several tasks, so that a reused worker's normal end (not only a task's) is covered.
    results = list(run_isolated(range(3), register_and_return, limits=FAST, reuse=reuse))
    assert [outcome.value for _, outcome in results] == ["done"] * 3
    assert not marker.exists()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        run_isolated([1], str, workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        run_isolated([1], str, limits=Limits(timeout_s=0))
    with pytest.raises(ValueError, match="max_tasks_per_worker"):
        run_isolated([1], str, max_tasks_per_worker=0)


def test_outcome_is_frozen() -> None:
    outcome: Outcome[int] = Outcome(ok=True, value=1)
    with pytest.raises(AttributeError):
        outcome.ok = False  # type: ignore[misc]


# --- worker reuse ---------------------------------------------------------------------------


def _pid(_: object) -> int:
    return os.getpid()


@pytest.mark.parametrize(("per_worker", "expected"), [(20, 1), (500, 1), (5, 4), (1, 20)])
def test_a_worker_serves_tasks_until_it_is_recycled(per_worker: int, expected: int) -> None:
    results = list(
        run_isolated(range(20), _pid, workers=1, limits=FAST, max_tasks_per_worker=per_worker)
    )

    pids = [outcome.value for _, outcome in results]
    assert [task for task, _ in results] == list(range(20))
    assert len(set(pids)) == expected  # ceil(20 / per_worker)
    # Recycling is in order: each worker serves a contiguous run of tasks.
    assert pids == sorted(pids, key=pids.index)
    _assert_reaped([pid for pid in set(pids) if pid is not None])


def test_reuse_false_forks_a_child_per_task() -> None:
    results = list(run_isolated(range(6), _pid, workers=2, limits=FAST, reuse=False))

    assert len({outcome.value for _, outcome in results}) == 6


def _fail(how: str) -> None:
    faulthandler.disable()  # pytest's handler would dump a stack into the test output
    if how == "crashed":
        os.abort()
    if how == "timeout":
        time.sleep(3600)
    if how == "memory-limit":
        bytes(64 * 1024**3)
    raise ParserFailed(how, "ordinary")


@pytest.mark.parametrize("how", ["crashed", "timeout", "memory-limit", "error"])
def test_after_a_failure_the_next_task_gets_a_fresh_worker_only_if_needed(
    how: str, tmp_path: Path
) -> None:
    log = tmp_path / "pids"

    def work(task: str) -> int:
        _log(log, os.getpid(), task)
        if task == "bad":
            _fail(how)
        return os.getpid()

    limits = Limits(timeout_s=1.0, memory_mb=300)
    outcomes = dict(run_isolated(["before", "bad", "after"], work, workers=1, limits=limits))

    assert outcomes["bad"].reason == how
    assert outcomes["before"].ok and outcomes["after"].ok
    ran_in = {line.split()[1]: int(line.split()[0]) for line in log.read_text().splitlines()}
    assert ran_in["bad"] == ran_in["before"]  # the failing task really ran in a reused worker
    if how == "error":
        assert ran_in["after"] == ran_in["bad"]  # an ordinary exception costs no worker
    else:
        assert ran_in["after"] != ran_in["bad"]
    _assert_reaped(sorted(set(ran_in.values())))


def test_a_hang_in_one_worker_does_not_hold_up_the_other() -> None:
    def work(task: str) -> str:
        if task == "hangs":
            time.sleep(3600)
        time.sleep(0.02)
        return task

    tasks = ["hangs"] + [f"t{n}" for n in range(20)]
    started = time.monotonic()
    arrivals = {}
    for task, outcome in run_isolated(tasks, work, workers=2, limits=Limits(2.0, memory_mb=0)):
        arrivals[task] = (time.monotonic() - started, outcome)

    assert arrivals["hangs"][1].reason == "timeout"
    assert all(arrivals[t][1].ok for t in tasks[1:])
    # 20 tasks of 20 ms in the free worker: done long before the hang's 2 s deadline.
    assert max(arrivals[t][0] for t in tasks[1:]) < 1.5
    assert list(arrivals)[-1] == "hangs"


def test_state_a_task_leaves_behind_lasts_only_until_the_worker_is_recycled() -> None:
    def count(_: object) -> int:
        global _calls_in_this_process
        _calls_in_this_process += 1
        return _calls_in_this_process

    results = list(run_isolated(range(7), count, workers=1, limits=FAST, max_tasks_per_worker=3))

    assert [outcome.value for _, outcome in results] == [1, 2, 3, 1, 2, 3, 1]
    assert _calls_in_this_process == 0  # and never in the parent


def test_a_patch_made_before_iterating_is_what_the_workers_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = run_isolated(range(3), lambda _: os.getcwd(), workers=2, limits=FAST)
    monkeypatch.setattr(os, "getcwd", lambda: "patched")  # workers fork lazily, after this

    assert {outcome.value for _, outcome in results} == {"patched"}


def test_a_task_that_does_not_pickle_still_runs_in_a_fresh_worker() -> None:
    tasks: list[Callable[[], int]] = [os.getpid, lambda: 7, lambda: 8]

    results = list(run_isolated(tasks, lambda f: (f(), os.getpid()), workers=1, limits=FAST))

    values = [outcome.value for _, outcome in results]
    assert all(outcome.ok for _, outcome in results)
    assert [v[0] for v in values if v is not None][1:] == [7, 8]
    assert len({v[1] for v in values if v is not None}) == 3  # each lambda travelled by fork


def _pid_slow_on_one(n: int) -> int:
    if n == 1:
        time.sleep(2)  # still running when the test kills its worker
    return os.getpid()


def test_a_worker_killed_from_outside_fails_its_task_and_is_replaced() -> None:
    # Workers get their next task before the consumer sees a result (so they parse while the
    # parent writes): the worker killed here is busy with task 1, not idle.
    results = run_isolated(range(3), _pid_slow_on_one, workers=1, limits=FAST)
    first = next(results)[1].value
    assert first is not None
    time.sleep(0.2)
    os.kill(first, signal.SIGKILL)  # the way the out-of-memory killer would

    rest = list(results)

    assert [task for task, _ in rest] == [1, 2]
    assert [outcome.ok for _, outcome in rest] == [False, True]
    assert rest[0][1].reason == "memory-limit"  # an outside SIGKILL is taken for the OOM killer
    assert rest[1][1].value != first


def _pid_or_die(task: int) -> tuple[int, int]:
    if task == 2:
        os._exit(7)
    return os.getpid(), os.getppid()


def test_forkserver_workers_are_not_forked_from_this_process() -> None:
    import threading

    # A thread holding a lock in this process is what a fork must not copy: a fork server's
    # workers never see it, and a crash still fails only its task.
    held = threading.Lock()
    held.acquire()
    try:
        outcomes = dict(
            run_isolated(range(5), _pid_or_die, workers=2, limits=FAST, start_method="forkserver")
        )
    finally:
        held.release()
    assert outcomes[2].reason == "crashed"
    assert all(o.ok for t, o in outcomes.items() if t != 2)
    workers = {o.value for t, o in outcomes.items() if t != 2}
    # Neither this process nor its children: the workers' parent is the fork server.
    assert all(pid != os.getpid() and parent != os.getpid() for pid, parent in workers)
    with pytest.raises(ValueError, match="start_method"):
        run_isolated([1], _pid_or_die, start_method="spawn")
