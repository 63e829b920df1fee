"""The runner: interruption and resume, the cache, retries with backoff, timeouts, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from garrison.core.errors import InvalidInput, ServiceUnavailable
from garrison.evaluate import Runs, SystemSpec
from garrison.evaluate._runner import Settings, _ask, _Timeout
from garrison.evaluate._systems import ItemView, Response
from garrison.models import register_endpoint
from garrison.security.markings import UNCLASSIFIED, parse_marking
from garrison.store.workspace import Workspace
from tests.evaluate.run_fixtures import qa_suite, ws  # noqa: F401
from tests.models.openai_server import ChatServer, serve

M = parse_marking


@pytest.fixture(scope="module")
def server() -> Iterator[ChatServer]:
    def reply(messages: list[dict[str, str]]) -> str:
        word = messages[-1]["content"].split("ferry ")[-1].split(" ")[0]
        return f"The harbor ferry {word} leaves the north pier at dawn."

    with serve(reply=reply) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(server: ChatServer) -> Iterator[None]:
    server.mode = "ok"
    server.requests.clear()
    yield
    server.mode = "ok"


@pytest.fixture(scope="module")
def generator(ws: Workspace, server: ChatServer) -> str:  # noqa: F811
    version = register_endpoint(
        ws.session("ada"), "gen", base_url=server.base_url, model="tiny", accredited=M("TS")
    )
    return version.ref


class Stop(KeyboardInterrupt):
    pass


def test_interrupted_run_resumes_without_reasking(
    ws: Workspace,  # noqa: F811
    server: ChatServer,
    generator: str,
) -> None:
    suite = qa_suite(ws, "resume").ref
    runs = Runs(ws.session("ted"))
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            raise Stop()

    with pytest.raises(Stop) as stopped:
        runs.start(suite, SystemSpec("generator", generator), concurrency=1, progress=progress)
    assert len(server.chat_requests) == 2
    (interrupted,) = [r for r in runs.list() if r.suite == suite]
    # The interruption names the run to resume (the CLI prints it).
    assert f"--resume {interrupted.ref}" in " ".join(stopped.value.__notes__)
    assert interrupted.status == "interrupted"
    assert interrupted.counts["recorded"] == 2
    server.requests.clear()
    done = runs.resume(interrupted.ref)
    assert done.status == "complete" and done.counts["scored"] == 4
    assert len(server.chat_requests) == 2  # only the two items not answered before
    assert done.id == interrupted.id
    assert seen[0] == (0, 4)
    with pytest.raises(InvalidInput):
        runs.resume(done.ref)  # complete: nothing to resume


def test_errors_are_recorded_and_asked_again_on_resume(
    ws: Workspace,  # noqa: F811
    server: ChatServer,
    generator: str,
) -> None:
    suite = qa_suite(ws, "errors", words=("zebrafox", "quokkamoon")).ref
    runs = Runs(ws.session("ted"))
    spec = SystemSpec("generator", generator, {"max_tokens": 11})  # not cached by other tests
    server.mode = "error-500"
    failed = runs.start(suite, spec, retries=0)
    assert failed.counts["error"] == 2 and failed.counts["scored"] == 0
    assert all(r.error for r in runs.items(failed.ref))
    assert failed.metrics == {}

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise Stop()

    with pytest.raises(Stop):
        runs.start(suite, spec, retries=0, concurrency=1, progress=stop_after_one)
    (interrupted,) = [r for r in runs.list() if r.suite == suite and r.status == "interrupted"]
    assert interrupted.counts["error"] == 1
    server.mode = "ok"
    server.requests.clear()
    resumed = runs.resume(interrupted.ref)
    assert resumed.counts["scored"] == 2 and resumed.counts["error"] == 0
    assert len(server.chat_requests) == 2  # the error is asked again, and the item not reached


def test_a_slow_answer_is_a_timeout_error(
    ws: Workspace,  # noqa: F811
    server: ChatServer,
    generator: str,
) -> None:
    suite = qa_suite(ws, "slow", words=("zebrafox",)).ref
    runs = Runs(ws.session("ted"))
    spec = SystemSpec("generator", generator, {"max_tokens": 13})
    server.mode = "slow"
    server.delay = 1.5
    started = time.perf_counter()
    slow = runs.start(suite, spec, retries=0, timeout=0.3)
    assert time.perf_counter() - started < 1.4
    (result,) = list(runs.items(slow.ref))
    assert result.status == "error" and "0.3" in (result.error or "")
    time.sleep(1.3)  # the abandoned call finishes; its late answer is not kept
    server.mode = "ok"
    server.requests.clear()
    assert runs.start(suite, spec, retries=0).counts["scored"] == 1
    assert len(server.chat_requests) == 1


class Flaky:
    """A system that fails ``failures`` times with ServiceUnavailable, then answers."""

    def __init__(self, failures: int, *, sleep: float = 0.0) -> None:
        self.spec = SystemSpec("generator", "flaky")
        self.version = "flaky-1"
        self.failures = failures
        self.calls = 0
        self.sleep = sleep
        self.lock = threading.Lock()

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response:
        with self.lock:
            self.calls += 1
            fail = self.calls <= self.failures
        if self.sleep:
            time.sleep(self.sleep)
        if fail:
            raise ServiceUnavailable("down", service="flaky", reason="unreachable")
        return Response({"text": "ok"}, UNCLASSIFIED)


ITEM = ItemView("i1", "qa", {"question": "q"}, {"answer": "ok"}, UNCLASSIFIED)


def test_retries_back_off_exponentially() -> None:
    system = Flaky(2)
    settings = Settings(retries=2, backoff=0.05)
    started = time.perf_counter()
    response, attempts = _ask(system, ITEM, settings)
    elapsed = time.perf_counter() - started
    assert response.response == {"text": "ok"} and attempts == 3
    assert elapsed >= 0.05 + 0.10  # waited backoff, then twice backoff
    with pytest.raises(ServiceUnavailable):
        _ask(Flaky(3), ITEM, settings)  # one failure more than the retries


def test_a_call_past_its_timeout_is_abandoned() -> None:
    system = Flaky(0, sleep=1.0)
    started = time.perf_counter()
    with pytest.raises(_Timeout):
        _ask(system, ITEM, Settings(retries=0, timeout=0.1))
    assert time.perf_counter() - started < 0.5
    # Timeouts are retried too.
    system = Flaky(0, sleep=0.3)
    with pytest.raises(_Timeout):
        _ask(system, ITEM, Settings(retries=1, timeout=0.05, backoff=0.01))
    assert system.calls == 2


def test_settings_are_checked() -> None:
    for bad in ((0, 2, 60.0, 0), (4, -1, 60.0, 0), (4, 2, 0.0, 0), (4, 2, 60.0, -1)):
        with pytest.raises(InvalidInput):
            Settings.checked(*bad)


def test_concurrency_is_bounded(ws: Workspace, generator: str, server: ChatServer) -> None:  # noqa: F811
    suite = qa_suite(ws, "bounded").ref
    active = 0
    most = 0
    lock = threading.Lock()
    original = server.reply

    def reply(messages: list[dict[str, str]]) -> str:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.1)
        with lock:
            active -= 1
        assert original is not None
        return original(messages)

    server.reply = reply
    try:
        summary = Runs(ws.session("ted")).start(
            suite, SystemSpec("generator", generator, {"max_tokens": 7}), concurrency=2
        )
    finally:
        server.reply = original
    assert summary.counts["scored"] == 4
    assert most == 2
