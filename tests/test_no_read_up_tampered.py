"""No read up when the catalog was edited behind Garrison's back (ARCHITECTURE.md section 7).

A small workspace is built through Garrison; then, with ``sqlite3`` on ``catalog.db`` as anyone
holding the file could, one document's only element and its only chunk are re-marked
UNCLASSIFIED, and the SECRET//NOFORN markings row is given UNCLASSIFIED's banner and access
expression. Markings are bound to their data, so none of those rows, and nothing marked with
the edited marking, may come back from any read path (library, API, web) to any subject -- not
even to system high -- and a forbidden id answers exactly like a missing one. ``garrison audit
verify`` exits 1 naming the first bad row, after each edit.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.cli.main import main
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditAction
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app
from tests.test_no_read_up import (
    BY_ID,
    LISTINGS,
    PIPELINE,
    QUERIES,
    SUBJECTS,
    SYSTEM_HIGH,
    Corpus,
    View,
    _check_by_id,
    _check_no_leak,
    _user,
)

BINDINGS = "garrison.store.bindings"

#: The document whose element and chunk are re-marked: its one portion holds TAMPERED_WORD.
TAMPERED_FILE = "depotnote"
TAMPERED_WORD = "canarytp01"
#: The document marked with the marking whose row is edited (its name is a canary too).
NOFORN_FILE = "canarynf02"
NOFORN_WORD = "canarynf03"
NOFORN = "SECRET//NOFORN"
#: Untouched documents: canary -> banner. They stay readable exactly as before.
INTACT = {
    "canaryuu04": "UNCLASSIFIED",
    "canarycc05": "CONFIDENTIAL",
    "canaryss06": "SECRET",
}


def _bindings() -> ModuleType:
    """The marking bindings module, or a skip while this tree has none."""
    if importlib.util.find_spec(BINDINGS) is None:
        pytest.skip(
            f"{BINDINGS} is not in this tree: reads cannot tell a tampered marking binding yet"
        )
    return importlib.import_module(BINDINGS)


@dataclass
class Tampered:
    """The served, tampered workspace and what was edited."""

    corpus: Corpus
    bindings: ModuleType
    element: str
    chunk: str
    marking: int
    hidden_ids: list[str]  # every id no subject may see any more
    hidden_words: list[str]
    verify: list[tuple[str, int, dict[str, Any], str]]  # expected bad row, exit, JSON, text


def _sql(ws: Workspace, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL on the catalog file directly, as someone holding the file would."""
    path = ws.catalog.engine.url.database
    assert ws.catalog.backend == "sqlite" and path is not None
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
    finally:
        conn.close()
    return rows


