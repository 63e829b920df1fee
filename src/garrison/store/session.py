"""``Session(workspace, subject)``: the single policy enforcement point.

Every read and every change a capability makes goes through a session, which checks the
subject's role for the action and its clearance for the data, and records the outcome in the
audit log. Writes are fail-closed: the catalog transaction commits only after the audit event
describing it has been durably appended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import (
    AuditWriteError,
    CheckFailed,
    InvalidInput,
    MarkingError,
    NotFound,
    NotPermitted,
)
from garrison.security.audit import AuditAction, AuditEvent, Checkpoint
from garrison.security.markings import (
    NATO_MEMBERS,
    Marking,
    MarkingRegistry,
    access_expression,
    parse_marking,
)
from garrison.security.policy import Action, Decision, can_read, permits
from garrison.security.subjects import (
    SYSTEM_SUBJECT_NAME,
    Role,
    Subject,
    SubjectKind,
    canonical_value,
    parse_clearance,
)
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.models import InternedMarking, RegistryEntry, SubjectRow, row_dict
from garrison.store.workspace import Workspace, registry_from_rows, subject_from_row

__all__ = ["REGISTRY_KINDS", "Session", "SubjectSpec"]

_Query = TypeVar("_Query", bound=Select[Any])

#: What a site may add to its marking registry.
REGISTRY_KINDS = ("sci", "sap", "group", "cui", "sap-nickname", "accm", "nonic", "owner")


@dataclass(frozen=True)
class SubjectSpec:
    """What a caller asks for when creating or changing a subject (raw, unvalidated input).

    ``None`` keeps the current value; an empty tuple (or ``nato=""``) clears it.
    """

    clearance: str | None = None
    sci: tuple[str, ...] | None = None
    sap: tuple[str, ...] | None = None
    citizenship: str | None = None
    groups: tuple[str, ...] | None = None
    grants: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    kind: str | None = None
    dn: str | None = None
    disabled: bool | None = None
    nato: str | None = None
    nato_special: tuple[str, ...] | None = None
    aea: tuple[str, ...] | None = None
    accm: tuple[str, ...] | None = None
    nonic: tuple[str, ...] | None = None

    @classmethod
    def of(cls, subject: Subject) -> SubjectSpec:
        """The spec that recreates ``subject`` (its name aside), e.g. in another workspace."""
        return cls(
            clearance=str(subject.to_dict()["clearance"]),
            sci=tuple(sorted(subject.sci)),
            sap=tuple(sorted(subject.sap)),
            citizenship=subject.citizenship,
            groups=tuple(sorted(subject.groups)),
            grants=tuple(sorted(subject.grants)),
            roles=tuple(sorted(r.value for r in subject.roles)),
            kind=subject.kind.value,
            dn=subject.dn,
            disabled=subject.disabled,
            nato=subject.nato or "",
            nato_special=tuple(sorted(subject.nato_special)),
            aea=tuple(sorted(subject.aea)),
            accm=tuple(sorted(subject.accm)),
            nonic=tuple(sorted(subject.nonic)),
        )


class Session:
    """A subject acting on a workspace. Obtain one with :meth:`Workspace.session`."""

    def __init__(self, workspace: Workspace, subject: Subject) -> None:
        self.workspace = workspace
        self.subject = subject
        self._markings: dict[int, Marking] = {}
        self._interned: dict[str, int] = {}
        # The same Marking object (parsing is cached) maps straight to its id; the object is
        # kept alongside so a recycled id() can never match a different marking.
        self._by_object: dict[int, tuple[Marking, int]] = {}
        self._readable: tuple[tuple[tuple[int, str], ...], frozenset[int]] | None = None

    def forget_cached_markings(self) -> None:
        """Drop cached marking ids (after a transaction that may have interned some rolled back)."""
        self._markings.clear()
        self._interned.clear()
        self._by_object.clear()
        self._readable = None

    # -- checks and audit -------------------------------------------------------------------

    def audit(
        self,
        action: AuditAction,
        *,
        object_id: str | None = None,
        object_marking: str | None = None,
        decision: str = "allow",
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an event as this session's subject; raises AuditWriteError when it cannot."""
        return self.workspace.audit.append(
            self.subject.name,
            action,
            object_id=object_id,
            object_marking=object_marking,
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
            details=dict(details or {}),
        )

    def require(
        self, action: Action, audit_action: AuditAction, *, object_id: str | None = None
    ) -> None:
        """Raise NotPermitted (after auditing the denial) unless the subject's roles allow it.

        A name that is no :class:`AuditAction` raises ``ValueError`` before anything is decided.
        """
        named = AuditAction(audit_action)
        decision = permits(self.subject, action)
        if not decision:
            self.audit(named, object_id=object_id, decision="deny", reason=decision.reason)
            raise NotPermitted(
                f"{self.subject.name} may not {action.value.replace('-', ' ')}: "
                "no role of theirs permits it."
            )

    def can_read(self, marking: Marking) -> Decision:
        """Policy decision for reading data marked ``marking`` (not audited by itself)."""
        return can_read(self.subject, marking, system_high=self.workspace.system_high)

    @contextmanager
    def _write(
        self,
        action: AuditAction,
        *,
        object_id: str | None,
        object_marking: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Iterator[OrmSession]:
        """A catalog transaction that commits only once its audit event is on disk."""
        with self.workspace.catalog.transaction() as orm:
            yield orm
            orm.flush()  # surface constraint violations before anything is audited
            self.audit(action, object_id=object_id, object_marking=object_marking, details=details)

    # -- markings ---------------------------------------------------------------------------

    def parse_marking(self, text: str) -> Marking:
        """Parse with this workspace's registry."""
        return parse_marking(text, registry=self.workspace.registry)

    def marking_of(self, orm: OrmSession, marking_id: int | None) -> Marking | None:
        """The marking behind an interned id (cached for the session)."""
        if marking_id is None:
            return None
        cached = self._markings.get(marking_id)
        if cached is None:
            # A whole row: the read verifies its binding and leaves it out when it fails.
            row = orm.get(InternedMarking, marking_id)
            if row is None:
                stored = select(InternedMarking.id).where(InternedMarking.id == marking_id)
                if orm.scalar(stored) is not None:
                    raise CheckFailed(
                        f"The catalog's marking {marking_id} fails its integrity check, so "
                        "nothing marked with it can be read; run `garrison audit verify`."
                    )
                raise NotFound(f"No marking with id {marking_id}.")
            cached = Marking.from_dict(json.loads(row.key), registry=self.workspace.registry)
            self._markings[marking_id] = cached
        return cached

    def readable_marking_ids(self, orm: OrmSession) -> frozenset[int]:
        """Ids of every interned marking this subject may read: the filter put into queries."""
        # Each row's binding is verified (a tampered marking is never readable); the columns
        # alone, as whole rows would cost an ORM object each on every query of every request.
        found = orm.execute(select(*binding_columns(InternedMarking)))
        verified = verify_columns(self.workspace.catalog.binder, found, (InternedMarking, ""))
        rows = tuple((int(m.id), str(m.key)) for m in verified)
        if self._readable is not None and self._readable[0] == rows:
            return self._readable[1]
        readable = set()
        for marking_id, key in rows:
            marking = self._markings.get(marking_id)
            if marking is None:
                marking = Marking.from_dict(json.loads(key), registry=self.workspace.registry)
                self._markings[marking_id] = marking
            if self.can_read(marking):
                readable.add(marking_id)
        self._readable = (rows, frozenset(readable))
        return self._readable[1]

    def readable_clause(
        self, orm: OrmSession, column: QueryableAttribute[Any], *, allow_unmarked: bool = False
    ) -> ColumnElement[bool]:
        """SQL condition: the marking in ``column`` is one this subject may read.

        The one place the subject's access filter is written. Use :meth:`readable` to restrict a
        query; this condition is for the few that combine it with others under an ``OR`` (a
        steward also sees quarantined documents, which have no marking). ``allow_unmarked`` lets
        a NULL marking id through; otherwise NULL fails closed.
        """
        clause = column.in_(self.readable_marking_ids(orm))
        return or_(clause, column.is_(None)) if allow_unmarked else clause

    def readable(
        self,
        orm: OrmSession,
        query: _Query,
        *marking_columns: QueryableAttribute[Any],
        allow_unmarked: bool = False,
    ) -> _Query:
        """``query`` restricted to rows whose every marking column this subject may read.

        Every store query that returns marked rows goes through here (or, inside an ``OR``,
        through :meth:`readable_clause`, which writes the filter).
        """
        if not marking_columns:
            raise ValueError("readable() needs the query's marking column(s).")
        for column in marking_columns:
            query = query.where(self.readable_clause(orm, column, allow_unmarked=allow_unmarked))
        return query

    def intern_marking(self, orm: OrmSession, marking: Marking) -> int:
        """The id of ``marking`` in the catalog's marking table, adding it when new."""
        same = self._by_object.get(id(marking))
        if same is not None and same[0] is marking:
            return same[1]
        key = json.dumps(marking.to_dict(), sort_keys=True, separators=(",", ":"))
        cached = self._interned.get(key)
        if cached is not None:
            self._by_object[id(marking)] = (marking, cached)
            return cached
        # A whole row, so its binding is checked: nothing new is ever marked with a tampered one.
        found = orm.scalar(select(InternedMarking).where(InternedMarking.key == key))
        existing = found.id if found is not None else None
        if existing is None:
            tampered = orm.scalar(select(InternedMarking.id).where(InternedMarking.key == key))
            if tampered is not None:
                raise CheckFailed(
                    f"The catalog's marking {tampered} fails its integrity check, so nothing "
                    "can be marked with it; run `garrison audit verify`."
                )
        if existing is not None:
            self._markings.setdefault(existing, marking)
            self._interned[key] = existing
            self._by_object[id(marking)] = (marking, existing)
            return existing
        row = InternedMarking(
            key=key, banner=marking.banner(), expression=access_expression(marking)
        )
        orm.add(row)
        orm.flush()
        self._markings[row.id] = marking
        self._interned[key] = row.id
        self._by_object[id(marking)] = (marking, row.id)
        return row.id

    # -- subjects ---------------------------------------------------------------------------

    def _subject_row(self, orm: OrmSession, name: str) -> SubjectRow:
        row = orm.scalar(select(SubjectRow).where(SubjectRow.name == name))
        if row is None:
            raise NotFound(f"No user named {name!r}.")
        return row

    def _build_subject(self, name: str, spec: SubjectSpec, base: Subject | None) -> Subject:
        registry = self.workspace.registry

        def upper(
            values: tuple[str, ...] | None, current: frozenset[str], kind: str = ""
        ) -> frozenset[str]:
            if values is None:
                return current
            return frozenset(canonical_value(kind, v, registry) for v in values if v.strip())

        def attr(kind: str) -> frozenset[str]:
            current: frozenset[str] = getattr(base, kind) if base else frozenset()
            return upper(getattr(spec, kind), current, kind)

        if spec.nato is None:
            nato = base.nato if base else None
        else:
            nato = canonical_value("nato", spec.nato, registry) or None
            nato = None if nato == "NONE" else nato

        try:
            roles = (
                frozenset(Role(r.strip().lower()) for r in spec.roles if r.strip())
                if spec.roles is not None
                else (base.roles if base else frozenset({Role.VIEWER}))
            )
        except ValueError:
            raise InvalidInput(
                f"Unknown role in {', '.join(spec.roles or ())}: use "
                f"{', '.join(r.value for r in Role)}."
            ) from None
        kind = SubjectKind(spec.kind) if spec.kind else (base.kind if base else SubjectKind.USER)
        if kind is SubjectKind.SYSTEM:
            raise InvalidInput("The system subject cannot be created; it always exists.")
        if spec.clearance is None and base is None:
            raise InvalidInput("A new user needs a clearance (--clearance U, C, S or TS).")
        subject = Subject(
            name=name,
            kind=kind,
            clearance=parse_clearance(spec.clearance) if spec.clearance else base.clearance,  # type: ignore[union-attr]
            sci=upper(spec.sci, base.sci if base else frozenset()),
            sap=attr("sap"),
            citizenship=(
                spec.citizenship.strip().upper()
                if spec.citizenship
                else (base.citizenship if base else "USA")
            ),
            groups=upper(spec.groups, base.groups if base else frozenset()),
            grants=attr("grants"),
            roles=roles,
            nato=nato,
            nato_special=attr("nato_special"),
            aea=attr("aea"),
            accm=attr("accm"),
            nonic=attr("nonic"),
            dn=spec.dn if spec.dn is not None else (base.dn if base else None),
            disabled=spec.disabled
            if spec.disabled is not None
            else (base.disabled if base else False),
        )
        subject.validate(registry)
        return subject

    @staticmethod
    def _store_subject(row: SubjectRow, subject: Subject) -> None:
        data = subject.to_dict()
        row.kind = subject.kind.value
        row.clearance = str(data["clearance"])
        row.sci = sorted(subject.sci)
        row.sap = sorted(subject.sap)
        row.citizenship = subject.citizenship
        row.groups = sorted(subject.groups)
        row.grants = sorted(subject.grants)
        row.roles = sorted(r.value for r in subject.roles)
        row.nato = subject.nato
        row.nato_special = sorted(subject.nato_special)
        row.aea = sorted(subject.aea)
        row.accm = sorted(subject.accm)
        row.nonic = sorted(subject.nonic)
        row.dn = subject.dn
        row.disabled = subject.disabled
        row.updated_at = utc_now()

    def add_user(self, name: str, spec: SubjectSpec) -> Subject:
        """Create a user or service account (admin); audited."""
        self.require(Action.MANAGE_USERS, AuditAction.USER_ADD, object_id=name)
        subject = self._build_subject(name, spec, None)
        try:
            with self._write(
                AuditAction.USER_ADD, object_id=name, details=_subject_details(subject)
            ) as orm:
                if orm.scalar(select(SubjectRow.id).where(SubjectRow.name == name)) is not None:
                    raise InvalidInput(f"A user named {name!r} already exists.")
                row = SubjectRow(name=name, created_at=utc_now())
                self._store_subject(row, subject)
                orm.add(row)
        except IntegrityError as exc:
            raise InvalidInput(
                f"A user named {name!r} or with that certificate DN already exists."
            ) from exc
        return subject

    def update_user(self, name: str, spec: SubjectSpec) -> Subject:
        """Change a subject's attributes (admin); audited with before and after."""
        self.require(Action.MANAGE_USERS, AuditAction.USER_UPDATE, object_id=name)
        with self.workspace.catalog.transaction() as orm:
            base = subject_from_row(self._subject_row(orm, name))
        subject = self._build_subject(name, spec, base)
        details = {"before": _subject_details(base), "after": _subject_details(subject)}
        try:
            with self._write(AuditAction.USER_UPDATE, object_id=name, details=details) as orm:
                self._store_subject(self._subject_row(orm, name), subject)
        except IntegrityError as exc:
            raise InvalidInput("Another user already has that certificate DN.") from exc
        return subject

    def get_user(self, name: str) -> Subject:
        """One subject; admins see anyone, everyone else only themselves."""
        if name == SYSTEM_SUBJECT_NAME:
            return self.workspace.system_subject()
        if name != self.subject.name:
            self.require(Action.MANAGE_USERS, AuditAction.USER_SHOW, object_id=name)
        with self.workspace.catalog.transaction() as orm:
            return subject_from_row(self._subject_row(orm, name))

    def list_users(self) -> list[Subject]:
        """Every subject, by name (admin)."""
        self.require(Action.MANAGE_USERS, AuditAction.USER_LIST)
        with self.workspace.catalog.transaction() as orm:
            rows = orm.scalars(select(SubjectRow).order_by(SubjectRow.name))
            return [subject_from_row(r) for r in rows]

    # -- marking registry -------------------------------------------------------------------

    def registry_add(
        self,
        kind: str,
        name: str,
        *,
        members: tuple[str, ...] | None = None,
        description: str | None = None,
        pid: str | None = None,
    ) -> dict[str, Any]:
        """Register a site token (admin); audited. Kinds: :data:`REGISTRY_KINDS`.

        ``members`` belong to a ``group`` (adding to ``NATO-MEMBERS`` extends it), ``pid`` to a
        ``sap-nickname``. Raises InvalidInput (the markings module's rule ``invalid-registry``
        for a malformed or clashing name) and leaves the registry unchanged.
        """
        self.require(Action.MANAGE_REGISTRY, AuditAction.REGISTRY_ADD, object_id=f"{kind}:{name}")
        if kind not in REGISTRY_KINDS:
            raise InvalidInput(f"Unknown registry kind {kind!r}: use {', '.join(REGISTRY_KINDS)}.")
        name = _registry_name(kind, name)
        member_list = sorted({m.strip().upper() for m in members}) if members else None
        if member_list is not None and kind != "group":
            raise InvalidInput("Only a country group has members.")
        if (pid is not None) != (kind == "sap-nickname"):
            raise InvalidInput("A sap-nickname needs --pid, and only a sap-nickname has one.")
        if kind == "sap-nickname":
            member_list = [_registry_name("sap", pid or "").removeprefix("SAR-")]
        with self.workspace.catalog.transaction() as orm:
            current = list(orm.scalars(select(RegistryEntry)))
        existing = next((r for r in current if r.kind == kind and r.name == name), None)
        if kind == "group" and name == NATO_MEMBERS and existing is not None:
            return self._edit_nato_members(current, existing, add=member_list or [])
        if existing is not None:
            raise InvalidInput(f"The registry already has {kind} {name}.")
        entry = RegistryEntry(
            kind=kind,
            name=name,
            members=member_list,
            description=description,
            added_by=self.subject.name,
            added_at=utc_now(),
        )
        # Validate by building the registry it would produce: the markings module owns the rules.
        self._check_registry_change([*current, entry], f"Adding {kind} {name}")
        details = {"kind": kind, "name": name, "members": member_list}
        with self._write(
            AuditAction.REGISTRY_ADD, object_id=f"{kind}:{name}", details=details
        ) as orm:
            orm.add(entry)
        self.workspace.refresh()
        return _registry_dict(entry)

    def registry_remove(
        self, kind: str, name: str, *, members: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Remove a site addition, or members of ``NATO-MEMBERS`` (admin); audited.

        Refused (InvalidInput) while a stored marking, the system high or a subject's grants
        still need what would go. ``compilation`` removes a classification-by-compilation rule.
        """
        if kind == "compilation":
            from garrison.store.compilation import remove_rule

            if members:
                raise InvalidInput("A compilation rule has no members.")
            return remove_rule(self, name)
        self.require(
            Action.MANAGE_REGISTRY, AuditAction.REGISTRY_REMOVE, object_id=f"{kind}:{name}"
        )
        if kind not in REGISTRY_KINDS:
            raise InvalidInput(f"Unknown registry kind {kind!r}: use {', '.join(REGISTRY_KINDS)}.")
        name = _registry_name(kind, name)
        with self.workspace.catalog.transaction() as orm:
            current = list(orm.scalars(select(RegistryEntry)))
        entry = next((r for r in current if r.kind == kind and r.name == name), None)
        if entry is None:
            raise NotFound(f"The registry has no {kind} {name}.")
        if kind == "group" and name == NATO_MEMBERS:
            if not members:
                raise InvalidInput(
                    f"{NATO_MEMBERS} cannot be removed; remove members with --members instead."
                )
            return self._edit_nato_members(
                current, entry, remove=sorted({m.strip().upper() for m in members})
            )
        if members:
            raise InvalidInput(f"Only {NATO_MEMBERS} has members removed one by one.")
        rest = [r for r in current if r is not entry]
        self._check_registry_change(rest, f"Removing {kind} {name}")
        removed = _registry_dict(entry)
        with self._write(
            AuditAction.REGISTRY_REMOVE,
            object_id=f"{kind}:{name}",
            details={"kind": kind, "name": name, "members": entry.members},
        ) as orm:
            row = orm.get(RegistryEntry, entry.id)
            if row is not None:
                orm.delete(row)
        self.workspace.refresh()
        return removed

    def _edit_nato_members(
        self,
        current: list[RegistryEntry],
        entry: RegistryEntry,
        *,
        add: list[str] | None = None,
        remove: list[str] | None = None,
    ) -> dict[str, Any]:
        """Add or remove members of ``NATO-MEMBERS``; audited as a registry add or remove."""
        before = set(entry.members or ())
        if add is not None:
            if not add:
                raise InvalidInput(f"Name the countries to add to {NATO_MEMBERS} with --members.")
            if set(add) <= before:
                raise InvalidInput(f"{NATO_MEMBERS} already lists {', '.join(add)}.")
            after, action = before | set(add), AuditAction.REGISTRY_ADD
        else:
            missing = sorted(set(remove or ()) - before)
            if missing:
                raise InvalidInput(f"{NATO_MEMBERS} does not list {', '.join(missing)}.")
            after, action = before - set(remove or ()), AuditAction.REGISTRY_REMOVE
        edited = RegistryEntry(
            kind=entry.kind,
            name=entry.name,
            members=sorted(after),
            description=entry.description,
            added_by=entry.added_by,
            added_at=entry.added_at,
        )
        verb = "Adding to" if add is not None else "Removing from"
        self._check_registry_change(
            [edited if r is entry else r for r in current], f"{verb} {NATO_MEMBERS}"
        )
        details = {
            "kind": "group",
            "name": NATO_MEMBERS,
            "added" if add is not None else "removed": sorted(after ^ before),
        }
        with self._write(action, object_id=f"group:{NATO_MEMBERS}", details=details) as orm:
            row = orm.get(RegistryEntry, entry.id)
            if row is None:
                raise NotFound(f"The registry has no group {NATO_MEMBERS}.")
            row.members = sorted(after)
            entry = row
        self.workspace.refresh()
        return _registry_dict(entry)

    def _check_registry_change(self, rows: list[RegistryEntry], what: str) -> MarkingRegistry:
        """The registry ``rows`` make, once it is known that the workspace's system high, every
        stored marking and every subject remain valid under it; else InvalidInput."""
        registry = _validated_registry(rows)
        try:
            # The system high in full (its banner may name no programs).
            Marking.from_dict(self.workspace.system_high.to_dict(), registry=registry)
        except MarkingError:
            raise InvalidInput(f"{what} would make the system high invalid.") from None
        with self.workspace.catalog.transaction() as orm:
            for marking in orm.scalars(select(InternedMarking)):
                try:
                    Marking.from_dict(json.loads(marking.key), registry=registry)
                except MarkingError:
                    raise InvalidInput(
                        f"{what} would make stored marking {marking.banner} invalid."
                    ) from None
            for row in orm.scalars(select(SubjectRow).order_by(SubjectRow.name)):
                try:
                    subject_from_row(row).validate(registry)
                except InvalidInput as exc:
                    raise InvalidInput(
                        f"{what} would leave user {row.name} with grants the registry no longer "
                        f"allows ({str(exc).rstrip('.')}); change that user first."
                    ) from None
        return registry

    def registry_list(self) -> list[dict[str, Any]]:
        """The site additions (admin), with the compilation rules the admin may read."""
        from garrison.store.compilation import list_rules

        self.require(Action.MANAGE_REGISTRY, AuditAction.REGISTRY_LIST)
        with self.workspace.catalog.transaction() as orm:
            rows = orm.scalars(
                select(RegistryEntry).order_by(RegistryEntry.kind, RegistryEntry.name)
            )
            entries = [_registry_dict(r) for r in rows]
        return sorted([*entries, *list_rules(self)], key=lambda e: (e["kind"], e["name"]))

    def registry_add_compilation(
        self, name: str, *, when: list[str], and_: list[str], marking: str, reason: str | None
    ) -> dict[str, Any]:
        """Add a classification-by-compilation rule (admin): :mod:`garrison.store.compilation`."""
        from garrison.store.compilation import add_rule

        return add_rule(self, name, when=when, and_=and_, marking=marking, reason=reason)

    # -- audit log --------------------------------------------------------------------------

    def _require_audit_reader(self, audit_action: AuditAction) -> None:
        self.require(Action.READ_AUDIT, audit_action)
        decision = self.can_read(self.workspace.system_high)
        if not decision:
            self.audit(audit_action, decision="deny", reason=decision.reason)
            raise NotPermitted(
                f"{self.subject.name} may not read the audit log: it is marked at system high."
            )

    def audit_tail(self, n: int | None = None) -> list[AuditEvent]:
        """The last ``n`` events (all with None); admin dominating system high; audited."""
        self._require_audit_reader(AuditAction.AUDIT_READ)
        self.audit(AuditAction.AUDIT_READ, details={"n": n})
        return self.workspace.audit.tail(n)

    def audit_verify(self, against: Checkpoint | None = None) -> Any:
        """Recompute and check the whole log and every marking binding in the catalog (admin);
        audited after the check."""
        from garrison.store.audit_verify import check_bindings

        self._require_audit_reader(AuditAction.AUDIT_VERIFY)
        report = self.workspace.audit.verify(self._public_key(), against=against)
        if not report.ok:
            # A damaged log refuses appends; the verdict matters more than recording it.
            self.workspace.log_damaged = True
        with self.workspace.catalog.transaction() as orm:
            report = check_bindings(report, self.workspace.catalog.binder, orm)
        try:
            self.audit(
                AuditAction.AUDIT_VERIFY,
                decision="allow",
                details={
                    "ok": report.ok,
                    "size": report.size,
                    "first_bad_seq": report.first_bad_seq,
                    "bad_binding": report.bad_binding,
                },
            )
        except AuditWriteError:
            if report.ok:
                raise
        return report

    def audit_export_checkpoint(self, path: Path) -> Checkpoint:
        """Write the latest signed checkpoint to ``path`` for safekeeping elsewhere (admin)."""
        self._require_audit_reader(AuditAction.AUDIT_CHECKPOINT)
        self.audit(AuditAction.AUDIT_CHECKPOINT, details={"out": str(path)})
        return self.workspace.audit.export_checkpoint(path)

    def _public_key(self) -> Any:
        return self.workspace.audit.public_key


def _subject_details(subject: Subject) -> dict[str, Any]:
    data = subject.to_dict()
    data.pop("authorizations")
    return data


def _registry_dict(entry: RegistryEntry) -> dict[str, Any]:
    data = row_dict(entry)
    data.pop("id")
    data["added_at"] = entry.added_at.isoformat() if entry.added_at else None
    if entry.kind == "sap-nickname":
        data["pid"] = entry.members[0] if entry.members else None
        data["members"] = None
    return data


def _registry_name(kind: str, name: str) -> str:
    """A registry name as stored: upper case, single spaces (nicknames hold spaces)."""
    name = " ".join(name.upper().split())
    if kind == "sap-nickname":
        name = name.removeprefix("SPECIAL ACCESS REQUIRED-").removeprefix("SAR-")
    elif kind == "accm":
        name = name.removeprefix("ACCM-")
    return name


def _validated_registry(rows: list[RegistryEntry]) -> MarkingRegistry:
    # The markings module owns the naming rules and raises MarkingError (invalid input).
    return registry_from_rows(rows)
