"""What an ingest is asked to do (:class:`IngestOptions`) and what it reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from garrison.core.isolation import Limits

__all__ = ["FileResult", "IngestOptions", "IngestReport", "ProgressFn"]

ProgressFn = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest; ``default_marking`` is required (a source without one is refused)."""

    default_marking: str
    source: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    #: Files larger than this are quarantined as ``too-large`` without being parsed.
    max_bytes: int = 512 * 1024 * 1024
    #: Attachments inside attachments... deeper than this are quarantined (``archive-limit``).
    max_depth: int = 5
    #: Options handed to every parser (``{"ocr": False}``, ``{"max_pages": 500}``...).
    parse_options: dict[str, object] = field(default_factory=dict)
    #: A column holding each row's marking (``--marking-column``): CSV/TSV and XLSX parsers
    #: (as the ``marking_column`` parse option) and database tables read it.
    marking_column: str | None = None

    def parser_options(self) -> dict[str, object]:
        """What every parser gets: ``parse_options`` plus ``marking_column`` when set."""
        if self.marking_column is None:
            return dict(self.parse_options)
        return {**self.parse_options, "marking_column": self.marking_column}


@dataclass
class FileResult:
    """What happened to one input."""

    uri: str
    outcome: str  # parsed | quarantined | spilled | unchanged | failed
    doc_id: str | None = None
    reason: str | None = None
    elements: int = 0
    size: int = 0


@dataclass
class IngestReport:
    """Summary of a job (what ``garrison ingest`` prints)."""

    job_id: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, Any]:
        outcomes = Counter(r.outcome for r in self.results)
        reasons = Counter(r.reason for r in self.results if r.outcome in ("quarantined", "failed"))
        return {
            "files": len(self.results),
            "parsed": outcomes["parsed"],
            "quarantined": outcomes["quarantined"] + outcomes["failed"],
            "quarantine_reasons": dict(sorted((str(k), v) for k, v in reasons.items())),
            "spilled": outcomes["spilled"],
            "unchanged": outcomes["unchanged"],
            "elements": sum(r.elements for r in self.results),
            "bytes": sum(r.size for r in self.results),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            **self.counts,
            "seconds": round(self.seconds, 3),
            "documents": [
                {"uri": r.uri, "id": r.doc_id, "status": r.outcome, "reason": r.reason}
                for r in self.results
            ],
        }
