"""The runner: a system asked about every item of a suite, with bounded concurrency.

- **Concurrency**: ``concurrency`` worker threads ask the system; every catalog write (item
  results, cache entries) happens on the calling thread, one transaction per item, so an
  interrupted run keeps every item it finished.
- **Retries**: a call that fails with :class:`ServiceUnavailable` or runs past ``timeout``
  seconds is tried again up to ``retries`` times, waiting ``backoff · 2^attempt`` seconds in
  between; after that the item is recorded as ``error`` (resuming asks it again).
- **Timeouts**: each call runs in its own daemon thread and is abandoned after ``timeout``
  seconds (its late answer is discarded).
- **Seeds**: the seed goes to every generator call and to the bootstrap of the summary.
- **Cache**: before a call, the response cache (:mod:`._cache`) is consulted; a hit is never
  asked again, so a re-run or a resumed run costs nothing for the items already answered.
- **Eligibility**: a system refuses an item it must not be given before anything is sent
  (:class:`~garrison.evaluate._systems.NotEligible`): the item is ``not-eligible``, counted.

Ctrl-C (or any error) stops the run: it is marked ``interrupted`` and the error re-raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from garrison.core.errors import GarrisonError, InvalidInput, ServiceUnavailable
from garrison.evaluate._cache import ResponseCache, cache_key
from garrison.evaluate._runs import ItemResult, Progress, RunSummary, RunWriter
from garrison.evaluate._systems import (
    ItemView,
    NotEligible,
    Response,
    System,
    SystemSpec,
    open_system,
)
from garrison.security.markings import Marking, join
from garrison.store.session import Session

__all__ = ["Plan", "Settings", "execute", "plan"]

MAX_CONCURRENCY = 64
MAX_RETRIES = 10
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Settings:
    """How a run asks: concurrency, retries, per-call timeout (s), seed, first backoff (s)."""

    concurrency: int = 4
    retries: int = 2
    timeout: float = 60.0
    seed: int = 0
    backoff: float = 0.5

    @classmethod
    def checked(
        cls, concurrency: int, retries: int, timeout: float, seed: int, backoff: float = 0.5
    ) -> Settings:
        if isinstance(concurrency, bool) or not 1 <= int(concurrency) <= MAX_CONCURRENCY:
            raise InvalidInput(f"Concurrency is a whole number from 1 to {MAX_CONCURRENCY}.")
        if isinstance(retries, bool) or not 0 <= int(retries) <= MAX_RETRIES:
            raise InvalidInput(f"Retries are a whole number from 0 to {MAX_RETRIES}.")
        if not 0 < float(timeout) <= MAX_TIMEOUT:
            raise InvalidInput(f"A timeout is more than 0 and at most {MAX_TIMEOUT:g} seconds.")
        if isinstance(seed, bool) or int(seed) < 0:
            raise InvalidInput("A seed is a whole number of at least 0.")
        return cls(int(concurrency), int(retries), float(timeout), int(seed), float(backoff))

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "retries": self.retries,
            "timeout": self.timeout,
            "seed": self.seed,
        }


@dataclass
class PlannedItem:
    """A suite item as the runner needs it."""

    view: ItemView
    position: int
    cluster: str
    slices: dict[str, str]


@dataclass
class Plan:
    """What a run will do: the suite, the items still to ask, the system and its scorers."""

    suite_id: str
    suite_ref: str
    suite_kind: str
    items: list[PlannedItem]
    system: System
    scorers: list[Any]
    scorer_names: list[str]
    scorer_versions: dict[str, str] = field(default_factory=dict)
    holdout: bool = False


def _scorers(kind: str, names: Sequence[str] | None) -> list[Any]:
    from garrison.evaluate.scorers import default_scorers, get_scorer

    found = [get_scorer(n) for n in (names or default_scorers(kind))]
    for scorer in found:
        kinds = frozenset(getattr(scorer, "kinds", ()) or ())
        if kinds and kind not in kinds:
            raise InvalidInput(f"Scorer {scorer.name} does not score {kind} items.")
    return found


def _planned(items: Iterable[Any]) -> list[PlannedItem]:
    out = []
    for n, item in enumerate(items):
        view = ItemView(
            id=str(item.id),
            kind=str(item.kind),
            input=dict(item.input),
            expected=dict(item.expected),
            marking=item.marking,
            sources=tuple(item.sources or ()),
        )
        position = int(getattr(item, "position", n + 1))
        cluster = str(getattr(item, "cluster", "") or item.id)
        out.append(PlannedItem(view, position, cluster, dict(getattr(item, "slices", {}) or {})))
    return out


def plan(
    session: Session,
    suite_ref: str,
    spec: SystemSpec,
    scorer_names: Sequence[str] | None,
    settings: Settings,
    *,
    skip: Iterable[str] = (),
) -> Plan:
    """Resolve the suite, open the system, choose the scorers (no item is asked yet)."""
    from garrison.evaluate._suites import Suites

    suites = Suites(session)
    version = suites.get(suite_ref)
    everything = _planned(suites.items(version.ref))
    system = open_system(
        session, spec, version.kind, [p.view for p in everything], timeout=settings.timeout
    )
    scorers = _scorers(version.kind, scorer_names)
    if not scorers:
        raise InvalidInput(f"No scorer scores {version.kind} items; name one with --scorer.")
    done = set(skip)
    return Plan(
        suite_id=version.id,
        suite_ref=version.ref,
        suite_kind=version.kind,
        items=[p for p in everything if p.view.id not in done],
        system=system,
        scorers=scorers,
        scorer_names=[str(s.name) for s in scorers],
        scorer_versions={str(s.name): str(getattr(s, "version", "1")) for s in scorers},
        holdout=bool(version.holdout),
    )


# -- asking one item ------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _call(system: System, item: ItemView, seed: int, timeout: float) -> Response:
    """One call in its own daemon thread, abandoned after ``timeout`` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = system.respond(item, seed=seed, timeout=timeout)
        except BaseException as exc:  # carried to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"eval-{item.id[:8]}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _Timeout(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    response: Response = box["value"]
    return response


