"""Policy decisions: may this subject take this action, may it read this marking.

Pure functions; :class:`garrison.store.session.Session` is the one place that calls them on
every read and write, and audits what they decide. Every decision carries a machine-readable
reason so denials can be explained in the (system-high) audit log -- never to the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from garrison.security.access import compile_expression, explain
from garrison.security.markings import (
    Marking,
    access_expression,
    release_expression,
    system_high_dominates,
)
from garrison.security.subjects import Role, Subject

__all__ = ["ROLE_ACTIONS", "Action", "Decision", "can_export", "can_read", "permits"]


class Action(StrEnum):
    """Actions gated by roles (CLI.md "Roles and what they permit")."""

    READ = "read"
    MANAGE_USERS = "manage-users"
    MANAGE_TOKENS = "manage-tokens"
    MANAGE_REGISTRY = "manage-registry"
    READ_AUDIT = "read-audit"
    INGEST = "ingest"
    RUN_PIPELINE = "run-pipeline"
    RESOLVE_FINDINGS = "resolve-findings"
    DOWNGRADE = "downgrade"
    REMOVE_DOCUMENT = "remove-document"
    DATASET_CREATE = "dataset-create"
    DATASET_DELETE = "dataset-delete"
    DATASET_EXPORT = "dataset-export"
    LABEL = "label"
    REVIEW = "review"
    EVALUATE = "evaluate"
    EXPORT_EVAL = "export-eval"
    #: Train, optimize, export, import and remove model versions.
    MODEL_MANAGE = "model-manage"
    #: Register generators (endpoints, local models) and set their accreditation.
    GENERATOR_REGISTER = "generator-register"


_STEWARD = {
    Action.INGEST,
    Action.RUN_PIPELINE,
    Action.RESOLVE_FINDINGS,
    Action.DOWNGRADE,
    Action.REMOVE_DOCUMENT,
    Action.DATASET_CREATE,
    Action.DATASET_DELETE,
    Action.DATASET_EXPORT,
    Action.MODEL_MANAGE,
}
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(
        {
            Action.READ,
            Action.MANAGE_USERS,
            Action.MANAGE_TOKENS,
            Action.MANAGE_REGISTRY,
            Action.READ_AUDIT,
            Action.GENERATOR_REGISTER,
        }
    ),
    Role.STEWARD: frozenset({Action.READ, *_STEWARD}),
    Role.ANNOTATOR: frozenset({Action.READ, Action.LABEL, Action.REVIEW}),
    Role.REVIEWER: frozenset({Action.READ, Action.LABEL, Action.REVIEW}),
    Role.EVALUATOR: frozenset(
        {Action.READ, Action.EVALUATE, Action.EXPORT_EVAL, Action.MODEL_MANAGE}
    ),
    Role.VIEWER: frozenset({Action.READ}),
}


@dataclass(frozen=True)
class Decision:
    """Outcome of a check; ``reason`` is for the audit log, not for the subject."""

    allowed: bool
    reason: str
    #: Terms of the access expression the subject failed (empty when allowed).
    failed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


def permits(subject: Subject, action: Action) -> Decision:
    """May ``subject`` take ``action`` by its roles? The system session holds every role."""
    if subject.disabled:
        return Decision(False, f"subject {subject.name} is disabled")
    if subject.is_system:
        return Decision(True, "system session")
    for role in subject.roles:
        if action in ROLE_ACTIONS[role]:
            return Decision(True, f"role {role.value} permits {action.value}")
    held = ", ".join(sorted(r.value for r in subject.roles)) or "none"
    return Decision(False, f"no role of {subject.name} ({held}) permits {action.value}")


def can_read(subject: Subject, marking: Marking, *, system_high: Marking) -> Decision:
    """May ``subject`` read data marked ``marking``? (Dominance, via its access expression.)

    Nothing above system high is ever readable, whoever asks: such data must not exist in a
    workspace, and if it does it is a spill.
    """
    if not system_high_dominates(system_high, marking):
        return Decision(False, "marking is above system high", ("system-high",))
    if subject.disabled:
        return Decision(False, f"subject {subject.name} is disabled")
    if subject.is_system:
        return Decision(True, "system session reads up to system high")
    decision = explain(compile_expression(access_expression(marking)), subject.authorizations)
    if decision.accessible:
        return Decision(True, "subject dominates the marking")
    return Decision(False, decision.reason, decision.failed)


def can_export(subject: Subject, marking: Marking, *, system_high: Marking) -> Decision:
    """May ``subject`` take data marked ``marking`` out of Garrison?

    Reading is not enough: a subject whose access comes only through DISPLAY ONLY may see the
    data but never export it, so release is checked against REL TO alone.
    """
    read = can_read(subject, marking, system_high=system_high)
    if not read or subject.is_system:
        return read
    decision = explain(compile_expression(release_expression(marking)), subject.authorizations)
    if decision.accessible:
        return Decision(True, "subject may export the marking")
    return Decision(False, "access only through DISPLAY ONLY: " + decision.reason, decision.failed)
