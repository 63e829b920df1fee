"""The executor: runs a pipeline, incrementally, over the documents a session may read.

**Segments.** The stages split into three parts around the corpus stages (``dedup``), which need
every item at once:

* the *head* -- the batch stages before the first corpus stage (``normalize`` ... ``quality``);
* the *middle* -- from the first corpus stage through the last one, run over the whole corpus;
* the *tail* -- the stages after the last corpus stage (``chunk``, ``embed``), streamed batch by
  batch into the sink, so memory stays bounded by the corpus's text, not its embeddings.

A pipeline without a corpus stage is all head. Batches are whole documents; an :class:`Engine`
maps batch stages over them (``local``: in-process or forked workers; ``ray``: Ray Data). A
batch that crashes or times out fails its items (``stage-failed`` findings), never the run.

**Incremental runs.** Each document carries two keys (``pipeline_docs``):

* ``head_key`` -- a hash of the head stages (names, versions, parameters) and of the document's
  elements as the acting subject reads them (ids, which derive from the content, and
  markings). When it matches, the head's results are read back from the catalog instead of
  recomputed.
* ``tail_key`` -- a hash of the tail stages and of everything the tail will read: the
  document's element states after the middle (texts, languages, PII, duplicate status...).
  Dedup runs over the whole corpus on every run (reusing cached MinHash signatures), so a new
  document that duplicates an old one changes the old one's tail key too -- and only then is
  the old one redone.

**Writing.** Results go to the sink on writer threads of the driver, so the driver keeps the
engine's workers fed while earlier batches are written: with SQLite, one writer, batch after
batch; with PostgreSQL, a few writer threads, each on its own connection, write batches
concurrently (markings interned first by the driver, index writes one at a time).

**Memory.** Batches are read from the catalog as the engine takes them. With element-level
``dedup`` as the middle (the default), the head's items wait on disk in a spill while dedup runs
on light copies (ids, markings, cached hashes and signatures; text only until hashed), and the
tail reads them back a batch at a time (:mod:`garrison.pipeline._spill`): what grows with the
corpus is what dedup keeps, not the element items.

**Predictions.** ``classify`` stages run after every other stage (over the batches the head or
the tail writes) and are kept out of both keys: a third key, ``predict_key`` (the stages and
the classifier version ids they resolved to), says what a document's predictions were made by.
A document written for another reason gets new predictions with the rest; one whose only
change is its ``predict_key`` has its stored elements or chunks read back and classified
again, and only its predictions replaced. Each classifier is resolved once, by the running
subject, before anything runs (it must dominate it; audited as ``model.use``); workers load it
from its verified folder.

A document is written when its tail key changed or its index rows are not known to be in place
(``indexed``: set after the index write, so a run killed between the catalog commit and the
index write redoes that document rather than leaving a gap). Documents that left the inputs
(superseded by new bytes at their location, removed, no longer parsed) lose their derived
records and index rows. Every write replaces a document's derived records whole, so a run
killed at any point and started again ends with the same catalog: no duplicates, no gaps.
"""

from __future__ import annotations

