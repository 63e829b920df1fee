"""No read up, proved over every read path (library, API and web pages) for a grid of subjects.

One module-scoped workspace holds portion-marked documents at many markings, each with canary
words whose readability is known exactly. Hypothesis draws a subject, a query and an id, and
calls read paths as that subject; whatever comes back (serialized to text) must not reveal a
canary, an id, a marking or a count the subject may not read, and a forbidden id must answer
exactly like a nonexistent one (ARCHITECTURE.md section 7, invariant 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.api import MARKING_HEADER
from garrison.core.errors import GarrisonError
from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.markings import dominates
from garrison.security.subjects import Role
from garrison.store.derived import Chunks, Lineage, dedup_report
from garrison.store.documents import Documents, Jobs
from garrison.store.session import Session, SubjectSpec
from garrison.store.tokens import create_token, list_tokens, revoke_token
from garrison.store.workspace import Workspace
from garrison.web import create_app  # the API with the web UI mounted at /ui

PIPELINE = """
name: no-read-up
stages:
  - normalize: {}
  - pii: {default_action: mask}
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
SYSTEM_HIGH = "SECRET//NOFORN"

#: Single-portion documents: canary -> (portion mark, banner). The canary is in the file name
#: and the one portion, so the document's marking governs both.
SINGLE = {
    "canaryaa01": ("U", "UNCLASSIFIED"),
    "canarybb02": ("U//FOUO", "UNCLASSIFIED//FOUO"),
    "canarycc03": ("C", "CONFIDENTIAL"),
    "canarydd04": ("C//NF", "CONFIDENTIAL//NOFORN"),
    "canaryee05": ("C//REL TO USA, AUS, GBR", "CONFIDENTIAL//REL TO USA, AUS, GBR"),
    "canaryff06": ("S", "SECRET"),
    "canarygg07": ("S//NF", "SECRET//NOFORN"),
    "canaryhh08": ("S//REL TO USA, GBR", "SECRET//REL TO USA, GBR"),
    "canaryii09": ("S//REL TO USA, FVEY", "SECRET//REL TO USA, FVEY"),
    "canaryjj10": ("C//REL TO USA, GBR", "CONFIDENTIAL//REL TO USA, GBR"),
}
#: A mixed document: its name is governed by the document (the join), each portion's canary by
#: that portion alone.
MIXED_FILE = "canarymx11"
MIXED_LOW = "canaryml12"
MIXED_HIGH = "canarymh13"
#: Marks in headings: a SECRET//NOFORN heading over an UNCLASSIFIED paragraph (and a SECRET//NOFORN
#: one), and a CONFIDENTIAL heading over an UNCLASSIFIED paragraph. Each heading's canary is
#: governed by the heading, each paragraph's by its portion, the file name by the document.
HEADINGS = {
    "canaryhf16": (
        "SECRET//NOFORN",
        [("S//NF", "canaryhd17")],
        [("U", "canaryhu18"), ("S//NF", "canaryhs19")],
    ),
    "canaryhg20": ("CONFIDENTIAL", [("C", "canaryhc21")], [("U", "canaryhl22")]),
}
HEADING_MARKINGS = {"S//NF": "SECRET//NOFORN", "C": "CONFIDENTIAL", "U": "UNCLASSIFIED"}
#: The same paragraph under two markings: a "marked differently" duplicate (the known leak
#: below; kept out of the property corpus so the other paths stay checked).
DUP_LOW = "canarydl14"
DUP_HIGH = "canarydh15"
DUP_TEXT = (
    "The shared paragraph about the northern ferry schedule, the harbor cranes and the "
    "eastern pier repeats in two places with the same words."
)
#: Dataset names (canaries too): name -> ceiling of its selection (None: everything).
DATASETS = {
    "canarydsall": None,
    "canarydslow": "UNCLASSIFIED",
    "canarydsconf": "CONFIDENTIAL",
    "canarydsrel": "SECRET//REL TO USA, GBR",
}
#: Model names (canaries too): name -> the marking it is registered with.
MODEL_NAMES = {
    "canarymodlow": "UNCLASSIFIED",
    "canarymodconf": "CONFIDENTIAL",
    "canarymodnf": "SECRET//NOFORN",
    "canarymodrel": "SECRET//REL TO USA, GBR",
}
CLEARANCES = ("U", "C", "S")
NATIONS = ("USA", "GBR", "AUS", "FRA")
ROLES = ("viewer", "steward", "admin")
SUBJECTS = [(c, n, r) for c in CLEARANCES for n in NATIONS for r in ROLES]


