"""No hidden mark ever reaches an UNCLASSIFIED reader, end to end.

A generated corpus (``tests/canary_docs.py``) hides one canary word per document in a TOP SECRET
or SECRET portion, in every place a reader sees a mark and every format where that place exists:
table cells (CSV, TSV, XLSX, DOCX, PPTX, Markdown, HTML, JSON at depth, SQL columns), marking
columns, case and spacing variants, invisible and formatting prefixes, inner lines of a
paragraph, banners on every page and mid-file, DOCX text boxes, comments and footnotes, XLSX
comments, headers and footers, PDF annotations and form fields, both parts of an e-mail, e-mail
subjects, headings, IC-ISM attributes, title and author properties and file names. Banners that
fail validation must quarantine; negatives (``(a)``, ``(c) 2024``, ``(s/he)``, ``(A) (B) (C)``)
must stay UNCLASSIFIED text that an UNCLASSIFIED reader does see.

Everything is ingested at an UNCLASSIFIED default into a TOP SECRET//SI//NOFORN workspace and
run through the default stages with the hashing embedder. Then an UNCLASSIFIED viewer and an
UNCLASSIFIED steward read it through the command line (search, ``chunks ls``, ``docs ls``,
``docs show --elements``, ``lineage``), the API and a dataset the steward creates and exports
as JSONL: no canary appears anywhere. In the catalog, each document that hides a canary is
quarantined, spilled, or marked at least at its hidden level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from garrison.cli.main import main
from garrison.ingest.engine import IngestOptions, ingest_paths, ingest_sql
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import dominates, parse_marking
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app
from tests.canary_docs import Hidden, build_corpus

SYSTEM_HIGH = "TOP SECRET//SI//NOFORN"
PIPELINE = """
name: canary
stages:
  - normalize: {}
  - quality: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
VIEWER, STEWARD = "uviewer", "usteward"
READERS = (VIEWER, STEWARD)
#: UNCLASSIFIED portions of documents that hide a canary elsewhere: a reader below the document
#: still gets them (so a missing canary is withheld, not lost with the whole document).
READABLE_PORTIONS = ("harbor paragraph under the heading", "The body is unclassified")
#: Words every document shares, searched for besides the canaries.
GENERIC = ("plan", "harbor", "grid", "alpha", "page", "operation", "the")


@dataclass
class Corpus:
    ws_path: Path
    hidden: list[Hidden]
    docs: list[dict[str, Any]]  # the system's view
    chunks: list[dict[str, Any]]
    shown: dict[str, dict[str, Any]]  # doc id -> the system's docs show --elements
    tokens: dict[str, str]
    client: TestClient

    def secrets(self) -> list[Hidden]:
        return [h for h in self.hidden if h.expect != "text"]

    def negatives(self) -> list[Hidden]:
        return [h for h in self.hidden if h.expect == "text"]