import threading
import time
from collections import ChainMap, Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from garrison.core.isolation import Limits
from garrison.pipeline._models import RESOURCE as EMBEDDERS
from garrison.pipeline._models import resolve_models
from garrison.pipeline._run import BatchResult, StageStats, reset_stage_cache, run_stages
from garrison.pipeline._spill import LazyBatches, Spill, groups_of, lighten, take_decisions
from garrison.pipeline._stage import Item, LineageStep, PiiFinding
from garrison.pipeline.engines import Engine, create_engine
from garrison.pipeline.plan import RunPlan, _hash, _Parts, _stages_key, plan_run
from garrison.pipeline.progress import ProgressFn, Tracker
from garrison.pipeline.sink import (
    DocKeys,
    Written,
    canonical_markings,
    markings_of_batch,
    write_batch,
)
from garrison.pipeline.spec import PipelineSpec, StageSpec
from garrison.pipeline.stages.chunk import COMPILATION_RULES
from garrison.pipeline.stages.classify import CLASSIFIERS, PREDICTIONS
from garrison.pipeline.stages.dedup import (
    EXTRA_KEY,
    LIGHT,
    MINHASH,
    MINHASH_KEY,
    TEXT_HASH,
    WORD_COUNT,
    DedupStage,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.security.policy import Action
from garrison.store import pipeline_state
from garrison.store.compilation import workspace_rules
from garrison.store.jobs import JobSummary, job, mark_stale_jobs
from garrison.store.models import ElementRow
from garrison.store.predictions import replace_predictions, stored_chunks
from garrison.store.session import Session

__all__ = ["RunPlan", "RunReport", "StageStats", "plan_run", "run_pipeline"]


@dataclass
class RunReport:
    """Summary of a pipeline run (what ``garrison run`` prints)."""

    job_id: str
    pipeline: dict[str, Any]
    engine: dict[str, Any] = field(default_factory=dict)
    documents: int = 0
    elements: int = 0
    #: Documents whose head stages ran / whose head results were reused from the catalog.
    processed: int = 0
    reused: int = 0
    #: Documents whose derived records were (re)written; removed: derived records dropped.
    written: int = 0
    removed: int = 0
    chunks: int = 0
    embeddings: int = 0
    #: Predictions written, and documents whose predictions alone were redone.
    predictions: int = 0
    repredicted: int = 0
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
            "engine": self.engine,
            "documents": self.documents,
            "elements": self.elements,
            "processed": self.processed,
            "reused": self.reused,
            "written": self.written,
            "removed": self.removed,
            "chunks": self.chunks,
            "embeddings": self.embeddings,
            "predictions": self.predictions,
            "repredicted": self.repredicted,
            "pii_by_type": dict(sorted(self.pii.items())),
            "duplicates": {"exact": self.duplicates["exact"], "near": self.duplicates["near"]},
            "duplicates_marked_differently": self.marked_differently,
            "failed": self.failed,
            "stages": [s.to_dict() for s in self.stages.values()],
            "seconds": round(self.seconds, 3),
        }


# -- reading inputs -------------------------------------------------------------------------------


def _element_items(session: Session, doc_ids: Sequence[str]) -> list[Item]:
    """Fresh items (as ingested) for every readable element of ``doc_ids``, in reading order."""
    return [
        _item(row, marking, row.text) for row, marking in pipeline_state.elements(session, doc_ids)
    ]


def _item(element: ElementRow, marking: Marking, text: str, **fields: Any) -> Item:
    """An element's item with the current ``text`` (and whatever ``fields`` stages set)."""
    data = element.data or {}
    path = data.get("section_path") or ()
    return Item(
        id=element.id,
        doc_id=element.doc_id,
        kind="element",
        text=text,
        original_text=element.text,
        marking=marking,
        element_ids=(element.id,),
        seq=element.seq,
        type=element.type,
        section_path=tuple(path),
        section_marking_ids=_section_marking_ids(data, len(path)),
        page=element.page,
        **fields,
    )


def _section_marking_ids(data: dict[str, Any], size: int) -> tuple[int | None, ...]:
    """Each heading's marking id from element data, aligned with its section path; a missing
    or malformed entry is ``None`` (the document's marking, when written)."""
    raw = data.get("section_marking_ids")
    ids = list(raw) if isinstance(raw, list) else []
    return tuple(
        ids[i]
        if i < len(ids) and isinstance(ids[i], int) and not isinstance(ids[i], bool)
        else None
        for i in range(size)
    )


def _stored_items(
    session: Session, doc_ids: Sequence[str], middle: Sequence[StageSpec]
) -> list[Item]:
    """Items as the head left them in an earlier run, read back from the element states."""
    stop = {spec.name for spec in middle}
    out: list[Item] = []
    for element, state, marking in pipeline_state.element_states(session, doc_ids):
        lineage: list[LineageStep] = []
        for step in state.lineage or []:
            if step["stage"] in stop:
                break
            lineage.append(
                LineageStep(
                    step["stage"],
                    step["version"],
                    step["params_hash"],
                    tuple(step.get("parents", ())),
                )
            )
        extra: dict[str, Any] = {}
        if state.minhash is not None and state.minhash_key is not None:
            extra[MINHASH] = bytes(state.minhash)
            extra[MINHASH_KEY] = state.minhash_key
        if state.text_hash is not None:
            extra[TEXT_HASH] = state.text_hash
            extra[WORD_COUNT] = state.word_count
        out.append(
            _item(
                element,
                marking,
                state.text,
                language=state.language,
                language_confidence=state.language_confidence,
                pii=[PiiFinding(**f) for f in state.pii or []],
                quality=dict(state.quality or {}),
                flags=list(state.flags or []),
                dropped=state.dropped,
                failed=state.failed,
                lineage=lineage,
                extra=extra,
            )
        )
    return out


