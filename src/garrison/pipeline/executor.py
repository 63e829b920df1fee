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

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from garrison.core.clock import utc_now
from garrison.ingest.isolation import Limits
from garrison.pipeline._run import BatchResult, StageStats, reset_stage_cache, run_stages
from garrison.pipeline._stage import Item
from garrison.pipeline.engines import Engine, create_engine
from garrison.pipeline.sink import write_batch
from garrison.pipeline.spec import PipelineSpec, StageSpec
from garrison.security.policy import Action
from garrison.store.index import ChunkIndex
from garrison.store.models import DocumentRow, ElementRow, JobRow
from garrison.store.session import Session

__all__ = ["RunReport", "StageStats", "run_pipeline"]

ProgressFn = Callable[[str, int, int], None]


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


def run_pipeline(
    session: Session,
    spec: PipelineSpec,
    *,
    engine: str = "local",
    address: str | None = None,
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
    resources = {
        "pseudonym_key": read_or_create_secret(workspace.root / "keys" / "pseudonym.key"),
        "workspace_root": workspace.root,
    }
    reset_stage_cache()
    runner = create_engine(engine, resources, workers=workers, address=address, limits=limits)
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
        with runner:
            _execute(session, spec, report, runner, batch_docs, doc_ids, progress)
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
    runner: Engine,
    batch_docs: int,
    doc_ids: Sequence[str] | None,
    progress: ProgressFn | None,
) -> None:
    batches = _input_batches(session, batch_docs, doc_ids)
    report.documents = len({i.doc_id for b in batches for i in b})
    report.elements = sum(len(b) for b in batches)
    segments = _segments(spec.stages)
    # Everything up to the last corpus stage is materialized; the rest streams into the sink.
    last_corpus = max((n for n, (corpus, _) in enumerate(segments) if corpus), default=-1)
    for corpus, specs in segments[: last_corpus + 1]:
        if corpus:
            everything = [item for batch in batches for item in batch]
            result = run_stages(specs, everything, runner.resources)
            _merge_stats(report, result.stats)
            batches = _regroup(result.elements, batches)
            if progress is not None:
                progress(specs[0].name, len(everything), len(everything))
        else:
            done = []
            for n, result in enumerate(runner.map_batches(specs, batches), 1):
                _merge_stats(report, result.stats)
                done.append(result.elements)
                if progress is not None:
                    progress(specs[0].name, n, len(batches))
            batches = done
    tail = [s for _, specs in segments[last_corpus + 1 :] for s in specs]
    by_id = {item.id: item for batch in batches for item in batch}
    results: Iterator[BatchResult] = (
        runner.map_batches(tail, batches) if tail else (BatchResult(batch) for batch in batches)
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
