"""The ingest engine: files and databases -> blobs, documents, elements and findings.

One run is a *job*. For each input file the engine

1. reads the bytes and hashes them (the document id); bytes already in the catalog only gain a
   new location (and, under a different default marking, a ``default-marking-conflict``);
2. parses the file -- and its attachments, recursively -- in an isolated worker process with a
   time limit and a memory cap (:mod:`garrison.core.isolation`), so one hostile file fails
   alone;
3. applies the marking rules (:func:`garrison.ingest.marking.apply_markings`), children first:
   a container takes the join of its children; a spilled child makes its container a spill; a
   child with an invalid marking quarantines its container;
4. writes everything about that file in **one** catalog transaction, after its audit events are
   on disk: an ingest killed at any point and run again ends with the same catalog.

This module drives those steps; options and reports are in :mod:`garrison.ingest._report`,
file walking in :mod:`garrison.ingest._files`, the worker side in :mod:`garrison.ingest._worker`,
the marking decision in :mod:`garrison.ingest._decide`, and the catalog writer in
:mod:`garrison.store.ingest_writer`.

Spills keep nothing but their hash, size, location and reason: no blob, no text, no marking.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from garrison.core.errors import InvalidInput
from garrison.core.isolation import run_isolated
from garrison.ingest._decide import WARNING_FINDINGS, Decided, decide, to_document
from garrison.ingest._files import hash_file, iter_files
from garrison.ingest._guard import SKIPPED_LINK, InputGuard
from garrison.ingest._report import FileResult, IngestOptions, IngestReport, ProgressFn
from garrison.ingest._worker import ParseNode, ParseTask, node_from_outcome, parse_tree
from garrison.parse import detect_media_type, warm_up
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, system_high_dominates
from garrison.security.policy import Action
from garrison.store.ingest_writer import (
    DecidedDocument,
    Unreadable,
    document_known,
    ensure_source,
    record_skipped,
    write_batch,
)
from garrison.store.jobs import JobSummary, RunningJob, job, mark_stale_jobs
from garrison.store.session import Session

__all__ = [
    "WARNING_FINDINGS",
    "Decided",
    "FileResult",
    "IngestOptions",
    "IngestReport",
    "ParseNode",
    "ParseTask",
    "ingest_paths",
    "ingest_sql",
    "iter_files",
    "mark_stale_jobs",
]

#: The marking decision, by the name the engine has always used for it.
_decide = decide


def _source_name(options: IngestOptions, first: str) -> str:
    return options.source or first


def _prepare(session: Session, options: IngestOptions) -> Marking:
    session.require(Action.INGEST, AuditAction.INGEST_START)
    default = session.parse_marking(options.default_marking)
    if not system_high_dominates(session.workspace.system_high, default):
        raise InvalidInput(
            f"The default marking {default.banner()} is not dominated by the workspace's system "
            f"high ({session.workspace.system_high.banner()}); choose a lower default."
        )
    return default


def ingest_paths(
    session: Session,
    paths: Sequence[str],
    options: IngestOptions,
    *,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest files and directories as ``session``'s subject (a steward); returns the report."""
    default = _prepare(session, options)
    skipped: list[str] = []
    guard = InputGuard(session.workspace)  # never the workspace itself, nor links out
    files = list(iter_files(paths, options.include, options.exclude, guard=guard, skipped=skipped))
    # Tesseract's OpenMP threads would oversubscribe the cores that the workers already use.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    source = _source_name(options, str(Path(paths[0]).absolute()) if paths else "files")
    ensure_source(session, source, "files", source, default)
    params = {
        "paths": [str(Path(p).absolute()) for p in paths],
        "default_marking": default.banner(),
        "source": source,
        "include": list(options.include),
        "exclude": list(options.exclude),
        "workers": options.workers,
    }
    with job(session, "ingest", params) as running:
        running.set_total(len(files))
        report = IngestReport(running.id)
        if skipped:
            # Reported as the link's own path: where it pointed is not repeated anywhere.
            record_skipped(
                session,
                running.id,
                skipped,
                SKIPPED_LINK,
                "a symbolic link out of the folder given; not followed",
            )
            report.results += [FileResult(link, "skipped", None, SKIPPED_LINK) for link in skipped]
        running.summarize(lambda: _job_summary(report))
        started = time.monotonic()
        batch = _Batch(session, default, source, running.id, report, len(files), progress)
        try:
            tasks = _tasks(session, files, options, default, batch)
            for task, outcome in run_isolated(
                tasks, parse_tree, workers=max(1, options.workers), limits=options.limits
            ):
                batch.add(node_from_outcome(task, outcome))
            batch.commit()
        finally:
            report.seconds = time.monotonic() - started
    return report


def _job_summary(report: IngestReport) -> JobSummary:
    return JobSummary(report.counts, len(report.results), details=report.counts)