def _batches(items: Iterable[Item], order: Sequence[str], batch_docs: int) -> list[list[Item]]:
    """Items grouped into batches of ``batch_docs`` whole documents, in ``order``."""
    by_doc: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_doc[item.doc_id].append(item)
    docs = [d for d in order if d in by_doc]
    return [
        [item for d in docs[n : n + batch_docs] for item in by_doc[d]]
        for n in range(0, len(docs), batch_docs)
    ]


def _middle_digest(head_key: str, items: Sequence[Item]) -> str:
    """Hash of what the tail will read of one document beyond its head key: what the middle
    (dedup) decided about each item. The head key pins everything else (the head is
    deterministic), so this is all that can change without the document changing."""
    parts = [head_key]
    for item in sorted(items, key=lambda i: (i.seq, i.id)):
        others = ",".join(sorted(item.extra.get("dup_marked_differently", ())))
        parts.append(f"{item.id}|{item.dup_of or ''}|{item.dup_kind or ''}|{others}")
    return _hash("\n".join(parts))


def _light_middle(middle: Sequence[StageSpec]) -> bool:
    """Whether the middle is element-level dedup alone (which can run on light items)."""
    return (
        len(middle) == 1
        and middle[0].name == "dedup"
        and getattr(middle[0].params, "level", None) == "element"
    )


def _light_items(session: Session, doc_ids: Sequence[str]) -> list[Item]:
    """Unchanged documents' elements as element-level dedup needs them, without their text:
    ids, order, marking, drop reason and the cached hash, word count and signature."""
    out: list[Item] = []
    for state in pipeline_state.light_states(session, doc_ids):
        extra: dict[str, Any] = {
            LIGHT: True,
            TEXT_HASH: state.text_hash,
            WORD_COUNT: state.word_count,
        }
        if state.minhash is not None and state.minhash_key is not None:
            extra[MINHASH] = state.minhash
            extra[MINHASH_KEY] = state.minhash_key
        out.append(
            Item(
                id=state.element_id,
                doc_id=state.doc_id,
                kind="element",
                text="",
                original_text="",
                marking=state.marking,
                element_ids=(state.element_id,),
                seq=state.seq,
                dropped=state.dropped,
                failed=state.failed,
                extra=extra,
            )
        )
    return out


def _full_again(
    session: Session,
    doc_ids: Sequence[str],
    middle: Sequence[StageSpec],
    light: dict[str, list[Item]],
) -> dict[str, list[Item]]:
    """Documents read light, read in full, carrying what the middle decided on the light
    items (duplicate links, findings to raise, cached features, the middle's lineage)."""
    decided = {item.id: item for d in doc_ids for item in light.get(d, [])}
    out: dict[str, list[Item]] = defaultdict(list)
    for item in _stored_items(session, doc_ids, middle):
        seen = decided.get(item.id)
        if seen is not None:
            item.dup_of, item.dup_kind = seen.dup_of, seen.dup_kind
            item.extra = {k: v for k, v in seen.extra.items() if k != LIGHT}
            item.lineage = item.lineage + seen.lineage
        out[item.doc_id].append(item)
    return out


# -- the run --------------------------------------------------------------------------------------


