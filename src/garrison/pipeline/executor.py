"""The local executor: runs a pipeline over the documents a session may read.

The stages split into *segments*: runs of batch stages, and corpus stages (``dedup``) that need
every item at once. Segments before the last corpus stage are materialized (items hold text and
a few fields); the final segment -- ``chunk`` and ``embed``, where the bulky data appears -- is
streamed batch by batch straight into the sink, so memory stays bounded by the corpus's text,
not its embeddings.

Batches are whole documents. Small inputs run in-process; with ``workers > 1`` and more than one
batch, batch segments run in reused forked worker processes (:mod:`garrison.ingest.isolation`),
where each worker opens its stages' resources once. A batch that crashes or times out fails its
items (``stage-failed`` findings), never the run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from garrison.core.clock import utc_now
from garrison.ingest.isolation import Limits, run_isolated
from garrison.pipeline._stage import Item, Stage
from garrison.pipeline.sink import write_batch
from garrison.pipeline.spec import PipelineSpec, StageSpec
from garrison.security.policy import Action
from garrison.store.index import ChunkIndex
from garrison.store.models import DocumentRow, ElementRow, JobRow
from garrison.store.session import Session

__all__ = ["RunReport", "StageStats", "run_pipeline"]

ProgressFn = Callable[[str, int, int], None]
#: From this many batches of documents on, ``workers=None`` uses every core.
AUTO_WORKERS_BATCHES = 8


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
class RunReport:
    """Summary of a pipeline run (what ``garrison run`` prints)."""

    job_id: str
    pipeline: dict[str, Any]
    documents: int = 0
    elements: int = 0
    chunks: int = 0
    embeddings: int = 0
    pii: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    marked_differently: int = 0
    failed: int = 0
    stages: dict[str, StageStats] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "pipeline": self.pipeline["name"],
            "pipeline_digest": self.pipeline["digest"],
            "documents": self.documents,
            "elements": self.elements,
            "chunks": self.chunks,
            "embeddings": self.embeddings,
            "pii_by_type": dict(sorted(self.pii.items())),
            "duplicates": {"exact": self.duplicates["exact"], "near": self.duplicates["near"]},
            "duplicates_marked_differently": self.marked_differently,
            "failed": self.failed,
            "stages": [s.to_dict() for s in self.stages.values()],
            "seconds": round(self.seconds, 3),
        }


# -- running stages (in-process or in a worker) ---------------------------------------------------

#: Per-process cache of built stages and their opened resources (workers keep theirs).
_OPEN: dict[tuple[str, str], tuple[Stage[Any], Any]] = {}
#: What stages may ask for; set in the parent before workers fork, so they inherit it.
_RESOURCES: dict[str, Any] = {}


def _open(spec: StageSpec) -> tuple[Stage[Any], Any]:
    key = (spec.name, spec.params.model_dump_json())
    if key not in _OPEN:
        stage = spec.build()
        _OPEN[key] = (stage, stage.open_resources(_RESOURCES))
    return _OPEN[key]


@dataclass
class _Result:
    elements: list[Item]
    chunks: list[Item]
    stats: list[StageStats]


def _run_stages(specs: Sequence[StageSpec], items: list[Item]) -> _Result:
    """Run ``specs`` over one batch; the items entering ``chunk`` are the batch's elements."""
    elements: list[Item] | None = None
    stats: list[StageStats] = []
    for spec in specs:
        stage, resource = _open(spec)
        if spec.name == "chunk":
            elements = items
        started = time.perf_counter()
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
        return _Result(items, [], stats)
    return _Result(elements, [i for i in items if i.kind == "chunk"], stats)


@dataclass(frozen=True)
class _Task:
    specs: tuple[StageSpec, ...]
    items: tuple[Item, ...]


def _task(task: _Task) -> _Result:
    return _run_stages(task.specs, list(task.items))


# -- the run --------------------------------------------------------------------------------------


