"""Read tables (or one SELECT query) from a database as table snapshots.

A table read from a database is a document whose id is the SHA-256 of its *canonical row
serialization* (``TableSnapshot.canonical``), with one ``Record`` element per row whose locator is
``{"db": ..., "table": ..., "pk": {...}}`` (``{"db", "table", "row": n}`` for a query or a table
without a primary key).

Read-only intent: a SQLite file is opened with ``mode=ro`` (so a missing file is never created and
nothing is ever written to it); a PostgreSQL session is a read-only transaction; every connection
is rolled back, never committed; a query must be one ``SELECT`` (or ``WITH``) statement.

Canonical serialization (``garrison-sql-table-v1``), independent of insertion order, of the URL
and of the backend::

    garrison-sql-table-v1\\n
    {"columns":[{"name":..,"type":<portable type>},...],"primary_key":[..],"table":..}\\n
    one JSON object per row: sorted keys, no whitespace, UTF-8 (ensure_ascii=False)\\n ...

Columns are listed by name; types are *portable* names (``integer``, ``text``, ``real``,
``numeric``, ``boolean``, ``date``, ``datetime``, ``time``, ``blob``...), so the same rows in
SQLite and PostgreSQL give the same id. Rows are sorted in Python (not by the database's
collation) by primary key -- every column by name when there is none -- then by their canonical
line; elements come in that same order.

Values are JSON-safe: ints, floats, bools, None and text stay as they are; ``Decimal`` becomes its
exact string; dates, times and datetimes their ISO 8601 string; bytes ``{"$base64": "..."}``;
a non-finite float ``{"$float": "nan"}``. Columns are read without SQLAlchemy's type conversion,
so a legacy SQLite ``date`` column holding free text is read as that text. SQLite text that is not
valid UTF-8 is decoded with replacement characters. A ``boolean`` column holding 0/1 (SQLite)
is read as ``false``/``true``. ``numeric`` values can differ between backends (SQLite keeps
ints/floats, PostgreSQL exact decimals), and so can the text of datetimes stored as text.

Element text is ``"col: value; col: value"`` in the table's column order (NULL as ``NULL``, bytes
as ``<n bytes>``, line breaks as spaces). A value that starts with a portion mark such as
``(S//NF) ...`` is kept as it is in the fields and in the text; because the text starts with a
column name, a mark inside a value is not the element's leading portion mark.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from garrison.core.errors import EnvironmentProblem, InvalidInput
from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement

__all__ = ["MEDIA_TYPE", "TableSnapshot", "read_sql", "validate_select"]

MEDIA_TYPE = "application/vnd.garrison.sql-table"
_CANONICAL_HEADER = b"garrison-sql-table-v1\n"
_YIELD_PER = 1000
_MAX_LISTED_TABLES = 20


@dataclass(frozen=True)
class TableSnapshot:
    """One table (or query result) read from a database.

    ``uri`` is the database URL without its password plus ``#<name>``; ``canonical`` is the
    canonical row serialization, whose SHA-256 is the document id.
    """

    name: str
    uri: str
    canonical: bytes
    document: ParsedDocument


@dataclass(frozen=True)
class _Column:
    name: str
    type: str
    portable: str
    nullable: bool
    primary_key: bool


def read_sql(
    url: str,
    *,
    tables: Sequence[str] = (),
    query: str | None = None,
    query_name: str = "query",
    max_rows: int = 5_000_000,
    marking_column: str | None = None,
) -> list[TableSnapshot]:
    """Read ``tables`` (default: every table, sorted by name) or one ``query`` from ``url``.

    ``marking_column`` names a column holding each row's marking (banner or portion spelling):
    its value becomes the record's ``declared_marking`` (``""`` when empty or NULL) and the
    column is left out of the record's text and fields (it stays in the canonical rows, so a
    changed marking is a changed snapshot).

    Raises :class:`InvalidInput` for a malformed URL, an unknown table (the message lists the
    tables that exist), a table or query without ``marking_column``, a query that is not a
    single SELECT, or more than ``max_rows`` rows;
    :class:`EnvironmentProblem` when the database cannot be reached. Nothing is written anywhere.
    """
    if tables and query is not None:
        raise InvalidInput("Give either tables or a query, not both.")
    if query is not None:
        validate_select(query)
    parsed = _parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    engine = _engine(parsed, shown)
    try:
        with _connect(engine, parsed, shown) as conn:
            db_name = _db_name(parsed)
            if query is not None:
                return [
                    _read_query(
                        conn,
                        query,
                        query_name,
                        db_name=db_name,
                        shown=shown,
                        max_rows=max_rows,
                        marking_column=marking_column,
                    )
                ]
            existing = _table_names(conn, shown)
            wanted = list(tables) if tables else sorted(existing)
            missing = [t for t in wanted if t not in existing]
            if missing:
                listed = sorted(existing)
                more = len(listed) - _MAX_LISTED_TABLES
                names = ", ".join(listed[:_MAX_LISTED_TABLES]) or "none"
                if more > 0:
                    names += f" and {more} more"
                raise InvalidInput(
                    f"The database at {shown} has no table {missing[0]!r}; its tables are: {names}."
                )
            return [
                _read_table(
                    conn,
                    name,
                    db_name=db_name,
                    shown=shown,
                    max_rows=max_rows,
                    marking_column=marking_column,
                )
                for name in wanted
            ]
    finally:
        engine.dispose()


# --- query validation --------------------------------------------------------------------------

_FORBIDDEN = re.compile(
    r"\b(insert|update|delete|merge|upsert|drop|alter|create|truncate|grant|revoke|attach|detach"
    r"|pragma|vacuum|reindex|analyze|copy|call|exec|execute|into|lock|set|begin|commit|rollback"
    r"|savepoint|release|load|do)\b",
    re.IGNORECASE,
)


def _strip_sql(sql: str) -> str:
    """``sql`` without comments, with string literals and quoted identifiers blanked out."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            out.append(" _ ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def validate_select(query: str) -> None:
    """Raise :class:`InvalidInput` unless ``query`` is a single SELECT (or WITH ... SELECT).

    A simple check, not a SQL parser: comments and quoted text are ignored; the statement must
    start with SELECT or WITH, hold no ``;`` followed by more text and no writing keyword
    (INSERT, UPDATE, DELETE, DROP, INTO, PRAGMA...). The connection is read-only as well.
    """
    body = _strip_sql(query).strip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    first = body.split(None, 1)[0].lower() if body else ""
    if first not in ("select", "with"):
        raise InvalidInput("The query must be a single SELECT statement.")
    if ";" in body:
        raise InvalidInput("The query must be a single SELECT statement; it holds several.")
    bad = _FORBIDDEN.search(body)
    if bad:
        raise InvalidInput(
            f"The query must be a single SELECT statement that writes nothing; "
            f"it uses {bad.group(0).upper()}."
        )