def run_pipeline(
    session: Session,
    spec: PipelineSpec,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    batch_docs: int = 32,
    doc_ids: Sequence[str] | None = None,
    full: bool = False,
    writers: int = 4,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
) -> RunReport:
    """Run ``spec`` over what ``session``'s subject may read (stewards); returns the report.

    Only new or changed documents are processed (see the module docs); ``full=True`` redoes
    everything. ``engine`` is ``local`` (``workers=None`` chooses: in-process for small inputs,
    one worker per core for large ones) or ``ray`` (``address``: a cluster; else a local Ray).
    With a PostgreSQL catalog, ``writers`` threads write batches concurrently (SQLite: one).
    """
    from garrison.store.keys import read_or_create_secret

    session.require(Action.RUN_PIPELINE, AuditAction.PIPELINE_RUN)
    workspace = session.workspace
    mark_stale_jobs(session)
    # Registered models are resolved once, here, by the runner (who must dominate them); the
    # workers get their verified folders, and the run keys their version ids.
    spec, embedders = resolve_models(session, spec)
    resources: dict[str, Any] = {
        "pseudonym_key": read_or_create_secret(workspace.root / "keys" / "pseudonym.key"),
        "workspace_root": workspace.root,
    }
    classifiers = _resolve_classifiers(session, spec)
    if classifiers:
        resources[CLASSIFIERS] = classifiers
    if embedders:
        resources[EMBEDDERS] = embedders
    # Every rule applies, whoever runs the pipeline; a rule that fails its check stops the run.
    rules = workspace_rules(session)
    if rules:
        resources[COMPILATION_RULES] = rules
    reset_stage_cache()
    runner = create_engine(engine, resources, workers=workers, address=address, limits=limits)
    with job(
        session,
        "pipeline",
        {**spec.to_dict(), "engine": engine, "full": full},
        start_details={"kind": "pipeline", "pipeline": spec.name, "digest": spec.digest},
    ) as running:
        report = RunReport(running.id, spec.to_dict(), runner.describe())
        running.summarize(lambda: _job_summary(report))
        started = time.monotonic()
        try:
            with runner:
                report.engine = runner.describe()
                plan = plan_run(
                    session,
                    spec,
                    doc_ids=doc_ids,
                    full=full,
                    model_ids={ref: c.id for ref, c in classifiers.items()},
                    rules=rules,
                )
                tracker = Tracker(progress)
                _execute(session, spec, plan, report, runner, batch_docs, tracker, writers)
        finally:
            report.seconds = time.monotonic() - started
    return report


def _resolve_classifiers(session: Session, spec: PipelineSpec) -> dict[str, Any]:
    """Each classify stage's classifier, resolved once by the running subject (audited)."""
    from garrison.models import resolve_classifier

    predict = _Parts.of(spec.stages).predict
    refs = dict.fromkeys(str(getattr(s.params, "model", "")) for s in predict)
    return {ref: resolve_classifier(session, ref, purpose="classify") for ref in refs}


def _job_summary(report: RunReport) -> JobSummary:
    return JobSummary(
        report.to_dict(),
        report.written,
        report.documents,
        details={
            "documents": report.documents,
            "processed": report.processed,
            "written": report.written,
            "removed": report.removed,
            "chunks": report.chunks,
        },
    )


def _execute(
    session: Session,
    spec: PipelineSpec,
    plan: RunPlan,
    report: RunReport,
    runner: Engine,
    batch_docs: int,
    progress: Tracker,
    writers: int,
) -> None:
    sink = _Sink(session, report, writers)
    try:
        written = _stream(session, spec, plan, report, runner, batch_docs, progress, sink)
    finally:
        sink.close()
    again = [d for d in plan.repredict if d not in written]
    if again:
        _repredict(session, spec, plan, again, report, runner, batch_docs, progress)
    session.workspace.index.optimize()


