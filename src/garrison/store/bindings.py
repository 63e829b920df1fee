"""Markings bound to their data: a keyed MAC over every stored reference to a marking.

Each row of a bound table carries ``binding`` = HMAC-SHA-256 (with the workspace binding key,
``keys/binding.key``) over its table, its id, the marking ids it refers to and a SHA-256 of the
content the marking applies to. The interned markings rows are bound the same way (their id over
key, banner and access expression), so editing the markings table defeats nothing either.

Writes are bound in one place, whatever path they take:

* ORM objects: ``before_flush`` sets the binding of every new or changed bound object (and a
  random id where the table's id is opaque); markings, whose ids come from the database, are
  bound right after the insert that gives them one (``after_flush``).
* Core and ORM bulk inserts (``insert(Model)`` with a list of rows): the engine's
  ``before_execute`` fills each row's binding (and opaque id) before the statement runs.

Reads fail closed: every ORM query that returns whole rows of a bound table passes through
``do_orm_execute``, which drops rows whose binding does not verify (and removes them from the
session, so a later ``get`` asks the database again); the catalog reports each such row once
through :attr:`Binder.on_failure` (the workspace audits an ``integrity`` event). Column-only
queries are not checked here: code that shows rows reads whole rows, :func:`verify_rows`
checks rows a caller holds, and a column query that takes anything from a bound table's marking
columns also selects :func:`binding_columns` of that table and keeps only the rows
:func:`verify_columns` passes (the full binding, recomputed from the columns it covers).
``garrison audit verify`` runs :func:`first_bad_binding` over every bound table.

Later record kinds register with :func:`register` and get the same treatment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Label, Row, Table, event, select, update
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert

from garrison.security.audit import AuditAction
from garrison.store.models import (
    ChunkRow,
    CompilationRuleRow,
    DatasetVersionRow,
    DocumentRow,
    ElementRow,
    ElementState,
    EvalCacheRow,
    EvalRunItemRow,
    EvalRunRow,
    EvalSuiteItemRow,
    EvalSuiteRow,
    FindingRow,
    InternedMarking,
    LabelProjectRow,
    LabelReviewRow,
    LabelRow,
    LabelTaskRow,
    ModelVersionRow,
    PredictionRow,
)

if TYPE_CHECKING:
    from garrison.store.session import Session

__all__ = [
    "BINDING_COLUMN",
    "Binder",
    "BindingSpec",
    "binding_columns",
    "bound_tables",
    "first_bad_binding",
    "install",
    "new_id",
    "register",
    "spec_for",
    "update_bound",
    "verify_columns",
    "verify_rows",
]

#: The column every bound table carries.
BINDING_COLUMN = "binding"
#: Execution option that reads rows as stored, without dropping those that fail (verification).
UNVERIFIED = "garrison_unverified"
_DOMAIN = b"garrison-binding-v1\n"


def new_id() -> str:
    """An opaque random id (32 hex digits): reveals neither order nor how many records exist."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class BindingSpec:
    """What a bound table's binding covers.

    ``markings`` are columns holding one marking id (or None); ``marking_lists`` JSON columns
    holding a list of marking ids; ``content`` the columns hashed as the content the markings
    apply to. ``id_factory`` makes the id when a row arrives without one (opaque ids).
    """

    table: str
    id_column: str
    markings: tuple[str, ...] = ()
    marking_lists: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    id_factory: Callable[[], str] | None = None

    def marking_ids(self, get: Callable[[str], Any]) -> list[Any]:
        ids: list[Any] = [get(c) for c in self.markings]
        for column in self.marking_lists:
            ids.append(list(get(column) or []))
        return ids

    def content_of(self, get: Callable[[str], Any]) -> list[Any]:
        return [get(c) for c in self.content]


_SPECS: dict[str, BindingSpec] = {}
_CLASSES: dict[type[Any], BindingSpec] = {}


def register(model: type[Any], spec: BindingSpec) -> None:
    """Bind ``model``'s rows as ``spec`` says (the model needs a nullable ``binding`` column)."""
    if spec.table != model.__tablename__:
        raise ValueError(f"{spec.table} is not the table of {model.__name__}")
    _SPECS[spec.table] = spec
    _CLASSES[model] = spec


def spec_for(table: str) -> BindingSpec | None:
    """The binding spec of ``table``, or None for an unbound table."""
    return _SPECS.get(table)


def bound_tables() -> list[str]:
    """Every bound table, in the order verification checks them (markings first)."""
    return list(_SPECS)


