"""Classification by compilation in evaluation (MARKINGS.md section 6).

* an item result is raised when its transcript (the item, the context the system was given,
  its response) combines both parts of a workspace rule (:func:`raised_item`, applied as each
  result is recorded, so the run's marking -- the join of its items -- covers it);
* a report speaks of every item of its run, so it is raised when the run's transcripts
  *together* combine a rule's parts, even if no single item does (:func:`raised_report`); its
  notes then carry a ``compilation`` finding naming the rule. A reader who may read the run but
  not the raised report is refused it (:func:`check_readable`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from garrison.core.errors import NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.compilation import CompilationRule, Compiled, apply_rules, fired_details
from garrison.security.markings import Marking
from garrison.store import eval_runs
from garrison.store.session import Session

if TYPE_CHECKING:
    from garrison.evaluate._runs import ItemResult
    from garrison.evaluate.report import RunReport

__all__ = ["check_readable", "raised_item", "raised_report", "run_texts", "strings"]


def strings(value: Any) -> list[str]:
    """Every string in a JSON-like value (a transcript), keys left out."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def raised_item(rules: Sequence[CompilationRule], result: ItemResult) -> ItemResult:
    """``result`` with its marking raised by the rules its transcript matches."""
    compiled = apply_rules(rules, strings(result.transcript), result.marking)
    if not compiled.raised:
        return result
    return dataclasses.replace(result, marking=compiled.marking)


def run_texts(session: Session, run_id: str) -> list[str]:
    """The texts of the run's transcripts the session may read (opened for the check only)."""
    sealer = eval_runs.Sealer(session)
    out: list[str] = []
    with session.workspace.catalog.transaction() as orm:
        for row, _ in eval_runs.readable_item_rows(session, orm, run_id):
            opened = sealer.open(
                row.transcript, eval_runs.transcript_aad(run_id, row.item_id), "transcript"
            )
            out.extend(strings(opened))
    return out


def raised_report(
    rules: Sequence[CompilationRule], report: RunReport, texts: Iterable[str]
) -> tuple[RunReport, Compiled]:
    """``report`` marked at least at every rule whose parts ``texts`` combine, with a note (the
    ``compilation`` finding) naming each such rule."""
    compiled = apply_rules(rules, texts, report.marking)
    if not compiled.raised:
        return report, compiled
    found = fired_details(compiled)
    notes = [*report.notes, *(f"compilation ({f['rule']}): {f['detail']}." for f in found)]
    return dataclasses.replace(report, marking=compiled.marking, notes=notes), compiled


def check_readable(
    session: Session, marking: Marking, compiled: Compiled, action: AuditAction, object_id: str
) -> None:
    """Refuse (audited) a report raised above what the session may read."""
    if not compiled.raised or session.can_read(marking):
        return
    session.audit(
        action,
        object_id=object_id,
        decision="deny",
        reason="the report combines parts marked higher together",
        details={"compilation": [r.name for r in compiled.fired]},
    )
    raise NotPermitted(
        f"The report combines material that is marked above what {session.subject.name} may "
        "read when put together; it is not shown."
    )
