"""Tables and queries read from SQLite and PostgreSQL as table snapshots."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from garrison.core.errors import EnvironmentProblem, InvalidInput
from garrison.core.records import ElementType
from garrison.ingest.sql import MEDIA_TYPE, TableSnapshot, read_sql, validate_select
from tests.conftest import PgDatabase, require

LEGACY = Path(__file__).resolve().parents[3] / "shared/corpus/marked/docs/legacy-shipments.sqlite"

ITEMS_DDL = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, name TEXT, weight REAL, "
    "received DATE, photo BLOB, note TEXT)"
)
ITEMS = [
    (3, 30, "(S//NF) tire 16in", 2.5, "2024-03-03", b"\x00\xff", None),
    (1, 10, "rifle cleaning kit", 0.75, "2024-01-01", None, "first"),
    (2, 20, "brake assembly", None, None, b"abc", "line one\nline two"),
]


def make_db(path: Path, statements: Iterable[str], rows: dict[str, list[tuple[Any, ...]]]) -> str:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    for table, values in rows.items():
        for row in values:
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO {table} VALUES ({marks})", row)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture
def items_url(tmp_path: Path) -> str:
    return make_db(
        tmp_path / "items.db",
        [
            ITEMS_DDL,
            "CREATE TABLE log (at TEXT, message TEXT)",
            "CREATE TABLE stock (depot TEXT, nsn TEXT, qty INTEGER, PRIMARY KEY (depot, nsn))",
        ],
        {
            "items": ITEMS,
            "log": [("2024-01-02", "b"), ("2024-01-01", "z"), ("2024-01-01", "a")],
            "stock": [("OSPREY", "2", 5), ("HARROW", "9", 1), ("HARROW", "1", 7)],
        },
    )


def doc_id(snapshot: TableSnapshot) -> str:
    return hashlib.sha256(snapshot.canonical).hexdigest()


def test_typed_table_fields_locators_and_order(items_url: str) -> None:
    [snap] = read_sql(items_url, tables=["items"])
    doc = snap.document
    assert snap.name == "items"
    assert snap.uri == f"{items_url}#items"
    assert doc.media_type == MEDIA_TYPE
    assert doc.title == "items"
    assert doc.extraction.method == "sql"
    assert doc.extraction.parser == "garrison.ingest.sql"
    assert doc.extraction.parser_version == sa.__version__
    assert doc.metadata["row_count"] == 3
    assert doc.metadata["table"] == "items"
    assert doc.metadata["source_url"] == items_url
    schema = {c["name"]: c for c in doc.metadata["schema"]}
    assert [c["name"] for c in doc.metadata["schema"]] == [
        "id",
        "qty",
        "name",
        "weight",
        "received",
        "photo",
        "note",
    ]
    assert schema["id"]["primary_key"] is True
    assert schema["id"]["type"] == "INTEGER"
    assert schema["name"]["primary_key"] is False
    assert schema["name"]["nullable"] is True

    assert all(e.type is ElementType.RECORD for e in doc.elements)
    assert [e.locator for e in doc.elements] == [
        {"db": "items.db", "table": "items", "pk": {"id": n}} for n in (1, 2, 3)
    ]
    first, second, third = (e.fields for e in doc.elements)
    assert first == {
        "id": 1,
        "qty": 10,
        "name": "rifle cleaning kit",
        "weight": 0.75,
        "received": "2024-01-01",
        "photo": None,
        "note": "first",
    }
    assert isinstance(first["id"], int)
    assert isinstance(first["weight"], float)
    assert second["photo"] == {"$base64": base64.b64encode(b"abc").decode()}
    assert second["weight"] is None
    # A portion mark inside a value is kept as it is: ingest decides about marks later.
    assert third["name"] == "(S//NF) tire 16in"
    assert doc.elements[0].text == (
        "id: 1; qty: 10; name: rifle cleaning kit; weight: 0.75; received: 2024-01-01; "
        "photo: NULL; note: first"
    )
    assert "\n" not in doc.elements[1].text
    assert "photo: <3 bytes>" in doc.elements[1].text
    assert "note: line one line two" in doc.elements[1].text


def test_table_without_primary_key_and_composite_key(items_url: str) -> None:
    log, stock = read_sql(items_url, tables=["log", "stock"])
    assert [e.fields for e in log.document.elements] == [
        {"at": "2024-01-01", "message": "a"},
        {"at": "2024-01-01", "message": "z"},
        {"at": "2024-01-02", "message": "b"},
    ]
    assert [e.locator for e in log.document.elements] == [
        {"db": "items.db", "table": "log", "row": n} for n in range(3)
    ]
    assert [e.locator["pk"] for e in stock.document.elements] == [
        {"depot": "HARROW", "nsn": "1"},
        {"depot": "HARROW", "nsn": "9"},
        {"depot": "OSPREY", "nsn": "2"},
    ]
    assert [c["primary_key"] for c in stock.document.metadata["schema"]] == [True, True, False]


def test_every_table_sorted_by_default(items_url: str) -> None:
    assert [s.name for s in read_sql(items_url)] == ["items", "log", "stock"]


def test_canonical_id_stable_across_files_and_insertion_order(tmp_path: Path) -> None:
    a = make_db(tmp_path / "a.db", [ITEMS_DDL], {"items": ITEMS})
    b = make_db(tmp_path / "b.sqlite", [ITEMS_DDL], {"items": list(reversed(ITEMS))})
    changed_rows = [ITEMS[0], ITEMS[1], (*ITEMS[2][:3], 1.5, *ITEMS[2][4:])]
    c = make_db(tmp_path / "c.db", [ITEMS_DDL], {"items": changed_rows})
    [sa_], [sb], [sc] = (read_sql(u, tables=["items"]) for u in (a, b, c))
    assert sa_.canonical.startswith(b"garrison-sql-table-v1\n")
    assert sa_.canonical == sb.canonical
    assert doc_id(sa_) == doc_id(sb)
    assert doc_id(sa_) != doc_id(sc)
    assert [e.fields for e in sa_.document.elements] == [e.fields for e in sb.document.elements]


def test_query(items_url: str) -> None:
    [snap] = read_sql(
        items_url,
        query="-- heavy items\nSELECT id, name FROM items WHERE weight > 0.5 ORDER BY id DESC;",
        query_name="heavy",
    )
    assert snap.name == "heavy"
    assert snap.document.title == "heavy"
    assert snap.uri == f"{items_url}#heavy"
    assert [e.fields for e in snap.document.elements] == [
        {"id": 1, "name": "rifle cleaning kit"},
        {"id": 3, "name": "(S//NF) tire 16in"},
    ]
    assert [e.locator for e in snap.document.elements] == [
        {"db": "items.db", "table": "heavy", "row": n} for n in range(2)
    ]
    assert snap.document.metadata["query"].startswith("-- heavy items")


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM items",
        "SELECT 1; DROP TABLE items",
        "select 1 ;  delete from items",
        "UPDATE items SET qty = 0",
        "PRAGMA table_info(items)",
        "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d",
        "SELECT * INTO copy FROM items",
        "/* SELECT */ DROP TABLE items",
        "",
    ],
)
def test_non_select_queries_refused(items_url: str, query: str) -> None:
    with pytest.raises(InvalidInput, match="single SELECT"):
        read_sql(items_url, query=query)
    [items] = read_sql(items_url, tables=["items"])
    assert items.document.metadata["row_count"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "select 1",
        "SELECT 'a; drop table x' AS s;",
        'SELECT "update" FROM t -- delete\n',
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    ],
)
def test_selects_accepted(query: str) -> None:
    validate_select(query)


def test_unknown_table_lists_existing(items_url: str) -> None:
    with pytest.raises(InvalidInput, match="'nope'") as info:
        read_sql(items_url, tables=["items", "nope"])
    assert "items, log, stock" in str(info.value)


def test_unknown_table_lists_at_most_twenty(tmp_path: Path) -> None:
    url = make_db(tmp_path / "many.db", [f"CREATE TABLE t{n:02d} (a)" for n in range(25)], {})
    with pytest.raises(InvalidInput, match="and 5 more") as info:
        read_sql(url, tables=["x"])
    assert "t19" in str(info.value)
    assert "t20" not in str(info.value)


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(EnvironmentProblem, match="cannot be reached"):
        read_sql(f"sqlite:///{missing}")
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_hides_password() -> None:
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/nothing?connect_timeout=2"
    with pytest.raises(EnvironmentProblem, match="cannot be reached") as info:
        read_sql(url)
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


def test_bad_driver_is_environment_problem() -> None:
    with pytest.raises(EnvironmentProblem, match="cannot be reached"):
        read_sql("nosuchdb+nodriver://host/db")


@pytest.mark.parametrize("url", ["not a url", "/tmp/file.db", ""])
def test_malformed_url(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a database URL"):
        read_sql(url)


def test_source_file_unchanged(tmp_path: Path, items_url: str) -> None:
    path = tmp_path / "items.db"
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_sql(items_url)
    read_sql(items_url, query="SELECT * FROM items")
    with pytest.raises(InvalidInput):
        read_sql(items_url, query="DELETE FROM items")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.db"]


def test_max_rows(items_url: str) -> None:
    with pytest.raises(InvalidInput, match="--query"):
        read_sql(items_url, tables=["items"], max_rows=2)
    with pytest.raises(InvalidInput, match="WHERE"):
        read_sql(items_url, query="SELECT * FROM items", max_rows=2)
    assert read_sql(items_url, tables=["items"], max_rows=3)[0].document.metadata["row_count"] == 3


def test_legacy_text_encoding_and_special_floats(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, x REAL, flag BOOLEAN)")
    conn.execute("INSERT INTO t VALUES (1, CAST(X'4361666509' || X'E9' AS TEXT), ?, 1)", (1e309,))
    conn.commit()
    conn.close()
    [snap] = read_sql(f"sqlite:///{path}")
    fields = snap.document.elements[0].fields
    assert fields["name"].startswith("Cafe")
    assert fields["x"] == {"$float": "inf"}
    assert fields["flag"] is True


def test_legacy_corpus_database() -> None:
    require(LEGACY.exists(), f"{LEGACY} is absent")
    [snap] = read_sql(f"sqlite:///{LEGACY}", tables=["shipments"])
    elements = snap.document.elements
    assert len(elements) == 100
    assert all(e.type is ElementType.RECORD for e in elements)
    for e in elements:
        assert set(e.fields) == {"id", "nsn", "item", "qty", "depot", "shipped"}
    assert [e.locator["pk"]["id"] for e in elements] == sorted(e.fields["id"] for e in elements)
    assert elements[0].locator["db"] == "legacy-shipments.sqlite"


PORTABLE_DDL = (
    "CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT, weight REAL, "
    "received DATE, active BOOLEAN)"
)
PORTABLE_ROWS = [
    (2, "brake assembly", 1.25, "2024-02-02", False),
    (1, "(C) rifle cleaning kit", 0.5, "2024-01-01", True),
    (3, None, None, None, None),
]


@pytest.mark.postgres
def test_postgresql_same_id_as_sqlite(pg_database: PgDatabase, tmp_path: Path) -> None:
    pg_ddl = PORTABLE_DDL.replace("REAL", "DOUBLE PRECISION")
    engine = sa.create_engine(pg_database.url)
    with engine.begin() as conn:
        conn.execute(sa.text(pg_ddl))
        for row in PORTABLE_ROWS:
            conn.execute(
                sa.text("INSERT INTO parts VALUES (:i, :n, :w, CAST(:r AS DATE), :a)"),
                dict(zip("inwra", row, strict=True)),
            )
    engine.dispose()
    sqlite_url = make_db(tmp_path / "parts.db", [PORTABLE_DDL], {"parts": PORTABLE_ROWS})

    [pg] = read_sql(pg_database.url, tables=["parts"])
    [lite] = read_sql(sqlite_url, tables=["parts"])
    assert pg.canonical == lite.canonical
    assert doc_id(pg) == doc_id(lite)
    assert [e.fields for e in pg.document.elements] == [e.fields for e in lite.document.elements]
    assert pg.document.elements[0].locator == {
        "db": pg_database.name,
        "table": "parts",
        "pk": {"id": 1},
    }
    assert pg.document.elements[0].fields["active"] is True

    [q] = read_sql(pg_database.url, query="SELECT name, weight FROM parts WHERE id < 3")
    assert [e.fields for e in q.document.elements] == [
        {"name": "(C) rifle cleaning kit", "weight": 0.5},
        {"name": "brake assembly", "weight": 1.25},
    ]
    with pytest.raises(InvalidInput, match="single SELECT"):
        read_sql(pg_database.url, query="WITH d AS (DELETE FROM parts RETURNING *) SELECT 1")


# --- a column holding each row's marking -------------------------------------------------------


@pytest.fixture
def marked_url(tmp_path: Path) -> str:
    return make_db(
        tmp_path / "marked.db",
        ["CREATE TABLE reports (id INTEGER PRIMARY KEY, body TEXT, classification TEXT)"],
        {
            "reports": [
                (1, "grid 7 canary", "TOP SECRET//SI//NOFORN"),
                (2, "(S//NF) a mark at the start of a value", "(S//NF)"),
                (3, "routine", None),
                (4, "spaced", "  SECRET  "),
            ]
        },
    )


def test_marking_column_becomes_declared_marking_and_leaves_text(marked_url: str) -> None:
    (snap,) = read_sql(marked_url, tables=["reports"], marking_column="classification")
    records = snap.document.elements
    assert [r.declared_marking for r in records] == [
        "TOP SECRET//SI//NOFORN",
        "(S//NF)",
        "",  # NULL: stated unmarked (the source default, with a finding)
        "SECRET",
    ]
    for record in records:
        assert "classification" not in record.fields
        assert "classification" not in record.text
        assert "TOP SECRET" not in record.text
    # A mark at the start of a column value stays where the marking rules look.
    assert records[1].fields["body"].startswith("(S//NF)")
    assert snap.document.metadata["marking_column"] == "classification"


def test_marking_column_stays_in_the_canonical_rows(tmp_path: Path) -> None:
    def snapshot(level: str) -> TableSnapshot:
        url = make_db(
            tmp_path / f"{level}.db",
            ["CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, m TEXT)"],
            {"t": [(1, "x", level)]},
        )
        (snap,) = read_sql(url, tables=["t"], marking_column="m")
        return snap

    # A row whose marking changes is a different snapshot (a new document id).
    assert snapshot("SECRET").canonical != snapshot("UNCLASSIFIED").canonical


def test_marking_column_in_a_query(marked_url: str) -> None:
    (snap,) = read_sql(
        marked_url,
        query="SELECT id, body, classification AS m FROM reports WHERE id < 3",
        marking_column="m",
    )
    by_id = {r.fields["id"]: r.declared_marking for r in snap.document.elements}
    assert by_id == {1: "TOP SECRET//SI//NOFORN", 2: "(S//NF)"}
    assert all("m" not in r.fields for r in snap.document.elements)


def test_missing_marking_column_is_refused(marked_url: str) -> None:
    with pytest.raises(InvalidInput, match="no column 'level'"):
        read_sql(marked_url, tables=["reports"], marking_column="level")
    with pytest.raises(InvalidInput, match="no column 'level'"):
        read_sql(marked_url, query="SELECT id FROM reports", marking_column="level")
    with pytest.raises(InvalidInput, match="primary key"):
        read_sql(marked_url, tables=["reports"], marking_column="id")


def test_without_marking_column_nothing_is_declared(marked_url: str) -> None:
    (snap,) = read_sql(marked_url, tables=["reports"])
    assert all(r.declared_marking is None for r in snap.document.elements)
    assert snap.document.elements[0].fields["classification"] == "TOP SECRET//SI//NOFORN"