# The order is the order of checking: what access is decided from first.
register(
    InternedMarking,
    BindingSpec("markings", "id", markings=("id",), content=("key", "banner", "expression")),
)
register(
    DocumentRow,
    BindingSpec(
        "documents",
        "id",
        markings=("marking_id", "banner_marking_id", "default_marking_id", "original_marking_id"),
    ),
)
register(
    ElementRow,
    BindingSpec(
        "elements",
        "id",
        markings=("marking_id", "original_marking_id"),
        content=("doc_id", "seq", "type", "text", "page", "marking_source", "data"),
    ),
)
register(
    ElementState,
    BindingSpec(
        "element_states", "element_id", markings=("marking_id",), content=("doc_id", "text")
    ),
)
register(
    ChunkRow,
    BindingSpec(
        "chunks",
        "id",
        markings=("marking_id",),
        marking_lists=("section_marking_ids",),
        content=("doc_id", "text", "element_ids", "section_path"),
    ),
)
register(
    FindingRow,
    BindingSpec(
        "findings",
        "id",
        markings=("marking_id",),
        content=("doc_id", "element_id", "kind", "detail"),
        id_factory=new_id,
    ),
)
register(
    DatasetVersionRow,
    BindingSpec(
        "dataset_versions",
        "id",
        markings=("marking_id",),
        content=("name", "manifest", "record_count", "snapshot"),
    ),
)
register(
    ModelVersionRow,
    BindingSpec(
        "model_versions",
        "id",
        markings=("marking_id",),
        content=("name", "version", "kind", "manifest", "card", "lineage"),
    ),
)
register(
    PredictionRow,
    BindingSpec(
        "predictions",
        "id",
        markings=("marking_id",),
        content=(
            "item_id",
            "item_kind",
            "doc_id",
            "name",
            "model_id",
            "label",
            "probability",
            "probabilities",
        ),
    ),
)
register(
    EvalSuiteRow,
    BindingSpec(
        "eval_suites",
        "id",
        markings=("marking_id",),
        content=("name", "version", "kind", "holdout", "manifest", "item_count", "snapshot"),
    ),
)
register(
    EvalSuiteItemRow,
    BindingSpec(
        "eval_suite_items",
        "id",
        markings=("marking_id",),
        content=("suite_id", "item_id", "position", "cluster", "slices"),
    ),
)
register(
    EvalRunRow,
    BindingSpec(
        "eval_runs",
        "id",
        markings=("marking_id",),
        content=("kind", "suite_id", "system", "scorers", "parameters", "created_by"),
    ),
)
register(
    EvalRunItemRow,
    BindingSpec(
        "eval_run_items",
        "id",
        markings=("marking_id",),
        content=("run_id", "item_id", "status", "scores", "binary", "cluster", "transcript"),
    ),
)
register(
    EvalCacheRow,
    BindingSpec("eval_cache", "key", markings=("marking_id",), content=("response",)),
)

register(
    LabelProjectRow,
    BindingSpec(
        "label_projects",
        "id",
        markings=("marking_id",),
        content=("name", "dataset_version_id", "snapshot", "task_type", "schema", "settings"),
        id_factory=new_id,
    ),
)
register(
    LabelTaskRow,
    BindingSpec(
        "label_tasks",
        "id",
        markings=("marking_id", "suggestion_marking_id"),
        content=("project_id", "record_id", "kind", "gold", "suggestion"),
        id_factory=new_id,
    ),
)
register(
    LabelRow,
    BindingSpec(
        "labels",
        "id",
        markings=("marking_id",),
        content=(
            "task_id",
            "project_id",
            "annotator",
            "kind",
            "status",
            "value",
            "reason",
            "flagged",
            "parent_id",
            "schema_version",
        ),
        id_factory=new_id,
    ),
)
register(
    LabelReviewRow,
    BindingSpec(
        "label_reviews",
        "id",
        markings=("marking_id",),
        content=("label_id", "project_id", "reviewer", "verdict", "reason", "fix_label_id"),
        id_factory=new_id,
    ),
)
register(
    CompilationRuleRow,
    BindingSpec(
        "compilation_rules",
        "id",
        markings=("marking_id",),
        content=("name", "when_terms", "and_terms", "reason"),
        id_factory=new_id,
    ),
)


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    ).encode("utf-8")


#: Verified records a binder remembers before its memory starts over. The memory holds each
#: record's fields (an element's or a chunk's text among them), so it is bounded well below a
#: corpus: enough for the pages a server reads again and again, a few tens of MiB at most.
VERIFIED_LIMIT = 20_000