def _verify(ws: Workspace) -> tuple[int, dict[str, Any], str]:
    """``garrison audit verify`` twice (text, then ``--json``): exit code, JSON, all text."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["audit", "verify", "-w", str(ws.root)])
    text = out.getvalue() + err.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        json_code = main(["audit", "verify", "-w", str(ws.root), "--json"])
    assert json_code == code
    return code, json.loads(out.getvalue()), text


def _first_bad(bindings: ModuleType, rows: list[tuple[str, str]]) -> str:
    """The row verification names first: tables in the order they are checked, then by id."""
    order = bindings.bound_tables()
    table, record = min(rows, key=lambda r: (order.index(r[0]), r[1]))
    return f"{table}:{record}"


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tampered]:
    bindings = _bindings()
    root = tmp_path_factory.mktemp("tampered")
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    folder = root / "in"
    folder.mkdir()
    (folder / f"{TAMPERED_FILE}.txt").write_text(
        f"(S) The harbor depot {TAMPERED_WORD} moves on Thursday night.\n"
    )
    (folder / f"{NOFORN_FILE}.txt").write_text(
        f"{NOFORN}\n\n(S//NF) The harbor cache {NOFORN_WORD} moves east.\n\n{NOFORN}\n"
    )
    for word, banner in INTACT.items():
        mark = "".join(part[0] for part in banner.split("//"))
        (folder / f"{word}.txt").write_text(f"({mark}) The harbor report names {word}.\n")
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="tampered.yaml"))
    tokens = {}
    for clearance, nation, role in SUBJECTS:
        name = _user(clearance, nation, role)
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=nation, roles=(role,)))
        tokens[name] = create_token(system, name, 30)[1]

    docs = Documents(system).list()
    by_file = {d["filename"]: d for d in docs}
    target = Documents(system).show(by_file[f"{TAMPERED_FILE}.txt"]["id"], elements=True)
    noforn = Documents(system).show(by_file[f"{NOFORN_FILE}.txt"]["id"], elements=True)
    chunks = Chunks(system).list()
    [element] = [e["id"] for e in target["elements"] if TAMPERED_WORD in e["text"]]
    [chunk] = [c["id"] for c in chunks if TAMPERED_WORD in c["text"]]
    assert target["marking"] == "SECRET" and noforn["marking"] == NOFORN
    noforn_ids = [noforn["id"], *(e["id"] for e in noforn["elements"])]
    noforn_ids += [c["id"] for c in chunks if c.get("doc_id") == noforn["id"]]
    assert len(noforn_ids) >= 3  # the document, its element and its chunk
    code, _, _ = _verify(ws)
    assert code == 0  # sound before anyone edits the file

    [(u_id, u_banner, u_expression)] = _sql(
        ws, "SELECT id, banner, expression FROM markings WHERE banner = ?", "UNCLASSIFIED"
    )
    [(nf_id,)] = _sql(ws, "SELECT id FROM markings WHERE banner = ?", NOFORN)
    verify = []
    edits: list[tuple[str, str]] = []
    for table, record, statement, params in (
        ("chunks", chunk, "UPDATE chunks SET marking_id = ? WHERE id = ?", (u_id, chunk)),
        ("elements", element, "UPDATE elements SET marking_id = ? WHERE id = ?", (u_id, element)),
        (
            "markings",
            str(nf_id),
            "UPDATE markings SET banner = ?, expression = ? WHERE id = ?",
            (u_banner, u_expression, nf_id),
        ),
    ):
        _sql(ws, statement, *params)
        edits.append((table, record))
        verify.append((_first_bad(bindings, edits), *_verify(ws)))

    ids = [d["id"] for d in docs] + [e["id"] for e in target["elements"]]
    ids += [c["id"] for c in chunks] + noforn_ids
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        corpus = Corpus(ws, client, tokens, {}, docs, [], chunks, [], ids)
        yield Tampered(
            corpus=corpus,
            bindings=bindings,
            element=element,
            chunk=chunk,
            marking=nf_id,
            hidden_ids=[element, chunk, *noforn_ids],
            hidden_words=[TAMPERED_WORD, NOFORN_FILE, NOFORN_WORD],
            verify=verify,
        )
        for browser in corpus.browsers.values():
            browser.close()
    ws.close()


def test_audit_verify_exits_1_naming_the_first_bad_row(tampered: Tampered) -> None:
    assert [expected for expected, *_ in tampered.verify] == [
        f"chunks:{tampered.chunk}",
        _first_bad(tampered.bindings, [("chunks", tampered.chunk), ("elements", tampered.element)]),
        f"markings:{tampered.marking}",  # what access is decided from is checked first
    ]
    for expected, code, report, text in tampered.verify:
        assert code == 1, text
        assert report["ok"] is False and report["bad_binding"] == expected, report
        assert expected.split(":", 1)[1] in text, text  # the message names the row
        assert report["first_bad_seq"] is None  # the log itself is sound


# -- every read path, for a set of subjects ----------------------------------------------------


#: Read paths checked. The audit log is left out: it names every row it recorded, tampered or
#: not, to the admins at system high who may read it (and ``integrity`` events name bad rows).
PATHS = sorted(n for n in [*LISTINGS, *BY_ID] if n != "api:audit")


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_no_read_path_returns_a_tampered_row(tampered: Tampered, data: st.DataObject) -> None:
    corpus = tampered.corpus
    subject = data.draw(st.sampled_from([*SUBJECTS, None]), label="subject")
    user = _user(*subject) if subject is not None else None
    query = data.draw(
        st.one_of(st.sampled_from([*tampered.hidden_words, *INTACT, "harbor"]), QUERIES),
        label="query",
    )
    record_id = data.draw(
        st.one_of(
            st.sampled_from(tampered.hidden_ids),
            st.sampled_from(tampered.hidden_ids).map(lambda i: i[:12]),
        ),
        label="id",
    )
    session = corpus.ws.session(user)
    # Nobody may read a tampered row: not even system high, not even the system.
    view = View(tampered.hidden_words, tampered.hidden_ids, readable_chunks=[])
    # The system has no token: it reads through the library only.
    paths = [n for n in PATHS if user is not None or n.startswith("lib:")]
    for name in paths:
        if name in LISTINGS:
            answer = LISTINGS[name](corpus, session, user or "", query)
            _check_no_leak(view, session, answer, "", name)
        else:
            call = BY_ID[name]
            args = (corpus, session, user or "", record_id)
            answer = call(*args)
            _check_no_leak(view, session, answer, record_id, f"{name}({record_id})")
            # A tampered row answers exactly like a row that does not exist.
            _check_by_id(corpus, name, call, args, answer)


def test_untouched_rows_stay_readable_and_reads_audit_integrity(tampered: Tampered) -> None:
    ws = tampered.corpus.ws
    for clearance in ("U", "C", "S"):
        session = ws.session(_user(clearance, "USA", "viewer"))
        shown = json.dumps([Documents(session).list(), Chunks(session).list()]).lower()
        for word, banner in INTACT.items():
            readable = bool(session.can_read(session.parse_marking(banner)))
            assert (word in shown) == readable, (clearance, word)
        assert TAMPERED_WORD not in shown and NOFORN_WORD not in shown
        if clearance == "S":  # the tampered document's row itself is intact and readable
            assert f"{TAMPERED_FILE}.txt" in shown
    # Reads that met a bad binding said so in the audit log.
    integrity = [e for e in ws.audit.tail() if e.action == AuditAction.INTEGRITY]
    named = {e.object_id for e in integrity}
    assert {f"chunks:{tampered.chunk}", f"elements:{tampered.element}"} <= named, named
    assert all(e.decision == "deny" for e in integrity)