def _user(clearance: str, nation: str, role: str) -> str:
    return f"{clearance}{nation}{role}".lower()


@dataclass
class Corpus:
    """The served workspace, the system's view of it and what governs each canary."""

    ws: Workspace
    client: TestClient
    tokens: dict[str, str]
    canaries: dict[str, str]  # canary -> the marking that governs it
    docs: list[dict[str, Any]]
    elements: list[dict[str, Any]]
    chunks: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    ids: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    browsers: dict[str, TestClient] = field(default_factory=dict)  # user -> signed-in client


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.txt").write_text(text)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("noreadup")
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    folder = root / "in"
    folder.mkdir()
    canaries: dict[str, str] = {}
    for word, (portion, banner) in SINGLE.items():
        # No closing banner where the marking has a comma: three comma rows make the file
        # sniff as CSV and lose its markings (see test_txt_with_rel_to_banners_keeps_marking).
        tail = "" if "," in banner else f"\n\n{banner}\n"
        _write(
            folder,
            word,
            f"{banner}\n\n({portion}) The harbor report mentions {word} near the north pier "
            f"and the crane schedule.{tail}",
        )
        canaries[word] = banner
    _write(
        folder,
        MIXED_FILE,
        f"SECRET//NOFORN\n\n(U) The harbor ferry timetable {MIXED_LOW} changes on Monday.\n\n"
        f"(S//NF) The harbor cache {MIXED_HIGH} moves to the eastern depot.\n\nSECRET//NOFORN\n",
    )
    canaries |= {MIXED_FILE: "SECRET//NOFORN", MIXED_LOW: "UNCLASSIFIED"}
    canaries[MIXED_HIGH] = "SECRET//NOFORN"
    for name, (banner, headings, paragraphs) in HEADINGS.items():
        lines = [f"# ({mark}) Operation {word} plans" for mark, word in headings]
        lines += [
            f"({mark}) The harbor crane {word} report covers the north pier."
            for mark, word in paragraphs
        ]
        (folder / f"{name}.md").write_text("\n\n".join(lines) + "\n")
        canaries[name] = banner
        for mark, word in [*headings, *paragraphs]:
            canaries[word] = HEADING_MARKINGS[mark]
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="no-read-up.yaml"))
    for name, ceiling in DATASETS.items():
        version = Datasets(system).create(name, Selection(max_marking=ceiling))
        canaries[name] = version.marking.banner()
    for name, banner in MODEL_NAMES.items():
        weights = root / "models" / name
        weights.mkdir(parents=True)
        (weights / "model.safetensors").write_bytes(name.encode())
        Models(system).register(
            kind="classifier", name=name, folder=weights, marking=system.parse_marking(banner)
        )
        canaries[name] = banner
    tokens = {}
    for clearance, nation, role in SUBJECTS:
        name = _user(clearance, nation, role)
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=nation, roles=(role,)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = Documents(system).list()
    assert len(docs) == len(SINGLE) + 1 + len(HEADINGS)
    assert all(d["status"] == "parsed" for d in docs)
    elements = [e for d in docs for e in Documents(system).show(d["id"], elements=True)["elements"]]
    chunks = Chunks(system).list()
    datasets = [v.to_dict(records=True) for v in Datasets(system).list()]
    assert len(datasets) == len(DATASETS)
    models = [v.to_dict() for v in Models(system).list()]
    assert sorted(m["name"] for m in models) == sorted(MODEL_NAMES)
    by_name = {d["filename"]: d["marking"] for d in docs}
    assert all(by_name[f"{w}.txt"] == b for w, (_, b) in SINGLE.items()), by_name
    assert all(by_name[f"{w}.md"] == b for w, (b, _, _) in HEADINGS.items()), by_name
    # The headings' canaries sit in the section paths of lower chunks.
    assert any(
        "canaryhd17" in " ".join(c["section_path"]) and c["marking"] == "UNCLASSIFIED"
        for c in chunks
    )
    # Every canary is somewhere: in a file name and/or a chunk.
    everything = json.dumps([docs, chunks]).lower()
    named = {*DATASETS, *MODEL_NAMES}
    assert all(word in everything for word in canaries if word not in named)
    ids = [d["id"] for d in docs] + [e["id"] for e in elements] + [c["id"] for c in chunks]
    ids += [v["id"] for v in datasets] + [m["id"] for m in models]
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        corpus = Corpus(ws, client, tokens, canaries, docs, elements, chunks, datasets, ids, models)
        yield corpus
        for browser in corpus.browsers.values():
            browser.close()
    ws.close()