def _segments(specs: Sequence[StageSpec]) -> list[tuple[bool, list[StageSpec]]]:
    """Consecutive batch stages, and corpus stages alone: ``(is_corpus, stages)``."""
    out: list[tuple[bool, list[StageSpec]]] = []
    for spec in specs:
        corpus = spec.build().scope == "corpus"
        if corpus or not out or out[-1][0]:
            out.append((corpus, [spec]))
        else:
            out[-1][1].append(spec)
    return out


def _input_batches(
    session: Session, batch_docs: int, doc_ids: Sequence[str] | None
) -> list[list[Item]]:
    """Elements of every parsed document the subject may read, whole documents per batch."""
    catalog = session.workspace.catalog
    with catalog.transaction() as orm:
        readable = session.readable_marking_ids(orm)
        query = select(DocumentRow.id).where(
            DocumentRow.status == "parsed",
            DocumentRow.marking_id.in_(readable),
            DocumentRow.superseded_by.is_(None),
        )
        if doc_ids is not None:
            query = query.where(DocumentRow.id.in_(list(doc_ids)))
        ids = list(orm.scalars(query.order_by(DocumentRow.ingested_at, DocumentRow.id)))
    batches: list[list[Item]] = []
    for start in range(0, len(ids), batch_docs):
        chunk_ids = ids[start : start + batch_docs]
        with catalog.transaction() as orm:
            rows = orm.scalars(
                select(ElementRow)
                .where(ElementRow.doc_id.in_(chunk_ids), ElementRow.marking_id.in_(readable))
                .order_by(ElementRow.doc_id, ElementRow.seq)
            )
            batch = []
            for row in rows:
                marking = session.marking_of(orm, row.marking_id)
                assert marking is not None
                data = row.data or {}
                batch.append(
                    Item(
                        id=row.id,
                        doc_id=row.doc_id,
                        kind="element",
                        text=row.text,
                        original_text=row.text,
                        marking=marking,
                        element_ids=(row.id,),
                        seq=row.seq,
                        type=row.type,
                        section_path=tuple(data.get("section_path", ())),
                        page=row.page,
                    )
                )
        batches.append(batch)
    return batches


def _regroup(items: list[Item], batches: list[list[Item]]) -> list[list[Item]]:
    """Put items back into the batches their documents came in."""
    where = {item.doc_id: n for n, batch in enumerate(batches) for item in batch}
    out: list[list[Item]] = [[] for _ in batches]
    for item in items:
        out[where.get(item.doc_id, 0)].append(item)
    return out


def _failed_batch(batch: list[Item], reason: str) -> _Result:
    for item in batch:
        item.failed = reason
    return _Result(batch, [], [])


def _map_batches(
    specs: Sequence[StageSpec], batches: list[list[Item]], workers: int, limits: Limits
) -> Iterator[_Result]:
    """Run a batch segment over every batch, in workers when that pays off."""
    if workers <= 1 or len(batches) <= 1:
        for batch in batches:
            yield _run_stages(specs, batch)
        return
    tasks = (_Task(tuple(specs), tuple(batch)) for batch in batches)
    for task, outcome in run_isolated(tasks, _task, workers=workers, limits=limits):
        if outcome.ok and outcome.value is not None:
            yield outcome.value
        else:
            reason = f"{outcome.reason}: {outcome.detail or 'the batch failed'}"
            yield _failed_batch(list(task.items), reason)