def _repredict(
    session: Session,
    spec: PipelineSpec,
    plan: RunPlan,
    doc_ids: list[str],
    report: RunReport,
    runner: Engine,
    batch_docs: int,
    progress: Tracker,
) -> None:
    """Redo only the predictions of ``doc_ids``: their stored elements and chunks, as the
    subject reads them, through the predict stages; nothing else of theirs is rewritten."""
    predict = _Parts.of(spec.stages).predict
    overs = {getattr(s.params, "over", "chunks") for s in predict}
    items: list[Item] = []
    if "elements" in overs:
        items.extend(_stored_items(session, doc_ids, ()))
    if "chunks" in overs:
        items.extend(_chunk_item(row, marking) for row, marking in stored_chunks(session, doc_ids))
    failed_before = {i.id for i in items if i.failed}
    batches = _batches(items, doc_ids, batch_docs)
    del items
    results: Iterable[BatchResult] = runner.map_batches(predict, batches) if predict else ()
    done: set[str] = set()
    for n, result in enumerate(results, 1):
        _merge_stats(report, result.stats)
        docs = {i.doc_id for i in result.elements}
        done.update(docs)
        # A batch whose worker failed keeps no key: its documents are re-predicted next run.
        failed = {i.doc_id for i in result.elements if i.failed and i.id not in failed_before}
        for group, key in ((docs - failed, plan.predict_key), (failed, None)):
            report.predictions += replace_predictions(
                session,
                report.job_id,
                sorted(group),
                _predictions_of(i for i in result.elements if i.doc_id in group),
                key,
            )
        progress.batches("classify", n, len(batches))
    # Documents with nothing to classify (or no classify stage left) lose their predictions.
    rest = [d for d in doc_ids if d not in done]
    if rest:
        replace_predictions(session, report.job_id, rest, (), plan.predict_key)
    report.repredicted += len(doc_ids)


def _chunk_item(row: Any, marking: Marking) -> Item:
    return Item(
        id=row.id,
        doc_id=row.doc_id,
        kind="chunk",
        text=row.text,
        original_text=row.text,
        marking=marking,
        element_ids=tuple(row.element_ids or ()),
        seq=row.seq,
        section_path=tuple(row.section_path or ()),
    )


