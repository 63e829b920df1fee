"""The workspace's classification-by-compilation rules: stored, listed, removed, loaded.

A rule is a site addition to the marking registry (``garrison registry add compilation``), kept
in its own table because it is itself marked: it says which parts are sensitive together, so it
is marked with the marking it raises records to. Who may see rules:

* adding, listing and removing need the admin role (``manage-registry``), and an admin works
  only with rules whose marking they may read: one cannot add a rule above one's own access,
  ``registry list`` leaves out (and does not count) the rules one may not read, and removing
  such a rule answers like a rule that does not exist;
* applying rules is no reader's business: every pipeline run, dataset, answer and evaluation
  report applies every rule (:func:`workspace_rules`), whoever runs it.

Rows are bound to their marking like every marked row (:mod:`garrison.store.bindings`). Loading
fails closed: a rule whose row fails its integrity check stops the work that would apply it
(:class:`CheckFailed`) rather than being skipped, since a skipped rule would under-mark.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.compilation import (
    CompilationRule,
    check_rule_name,
    compilation_rule,
    matcher_from,
)
from garrison.security.markings import Marking, system_high_dominates
from garrison.security.policy import Action
from garrison.store.models import CompilationRuleRow

if TYPE_CHECKING:
    from garrison.store.session import Session

__all__ = ["add_rule", "list_rules", "remove_rule", "workspace_rules"]


def add_rule(
    session: Session,
    name: str,
    *,
    when: list[str],
    and_: list[str],
    marking: str,
    reason: str | None,
) -> dict[str, Any]:
    """Add a rule (admin, reading the rule's marking); audited as ``registry.compilation-add``.

    InvalidInput for a bad name, matcher, reason or marking (unparseable, UNCLASSIFIED, above
    system high) or a name already used.
    """
    session.require(
        Action.MANAGE_REGISTRY, AuditAction.COMPILATION_ADD, object_id=f"compilation:{name}"[:128]
    )
    if not marking or not marking.strip():
        raise InvalidInput("A compilation rule needs a marking (--marking).")
    parsed = session.parse_marking(marking.strip())
    rule = compilation_rule(name, when, and_, parsed, reason)
    if not system_high_dominates(session.workspace.system_high, parsed):
        raise InvalidInput(
            f"The rule's marking {parsed.banner()} is above this workspace's system high; "
            "nothing here may be marked with it."
        )
    if not session.can_read(parsed):
        session.audit(
            AuditAction.COMPILATION_ADD,
            object_id=f"compilation:{rule.name}",
            decision="deny",
            reason="rule marking above the subject's access",
        )
        raise NotPermitted(
            f"{session.subject.name} may not add a rule marked {parsed.banner()}: it is above "
            "what they may read."
        )
    with session.workspace.catalog.transaction() as orm:
        taken = orm.scalars(select(CompilationRuleRow.name)).all()
    if any(t.lower() == rule.name.lower() for t in taken):
        raise InvalidInput(f"The registry already has a compilation rule named {rule.name}.")
    data = rule.to_dict()
    with session._write(
        AuditAction.COMPILATION_ADD,
        object_id=f"compilation:{rule.name}",
        object_marking=parsed.banner(),
        details={k: data[k] for k in ("name", "when", "and", "marking", "reason")},
    ) as orm:
        row = CompilationRuleRow(
            name=rule.name,
            when_terms=rule.when.spec(),
            and_terms=rule.and_.spec(),
            marking_id=session.intern_marking(orm, parsed),
            reason=rule.reason,
            added_by=session.subject.name,
            added_at=utc_now(),
        )
        orm.add(row)
        orm.flush()
        added = _row_dict(row, parsed)
    return added


def list_rules(session: Session) -> list[dict[str, Any]]:
    """The rules whose marking the subject may read (admin), by name."""
    session.require(Action.MANAGE_REGISTRY, AuditAction.REGISTRY_LIST)
    with session.workspace.catalog.transaction() as orm:
        query = session.readable(
            orm,
            select(CompilationRuleRow).order_by(CompilationRuleRow.name),
            CompilationRuleRow.marking_id,
        )
        rows = list(orm.scalars(query))
        return [_row_dict(r, _marking(session, orm, r.marking_id)) for r in rows]


def remove_rule(session: Session, name: str) -> dict[str, Any]:
    """Remove a rule (admin, reading its marking); audited as ``registry.compilation-remove``.

    Records already raised by it keep their marking (nothing is lowered automatically); work
    done afterwards no longer applies it. A rule the subject may not read is NotFound.
    """
    name = check_rule_name(name)
    session.require(
        Action.MANAGE_REGISTRY, AuditAction.COMPILATION_REMOVE, object_id=f"compilation:{name}"
    )
    with session.workspace.catalog.transaction() as orm:
        query = session.readable(
            orm,
            select(CompilationRuleRow).where(func.lower(CompilationRuleRow.name) == name.lower()),
            CompilationRuleRow.marking_id,
        )
        found = orm.scalar(query)
        banner = _marking(session, orm, found.marking_id).banner() if found else None
    if found is None:
        session.audit(
            AuditAction.COMPILATION_REMOVE,
            object_id=f"compilation:{name}",
            decision="deny",
            reason="no such rule or not readable",
        )
        raise NotFound(f"No compilation rule named {name}.")
    rule_id, rule_name = found.id, found.name
    with session._write(
        AuditAction.COMPILATION_REMOVE,
        object_id=f"compilation:{rule_name}",
        object_marking=banner,
        details={"name": rule_name, "marking": banner},
    ) as orm:
        row = orm.get(CompilationRuleRow, rule_id)
        if row is None:
            raise NotFound(f"No compilation rule named {name}.")
        orm.delete(row)
    return {"kind": "compilation", "name": rule_name, "marking": banner}


def workspace_rules(session: Session) -> tuple[CompilationRule, ...]:
    """Every rule of the workspace, whoever the subject (rules apply to everyone's work).

    Raises CheckFailed when a stored rule fails its integrity check (or no longer reads as a
    valid rule): work that would apply the rules stops rather than under-mark.
    """
    with session.workspace.catalog.transaction() as orm:
        stored = orm.scalar(select(func.count(CompilationRuleRow.id))) or 0
        if not stored:
            return ()
        # Whole rows: each binding is verified, and a row that fails is left out -- counted here.
        rows = list(orm.scalars(select(CompilationRuleRow).order_by(CompilationRuleRow.name)))
        if len(rows) != stored:
            raise CheckFailed(
                "A compilation rule fails its integrity check, so nothing can be marked by the "
                "rules; run `garrison audit verify`."
            )
        out = []
        for row in rows:
            try:
                marking = _marking(session, orm, row.marking_id)
                out.append(
                    CompilationRule(
                        name=row.name,
                        when=matcher_from(row.when_terms, side="--when"),
                        and_=matcher_from(row.and_terms, side="--and"),
                        marking=marking,
                        reason=row.reason,
                    )
                )
            except (InvalidInput, NotFound) as exc:
                raise CheckFailed(
                    f"The compilation rule {row.name} no longer reads as a valid rule ({exc}); "
                    "fix or remove it."
                ) from exc
        return tuple(out)


def _marking(session: Session, orm: OrmSession, marking_id: int) -> Marking:
    marking = session.marking_of(orm, marking_id)
    if marking is None:  # pragma: no cover - the column is not nullable
        raise NotFound("A compilation rule has no marking.")
    return marking


def _row_dict(row: CompilationRuleRow, marking: Marking) -> dict[str, Any]:
    return {
        "kind": "compilation",
        "name": row.name,
        "when": list(row.when_terms),
        "and": list(row.and_terms),
        "marking": marking.banner(),
        "marking_detail": json.loads(json.dumps(marking.to_dict())),
        "reason": row.reason,
        "members": None,
        "description": row.reason,
        "added_by": row.added_by,
        "added_at": row.added_at.isoformat() if row.added_at else None,
    }