def _tasks(
    session: Session,
    files: Sequence[tuple[Path, str]],
    options: IngestOptions,
    default: Marking,
    batch: _Batch,
) -> Iterator[ParseTask]:
    """Read each file; known bytes and unreadable files are settled here, without a worker."""
    warmed: set[str] = set()
    for path, _rel in files:
        uri = str(path.absolute())
        try:
            size = path.stat().st_size
            data = b"" if size > options.max_bytes else path.read_bytes()
        except OSError as exc:
            batch.add_unreadable(uri, exc)
            continue
        if size > options.max_bytes:
            # Too big to hold: quarantine by the hash of a streamed read, without parsing.
            node = ParseNode(
                hash_file(path),
                size,
                path.name,
                uri,
                None,
                failure=("too-large", f"the file is larger than {options.max_bytes} bytes"),
            )
            batch.add(node)
            continue
        doc_id = hashlib.sha256(data).hexdigest()
        if document_known(session, doc_id):
            batch.add(ParseNode(doc_id, len(data), path.name, uri, None))
            continue
        media_type = detect_media_type(data, path.name)
        if media_type not in warmed:
            # The libraries of this type's parser are imported here, once, before the worker
            # that parses the file is forked: workers inherit them. Only the types the job
            # holds: importing every parser library costs seconds a job.
            warm_up([media_type])
            warmed.add(media_type)
        yield ParseTask(
            uri,
            path.name,
            data,
            options.max_depth,
            options.max_bytes,
            tuple(sorted(options.parser_options().items())),
        )


class _Batch:
    """Consecutive files written in one catalog transaction with one audit append.

    Bounded (:attr:`MAX_FILES` files, or :attr:`MAX_SECONDS` since the first file waiting) so
    progress stays fresh. All or nothing, fail closed: every audit event of the batch is on
    disk (one write, one fsync) before the transaction commits, and an audit failure rolls the
    whole batch back. A process killed mid-batch leaves none of it in the catalog (a run
    resumed later does it again); results and progress are reported only after the commit.
    """

    MAX_FILES = 32
    MAX_SECONDS = 0.5

    def __init__(
        self,
        session: Session,
        default: Marking,
        source: str,
        job_id: str,
        report: IngestReport,
        total: int | None,
        progress: ProgressFn | None,
    ) -> None:
        self.session = session
        self.default = default
        self.source = source
        self.job_id = job_id
        self.report = report
        self.total = total
        self.progress = progress
        #: Decided trees, and the files that could not be read.
        self.waiting: list[DecidedDocument | Unreadable] = []
        self.since = 0.0

    def add(self, node: ParseNode) -> None:
        """Queue one file (decided now, written by :meth:`commit`)."""
        decided = _decide(node, self.default, self.session.workspace.system_high, self.session)
        self._queue(to_document(decided))

    def add_unreadable(self, uri: str, exc: OSError) -> None:
        """Queue a file that could not be read (a failed job item, no document)."""
        self._queue(Unreadable(uri, f"cannot be read ({exc.strerror})"))

    def _queue(self, entry: DecidedDocument | Unreadable) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append(entry)
        if len(self.waiting) >= self.MAX_FILES or time.monotonic() - self.since >= self.MAX_SECONDS:
            self.commit()

    def commit(self) -> None:
        """Write every queued file in one transaction, audit first; then report them."""
        if not self.waiting:
            return
        session = self.session
        written = write_batch(session, self.job_id, self.source, self.default, self.waiting)
        self.waiting = []
        for w in written:
            result = FileResult(w.uri, w.outcome, w.doc_id, w.reason, w.elements, w.size)
            self.report.results.append(result)
            _progress(session, self.job_id, self.report, self.total, result.uri, self.progress)


def _progress(
    session: Session,
    job_id: str,
    report: IngestReport,
    total: int | None,
    uri: str,
    progress: ProgressFn | None,
) -> None:
    done = len(report.results)
    if done % 25 == 0 or done == total:
        RunningJob(session, job_id).progress(done)
    if progress is not None:
        progress(done, total, uri)


def ingest_sql(
    session: Session,
    url: str,
    options: IngestOptions,
    *,
    tables: Sequence[str] = (),
    query: str | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest database tables (or a query's result) as table-snapshot documents."""
    from garrison.ingest.sql import read_sql

    default = _prepare(session, options)
    InputGuard(session.workspace).check_sql(url)  # never a Garrison catalog
    snapshots = read_sql(  # connection problems: exit 5
        url, tables=tables, query=query, marking_column=options.marking_column
    )
    source = options.source or (snapshots[0].uri.split("#")[0] if snapshots else url)
    ensure_source(session, source, "sql", source, default)
    params = {
        "url": source,
        "tables": list(tables),
        "query": query,
        "default_marking": default.banner(),
        "source": source,
    }
    with job(session, "ingest", params) as running:
        running.set_total(len(snapshots))
        report = IngestReport(running.id)
        running.summarize(lambda: _job_summary(report))
        started = time.monotonic()
        batch = _Batch(session, default, source, running.id, report, len(snapshots), progress)
        try:
            for snapshot in snapshots:
                node = ParseNode(
                    hashlib.sha256(snapshot.canonical).hexdigest(),
                    len(snapshot.canonical),
                    snapshot.name,
                    snapshot.uri,
                    snapshot.canonical,
                    parsed=snapshot.document,
                )
                batch.add(node)
            batch.commit()
        finally:
            report.seconds = time.monotonic() - started
    return report