def _exact(value: Any) -> Any:
    """``value`` as a hashable key that is equal only for values that bind the same: with its
    type (``1``, ``1.0`` and ``True`` compare equal in Python but bind differently), floats by
    their ``repr`` (``0.0`` and ``-0.0`` too), lists and dicts element by element, anything else
    by its ``str`` (as :func:`_canonical` writes it: equal times in other zones differ)."""
    kind = type(value)
    if kind is str or kind is int or value is None:
        return (kind, value)
    if kind is float:
        return (kind, repr(value))
    if kind is list or kind is tuple:
        return (kind, tuple(_exact(v) for v in value))
    if kind is dict:
        return (kind, tuple((_exact(k), _exact(v)) for k, v in value.items()))
    return (kind, str(value))


class Binder:
    """Computes and checks bindings with one workspace's key.

    A binding is a pure function of the key and the record's fields, so a record whose fields
    are exactly -- value and type, element by element, dict keys in order -- those of a record
    that verified under this key, with the same stored binding, verifies too: reads remember
    such records (up to :data:`VERIFIED_LIMIT`) and skip the HMAC for them. Only records that
    verified are remembered; every other one is recomputed and checked in full.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a binding key is 32 bytes")
        self._key = key
        #: Called once per bad row (table, id) when a read drops it; the workspace audits it.
        self.on_failure: Callable[[str, str], None] | None = None
        self._reported: set[tuple[str, str]] = set()
        self._verified: set[tuple[Any, ...]] = set()

    # -- the generic API ----------------------------------------------------------------------

    def bind(self, table: str, record_id: Any, marking_ids: Sequence[Any], content: Any) -> str:
        """The binding (64 hex digits) of a record: its table, id, marking ids and content."""
        # Fields joined with NUL (table names and ids hold none; the marking ids are JSON), the
        # content by its SHA-256: unambiguous, and one pass of the C HMAC.
        message = b"\x00".join(
            (
                _DOMAIN,
                table.encode("utf-8"),
                str(record_id).encode("utf-8"),
                _canonical(list(marking_ids)),
                hashlib.sha256(_canonical(content)).digest(),
            )
        )
        return hmac.digest(self._key, message, "sha256").hex()

    def verify(
        self,
        table: str,
        record_id: Any,
        marking_ids: Sequence[Any],
        content: Any,
        binding: str | None,
    ) -> bool:
        """True when ``binding`` is the binding of exactly this record (constant-time check)."""
        if not isinstance(binding, str):
            return False
        expected = self.bind(table, record_id, marking_ids, content)
        return hmac.compare_digest(expected, binding)

    # -- per table ----------------------------------------------------------------------------

    def bind_values(self, spec: BindingSpec, get: Callable[[str], Any]) -> str:
        """The binding of a row whose column values ``get`` returns."""
        return self.bind(
            spec.table, get(spec.id_column), spec.marking_ids(get), spec.content_of(get)
        )

    def verify_values(
        self, spec: BindingSpec, get: Callable[[str], Any], *, remember: bool = True
    ) -> bool:
        """True when the row's stored binding matches its columns (``remember``: a row seen to
        verify before is not recomputed; see the class docs)."""
        record_id, binding = get(spec.id_column), get(BINDING_COLUMN)
        marking_ids, content = spec.marking_ids(get), spec.content_of(get)
        if not remember or not isinstance(binding, str):
            return self.verify(spec.table, record_id, marking_ids, content, binding)
        seen = (spec.table, binding, _exact(record_id), _exact(marking_ids), _exact(content))
        if seen in self._verified:
            return True
        ok = self.verify(spec.table, record_id, marking_ids, content, binding)
        if ok:
            if len(self._verified) >= VERIFIED_LIMIT:
                self._verified.clear()
            self._verified.add(seen)
        return ok

    def verify_object(self, obj: Any) -> bool:
        """True when a mapped object of a bound table verifies (unbound tables always do)."""
        spec = _CLASSES.get(type(obj))
        if spec is None:
            return True
        return self.verify_values(spec, partial(getattr, obj))

    def report(self, table: str, record_id: str) -> None:
        """Tell :attr:`on_failure` about a bad row, once per row for this binder."""
        if (table, record_id) in self._reported:
            return
        self._reported.add((table, record_id))
        if self.on_failure is not None:
            self.on_failure(table, record_id)


# -- the write side -------------------------------------------------------------------------------


def _before_flush(binder: Binder, orm: OrmSession) -> None:
    for obj in [*orm.new, *orm.dirty]:
        spec = _CLASSES.get(type(obj))
        if spec is None:
            continue
        if getattr(obj, spec.id_column) is None:
            if spec.id_factory is None:
                continue  # the database gives the id: bound after the insert
            setattr(obj, spec.id_column, spec.id_factory())
        obj.binding = binder.bind_values(spec, partial(getattr, obj))


def _after_flush(binder: Binder, orm: OrmSession) -> None:
    # Rows whose id the insert made (interned markings): bind them now, in the same transaction.
    for obj in list(orm.new):
        spec = _CLASSES.get(type(obj))
        if spec is None or spec.id_factory is not None:
            continue
        value = binder.bind_values(spec, partial(getattr, obj))
        if obj.binding == value:
            continue
        table: Table = type(obj).__table__
        orm.connection().execute(
            update(table)
            .where(table.c[spec.id_column] == getattr(obj, spec.id_column))
            .values({BINDING_COLUMN: value})
        )
        set_committed_value(obj, BINDING_COLUMN, value)


def _bind_insert_params(binder: Binder, statement: Insert, params: list[Any]) -> list[Any] | None:
    table = statement.table
    spec = _SPECS.get(getattr(table, "name", ""))
    if spec is None or not params:
        return None
    changed = False
    out: list[Any] = []
    for row in params:
        if not isinstance(row, Mapping) or row.get(BINDING_COLUMN) is not None:
            out.append(row)
            continue
        values = dict(row)
        if values.get(spec.id_column) is None:
            if spec.id_factory is None:
                out.append(row)
                continue
            values[spec.id_column] = spec.id_factory()
        values[BINDING_COLUMN] = binder.bind_values(spec, values.get)
        out.append(values)
        changed = True
    return out if changed else None


def _before_execute(
    binder: Binder,
    _conn: Any,
    clauseelement: Any,
    multiparams: list[Any],
    params: Mapping[str, Any],
    _options: Any,
) -> tuple[Any, list[Any], Mapping[str, Any]]:
    if isinstance(clauseelement, Insert):
        rows = list(multiparams) if multiparams else ([params] if params else [])
        bound = _bind_insert_params(binder, clauseelement, rows)
        if bound is not None:
            if len(bound) == 1:
                return clauseelement, [], bound[0]
            return clauseelement, bound, {}
    return clauseelement, multiparams, params


# -- the read side --------------------------------------------------------------------------------


def _whole_row_columns(state: ORMExecuteState) -> list[int]:
    """Positions in each result row of whole objects of a bound table."""
    try:
        descriptions = state.statement.column_descriptions  # type: ignore[attr-defined]
    except AttributeError:
        return []
    positions = []
    for i, d in enumerate(descriptions):
        # A whole object (aliased or not) has ``expr is entity``; a column has its attribute.
        entity = d.get("entity")
        if entity is not None and d.get("expr") is entity and d.get("type") in _CLASSES:
            positions.append(i)
    return positions


def _do_orm_execute(binder: Binder, state: ORMExecuteState) -> Any:
    if not state.is_select or state.is_column_load or state.execution_options.get(UNVERIFIED):
        return None
    positions = _whole_row_columns(state)
    if not positions:
        return None
    frozen = state.invoke_statement().freeze()
    rows = frozen.rewrite_rows()
    kept = []
    for row in rows:
        bad = [row[i] for i in positions if row[i] is not None and not binder.verify_object(row[i])]
        if not bad:
            kept.append(row)
            continue
        for obj in bad:
            spec = _CLASSES[type(obj)]
            if obj in state.session:
                state.session.expunge(obj)
            binder.report(spec.table, str(getattr(obj, spec.id_column)))
    if len(kept) == len(rows):
        return frozen()
    return frozen.with_new_rows(kept)()  # type: ignore[arg-type]


def install(binder: Binder, engine: Engine, sessions: sessionmaker[OrmSession]) -> None:
    """Bind every write and verify every whole-row read made through ``engine``/``sessions``."""
    event.listen(sessions, "before_flush", lambda orm, _ctx, _objs: _before_flush(binder, orm))
    event.listen(sessions, "after_flush", lambda orm, _ctx: _after_flush(binder, orm))
    event.listen(sessions, "do_orm_execute", lambda st: _do_orm_execute(binder, st))
    event.listen(
        engine,
        "before_execute",
        lambda *args: _before_execute(binder, *args),
        retval=True,
    )


def update_bound(
    orm: OrmSession, model: type[Any], ids: Iterable[Any], values: Mapping[str, Any]
) -> list[Any]:
    """Set ``values`` on the rows of a bound table with these ids, keeping them bound.

    Use it instead of a bulk ``update()`` of marking ids or bound content (which would leave the
    rows unreadable): the rows are read whole, so one whose binding already failed is left as it
    is rather than re-bound, and each changed row is bound again when it is flushed. Returns the
    ids of the rows changed.
    """
    spec = _CLASSES[model]
    id_column = getattr(model, spec.id_column)
    wanted = list(ids)
    changed = []
    for start in range(0, len(wanted), 500):
        for row in orm.scalars(select(model).where(id_column.in_(wanted[start : start + 500]))):
            for column, value in values.items():
                setattr(row, column, value)
            changed.append(getattr(row, spec.id_column))
    orm.flush()
    return changed


def verify_rows(session: Session, orm: OrmSession, rows: Iterable[Any]) -> list[Any]:
    """The rows of ``rows`` whose binding verifies; each one that does not is audited
    (``integrity``, once per row per session) and left out: it is unreadable by everyone.

    ``rows`` are mapped objects, or tuples of them (a tuple is dropped when any part fails).
    """
    binder = session.workspace.catalog.binder
    kept = []
    for row in rows:
        parts = row if isinstance(row, tuple) else (row,)
        bad = [p for p in parts if p is not None and not binder.verify_object(p)]
        if not bad:
            kept.append(row)
            continue
        for obj in bad:
            spec = _CLASSES[type(obj)]
            record = str(getattr(obj, spec.id_column))
            if obj in orm:
                orm.expunge(obj)
            _audit_once(session, spec.table, record)
    return kept


def binding_columns(model: type[Any], prefix: str = "") -> list[Label[Any]]:
    """The columns ``model``'s binding is computed from, and the binding, each labelled
    ``prefix`` + its name: add them to a column query whose rows :func:`verify_columns` checks
    (a different ``prefix`` per bound table the query reads, or per alias of one)."""
    spec = _CLASSES[model]
    names = dict.fromkeys(
        (spec.id_column, *spec.markings, *spec.marking_lists, *spec.content, BINDING_COLUMN)
    )
    return [getattr(model, name).label(prefix + name) for name in names]


def verify_columns(
    binder: Binder, rows: Iterable[Row[Any]], *parts: tuple[type[Any], str]
) -> list[Row[Any]]:
    """The rows of a column query whose every part verifies.

    Each part is (model, prefix) for columns the query selected with
    :func:`binding_columns`; the binding is recomputed in full from them. A part whose id is
    None (an outer join that found nothing) is absent, not bad. Each bad row is reported to
    :attr:`Binder.on_failure` once (the workspace audits an ``integrity`` event) and its result
    row left out: nothing is ever decided from a marking id whose row does not verify.
    """
    kept = []
    for row in rows:
        values = row._mapping
        good = True
        for model, prefix in parts:
            spec = _CLASSES[model]

            def get(column: str, _values: Any = values, _prefix: str = prefix) -> Any:
                return _values[_prefix + column]

            record = get(spec.id_column)
            if record is None:
                continue
            if not binder.verify_values(spec, get):
                good = False
                binder.report(spec.table, str(record))
        if good:
            kept.append(row)
    return kept


def _audit_once(session: Session, table: str, record_id: str) -> None:
    seen: set[tuple[str, str]] = session.__dict__.setdefault("_integrity_reported", set())
    if (table, record_id) in seen:
        return
    seen.add((table, record_id))
    session.audit(
        AuditAction.INTEGRITY,
        object_id=f"{table}:{record_id}",
        decision="deny",
        reason="binding does not verify",
        details={"table": table, "id": record_id},
    )


def first_bad_binding(binder: Binder, orm: OrmSession) -> tuple[str, str, int] | None:
    """The first row (table, id) whose binding does not verify, and how many rows were checked
    before it; None when every bound row verifies (the count is then in :func:`count_checked`).
    """
    checked = 0
    for table_name, record_id, ok in _walk(binder, orm):
        if not ok:
            return table_name, record_id, checked
        checked += 1
    orm.info["garrison_bindings_checked"] = checked
    return None


def count_checked(orm: OrmSession) -> int:
    """How many rows the last complete :func:`first_bad_binding` run checked."""
    return int(orm.info.get("garrison_bindings_checked", 0))


def _walk(binder: Binder, orm: OrmSession) -> Iterator[tuple[str, str, bool]]:
    for model, spec in _CLASSES.items():
        table: Table = model.__table__
        query = (
            select(table)
            .order_by(table.c[spec.id_column])
            .execution_options(**{UNVERIFIED: True, "yield_per": 1000})
        )
        result = orm.execute(query)
        try:
            for row in result:
                values = row._mapping
                # Every row recomputed: what verification reports is checked now, in full.
                ok = binder.verify_values(spec, values.get, remember=False)
                yield spec.table, str(values[spec.id_column]), ok
        finally:
            result.close()  # a server-side cursor on PostgreSQL when stopped early