def _ask(system: System, item: ItemView, settings: Settings) -> tuple[Response, int]:
    """The response after at most ``retries`` retries, and how many attempts it took."""
    attempt = 0
    while True:
        try:
            return _call(system, item, settings.seed, settings.timeout), attempt + 1
        except (ServiceUnavailable, _Timeout):
            if attempt >= settings.retries:
                raise
            time.sleep(settings.backoff * (2**attempt))
            attempt += 1


@dataclass
class _Outcome:
    result: ItemResult
    cache: tuple[str, dict[str, Any], Marking] | None = None


def _score(
    plan: Plan, item: ItemView, response: Mapping[str, Any], marking: Marking
) -> tuple[dict[str, float], dict[str, bool]]:
    """Every scorer's score of one response; a scorer that does not apply to the item (its
    expected output lacks what it compares against) is left out for that item."""
    from garrison.evaluate.scorers import NotApplicable, Scored

    scored = Scored(item.kind, dict(item.input), dict(item.expected), dict(response), marking)
    values: dict[str, float] = {}
    binary: dict[str, bool] = {}
    for scorer in plan.scorers:
        try:
            score = scorer.score(scored)
        except NotApplicable:
            continue
        values[str(score.name)] = float(score.value)
        binary[str(score.name)] = bool(score.binary)
    return values, binary


def _item_record(item: ItemView) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "input": dict(item.input),
        "expected": dict(item.expected),
        "marking": item.marking.banner(),
        "sources": list(item.sources),
    }


def _one(
    plan: Plan, cache: ResponseCache, key: str, planned: PlannedItem, settings: Settings
) -> _Outcome:
    item = planned.view
    base: dict[str, Any] = {
        "item_id": item.id,
        "cluster": planned.cluster,
        "slices": planned.slices,
        "position": planned.position,
    }
    cached = cache.get(key)
    fresh: tuple[str, dict[str, Any], Marking] | None = None
    if cached is not None:
        stored, marking = cached
        response = dict(stored["response"])
        context = list(stored.get("context") or [])
        tokens = stored.get("tokens")
        latency = float(stored.get("latency_ms", 0.0))
    else:
        started = time.perf_counter()
        try:
            answered, attempts = _ask(plan.system, item, settings)
        except NotEligible as exc:
            return _Outcome(
                ItemResult(
                    status="not-eligible",
                    marking=item.marking,
                    latency_ms=0.0,
                    error=exc.reason,
                    transcript={"item": _item_record(item), "reason": exc.reason},
                    **base,
                )
            )
        except (GarrisonError, _Timeout, OSError, ValueError) as exc:
            latency = (time.perf_counter() - started) * 1000.0
            message = str(exc) or type(exc).__name__
            return _Outcome(
                ItemResult(
                    status="error",
                    marking=item.marking,
                    latency_ms=latency,
                    error=message[:500],
                    transcript={"item": _item_record(item), "error": message[:500]},
                    **base,
                )
            )
        latency = (time.perf_counter() - started) * 1000.0
        response, context, tokens = answered.response, answered.context, answered.tokens
        marking = answered.marking
        fresh = (
            key,
            {
                "response": response,
                "context": context,
                "tokens": tokens,
                "latency_ms": latency,
                "attempts": attempts,
            },
            marking,
        )
    marked = join(item.marking, marking)
    scores, binary = _score(plan, item, response, marked)
    result = ItemResult(
        status="scored",
        marking=marked,
        scores=scores,
        binary=binary,
        latency_ms=latency,
        tokens=int(tokens) if tokens is not None else None,
        transcript={
            "item": _item_record(item),
            "context": context,
            "response": response,
            "response_marking": marking.banner(),
            "scores": scores,
            "cached": cached is not None,
        },
        **base,
    )
    return _Outcome(result, fresh)


# -- the run --------------------------------------------------------------------------------------


def execute(
    session: Session,
    writer: RunWriter,
    plan: Plan,
    settings: Settings,
    *,
    progress: Progress | None = None,
) -> RunSummary:
    """Ask every planned item, record each result as it comes, finish the run."""
    cache = ResponseCache(session)
    spec = plan.system.spec
    acting = spec.subject or session.subject.name
    total = len(plan.items)
    done = 0
    if progress is not None:
        progress(0, total)
    pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="eval")
    pending: set[Future[_Outcome]] = set()
    queue = list(plan.items)
    try:
        while queue or pending:
            while queue and len(pending) < settings.concurrency:
                planned = queue.pop(0)
                key = cache_key(plan.system.version, spec, acting, planned.view)
                pending.add(pool.submit(_one, plan, cache, key, planned, settings))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                if outcome.cache is not None:
                    cache.put(*outcome.cache)
                writer.record(outcome.result)
                done += 1
                if progress is not None:
                    progress(done, total)
    except BaseException as exc:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        writer.interrupt()
        ref = f"RUN-{writer.run_id[:12]}"
        exc.add_note(
            f"Run {ref} is interrupted; finish it with `garrison eval run --resume {ref}`."
        )
        raise
    pool.shutdown(wait=True)
    return writer.finish()
