"""Running stages over one batch: what every engine does inside its workers.

A batch is whole documents' items. :func:`run_stages` builds the stages of a segment, opens
their resources once per process (cached, so a worker that runs many batches loads a model
once) and runs them in order. It is a plain function of its arguments -- the local engine calls
it in-process or in forked workers, the Ray engine inside Ray actors -- so every engine
computes exactly the same records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.pipeline._stage import Item, Stage
from garrison.pipeline.spec import StageSpec

__all__ = ["BatchResult", "StageStats", "failed_batch", "run_stages"]


@dataclass
class StageStats:
    """Records in and out of one stage, and its time."""

    name: str
    items_in: int = 0
    items_out: int = 0
    dropped: int = 0
    failed: int = 0
    seconds: float = 0.0

    def add(self, other: StageStats) -> None:
        self.items_in += other.items_in
        self.items_out += other.items_out
        self.dropped += other.dropped
        self.failed += other.failed
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "in": self.items_in,
            "out": self.items_out,
            "dropped": self.dropped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class BatchResult:
    """What a segment made of one batch: its element items, the chunks (after ``chunk``)."""

    elements: list[Item]
    chunks: list[Item] = field(default_factory=list)
    stats: list[StageStats] = field(default_factory=list)
    #: The process that ran the batch (the equivalence tests check where work happened).
    pid: int = 0


#: Per-process cache of built stages and their opened resources (workers keep theirs).
_OPEN: dict[tuple[str, str, int], tuple[Stage[Any], Any]] = {}


def _open(spec: StageSpec, resources: Mapping[str, Any]) -> tuple[Stage[Any], Any]:
    key = (spec.name, spec.params.model_dump_json(), _resources_key(resources))
    if key not in _OPEN:
        stage = spec.build()
        _OPEN[key] = (stage, stage.open_resources(dict(resources)))
    return _OPEN[key]


def _resources_key(resources: Mapping[str, Any]) -> int:
    return hash(tuple(sorted((k, repr(v)) for k, v in resources.items())))


def reset_stage_cache() -> None:
    """Forget opened stages (a new run may use other resources or parameters)."""
    _OPEN.clear()


def run_stages(
    specs: Sequence[StageSpec], items: list[Item], resources: Mapping[str, Any]
) -> BatchResult:
    """Run ``specs`` over one batch; the items entering ``chunk`` are the batch's elements."""
    import os

    elements: list[Item] | None = None
    stats: list[StageStats] = []
    for spec in specs:
        stage, resource = _open(spec, resources)
        if spec.name == "chunk":
            elements = items
        started = time.perf_counter()
        if elements is not None and getattr(stage, "reads_elements", False):
            # A stage over elements after ``chunk`` (classify) gets the batch's elements too;
            # it annotates them in place, and the stream after it stays the chunks.
            out = [i for i in stage.process(elements + items, resource) if i.kind == "chunk"]
        else:
            out = stage.process(list(items), resource)
        stats.append(
            StageStats(
                spec.name,
                items_in=len(items),
                items_out=len(out),
                dropped=sum(1 for i in out if i.dropped),
                failed=sum(1 for i in out if i.failed),
                seconds=time.perf_counter() - started,
            )
        )
        items = out
    if elements is None:
        return BatchResult(items, [], stats, os.getpid())
    return BatchResult(elements, [i for i in items if i.kind == "chunk"], stats, os.getpid())


def failed_batch(batch: list[Item], reason: str) -> BatchResult:
    """The result of a batch whose worker crashed or timed out: every item failed."""
    for item in batch:
        item.failed = reason
    return BatchResult(batch)