# -- what one subject may know ------------------------------------------------------------------


def _can(session: Session, banner: str) -> bool:
    return bool(session.can_read(session.parse_marking(banner)))


@dataclass
class View:
    """What the system's view says one subject may read."""

    forbidden_words: list[str]
    forbidden_ids: list[str]
    readable_chunks: list[dict[str, Any]]


def _view(corpus: Corpus, session: Session) -> View:
    docs = [d for d in corpus.docs if _can(session, d["marking"])]
    elements = [e for e in corpus.elements if _can(session, e["marking"])]
    chunks = [c for c in corpus.chunks if _can(session, c["marking"])]
    datasets = [v for v in corpus.datasets if _can(session, v["marking"])]
    models = [m for m in corpus.models if _can(session, m["marking"])]
    # A readable portion of a document the subject may not read carries no reference to it:
    # only readable documents' ids are known.
    known = {d["id"] for d in docs}
    known |= {x["id"] for x in [*elements, *chunks, *datasets, *models]}
    return View(
        forbidden_words=[w for w, m in corpus.canaries.items() if not _can(session, m)],
        forbidden_ids=[i for i in corpus.ids if i not in known],
        readable_chunks=chunks,
    )


# -- calling a read path ------------------------------------------------------------------------


@dataclass
class Answer:
    """One read: a value (serialized), or an error; with the API's status and headers."""

    ok: bool
    body: Any
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # library: exception type and message

    def text(self) -> str:
        parts = [json.dumps(self.body, sort_keys=True, default=str), self.error or ""]
        parts += [f"{k}: {v}" for k, v in self.headers.items()]
        return "\n".join(parts)


def _lib(call: Callable[[], Any]) -> Answer:
    try:
        value = call()
    except GarrisonError as exc:
        return Answer(ok=False, body=None, error=f"{type(exc).__name__}: {exc}")
    return Answer(ok=True, body=value)


def _api(corpus: Corpus, user: str, path: str, params: dict[str, Any] | None = None) -> Answer:
    response = corpus.client.get(
        path, params=params, headers={"Authorization": f"Bearer {corpus.tokens[user]}"}
    )
    return Answer(
        ok=response.status_code == 200,
        body=response.json() if response.content else None,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
    )


_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
_BANNER_TEXT = re.compile(r'id="banner-(?:top|bottom)"[^>]*>([^<]*)<')
# Where a page repeats what the subject typed: the query box and links that carry the query.
_ECHOES = re.compile(r'<input id="q"[^>]*>|href="/ui/search\?[^"]*"')


def _browser(corpus: Corpus, user: str) -> TestClient:
    """A client signed in to the web UI as ``user`` (one per user, kept for the module)."""
    if user not in corpus.browsers:
        browser = TestClient(
            corpus.client.app, raise_server_exceptions=False, follow_redirects=False
        )
        form = _CSRF_FIELD.search(browser.get("/ui/login").text)
        assert form is not None
        signed_in = browser.post(
            "/ui/login", data={"token": corpus.tokens[user], "csrf": form.group(1)}
        )
        assert signed_in.status_code == 303, signed_in.text
        corpus.browsers[user] = browser
    return corpus.browsers[user]


def _web(corpus: Corpus, user: str, *paths: str, params: dict[str, Any] | None = None) -> Answer:
    """GET web pages as ``user``; the answer is the pages' HTML, less echoes of the query."""
    browser = _browser(corpus, user)
    html, statuses = [], []
    headers: dict[str, str] = {}
    for path in paths:
        response = browser.get(path, params=params)
        statuses.append(response.status_code)
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code < 300:
            # The banner is the page's marking header, top and bottom.
            assert _BANNER_TEXT.findall(response.text) == [headers[MARKING_HEADER.lower()]] * 2
        html.append(_ECHOES.sub("", response.text))
    return Answer(
        ok=all(s == 200 for s in statuses),
        body="\n".join(html),
        status=statuses[-1] if len(set(statuses)) == 1 else max(statuses),
        headers=headers,
    )