def _predictions_of(items: Iterable[Item]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for item in items:
        for p in item.extra.get(PREDICTIONS, ()):
            yield item.kind, item.id, item.doc_id, p


def _stream(
    session: Session,
    spec: PipelineSpec,
    plan: RunPlan,
    report: RunReport,
    runner: Engine,
    batch_docs: int,
    progress: Tracker,
    sink: _Sink,
) -> set[str]:
    """Run the head, middle and tail into the sink; the documents written."""
    parts = _Parts.of(spec.stages)
    tail_sig = _stages_key(parts.middle + parts.tail, plan.compilation)
    head = list(plan.head)
    if not parts.middle and plan.unchanged:
        # Without a corpus stage the head is the tail: an unchanged document whose index rows
        # are not known to be in place (a run stopped between the catalog commit and the index
        # write -- killed, or the index disk full) is done again, not reused.
        stored = _stored_keys(session, plan.unchanged)
        head += [d for d in plan.unchanged if not (d in stored and stored[d][2])]
    report.documents = len(plan.inputs)
    report.processed = len(head)
    report.reused = len(plan.inputs) - len(head)
    if plan.remove:
        report.removed = remove_derived(session, plan.remove, job_id=report.job_id)
    # Head batches are read from the catalog as the engine takes them, not all at once.
    chosen = set(head)
    head_batches = LazyBatches(
        groups_of([d for d in plan.inputs if d in chosen], batch_docs),
        lambda group: _element_items(session, group),
    )

    if not parts.middle:
        # No corpus stage: each batch goes from the head straight into the sink.
        head_stages = parts.head + parts.predict
        head_results = (
            runner.map_batches(head_stages, head_batches)
            if head_stages
            else (BatchResult(b) for b in head_batches)
        )
        done_docs: set[str] = set()
        progress.start_tail(len(plan.head), embeds=_embeds(head_stages))
        with progress.in_process():
            for result in head_results:
                _merge_stats(report, result.stats)
                report.elements += len(result.elements)
                failed_docs = {i.doc_id for i in result.elements if i.failed}
                batch_keys = {
                    d: DocKeys(
                        None if d in failed_docs else plan.head_keys[d],
                        tail_sig[:16] + plan.head_keys[d][:48],
                        spec.name,
                        plan.predict_key,
                    )
                    for d in {i.doc_id for i in result.elements}
                }
                done_docs.update(batch_keys)
                for item in result.elements:
                    report.pii.update(f.type for f in item.pii)
                progress.batch_done(len(batch_keys), _live_chunks(result))
                sink.write(result, batch_keys, {i.id: i for i in result.elements})
        # Documents with no readable element still record that they are done.
        empty = {
            d: DocKeys(
                plan.head_keys[d],
                tail_sig[:16] + plan.head_keys[d][:48],
                spec.name,
                plan.predict_key,
            )
            for d in head
            if d not in done_docs
        }
        if empty:
            sink.write(BatchResult([]), empty, {})
        return done_docs | set(empty)

    if _light_middle(parts.middle):
        return _stream_light(
            session, spec, plan, report, runner, batch_docs, progress, sink, head_batches
        )

    # Head: only new and changed documents; the rest is read back from the catalog.
    processed: list[Item] = []
    for n, result in enumerate(runner.map_batches(parts.head, head_batches), 1):
        _merge_stats(report, result.stats)
        report.elements += len(result.elements)
        processed.extend(result.elements)
        progress.batches(parts.head[0].name if parts.head else "read", n, len(head_batches))
    del head_batches
    reused = _stored_items(session, plan.unchanged, parts.middle) if plan.unchanged else []
    report.elements += len(reused)
    everything = processed + reused
    del processed, reused

    # Middle: corpus stages over everything (batch stages between them through the engine).
    for corpus, specs in _segments(parts.middle):
        if corpus:
            result = run_stages(specs, everything, runner.resources)
            _merge_stats(report, result.stats)
            everything = result.elements
            progress.batches(specs[0].name, len(everything), len(everything))
        else:
            batches = _batches(everything, plan.inputs, batch_docs)
            everything = []
            for result in runner.map_batches(specs, batches):
                _merge_stats(report, result.stats)
                everything.extend(result.elements)

    # Tail: only documents whose tail inputs changed (or whose index rows are not in place).
    by_doc = _by_doc(everything)
    for item in everything:
        report.pii.update(f.type for f in item.pii)
    keys, todo = _tail_keys(session, spec, plan, report, tail_sig, by_doc)
    all_items = {item.id: item for item in everything}
    tail_batches = LazyBatches(
        groups_of(todo, batch_docs), lambda group: [i for d in group for i in by_doc.get(d, ())]
    )
    _write_tail(
        parts, report, runner, progress, sink, tail_batches, keys, todo, lambda r: all_items
    )
    return set(todo)


def _stream_light(
    session: Session,
    spec: PipelineSpec,
    plan: RunPlan,
    report: RunReport,
    runner: Engine,
    batch_docs: int,
    progress: Tracker,
    sink: _Sink,
    head_batches: LazyBatches,
) -> set[str]:
    """The run when the middle is element-level dedup alone, in bounded memory: the head's
    items wait in a spill while dedup runs on light copies (see :mod:`._spill`); unchanged
    documents are read back light (ids, markings, cached hashes and signatures -- no text),
    and those that turn out to need the tail are read in full a batch at a time."""
    parts = _Parts.of(spec.stages)
    tail_sig = _stages_key(parts.middle + parts.tail, plan.compilation)
    with Spill(session.workspace.root) as spill:
        by_doc: dict[str, list[Item]] = {}

        def keep(items: list[Item]) -> None:
            report.elements += len(items)
            for doc_id, mine in _by_doc(items).items():
                spill.put(doc_id, mine)
                report.pii.update(f.type for i in mine for f in i.pii)
                by_doc[doc_id] = [lighten(i) for i in mine]

        for n, result in enumerate(runner.map_batches(parts.head, head_batches), 1):
            _merge_stats(report, result.stats)
            keep(result.elements)
            progress.batches(parts.head[0].name if parts.head else "read", n, len(head_batches))
        if plan.unchanged:
            reused = _light_items(session, plan.unchanged)
            # Elements stored without the cached features this run's dedup needs (by an older
            # run, or under other signature parameters or algorithms) are read in full.
            dedup = parts.middle[0].build()
            if not isinstance(dedup, DedupStage):
                raise TypeError(f"the light middle is {parts.middle[0].name}, not dedup")
            bare = {i.doc_id for i in reused if dedup.needs_text(i)}
            report.elements += sum(1 for i in reused if i.doc_id not in bare)
            for doc_id, mine in _by_doc(i for i in reused if i.doc_id not in bare).items():
                by_doc[doc_id] = mine
            del reused
            if bare:
                keep(_stored_items(session, sorted(bare), parts.middle))

        # Middle: dedup over every light item; the items it changes are the light copies.
        everything = [i for items in by_doc.values() for i in items]
        result = run_stages(parts.middle, everything, runner.resources)
        _merge_stats(report, result.stats)
        progress.batches(parts.middle[0].name, len(everything), len(everything))
        by_doc = _by_doc(result.elements)
        for item in everything:
            item.text = ""  # hashed and signed: no longer read
        del everything, result

        keys, todo = _tail_keys(session, spec, plan, report, tail_sig, by_doc)
        light_items = {i.id: i for items in by_doc.values() for i in items}
        # What the tail reads of a light item once its own document is written: only another
        # item's marked-differently finding names it (its id, document and marking). So the
        # light items go as their documents are written -- those of documents the tail skips,
        # now -- but the named ones, and the tail's memory shrinks as it goes.
        named = {o for items in by_doc.values() for i in items for o in i.extra.get(EXTRA_KEY, ())}

        def written(doc_ids: Iterable[str]) -> None:
            for doc_id in doc_ids:
                for item in by_doc.pop(doc_id, ()):
                    if item.id not in named:
                        del light_items[item.id]

        chosen = set(todo)
        written([d for d in by_doc if d not in chosen])
        unchanged = set(plan.unchanged)

        def load(group: list[str]) -> list[Item]:
            # Documents read back light are read in full now, with what dedup decided on them.
            again = [
                d
                for d in group
                if d not in spill
                and d in unchanged
                and any(i.extra.get(LIGHT) for i in by_doc.get(d, ()))
            ]
            full = _full_again(session, again, parts.middle, by_doc) if again else {}
            out: list[Item] = []
            for d in group:
                if d in spill:
                    out += take_decisions(spill.get(d), by_doc.get(d, ()))
                else:
                    out += full.get(d, by_doc.get(d, []))
            return out

        def all_items(result: BatchResult) -> Mapping[str, Item]:
            # The batch's own items in full; every other item as dedup saw it.
            return ChainMap({i.id: i for i in result.elements}, light_items)

        tail_batches = LazyBatches(groups_of(todo, batch_docs), load)
        _write_tail(
            parts, report, runner, progress, sink, tail_batches, keys, todo, all_items, written
        )
    return set(todo)


def _by_doc(items: Iterable[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        out[item.doc_id].append(item)
    return out


def _tail_keys(
    session: Session,
    spec: PipelineSpec,
    plan: RunPlan,
    report: RunReport,
    tail_sig: str,
    by_doc: Mapping[str, list[Item]],
) -> tuple[dict[str, DocKeys], list[str]]:
    """Each input's run keys after the middle, and the documents whose tail must run (their
    tail inputs changed, or their index rows are not in place); counts the duplicates."""
    for items in by_doc.values():
        for item in items:
            if item.dup_kind:
                report.duplicates[item.dup_kind] += 1
    stored = _stored_keys(session, plan.inputs)
    keys: dict[str, DocKeys] = {}
    todo: list[str] = []
    for doc_id in plan.inputs:
        items = by_doc.get(doc_id, [])
        tail_key = tail_sig[:16] + _middle_digest(plan.head_keys[doc_id], items)[:48]
        failed = any(i.failed for i in items)
        keys[doc_id] = DocKeys(
            None if failed else plan.head_keys[doc_id], tail_key, spec.name, plan.predict_key
        )
        old = stored.get(doc_id)
        if plan.full or failed or old != (plan.head_keys[doc_id], tail_key, True):
            todo.append(doc_id)
    return keys, todo


def _write_tail(
    parts: _Parts,
    report: RunReport,
    runner: Engine,
    progress: Tracker,
    sink: _Sink,
    batches: Sequence[list[Item]],
    keys: dict[str, DocKeys],
    todo: list[str],
    all_items: Callable[[BatchResult], Mapping[str, Item]],
    written: Callable[[set[str]], None] | None = None,
) -> None:
    """Run the tail (and predict) stages over ``batches`` into the sink; ``written`` is told
    each batch's documents once they are handed to the sink (an engine never asks for a batch
    again after its result came back)."""
    tail_stages = parts.tail + parts.predict
    results: Iterator[BatchResult] = (
        runner.map_batches(tail_stages, batches)
        if tail_stages
        else (BatchResult(b) for b in batches)
    )
    seen: set[str] = set()
    progress.start_tail(len(todo), embeds=_embeds(tail_stages))
    with progress.in_process():
        for result in results:
            _merge_stats(report, result.stats)
            batch = {i.doc_id for i in result.elements} | {c.doc_id for c in result.chunks}
            seen.update(batch)
            progress.batch_done(len(batch), _live_chunks(result))
            sink.write(result, {d: keys[d] for d in batch}, all_items(result))
            if written is not None:
                written(batch)
    empty = {d: keys[d] for d in todo if d not in seen}
    if empty:
        none = BatchResult([])
        sink.write(none, empty, all_items(none))


def _embeds(specs: Sequence[StageSpec]) -> bool:
    return any(spec.name == "embed" for spec in specs)


def _live_chunks(result: BatchResult) -> int:
    return sum(1 for c in result.chunks if c.dropped is None)


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


def _stored_keys(session: Session, doc_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    return pipeline_state.stored_keys(session, doc_ids)


class _Sink:
    """Writes batch results on writer threads while this thread feeds the engine: with SQLite
    one writer, batch after batch in order; with a PostgreSQL catalog a few at once, each with
    its own connection. (``writers=0``: in this thread.)

    Concurrent writers never race to intern a marking (the batch's markings are interned
    first, here) and take turns on the chunk index; at most ``2 * writers`` batches wait, so
    memory stays bounded. The first writer error stops the run.
    """

    def __init__(self, session: Session, report: RunReport, writers: int) -> None:
        self.session = session
        self.report = report
        dialect = session.workspace.catalog.engine.dialect.name
        self.writers = writers if dialect == "postgresql" else min(writers, 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[Written]] = []
        self._lock = threading.Lock()
        if self.writers > 0:
            self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="garrison-sink")

    def write(
        self, result: BatchResult, keys: dict[str, DocKeys], all_items: Mapping[str, Item]
    ) -> None:
        if self._pool is None:
            self._count(
                write_batch(
                    self.session,
                    self.report.job_id,
                    result.elements,
                    result.chunks,
                    all_items,
                    keys=keys,
                )
            )
            return
        if self.writers > 1:
            markings = markings_of_batch(
                result.elements, result.chunks, all_items, canonical_markings(self.session)
            )
            pipeline_state.intern_markings(self.session, markings)
        while len(self._pending) >= 2 * self.writers:
            self._collect(self._pending.pop(0))
        self._pending.append(
            self._pool.submit(
                write_batch,
                self.session,
                self.report.job_id,
                result.elements,
                result.chunks,
                all_items,
                keys=keys,
            )
        )

    def _collect(self, future: Future[Written]) -> None:
        self._count(future.result())

    def _count(self, written: Written) -> None:
        with self._lock:
            self.report.written += written.documents
            self.report.chunks += written.chunks
            self.report.embeddings += written.embeddings
            self.report.predictions += written.predictions
            self.report.marked_differently += written.marked_differently
            self.report.failed += written.failed

    def close(self) -> None:
        """Wait for every write (raising the first error)."""
        try:
            while self._pending:
                self._collect(self._pending.pop(0))
        finally:
            if self._pool is not None:
                for future in self._pending:
                    future.cancel()
                self._pool.shutdown(wait=True)


def remove_derived(session: Session, doc_ids: Sequence[str], *, job_id: str | None = None) -> int:
    """Drop the pipeline's records of ``doc_ids``: element states, chunks, pipeline findings,
    run keys and index rows (the documents themselves stay). Returns how many had any."""
    return pipeline_state.remove_derived(session, doc_ids, job_id=job_id)


def _merge_stats(report: RunReport, stats: list[StageStats]) -> None:
    for stat in stats:
        if stat.name not in report.stages:
            report.stages[stat.name] = StageStats(stat.name)
        report.stages[stat.name].add(stat)
