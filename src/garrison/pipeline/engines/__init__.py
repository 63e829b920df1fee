"""Engines: where a pipeline's batch segments run.

The executor (:mod:`garrison.pipeline.executor`) decides *what* runs -- which documents, which
segments, what is reused from earlier runs -- and writes the results; an engine only maps a
segment of batch stages over batches of items and hands back one :class:`BatchResult` per
batch. Corpus stages (``dedup``) and the sink always run in the driver.

* ``local`` (default): in-process for small inputs, reused forked worker processes for large
  ones, with per-batch time and memory limits.
* ``ray`` (the ``ray`` extra): Ray Data ``map_batches`` over a pool of actors, on a local Ray
  started on loopback or on a cluster at ``--address``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.core.isolation import Limits, run_isolated
from garrison.pipeline._run import BatchResult, failed_batch, run_stages
from garrison.pipeline._stage import STAGES, Item, Stage
from garrison.pipeline.spec import StageSpec

__all__ = ["AUTO_WORKERS_BATCHES", "ENGINES", "Engine", "LocalEngine", "create_engine"]

#: From this many batches of documents on, the local engine with ``workers=None`` uses every core.
AUTO_WORKERS_BATCHES = 8
ENGINES = ("local", "ray")


class Engine(ABC):
    """Maps a segment of batch stages over batches of items."""

    name: str

    def __init__(self, resources: Mapping[str, Any]) -> None:
        #: What stages may ask for (``pseudonym_key``, ``workspace_root``).
        self.resources = dict(resources)

    @abstractmethod
    def map_batches(
        self, specs: Sequence[StageSpec], batches: Sequence[list[Item]]
    ) -> Iterator[BatchResult]:
        """One result per batch, in any order; a batch that fails has every item ``failed``."""

    def describe(self) -> dict[str, Any]:
        """What the run report says about the engine."""
        return {"engine": self.name}

    def close(self) -> None:
        """Release what the engine holds (workers, a Ray connection); nothing by default."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    """In-process, or reused forked workers (``workers > 1``) with per-batch limits."""

    name = "local"

    def __init__(
        self,
        resources: Mapping[str, Any],
        *,
        workers: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(resources)
        self.workers = workers
        self.limits = limits or Limits(timeout_s=3600, memory_mb=0)

    def _workers_for(self, batches: int) -> int:
        if self.workers is not None:
            return self.workers
        return (os.cpu_count() or 1) if batches >= AUTO_WORKERS_BATCHES else 1

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "workers": self.workers}

    def map_batches(
        self, specs: Sequence[StageSpec], batches: Sequence[list[Item]]
    ) -> Iterator[BatchResult]:
        workers = self._workers_for(len(batches))
        if workers <= 1 or len(batches) <= 1:
            for batch in batches:
                yield run_stages(specs, batch, self.resources)
            return
        # Stage classes travel with each task: a stage registered at run time in this process
        # (a plugin, a test) exists in the workers too.
        stages = {spec.name: STAGES[spec.name] for spec in specs}
        tasks = ((tuple(specs), tuple(batch), self.resources, stages) for batch in batches)
        # Workers come from a fork server, not from this process: by now this process may run
        # native threads (LanceDB's runtime, rensa's pool) that a fork could catch holding a
        # lock, leaving the child blocked forever.
        for task, outcome in run_isolated(
            tasks, _task, workers=workers, limits=self.limits, start_method="forkserver"
        ):
            if outcome.ok and outcome.value is not None:
                yield outcome.value
            else:
                reason = f"{outcome.reason}: {outcome.detail or 'the batch failed'}"
                yield failed_batch(list(task[1]), reason)


_Task = tuple[
    tuple[StageSpec, ...], tuple[Item, ...], Mapping[str, Any], Mapping[str, type[Stage[Any]]]
]


def _task(task: _Task) -> BatchResult:
    specs, items, resources, stages = task
    for name, cls in stages.items():
        STAGES.setdefault(name, cls)
    return run_stages(specs, list(items), resources)


def create_engine(
    name: str,
    resources: Mapping[str, Any],
    *,
    workers: int | None = None,
    address: str | None = None,
    limits: Limits | None = None,
) -> Engine:
    """The engine called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        if address is not None:
            raise InvalidInput("--address applies to the ray engine only")
        return LocalEngine(resources, workers=workers, limits=limits)
    if name == "ray":
        from garrison.pipeline.engines._ray import RayEngine

        return RayEngine(resources, workers=workers, address=address)
    raise InvalidInput(f"unknown engine {name!r} (choose from: {', '.join(ENGINES)})")