def _web_jobs(corpus: Corpus, user: str) -> Answer:
    """The jobs page and every job's page linked from it."""
    listing = _web(corpus, user, "/ui/jobs")
    if not listing.ok:
        return listing
    job_paths = sorted(set(re.findall(r'href="(/ui/jobs/[^"]+)"', listing.body)))
    return _web(corpus, user, "/ui/jobs", *job_paths)


def _web_original(corpus: Corpus, user: str, record_id: str) -> Answer:
    """The original-download route: raw bytes (as text), never an HTML page when served."""
    browser = _browser(corpus, user)
    response = browser.get(f"/ui/documents/{quote(record_id, safe='')}/original")
    return Answer(
        ok=response.status_code == 200,
        body=response.content.decode("utf-8", "replace"),
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
    )


def _lib_jobs(session: Session) -> list[dict[str, Any]]:
    """Every job as ``garrison jobs ls`` and ``jobs show`` give it to the subject."""
    jobs = Jobs(session)
    return [jobs.show(j["id"]) | {"listed": j} for j in jobs.list()]


def _search_value(session: Session, query: str) -> dict[str, Any]:
    return search(session, query, k=20).to_dict()


#: Read paths without an id: name -> call(corpus, session, user, query).
LISTINGS: dict[str, Callable[[Corpus, Session, str, str], Answer]] = {
    "lib:documents": lambda c, s, u, q: _lib(lambda: Documents(s).list()),
    "lib:findings": lambda c, s, u, q: _lib(lambda: Documents(s).findings()),
    "lib:chunks": lambda c, s, u, q: _lib(lambda: Chunks(s).list()),
    "lib:dedup": lambda c, s, u, q: _lib(lambda: dedup_report(s)),
    "lib:search": lambda c, s, u, q: _lib(lambda: _search_value(s, q)),
    "lib:datasets": lambda c, s, u, q: _lib(
        lambda: [v.to_dict(records=True) for v in Datasets(s).list()]
    ),
    "lib:models": lambda c, s, u, q: _lib(lambda: [v.to_dict() for v in Models(s).list()]),
    "api:models": lambda c, s, u, q: _api(c, u, "/v1/models"),
    "api:documents": lambda c, s, u, q: _api(c, u, "/v1/documents"),
    "api:chunks": lambda c, s, u, q: _api(c, u, "/v1/chunks"),
    "api:search": lambda c, s, u, q: _api(c, u, "/v1/search", {"q": q, "k": 20}),
    "api:findings": lambda c, s, u, q: _api(c, u, "/v1/findings"),
    "api:datasets": lambda c, s, u, q: _api(c, u, "/v1/datasets"),
    "api:me": lambda c, s, u, q: _api(c, u, "/v1/me"),
    "api:users": lambda c, s, u, q: _api(c, u, "/v1/users"),
    "api:audit": lambda c, s, u, q: _api(c, u, "/v1/audit", {"n": 20}),
    "web:search": lambda c, s, u, q: _web(c, u, "/ui/search", params={"q": q}),
    "web:documents": lambda c, s, u, q: _web(c, u, "/ui/documents"),
    "web:findings": lambda c, s, u, q: _web(c, u, "/ui/findings", params={"state": "all"}),
    "web:jobs": lambda c, s, u, q: _web_jobs(c, u),
    "lib:jobs": lambda c, s, u, q: _lib(lambda: _lib_jobs(s)),
}
#: Read paths taking an id: name -> call(corpus, session, user, id).
BY_ID: dict[str, Callable[[Corpus, Session, str, str], Answer]] = {
    "lib:document": lambda c, s, u, i: _lib(lambda: Documents(s).show(i, elements=True)),
    "lib:lineage": lambda c, s, u, i: _lib(lambda: Lineage(s).of(i)),
    "lib:dataset": lambda c, s, u, i: _lib(lambda: Datasets(s).get(i).to_dict(records=True)),
    "lib:model": lambda c, s, u, i: _lib(lambda: Models(s).get(i).to_dict()),
    "api:model": lambda c, s, u, i: _api(c, u, f"/v1/models/{quote(i, safe='')}"),
    "lib:doc-chunks": lambda c, s, u, i: _lib(lambda: Chunks(s).list(doc_id=i)),
    "api:document": lambda c, s, u, i: _api(c, u, f"/v1/documents/{i}", {"elements": "true"}),
    "api:lineage": lambda c, s, u, i: _api(c, u, f"/v1/lineage/{i}"),
    "api:dataset": lambda c, s, u, i: _api(c, u, f"/v1/datasets/{i}"),
    "api:doc-chunks": lambda c, s, u, i: _api(c, u, "/v1/chunks", {"doc_id": i}),
    "web:document": lambda c, s, u, i: _web(c, u, f"/ui/documents/{quote(i, safe='')}"),
    "web:lineage": lambda c, s, u, i: _web(c, u, f"/ui/lineage/{quote(i, safe='')}"),
    "web:original": lambda c, s, u, i: _web_original(c, u, i),
}
PATHS = sorted([*LISTINGS, *BY_ID])