def run_pipeline(
    session: Session,
    spec: PipelineSpec,
    *,
    workers: int | None = None,
    batch_docs: int = 32,
    doc_ids: Sequence[str] | None = None,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
) -> RunReport:
    """Run ``spec`` over what ``session``'s subject may read (stewards); returns the report.

    ``workers=None`` chooses: in-process for small inputs, one worker per core for large ones.
    """
    from garrison.store.keys import read_or_create_secret

    session.require(Action.RUN_PIPELINE, "pipeline.run")
    workspace = session.workspace
    _RESOURCES.clear()
    _RESOURCES.update(
        {
            "pseudonym_key": read_or_create_secret(workspace.root / "keys" / "pseudonym.key"),
            "workspace_root": workspace.root,
        }
    )
    _OPEN.clear()
    job_id = uuid.uuid4().hex
    with workspace.catalog.transaction() as orm:
        orm.add(
            JobRow(
                id=job_id,
                kind="pipeline",
                status="running",
                actor=session.subject.name,
                pid=None,
                params=spec.to_dict(),
                counts={},
                done=0,
                started_at=utc_now(),
            )
        )
    session.audit(
        "job.start",
        object_id=job_id,
        details={"kind": "pipeline", "pipeline": spec.name, "digest": spec.digest},
    )
    report = RunReport(job_id, spec.to_dict())
    started = time.monotonic()
    status, error = "completed", None
    try:
        _execute(
            session,
            spec,
            report,
            workers,
            batch_docs,
            doc_ids,
            limits or Limits(timeout_s=3600, memory_mb=0),
            progress,
        )
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.seconds = time.monotonic() - started
        with workspace.catalog.transaction() as orm:
            orm.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(
                    status=status,
                    counts=report.to_dict(),
                    done=report.documents,
                    total=report.documents,
                    error=error,
                    finished_at=utc_now(),
                )
            )
        session.audit(
            "job.finish",
            object_id=job_id,
            decision="allow" if status == "completed" else "error",
            reason=error,
            details={"status": status, "documents": report.documents, "chunks": report.chunks},
        )
    return report


def _execute(
    session: Session,
    spec: PipelineSpec,
    report: RunReport,
    workers: int | None,
    batch_docs: int,
    doc_ids: Sequence[str] | None,
    limits: Limits,
    progress: ProgressFn | None,
) -> None:
    batches = _input_batches(session, batch_docs, doc_ids)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(batches) >= AUTO_WORKERS_BATCHES else 1
    report.documents = len({i.doc_id for b in batches for i in b})
    report.elements = sum(len(b) for b in batches)
    segments = _segments(spec.stages)
    # Everything up to the last corpus stage is materialized; the rest streams into the sink.
    last_corpus = max((n for n, (corpus, _) in enumerate(segments) if corpus), default=-1)
    for corpus, specs in segments[: last_corpus + 1]:
        if corpus:
            everything = [item for batch in batches for item in batch]
            result = _run_stages(specs, everything)
            _merge_stats(report, result.stats)
            batches = _regroup(result.elements, batches)
            if progress is not None:
                progress(specs[0].name, len(everything), len(everything))
        else:
            done = []
            for n, result in enumerate(_map_batches(specs, batches, workers, limits), 1):
                _merge_stats(report, result.stats)
                done.append(result.elements)
                if progress is not None:
                    progress(specs[0].name, n, len(batches))
            batches = done
    tail = [s for _, specs in segments[last_corpus + 1 :] for s in specs]
    by_id = {item.id: item for batch in batches for item in batch}
    results: Iterator[_Result] = (
        _map_batches(tail, batches, workers, limits)
        if tail
        else (_Result(batch, [], []) for batch in batches)
    )
    for n, result in enumerate(results, 1):
        _merge_stats(report, result.stats)
        written = write_batch(session, report.job_id, result.elements, result.chunks, by_id)
        report.chunks += written.chunks
        report.embeddings += written.embeddings
        report.marked_differently += written.marked_differently
        report.failed += written.failed
        for item in result.elements:
            report.pii.update(f.type for f in item.pii)
            if item.dup_kind:
                report.duplicates[item.dup_kind] += 1
        if progress is not None:
            progress("write", n, len(batches))
    ChunkIndex(session.workspace.root / "index").optimize()


def _merge_stats(report: RunReport, stats: list[StageStats]) -> None:
    totals: dict[str, StageStats] = defaultdict(lambda: StageStats(""))
    for stat in stats:
        if stat.name not in report.stages:
            report.stages[stat.name] = StageStats(stat.name)
        report.stages[stat.name].add(stat)
    del totals
