"""Re-parsing stored originals under the current rules (``garrison ingest --reparse``,
``garrison docs reparse``).

Re-ingesting the same bytes only records a new location: a document stored under older parsers
or marking rules keeps what those rules found. A reparse decrypts each stored original from the
blob store, parses it again (in the same isolated workers as an ingest) and decides its marking
under the current rules, with the document's own source default. Then, per document tree, in
one catalog transaction with its audit events on disk first:

- **raised**: an element (or the document, or a heading) is now marked higher: the element is
  re-marked to the join of its old and new marking -- a reparse never lowers anything; lowering
  stays an explicit, audited downgrade -- and its element states, chunks and headings follow at
  once (:func:`garrison.store.derived.follow_raised_document`);
- **restructured**: the current parsers cut the document into other elements (a paragraph split
  at a mark inside it, text boxes or comments that were skipped): the elements are replaced,
  the pipeline's records of the document are dropped (the next ``garrison run`` redoes it) and
  the document's marking is the join of its old and new marking;
- **spilled**: the document is now above system high: its original bytes are deleted, its
  elements and derived records go, and it keeps only its hash, size, location and reason, as a
  spill found at ingest does (attachments seen only inside it go with it);
- **quarantined**: the current rules reject it (an invalid marking): its elements and derived
  records go, the encrypted original stays for a steward;
- **added**: an attachment the earlier parsers did not see is ingested.

Database table snapshots are not re-parsed (their original is a row serialization, not a
file): re-ingest the table. A quarantined document stays quarantined (re-ingest it to parse it
again), unless it is now a spill. Findings the current rules raise that the document does not
carry yet are added. The report names each document whose records moved and what moved; a new
marking is shown only when the acting steward may read it.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.core.isolation import Limits, run_isolated
from garrison.ingest._decide import decide as _decide
from garrison.ingest._decide import to_document
from garrison.ingest._worker import ParseNode, ParseTask, node_from_outcome, parse_tree
from garrison.parse import detect_media_type, warm_up
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.security.policy import Action
from garrison.store.ingest_writer import DecidedDocument
from garrison.store.jobs import JobSummary, job
from garrison.store.reparse_state import Moved, apply_reparsed, reparse_roots
from garrison.store.session import Session

__all__ = ["Moved", "ReparseReport", "reparse"]

#: What can happen to a document (``unchanged`` ones are counted, not listed).
CHANGES = ("raised", "restructured", "spilled", "quarantined", "added", "removed", "unchanged")


@dataclass
class ReparseReport:
    """What ``garrison ingest --reparse`` prints."""

    job_id: str
    results: list[Moved] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(r.change for r in self.results)
        return {"documents": len(self.results), **{c: found[c] for c in CHANGES}}

    @property
    def moved(self) -> list[Moved]:
        return [r for r in self.results if r.change != "unchanged" or r.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            **self.counts,
            "seconds": round(self.seconds, 3),
            "moved": [r.to_dict() for r in self.moved],
        }


def reparse(
    session: Session,
    paths: Sequence[str] = (),
    *,
    workers: int = 1,
    limits: Limits | None = None,
    parse_options: dict[str, object] | None = None,
    max_depth: int = 5,
    max_bytes: int = 512 * 1024 * 1024,
) -> ReparseReport:
    """Re-parse the stored originals of every document (or those seen at or under ``paths``)
    under the current rules and apply what changed; stewards, audited (``ingest.reparse``)."""
    session.require(Action.INGEST, AuditAction.INGEST_REPARSE)
    roots = reparse_roots(session, paths)
    params = {"paths": [str(Path(p).absolute()) for p in paths], "roots": len(roots)}
    with job(session, "reparse", params) as running:
        report = ReparseReport(running.id)
        running.summarize(
            lambda: JobSummary(
                report.counts, len(report.results), len(report.results), dict(report.counts)
            )
        )
        started = time.monotonic()
        try:
            defaults: dict[str, int | None] = {}
            tasks: list[ParseTask] = []
            for doc_id, uri, filename, default_id in roots:
                data = session.workspace.blobs.get(doc_id)
                if hashlib.sha256(data).hexdigest() != doc_id:
                    raise InvalidInput(
                        f"The stored original of document {doc_id} does not match its id."
                    )
                defaults[doc_id] = default_id
                options = tuple(sorted((parse_options or {}).items()))
                tasks.append(ParseTask(uri, filename, data, max_depth, max_bytes, options))
            # The parser libraries of the types held, once here, before the workers fork.
            warm_up({detect_media_type(t.data, t.filename) for t in tasks})
            for task, outcome in run_isolated(
                tasks, parse_tree, workers=max(1, workers), limits=limits or Limits()
            ):
                node = node_from_outcome(task, outcome)
                report.results += apply_reparsed(
                    session,
                    running.id,
                    node.doc_id,
                    defaults.get(node.doc_id),
                    _decider(session, node),
                )
        finally:
            report.seconds = time.monotonic() - started
    return report


def _decider(session: Session, node: ParseNode) -> Callable[[Marking], DecidedDocument]:
    """How ``node`` is decided under the default the store reads for it."""

    def decided(default: Marking) -> DecidedDocument:
        return to_document(_decide(node, default, session.workspace.system_high, session))

    return decided