# -- the checks ----------------------------------------------------------------------------------

_MARKING_KEYS = {"marking", "banner", "original_marking", "object_marking"}


def _markings(data: Any) -> Iterator[str]:
    """Every marking string in ``data``: marking-like fields and the marking facet's keys."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _MARKING_KEYS and isinstance(value, str):
                yield value
            elif key == "facets" and isinstance(value, dict):
                yield from value.get("marking", {})
            else:
                yield from _markings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _markings(value)


def _without_echo(body: Any) -> Any:
    """A search result without the ``query`` it echoes (the subject's own words)."""
    if isinstance(body, dict) and "hits" in body:
        return {k: v for k, v in body.items() if k != "query"}
    return body


def _check_no_leak(view: View, session: Session, answer: Answer, echoed: str, where: str) -> None:
    body = _without_echo(answer.body)
    error = answer.error
    if echoed and not answer.ok:  # an error message may repeat the id the subject asked for
        error = _mask(error or "", echoed)
        body = json.loads(_mask(json.dumps(body), json.dumps(echoed)[1:-1]))
    text = Answer(answer.ok, body, answer.status, answer.headers, error).text()
    lowered = text.lower()
    for word in view.forbidden_words:
        assert word not in lowered, f"{where}: canary {word} leaked to {session.subject.name}"
    for record_id in view.forbidden_ids:
        assert record_id not in text, f"{where}: id {record_id} leaked to {session.subject.name}"
    banners = list(_markings(answer.body))
    if MARKING_HEADER.lower() in answer.headers:
        banners.append(answer.headers[MARKING_HEADER.lower()])
    for banner in banners:
        assert _can(session, banner), f"{where}: marking {banner} shown to {session.subject.name}"


def _check_error_shape(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert set(answer.body) == {"error"} and set(answer.body["error"]) == {"code", "message"}
    assert answer.body["error"]["code"] == code


def _check_listing(corpus: Corpus, view: View, session: Session, name: str, query: str, a: Answer):
    role = next(iter(session.subject.roles))
    if name.startswith("web:"):
        # Jobs are for stewards and admins; every other page is for everyone.
        expected = 403 if name == "web:jobs" and role == "viewer" else 200
        assert a.status == expected, (name, a.status)
        return
    if name == "lib:jobs":
        if role == "viewer":
            assert not a.ok and (a.error or "").startswith("NotPermitted"), a.error
            return
        assert a.ok, a.error
        readable = sum(1 for d in corpus.docs if _can(session, d["marking"]))
        everything = _can(session, SYSTEM_HIGH)
        for job in a.body:
            for shown in (job, job["listed"]):
                if shown["kind"] == "ingest":
                    # Counts over the documents the subject may read, and nothing else.
                    assert shown["counts"]["files"] == len(job["items"]) == readable
                    assert shown["done"] == readable
                elif not everything:
                    assert shown["counts"] == {} and shown["done"] is None
        return
    if name == "api:users":
        if role == "admin":
            assert a.status == 200
        else:
            _check_error_shape(a, 403, "not-permitted")
        return
    if name == "api:audit":
        if role == "admin" and _can(session, SYSTEM_HIGH):
            assert a.status == 200 and a.headers[MARKING_HEADER.lower()] == SYSTEM_HIGH
        else:
            _check_error_shape(a, 403, "not-permitted")
        return
    assert a.ok, (name, a.body, a.error)
    if name.endswith(":search"):
        terms = query.lower().split()
        if len(terms) == 1 and terms[0] in corpus.canaries:
            expected = sum(1 for c in view.readable_chunks if terms[0] in c["text"].lower())
            assert a.body["total"] == expected, (name, query, a.body)
        readable = len(view.readable_chunks)
        assert a.body["total"] <= readable
        assert sum(a.body["facets"].get("marking", {}).values()) == a.body["total"]
        for counts in a.body["facets"].values():
            assert sum(counts.values()) <= a.body["total"]
        assert len({h["chunk_id"] for h in a.body["hits"]}) == len(a.body["hits"])
    if name == "lib:chunks" or name == "api:chunks":
        items = a.body if name.startswith("lib") else a.body["items"]
        assert sorted(c["id"] for c in items) == sorted(c["id"] for c in view.readable_chunks)
        _check_seq(corpus, session, items)


def _check_seq(corpus: Corpus, session: Session, items: list[dict[str, Any]]) -> None:
    """A chunk's ``seq`` is as stored for readers of its document, otherwise its position among
    the document's chunks the reader may read (never a count of hidden ones)."""
    stored = {c["id"]: c for c in corpus.chunks}
    readable_docs = {d["id"] for d in corpus.docs if _can(session, d["marking"])}
    for item in items:
        chunk = stored[item["id"]]
        if chunk["doc_id"] in readable_docs:
            assert item.get("doc_id") == chunk["doc_id"] and item["seq"] == chunk["seq"]
            continue
        assert "doc_id" not in item
        before = [
            c
            for c in corpus.chunks
            if c["doc_id"] == chunk["doc_id"]
            and c["seq"] < chunk["seq"]
            and _can(session, c["marking"])
        ]
        assert item["seq"] == len(before), (item, chunk)


def _mask(text: str, record_id: str) -> str:
    """``text`` with ``record_id`` (as a whole word, where a message echoes it) masked."""
    return re.sub(rf"(?<![\w@]){re.escape(record_id)}(?![\w@])", "<ID>", text)


def _twin(record_id: str) -> str:
    """A nonexistent id of the same length and shape."""
    return ("0" if all(c in "0123456789abcdef" for c in record_id) else "q") * len(record_id)


def _check_by_id(corpus: Corpus, name: str, call: Callable[..., Answer], args: tuple, a: Answer):
    *head, record_id = args
    if name == "web:original":
        session = head[1]
        if a.ok:
            # Taking the original out is an export: stewards, exporting the whole document.
            assert session.subject.has_role(Role.STEWARD), (name, record_id)
        if a.status == 403:
            # Refused as an export (role, DISPLAY ONLY, unread parts): only ever for a document
            # the subject may read; anything else answers 404, like a missing one.
            readable = [d["id"] for d in corpus.docs if _can(session, d["marking"])]
            assert any(d == record_id or d.startswith(record_id) for d in readable)
            return
    if a.ok:
        return
    twin_id = _twin(record_id)
    b = call(*head, twin_id)
    assert not b.ok, (name, twin_id, b.body)
    assert b.status == a.status
    assert _mask(a.error or "", record_id) == _mask(b.error or "", twin_id)
    if name.startswith("web:"):
        # A web page repeats nothing asked for: the two pages are the same, byte for byte.
        assert a.body == b.body, (name, record_id)
    else:
        a_body = _mask(json.dumps(a.body, sort_keys=True), json.dumps(record_id)[1:-1])
        b_body = _mask(json.dumps(b.body, sort_keys=True), json.dumps(twin_id)[1:-1])
        assert a_body == b_body, (name, record_id)
    skip = {"content-length"}
    assert {k: v for k, v in a.headers.items() if k not in skip} == {
        k: v for k, v in b.headers.items() if k not in skip
    }


# -- the property -------------------------------------------------------------------------------

QUERIES = st.one_of(
    st.sampled_from(
        [*SINGLE, MIXED_LOW, MIXED_HIGH, MIXED_FILE, "harbor", "ferry", "the pier"]
        + [word for _, heads, paras in HEADINGS.values() for _, word in [*heads, *paras]]
    ),
    st.lists(st.sampled_from([*SINGLE, MIXED_HIGH, "report", "crane"]), min_size=2, max_size=3).map(
        " ".join
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=16).filter(str.strip),
)


@st.composite
def record_ids(draw: st.DrawFn, corpus: Corpus) -> str:
    choice = draw(st.integers(0, 5))
    if choice <= 2:
        return draw(st.sampled_from(corpus.ids))
    if choice == 3:  # a unique prefix, as listings print them
        return draw(st.sampled_from(corpus.ids))[: draw(st.integers(8, 16))]
    if choice == 4:
        return draw(
            st.sampled_from(
                [
                    *DATASETS,
                    f"{next(iter(DATASETS))}@0",
                    "canarydsx",
                    *MODEL_NAMES,
                    "canarymodnf@0",
                    "canarymodx",
                ]
            )
        )
    return draw(st.text(alphabet="0123456789abcdefxyz", min_size=1, max_size=64))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_read_up_on_every_read_path(corpus: Corpus, data: st.DataObject) -> None:
    user = _user(*data.draw(st.sampled_from(SUBJECTS), label="subject"))
    paths = data.draw(
        st.lists(st.sampled_from(PATHS), min_size=3, max_size=6, unique=True), label="paths"
    )
    query = data.draw(QUERIES, label="query")
    record_id = data.draw(record_ids(corpus), label="id")
    session = corpus.ws.session(user)
    view = _view(corpus, session)
    for name in paths:
        if name in LISTINGS:
            answer = LISTINGS[name](corpus, session, user, query)
            _check_no_leak(view, session, answer, "", name)
            _check_listing(corpus, view, session, name, query, answer)
        else:
            call = BY_ID[name]
            args = (corpus, session, user, record_id)
            answer = call(*args)
            _check_no_leak(view, session, answer, record_id, f"{name}({record_id})")
            _check_by_id(corpus, name, call, args, answer)


# -- web sessions after the subject's credential or access changed ----------------------------

#: Pages a stale session must no longer open (ids filled in from the corpus).
_STALE_PAGES = (
    "/ui/documents",
    "/ui/search?q=harbor",
    "/ui/findings?state=all",
    "/ui/jobs",
    "/ui/documents/{doc}",
    "/ui/documents/{doc}/original",
    "/ui/lineage/{doc}",
)


@pytest.mark.parametrize("change", ["revoke", "lower", "disable"])
def test_no_read_after_revocation_or_downgrade(corpus: Corpus, change: str) -> None:
    name = f"stale{change}"
    system = corpus.ws.session()
    system.add_user(name, SubjectSpec(clearance="S", citizenship="USA", roles=("steward",)))
    corpus.tokens[name] = create_token(system, name, 30)[1]
    mixed = next(d["id"] for d in corpus.docs if d["filename"] == f"{MIXED_FILE}.txt")
    before = _web(corpus, name, "/ui/documents", f"/ui/documents/{mixed}")
    assert before.ok and MIXED_HIGH in before.body  # a SECRET//NOFORN reader, signed in
    if change == "revoke":
        token = next(t["id"] for t in list_tokens(system) if t["user"] == name)
        revoke_token(system, token)
    elif change == "lower":
        system.update_user(name, SubjectSpec(clearance="U"))
    else:
        system.update_user(name, SubjectSpec(disabled=True))
    browser = corpus.browsers.pop(name)
    for page in _STALE_PAGES:
        response = browser.get(page.format(doc=mixed))
        # The session is over: every page sends the browser to sign in, showing nothing.
        assert response.status_code == 303, (change, page, response.status_code)
        assert "/ui/login" in response.headers["location"]
        text = response.text.lower() + json.dumps(dict(response.headers)).lower()
        for word in (MIXED_HIGH, MIXED_FILE, *SINGLE):
            assert word not in text, (change, page, word)
    browser.close()
    if change == "lower":
        # Signing in again gives a session at the lowered clearance, checked like any other.
        session = corpus.ws.session(name)
        view = _view(corpus, session)
        for page in ("/ui/documents", f"/ui/documents/{mixed}", "/ui/jobs"):
            answer = _web(corpus, name, page)
            _check_no_leak(view, session, answer, mixed, page)


# -- a known leak ---------------------------------------------------------------------------------


# LEAK (src/garrison/parse/detect.py, _text_type): a .txt file whose banner and portion lines
# each hold one comma ("SECRET//REL TO USA, GBR" top and bottom, one "(S//REL TO USA, GBR)"
# paragraph) sniffs as CSV ("rows >= 3", the content overrides the .txt extension); the tabular
# parser ignores banners and portion marks, so the rows take the source default UNCLASSIFIED and
# every UNCLASSIFIED reader can list, search and read the SECRET text.
def test_txt_with_rel_to_banners_keeps_marking(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH)
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        banner = "SECRET//REL TO USA, GBR"
        _write(
            folder,
            "relmemo",
            f"{banner}\n\n(S//REL TO USA, GBR) The depot canaryrelleak moves.\n\n{banner}\n",
        )
        system = ws.session()
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        system.add_user("low", SubjectSpec(clearance="U", citizenship="USA", roles=("viewer",)))
        shown = json.dumps(Documents(ws.session("low")).list())
        assert Documents(system).list()[0]["marking"] == banner
        assert "canaryrelleak" not in shown and "relmemo" not in shown
    finally:
        ws.close()


# LEAK (src/garrison/pipeline/sink.py + src/garrison/store/documents.py): a
# "duplicate-marked-differently" finding is stored on the LOW document with the join marking and
# the detail "near-identical to element <id> of document <HIGH doc id>", but Documents.findings,
# Documents.list/show (embedded "findings") and GET /v1/findings, /v1/documents filter findings by
# the document's visibility only, never by the finding's own marking: an UNCLASSIFIED reader
# learns that a SECRET//NOFORN copy exists and its document and element ids.
def test_marked_differently_finding_hidden_from_low_readers(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH)
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        _write(folder, DUP_LOW, f"(U) {DUP_TEXT}\n")
        _write(folder, DUP_HIGH, f"SECRET//NOFORN\n\n(S//NF) {DUP_TEXT}\n\nSECRET//NOFORN\n")
        system = ws.session()
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        run_pipeline(system, parse_pipeline(PIPELINE, source="no-read-up.yaml"))
        system.add_user("low", SubjectSpec(clearance="U", citizenship="USA", roles=("viewer",)))
        high = next(d["id"] for d in Documents(system).list() if d["filename"] == f"{DUP_HIGH}.txt")
        low = ws.session("low")
        shown = json.dumps([Documents(low).list(), Documents(low).findings()])
        assert high not in shown
    finally:
        ws.close()


# -- the assistant --------------------------------------------------------------------------------

#: Ceilings an asker may choose for an answer (None: no ceiling).
_ASK_CEILINGS = [None, "UNCLASSIFIED", "CONFIDENTIAL", "SECRET//REL TO USA, GBR"]


def _answer_body(data: dict[str, Any]) -> dict[str, Any]:
    """An answer without what it echoes of the asker's own words and its timings."""
    return {k: v for k, v in data.items() if k not in ("question", "timings")}


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_read_up_in_assistant_answers(corpus: Corpus, data: st.DataObject) -> None:
    from garrison.assist import ask

    user = _user(*data.draw(st.sampled_from(SUBJECTS), label="subject"))
    question = data.draw(QUERIES, label="question")
    ceiling = data.draw(st.sampled_from(_ASK_CEILINGS), label="max_marking")
    session = corpus.ws.session(user)
    view = _view(corpus, session)
    lib = _lib(lambda: _answer_body(ask(session, question, k=6, max_marking=ceiling).to_dict()))
    _check_no_leak(view, session, lib, "", "ask")
    response = corpus.client.post(
        "/v1/ask",
        json={"question": question, "k": 6, "max_marking": ceiling},
        headers={"Authorization": f"Bearer {corpus.tokens[user]}"},
    )
    api = Answer(
        ok=response.status_code == 200,
        body=_answer_body(response.json()),
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
    )
    _check_no_leak(view, session, api, "", "POST /v1/ask")
    assert lib.ok and api.ok, (lib.error, api.body)
    assert api.body == lib.body  # the same answer by either path
    body = lib.body
    for banner in (body["context_marking"], body["question_marking"]):
        assert _can(session, banner)
    if ceiling is not None:
        top = session.parse_marking(ceiling)
        assert all(dominates(top, session.parse_marking(m)) for m in _markings(body)), (
            "an answer above the ceiling"
        )
    readable = {c["id"] for c in view.readable_chunks}
    assert {c["chunk_id"] for c in body["context"]} <= readable