def _docs_of(corpus: Corpus, hidden: Hidden) -> list[dict[str, Any]]:
    """The document stored for ``hidden`` and its children (archive members, attachments)."""
    found = [
        d for d in corpus.docs if d["filename"] == hidden.name or f"/{hidden.name}#" in d["uri"]
    ]
    ids = {d["id"] for d in found}
    while children := [d for d in corpus.docs if d["parent_id"] in ids and d["id"] not in ids]:
        found += children
        ids |= {d["id"] for d in children}
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("canary")
    inputs, hidden = build_corpus(root / "in")
    ws_path = root / "ws"
    ws = Workspace.init(ws_path, system_high=SYSTEM_HIGH)
    system = ws.session()
    default = IngestOptions(default_marking="UNCLASSIFIED")
    column = IngestOptions(default_marking="UNCLASSIFIED", marking_column="classification")
    ingest_paths(system, [str(inputs["files"])], default)
    ingest_paths(system, [str(inputs["marking-column"])], column)
    ingest_sql(system, f"sqlite:///{inputs['sql']}", default)
    ingest_sql(system, f"sqlite:///{inputs['sql-marking-column']}", column)
    run_pipeline(system, parse_pipeline(PIPELINE, source="canary.yaml"))
    tokens = {}
    for name, role in ((VIEWER, "viewer"), (STEWARD, "steward")):
        system.add_user(name, SubjectSpec(clearance="U", citizenship="USA", roles=(role,)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = Documents(system).list()
    shown = {
        d["id"]: Documents(system).show(d["id"], elements=True)
        for d in docs
        if d["status"] == "parsed"
    }
    chunks = Chunks(system).list()
    ws.close()
    with TestClient(create_app(ws_path), raise_server_exceptions=False) as client:
        yield Corpus(ws_path, hidden, docs, chunks, shown, tokens, client)


def _cli(capsys: pytest.CaptureFixture[str], corpus: Corpus, *argv: str) -> tuple[int, str]:
    code = main([*argv, "-w", str(corpus.ws_path)])
    out, err = capsys.readouterr()
    return code, out + err


def _unechoed(text: str) -> str:
    """A search answer without the ``query`` it echoes (the reader's own words)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict) and "hits" in value:
        value.pop("query", None)
    return json.dumps(value)


def _leaks(corpus: Corpus, outputs: dict[str, str]) -> dict[str, list[str]]:
    """Hidden document -> where its canary appeared (the first few reads, and how many)."""
    found: dict[str, list[str]] = {}
    for h in corpus.secrets():
        places = [where for where, text in outputs.items() if h.canary.lower() in text.lower()]
        if places:
            found[f"{h.what} ({h.canary})"] = [*places[:3], f"{len(places)} reads in all"]
    return found


# -- the catalog ---------------------------------------------------------------------------------


def test_every_document_was_ingested(corpus: Corpus) -> None:
    missing = [h.what for h in corpus.hidden if not _docs_of(corpus, h)]
    assert not missing, missing
    assert corpus.chunks, "the pipeline made no chunks"


def test_every_hiding_document_is_marked_at_its_hidden_level_or_held_back(
    corpus: Corpus,
) -> None:
    wrong = []
    for h in corpus.secrets():
        for doc in _docs_of(corpus, h):
            if h.expect == "quarantine":
                if doc["status"] != "quarantined" or doc["reason"] != "invalid-marking":
                    wrong.append(f"{h.what}: {doc['status']} {doc['reason']} {doc['marking']}")
            elif doc["status"] == "parsed" and not dominates(
                parse_marking(doc["marking"]), parse_marking(h.marking)
            ):
                wrong.append(f"{h.what}: parsed at {doc['marking']}, hides {h.marking}")
    assert not wrong, "\n".join(wrong)


def test_parsed_hiding_documents_keep_their_canary_for_cleared_readers(corpus: Corpus) -> None:
    """The canary is stored (the system sees it): the checks below are not vacuous."""
    lost = []
    for h in corpus.secrets():
        docs = [d for d in _docs_of(corpus, h) if d["status"] == "parsed"]
        stored = json.dumps([[corpus.shown[d["id"]], d] for d in docs])
        if docs and h.canary not in stored:
            lost.append(h.what)
    assert not lost, lost


def test_negatives_stay_unclassified_text(corpus: Corpus) -> None:
    for h in corpus.negatives():
        (doc,) = _docs_of(corpus, h)
        assert (doc["status"], doc["marking"]) == ("parsed", "UNCLASSIFIED"), h.what
        assert h.canary in json.dumps(corpus.shown[doc["id"]]), h.what


# -- the command line ----------------------------------------------------------------------------


def _listed(out: str) -> Any:
    return json.loads(out)


@pytest.mark.parametrize("reader", READERS)
def test_cli_reads_show_no_canary(
    corpus: Corpus, capsys: pytest.CaptureFixture[str], reader: str
) -> None:
    outputs: dict[str, str] = {}

    def read(*argv: str) -> str:
        code, out = _cli(capsys, corpus, *argv, "--as", reader)
        outputs[" ".join(argv)] = _unechoed(out) if argv[0] == "search" else out
        return out if code == 0 else ""

    for word in [*(h.canary for h in corpus.hidden), *GENERIC]:
        read("search", word, "-k", "50", "--json")
    for word in GENERIC:
        read("search", word, "-k", "50")
    chunks = _listed(read("chunks", "ls", "--json"))
    read("chunks", "ls")
    docs = _listed(read("docs", "ls", "--json"))
    read("docs", "ls")
    read("docs", "findings", "--json")
    for doc in docs:
        read("docs", "show", doc["id"], "--elements", "--json")
        read("docs", "show", doc["id"], "--elements")
        read("lineage", doc["id"], "--json")
        read("chunks", "ls", "--doc", doc["id"], "--json")
    # A chunk of each listed document (the API test asks for every chunk's lineage).
    for chunk in {c.get("doc_id") or c["id"]: c for c in chunks}.values():
        read("lineage", chunk["id"], "--json")
    # The negatives are UNCLASSIFIED text, and this reader sees them: the reads are real.
    seen = json.dumps(chunks)
    for h in corpus.negatives():
        assert h.canary in seen, f"{reader} does not see the negative {h.what}"
    for portion in READABLE_PORTIONS:
        assert portion in seen, f"{reader} does not see {portion!r}"
    assert docs and chunks
    leaks = _leaks(corpus, outputs)
    assert not leaks, json.dumps(leaks, indent=1)


# -- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_api_reads_show_no_canary(corpus: Corpus, reader: str) -> None:
    headers = {"Authorization": f"Bearer {corpus.tokens[reader]}"}
    outputs: dict[str, str] = {}

    def get(path: str, **params: Any) -> Any:
        response = corpus.client.get(path, params=params, headers=headers)
        body = _unechoed(response.text) if path == "/v1/search" else response.text
        outputs[f"{path} {params}"] = body + json.dumps(dict(response.headers))
        return response.json() if response.status_code == 200 else None

    for word in [*(h.canary for h in corpus.hidden), *GENERIC]:
        get("/v1/search", q=word, k=50)
    chunks = get("/v1/chunks", limit=500)  # one page holds them all
    docs = get("/v1/documents", limit=500)
    get("/v1/findings")
    get("/v1/datasets")
    assert chunks is not None and docs is not None
    assert chunks.get("next_cursor") is None and docs.get("next_cursor") is None
    chunk_rows = chunks["items"] if isinstance(chunks, dict) else chunks
    doc_rows = docs["items"] if isinstance(docs, dict) else docs
    assert {c["id"] for c in chunk_rows} <= {c["id"] for c in corpus.chunks}
    for doc in doc_rows:
        get("/v1/chunks", doc_id=doc["id"])
    # Every id the system knows of (the listed ones among them), asked for directly.
    for doc in corpus.docs:
        get(f"/v1/documents/{doc['id']}", elements="true")
        get(f"/v1/lineage/{doc['id']}")
        get("/v1/chunks", doc_id=doc["id"])
    for chunk in corpus.chunks:
        get(f"/v1/lineage/{chunk['id']}")
    seen = json.dumps(chunks)
    for h in corpus.negatives():
        assert h.canary in seen, f"{reader} does not see the negative {h.what}"
    for portion in READABLE_PORTIONS:
        assert portion in seen, f"{reader} does not see {portion!r}"
    leaks = _leaks(corpus, outputs)
    assert not leaks, json.dumps(leaks, indent=1)


# -- a dataset created and exported by the UNCLASSIFIED steward ---------------------------------


@pytest.mark.parametrize("kind", ["chunks", "elements", "documents"])
def test_steward_dataset_export_holds_no_canary(
    corpus: Corpus, capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    name = f"everything-{kind}"
    code, out = _cli(
        capsys, corpus, "dataset", "create", name, "--kind", kind, "--as", STEWARD, "--json"
    )
    assert code == 0, out
    created = out
    code, shown = _cli(capsys, corpus, "dataset", "show", name, "--as", STEWARD, "--json")
    assert code == 0, shown
    code, card = _cli(capsys, corpus, "dataset", "card", name, "--as", STEWARD)
    card = card if code == 0 else ""
    target = tmp_path / "export"
    code, exported = _cli(
        capsys,
        corpus,
        "dataset",
        "export",
        name,
        "--format",
        "jsonl",
        "--out",
        str(target),
        "--as",
        STEWARD,
        "--json",
    )
    assert code == 0, exported
    files = [p for p in target.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files), files
    written = {str(p.relative_to(target)): p.read_text("utf-8", "replace") for p in files}
    everything = {"create": created, "show": shown, "card": card, "export": exported} | written
    if kind in ("chunks", "elements"):
        records = "".join(v for k, v in written.items() if k.endswith(".jsonl"))
        for h in corpus.negatives():
            assert h.canary in records, f"the export lacks the negative {h.what}"
    leaks = _leaks(corpus, everything)
    assert not leaks, json.dumps(leaks, indent=1)


# -- the web pages -------------------------------------------------------------------------------

_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
# Where a page repeats what the reader typed: the query box and links that carry the query.
_ECHOES = re.compile(r'<input id="q"[^>]*>|href="/ui/search\?[^"]*"')


@pytest.mark.parametrize("reader", READERS)
def test_web_pages_show_no_canary(corpus: Corpus, reader: str) -> None:
    with TestClient(
        corpus.client.app, raise_server_exceptions=False, follow_redirects=False
    ) as browser:
        form = _CSRF_FIELD.search(browser.get("/ui/login").text)
        assert form is not None
        signed_in = browser.post(
            "/ui/login", data={"token": corpus.tokens[reader], "csrf": form.group(1)}
        )
        assert signed_in.status_code == 303, signed_in.text
        outputs: dict[str, str] = {}

        def page(path: str, **params: Any) -> str:
            response = browser.get(path, params=params)
            outputs[f"{path} {params}"] = _ECHOES.sub("", response.text)
            return response.text

        for word in [*(h.canary for h in corpus.hidden), *GENERIC]:
            page("/ui/search", q=word)
        listing = page("/ui/documents")
        page("/ui/findings", state="all")
        for doc in corpus.docs:
            page(f"/ui/documents/{quote(doc['id'], safe='')}")
            page(f"/ui/lineage/{quote(doc['id'], safe='')}")
        for chunk in {c["doc_id"]: c for c in corpus.chunks}.values():
            page(f"/ui/lineage/{quote(chunk['id'], safe='')}")
    seen = "".join(outputs.values())
    for h in corpus.negatives():
        assert h.canary in seen, f"{reader} does not see the negative {h.what} on the web"
    assert listing
    leaks = _leaks(corpus, outputs)
    assert not leaks, json.dumps(leaks, indent=1)


# -- the assistant -------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_assistant_answers_show_no_canary(
    corpus: Corpus, capsys: pytest.CaptureFixture[str], reader: str
) -> None:
    outputs: dict[str, str] = {}
    for word in [*(h.canary for h in corpus.hidden), *GENERIC]:
        for question in (word, f"What does the harbor plan say about {word}?"):
            code, out = _cli(capsys, corpus, "ask", question, "--json", "--as", reader)
            assert code == 0, out
            answer = json.loads(out)
            answer.pop("question")  # the reader's own words
            outputs[f"ask {question} --json"] = json.dumps(answer)
        code, out = _cli(capsys, corpus, "ask", f"harbor {word}", "--as", reader)
        assert code == 0, out
        outputs[f"ask harbor {word}"] = out
    leaks = _leaks(corpus, outputs)
    assert not leaks, json.dumps(leaks, indent=1)