# --- connecting --------------------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise InvalidInput(
            f"{url!r} is not a database URL; give one like sqlite:///path/to/file.db or "
            "postgresql+psycopg://user@host/dbname."
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.query:
        raise InvalidInput(
            "SQLite URL options are not supported: give the file as sqlite:///path/to/file.db."
        )
    return parsed


def _first_line(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    text = str(orig if orig is not None else exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line.rstrip(".")


def _unreachable(shown: str, exc: BaseException, password: str | None) -> EnvironmentProblem:
    line = _first_line(exc)
    if password:
        line = line.replace(password, "***")
    return EnvironmentProblem(f"The database at {shown} cannot be reached: {line}.")


def _sqlite_creator(parsed: URL, shown: str) -> Callable[[], sqlite3.Connection]:
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return lambda: sqlite3.connect(":memory:")
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise EnvironmentProblem(
            f"The database at {shown} cannot be reached: no such file {str(path)!r}."
        )
    ro_uri = f"{path.as_uri()}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(ro_uri, uri=True)
        # Decades-old files hold text in other encodings; never fail a whole table on one value.
        conn.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
        return conn

    return connect


def _engine(parsed: URL, shown: str) -> Engine:
    try:
        if parsed.get_backend_name() == "sqlite" and parsed.get_driver_name() == "pysqlite":
            creator = _sqlite_creator(parsed, shown)
            return sa.create_engine("sqlite+pysqlite://", creator=creator, poolclass=NullPool)
        return sa.create_engine(parsed, poolclass=NullPool)
    except EnvironmentProblem:
        raise
    except (sa_exc.SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
        raise _unreachable(shown, exc, parsed.password) from exc


def _connect(engine: Engine, parsed: URL, shown: str) -> Connection:
    try:
        conn = engine.connect()
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise _unreachable(shown, exc, parsed.password) from exc
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(postgresql_readonly=True)
    return conn


def _db_name(parsed: URL) -> str:
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        return Path(database).name if database not in ("", ":memory:") else ":memory:"
    return database or (parsed.host or "")


def _table_names(conn: Connection, shown: str) -> set[str]:
    try:
        return set(sa.inspect(conn).get_table_names())
    except sa_exc.DBAPIError as exc:
        raise EnvironmentProblem(
            f"The database at {shown} cannot be read: {_first_line(exc)}."
        ) from exc


# --- types and values --------------------------------------------------------------------------


def _portable_type(type_: sa.types.TypeEngine[Any]) -> str:
    checks: list[tuple[type[sa.types.TypeEngine[Any]], str]] = [
        (sa.Boolean, "boolean"),
        (sa.Integer, "integer"),
        (sa.Float, "real"),
        (sa.Numeric, "numeric"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.Interval, "interval"),
        (sa.LargeBinary, "blob"),
        (sa.types._Binary, "blob"),
        (sa.JSON, "json"),
        (sa.Uuid, "uuid"),
        (sa.String, "text"),
    ]
    for cls, name in checks:
        if isinstance(type_, cls):
            return name
    return str(getattr(type_, "__visit_name__", type(type_).__name__)).lower()


def _portable_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    kinds: list[tuple[type[Any] | tuple[type[Any], ...], str]] = [
        (int, "integer"),
        (float, "real"),
        (Decimal, "numeric"),
        (dt.datetime, "datetime"),
        (dt.date, "date"),
        (dt.time, "time"),
        (dt.timedelta, "interval"),
        ((bytes, bytearray, memoryview), "blob"),
        (uuid.UUID, "uuid"),
        ((dict, list), "json"),
        (str, "text"),
    ]
    for cls, name in kinds:
        if isinstance(value, cls):
            return name
    return "unknown"


def _json_safe(value: Any, portable: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return bool(value) if portable == "boolean" and value in (0, 1) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": str(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (dict, list)):
        try:
            return json.loads(json.dumps(value, allow_nan=False, default=str))
        except ValueError:
            return str(value)
    return str(value)


def _render(value: Any, raw: Any) -> str:
    if raw is None:
        return "NULL"
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(raw))} bytes>"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(text.splitlines())


def _canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _sort_part(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, _canonical_json(value))


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    key: tuple[Any, ...]
    line: str
    fields: dict[str, Any]
    text: str
    declared: str | None = None


def _check_marking_column(
    name: str, columns: Sequence[_Column], marking_column: str | None
) -> None:
    if marking_column is not None and marking_column not in {c.name for c in columns}:
        raise InvalidInput(
            f"{name!r} has no column {marking_column!r} to read each row's marking from "
            "(--marking-column)."
        )


def _declared(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _collect(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[_Column],
    *,
    sort_by: Sequence[str],
    name: str,
    max_rows: int,
    marking_column: str | None = None,
) -> list[_Row]:
    _check_marking_column(name, columns, marking_column)
    out: list[_Row] = []
    for raw in rows:
        if len(out) >= max_rows:
            raise InvalidInput(
                f"{name!r} has more than {max_rows} rows; read a part of it with --query and a "
                "WHERE clause."
            )
        fields = {c.name: _json_safe(v, c.portable) for c, v in zip(columns, raw, strict=True)}
        text = "; ".join(
            f"{c.name}: {_render(fields[c.name], v)}"
            for c, v in zip(columns, raw, strict=True)
            if c.name != marking_column
        )
        line = _canonical_json(fields)
        key = tuple(_sort_part(fields[c]) for c in sort_by)
        declared = None
        if marking_column is not None:
            declared = _declared(fields.pop(marking_column))
        out.append(_Row(key=key, line=line, fields=fields, text=text, declared=declared))
    out.sort(key=lambda r: (r.key, r.line))
    return out


def _canonical(name: str, columns: Sequence[_Column], rows: Sequence[_Row]) -> bytes:
    head = {
        "table": name,
        "columns": [
            {"name": c.name, "type": c.portable} for c in sorted(columns, key=lambda c: c.name)
        ],
        "primary_key": [c.name for c in columns if c.primary_key],
    }
    parts = [_CANONICAL_HEADER, _canonical_json(head).encode() + b"\n"]
    parts.extend(r.line.encode() + b"\n" for r in rows)
    return b"".join(parts)


def _snapshot(
    name: str,
    columns: Sequence[_Column],
    rows: Sequence[_Row],
    *,
    db_name: str,
    shown: str,
    pk: Sequence[str],
    extra_metadata: dict[str, Any] | None = None,
) -> TableSnapshot:
    elements = []
    for n, row in enumerate(rows):
        locator: dict[str, Any] = {"db": db_name, "table": name}
        if pk:
            locator["pk"] = {c: row.fields[c] for c in pk}
        else:
            locator["row"] = n
        elements.append(
            ParsedElement(
                type=ElementType.RECORD,
                text=row.text,
                fields=row.fields,
                locator=locator,
                declared_marking=row.declared,
            )
        )
    metadata: dict[str, Any] = {
        "schema": [
            {
                "name": c.name,
                "type": c.type,
                "portable_type": c.portable,
                "nullable": c.nullable,
                "primary_key": c.primary_key,
            }
            for c in columns
        ],
        "row_count": len(rows),
        "source_url": shown,
        "table": name,
        **(extra_metadata or {}),
    }
    document = ParsedDocument(
        media_type=MEDIA_TYPE,
        elements=tuple(elements),
        title=name,
        metadata=metadata,
        extraction=Extraction(
            method="sql", parser="garrison.ingest.sql", parser_version=sa.__version__
        ),
    )
    return TableSnapshot(
        name=name,
        uri=f"{shown}#{name}",
        canonical=_canonical(name, columns, rows),
        document=document,
    )


def _type_name(type_: sa.types.TypeEngine[Any], conn: Connection) -> str:
    try:
        return str(type_.compile(dialect=conn.dialect))
    except sa_exc.SQLAlchemyError:
        return type(type_).__name__


def _read_table(
    conn: Connection,
    name: str,
    *,
    db_name: str,
    shown: str,
    max_rows: int,
    marking_column: str | None = None,
) -> TableSnapshot:
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    except (sa_exc.DBAPIError, sa_exc.NoSuchTableError) as exc:
        raise EnvironmentProblem(
            f"The table {name!r} at {shown} cannot be read: {_first_line(exc)}."
        ) from exc
    columns = [
        _Column(
            name=c.name,
            type=_type_name(c.type, conn),
            portable=_portable_type(c.type),
            nullable=bool(c.nullable) and not c.primary_key,
            primary_key=c.primary_key,
        )
        for c in table.columns
    ]
    pk = [c.name for c in table.primary_key.columns]
    if marking_column is not None and marking_column in pk:
        raise InvalidInput(
            f"The marking column {marking_column!r} is part of the primary key of {name!r}."
        )
    sort_by = pk or sorted(c.name for c in columns)
    # Untyped columns: the driver's values, without SQLAlchemy's conversions (which fail on
    # legacy SQLite text in date columns and warn on SQLite decimals).
    stmt = sa.select(*(sa.column(c.name) for c in columns)).select_from(
        sa.table(name, schema=table.schema)
    )
    stmt = stmt.order_by(*(sa.column(c) for c in sort_by))
    try:
        result = conn.execution_options(yield_per=_YIELD_PER).execute(stmt)
        rows = _collect(
            result,
            columns,
            sort_by=sort_by,
            name=name,
            max_rows=max_rows,
            marking_column=marking_column,
        )
        result.close()
    except sa_exc.DBAPIError as exc:
        raise EnvironmentProblem(
            f"The table {name!r} at {shown} cannot be read: {_first_line(exc)}."
        ) from exc
    extra = {"marking_column": marking_column} if marking_column else None
    return _snapshot(name, columns, rows, db_name=db_name, shown=shown, pk=pk, extra_metadata=extra)


def _read_query(
    conn: Connection,
    query: str,
    name: str,
    *,
    db_name: str,
    shown: str,
    max_rows: int,
    marking_column: str | None = None,
) -> TableSnapshot:
    try:
        result = conn.execution_options(yield_per=_YIELD_PER).execute(sa.text(query))
        keys = list(result.keys())
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            result.close()
            raise InvalidInput(
                f"The query returns several columns named {duplicated[0]!r}; give them aliases."
            )
        raw_rows: list[tuple[Any, ...]] = []
        for row in result:
            if len(raw_rows) >= max_rows:
                raise InvalidInput(
                    f"The query returns more than {max_rows} rows; narrow it with a WHERE clause."
                )
            raw_rows.append(tuple(row))
        result.close()
    except sa_exc.DBAPIError as exc:
        raise InvalidInput(f"The query failed: {_first_line(exc)}.") from exc
    portable = {k: "unknown" for k in keys}
    for k_index, k in enumerate(keys):
        for raw in raw_rows:
            if raw[k_index] is not None:
                portable[k] = _portable_of_value(raw[k_index])
                break
    columns = [
        _Column(name=k, type=portable[k], portable=portable[k], nullable=True, primary_key=False)
        for k in keys
    ]
    rows = _collect(
        raw_rows,
        columns,
        sort_by=sorted(keys),
        name=name,
        max_rows=max_rows,
        marking_column=marking_column,
    )
    extra: dict[str, Any] = {"query": query}
    if marking_column:
        extra["marking_column"] = marking_column
    return _snapshot(name, columns, rows, db_name=db_name, shown=shown, pk=(), extra_metadata=extra)
