"""No read up, proved over every read path (library, API and web pages) for a grid of subjects.

One module-scoped workspace holds portion-marked documents at many markings, each with canary
words whose readability is known exactly. Hypothesis draws a subject, a query and an id, and
calls read paths as that subject; whatever comes back (serialized to text) must not reveal a
canary, an id, a marking or a count the subject may not read, and a forbidden id must answer
exactly like a nonexistent one (ARCHITECTURE.md section 7, invariant 1).
"""

from __future__ import annotations

import itertools
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

import garrison
from garrison.api import MARKING_HEADER
from garrison.cli._common import resolve_id
from garrison.core.errors import GarrisonError, InvalidInput, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, open_classifier, open_embedder
from garrison.models._pairs import mine_pairs
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.markings import UNCLASSIFIED, dominates
from garrison.security.subjects import Role
from garrison.store.derived import Chunks, Lineage, dedup_report
from garrison.store.documents import Documents, Jobs
from garrison.store.embeddings import chunk_vectors
from garrison.store.predictions import predictions_of_documents
from garrison.store.prefixes import KINDS, document_names, readable_ids
from garrison.store.session import Session, SubjectSpec
from garrison.store.tokens import create_token, list_tokens, revoke_token
from garrison.store.workspace import Workspace
from garrison.web import create_app  # the API with the web UI mounted at /ui
from tests.models.registered import classifier_folder
from tests.models.tiny import tiny_sentence_transformer

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
#: Model names (canaries too): name -> (kind, the marking it is registered with, its base).
#: Embedders are the tiny sentence-transformer of tests/models/tiny.py; classifiers are heads
#: over one of them (their marking is the join with their base's).
MODEL_NAMES = {
    "canaryembl": ("embedder", "UNCLASSIFIED", None),
    "canaryembc": ("embedder", "CONFIDENTIAL", None),
    "canaryembr": ("embedder", "SECRET//REL TO USA, GBR", None),
    "canarymodlow": ("classifier", "UNCLASSIFIED", "canaryembl"),
    "canarymodconf": ("classifier", "CONFIDENTIAL", "canaryembl"),
    "canarymodnf": ("classifier", "SECRET//NOFORN", "canaryembl"),
    "canarymodrel": ("classifier", "SECRET//REL TO USA, GBR", "canaryembl"),
    "canarymodjc": ("classifier", "UNCLASSIFIED", "canaryembc"),  # CONFIDENTIAL by the join
    "canarymodjr": ("classifier", "CONFIDENTIAL//REL TO USA, GBR", "canaryembr"),  # S//REL
}
#: Markings random model versions are registered with (those above system high are refused).
MODEL_MARKINGS = (
    "UNCLASSIFIED",
    "UNCLASSIFIED//FOUO",
    "CONFIDENTIAL",
    "CONFIDENTIAL//NOFORN",
    "CONFIDENTIAL//REL TO USA, AUS, GBR",
    "SECRET",
    "SECRET//NOFORN",
    "SECRET//REL TO USA, GBR",
    "TOP SECRET",
    "TOP SECRET//NOFORN",
)
#: The text classified on the predict paths (not a canary).
PREDICT_TEXT = "harbor crane report"
#: Classifiers run by a classify stage over the chunks (canaries too): name -> (marking, labels).
#: A prediction is marked with the join of its chunk's and its classifier's marking, so the REL
#: classifier's predictions (and its labels) are above every reader outside USA and GBR, even on
#: UNCLASSIFIED chunks.
CLASSIFIERS = {
    "canaryclslow": ("UNCLASSIFIED", ["alpha", "bravo"]),
    "canaryclsrel": ("SECRET//REL TO USA, GBR", ["canarylabrelx", "canarylabrely"]),
}
EMBEDDER = "canaryembtiny"
#: Embedder names (canaries too): name -> the marking it is registered with. Every chunk is
#: re-embedded by one of them, so the index holds vectors marked above their chunks (the join of
#: chunk and model): listings, lineage and search must never name, or rank on, one above the
#: subject.
EMBEDDERS = {
    "canaryvecu": "UNCLASSIFIED",
    "canaryvecc": "CONFIDENTIAL",
    "canaryvecrel": "SECRET//REL TO USA, GBR",
    "canaryvecnf": "SECRET//NOFORN",
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
    #: chunk id -> (chunk banner, vector banner, model) of every index row.
    vectors: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    browsers: dict[str, TestClient] = field(default_factory=dict)  # user -> signed-in client
    csrf: dict[str, str] = field(default_factory=dict)  # user -> their web session's CSRF token
    root: Path | None = None  # where model folders are written
    tiny: Path | None = None  # the tiny sentence-transformer folder


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
    tiny = tiny_sentence_transformer(root / "tiny")
    registered: dict[str, str] = {}
    for name, (kind, banner, base) in MODEL_NAMES.items():
        version = _register_model(
            system, root, tiny, name, kind, banner, registered.get(base or "")
        )
        registered[name] = version.id
        canaries[name] = version.marking.banner()
    # Nothing above system high is ever registered.
    for banner in ("TOP SECRET", "TOP SECRET//NOFORN"):
        with pytest.raises(NotPermitted):
            _register_model(system, root, tiny, "canarymodts", "classifier", banner, None)
    stages = _classifiers(ws, root, tiny, canaries)
    _embed_with_registered_models(tiny, system, stages)
    canaries.update(EMBEDDERS)
    _check_predictions(system)
    tokens = {}
    for clearance, nation, role in SUBJECTS:
        name = _user(clearance, nation, role)
        # Section 7.4 briefings for cleared citizens of NATO members: no data here needs them,
        # and the property must hold for subjects who hold them as for those who do not.
        briefed = clearance != "U" and nation != "AUS" and role != "steward"
        register: dict[str, Any] = (
            {"nato": "NC", "nato_special": ("ATOMAL",), "aea": ("RD",), "nonic": ("LIMDIS",)}
            if briefed
            else {}
        )
        spec = SubjectSpec(clearance=clearance, citizenship=nation, roles=(role,), **register)
        system.add_user(name, spec)
        tokens[name] = create_token(system, name, 30)[1]
    docs = Documents(system).list()
    assert len(docs) == len(SINGLE) + 1 + len(HEADINGS)
    assert all(d["status"] == "parsed" for d in docs)
    elements = [e for d in docs for e in Documents(system).show(d["id"], elements=True)["elements"]]
    chunks = Chunks(system).list()
    datasets = [v.to_dict(records=True) for v in Datasets(system).list()]
    assert len(datasets) == len(DATASETS)
    models = [v.to_dict() for v in Models(system).list()]
    assert sorted(m["name"] for m in models) == sorted(
        [*MODEL_NAMES, *CLASSIFIERS, EMBEDDER, *EMBEDDERS]
    )
    assert canaries["canarymodjc"] == "CONFIDENTIAL"
    assert canaries["canarymodjr"] == "SECRET//REL TO USA, GBR"
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
    named = {*DATASETS, *MODEL_NAMES, *CLASSIFIERS, EMBEDDER, *EMBEDDERS}
    named |= {label for _, labels in CLASSIFIERS.values() for label in labels}
    assert all(word in everything for word in canaries if word not in named)
    ids = [d["id"] for d in docs] + [e["id"] for e in elements] + [c["id"] for c in chunks]
    ids += [v["id"] for v in datasets] + [m["id"] for m in models]
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        corpus = Corpus(ws, client, tokens, canaries, docs, elements, chunks, datasets, ids, models)
        corpus.root, corpus.tiny = root, tiny
        corpus.vectors = _index_vectors(ws, system)
        yield corpus
        for browser in corpus.browsers.values():
            browser.close()
    ws.close()


def _register_model(
    system: Session,
    root: Path,
    tiny: Path,
    name: str,
    kind: str,
    banner: str,
    base: str | None,
) -> Any:
    """Register an embedder (the tiny sentence-transformer) or a classifier over ``base``."""
    marking = system.parse_marking(banner)
    if kind == "embedder":
        return Models(system).register(kind="embedder", name=name, folder=tiny, marking=marking)
    assert base is not None or banner.startswith("TOP SECRET")
    folder = classifier_folder(root, base or "0" * 64, name)
    return Models(system).register(
        kind="classifier", name=name, folder=folder, base=base, marking=marking
    )


def _classifiers(ws: Workspace, root: Path, tiny: Path, canaries: dict[str, str]) -> str:
    """Register a tiny embedder and the classifiers (seeded random heads, split at the median
    chunk so both labels occur); return the classify stages (one per classifier) the later
    runs carry, so every chunk gets its predictions."""
    import numpy as np

    from garrison.models import write_classifier
    from garrison.models._use import load_embedder_folder

    system = ws.session()
    models = Models(system)
    embedder = models.register(kind="embedder", name=EMBEDDER, folder=tiny)
    canaries[EMBEDDER] = "UNCLASSIFIED"
    rng = np.random.default_rng(7)
    vectors = load_embedder_folder(EMBEDDER, tiny, {}).encode(
        [c["text"] for c in Chunks(system).list()]
    )
    stages = []
    for name, (banner, labels) in CLASSIFIERS.items():
        head = root / "heads" / name
        direction = rng.normal(size=32).astype(np.float32)
        scores = vectors @ direction
        # Between the two middle scores: half the chunks get each label.
        middle = float(np.mean(np.sort(scores)[len(scores) // 2 - 1 : len(scores) // 2 + 1]))
        write_classifier(
            head,
            trainer="logreg",
            labels=labels,
            weight=np.stack([direction, -direction]) * 50,
            bias=np.array([-middle * 50, middle * 50], dtype=np.float32),
            embedder={"id": embedder.id},
        )
        models.register(
            kind="classifier",
            name=name,
            folder=head,
            base=embedder.id,
            marking=system.parse_marking(banner),
        )
        canaries[name] = banner
        for label in labels:
            if label.startswith("canary"):
                canaries[label] = banner
        stages.append(f"  - classify: {{model: {name}}}\n")
    return "".join(stages)


def _check_predictions(system: Session) -> None:
    found = predictions_of_documents(system, [d["id"] for d in Documents(system).list()])
    for name, (_, labels) in CLASSIFIERS.items():
        got = {p.label for p in found if p.name == name}
        # Every classifier predicted on the corpus, with its own labels only (which of them
        # occur depends on the tiny model's random weights).
        assert got and got <= set(labels), (name, got)


LABEL_LOW = f"canaryclslow={CLASSIFIERS['canaryclslow'][1][0]}"
LABEL_REL = f"canaryclsrel={CLASSIFIERS['canaryclsrel'][1][0]}"
LABEL_NOBODY = "canaryclsnobody=alpha"


def _label_search(session: Session, query: str, label: str) -> dict[str, Any]:
    return search(session, query, k=20, labels=[label]).to_dict()


def _predictions(session: Session) -> list[dict[str, Any]]:
    docs = [d["id"] for d in Documents(session).list()]
    return [p.to_dict() for p in predictions_of_documents(session, docs)]


def _embed_with_registered_models(folder: Path, system: Session, stages: str) -> None:
    """Re-embed every chunk with one of :data:`EMBEDDERS` (tiny real models, 32-d), each run
    carrying the classify ``stages``."""
    for name, banner in EMBEDDERS.items():
        Models(system).register(
            kind="embedder", name=name, folder=folder, marking=system.parse_marking(banner)
        )
    names = list(EMBEDDERS)
    docs = sorted(d["id"] for d in Documents(system).list())

    def spec(model: str) -> Any:
        text = PIPELINE.replace("embed: {model: hashing}", f"embed: {{model: {model}}}")
        return parse_pipeline(text + stages, source=f"{model}.yaml")

    run_pipeline(system, spec(names[-1]))
    for n, name in enumerate(names[:-1]):
        run_pipeline(system, spec(name), doc_ids=docs[n :: len(names)])


def _index_vectors(ws: Workspace, system: Session) -> dict[str, tuple[str, str, str]]:
    from garrison.store.index import ChunkIndex

    rows = ChunkIndex(ws.root / "index")._table(None).to_arrow().to_pylist()
    with ws.catalog.transaction() as orm:

        def banner(marking_id: int) -> str:
            marking = system.marking_of(orm, marking_id)
            assert marking is not None
            return marking.banner()

        vectors = {
            r["chunk_id"]: (banner(r["marking_id"]), banner(r["vector_marking_id"]), r["model"])
            for r in rows
        }
    assert {m.split("@")[0] for _, _, m in vectors.values()} == set(EMBEDDERS)
    # Some vectors are marked above their chunks.
    assert any(c != v for c, v, _ in vectors.values())
    return vectors


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
_ECHOES = re.compile(r'<input id="(?:q|f-label)"[^>]*>|href="/ui/search\?[^"]*"')


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
        corpus.csrf.pop(user, None)
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


def _web_post(corpus: Corpus, user: str, path: str, data: dict[str, str]) -> Answer:
    """POST a web form as ``user`` with their session's CSRF token; the answer is the page."""
    browser = _browser(corpus, user)
    if user not in corpus.csrf:
        form = _CSRF_FIELD.search(browser.get("/ui/search").text)
        assert form is not None
        corpus.csrf[user] = form.group(1)
    response = browser.post(path, data={**data, "csrf": corpus.csrf[user]})
    headers = {k.lower(): v for k, v in response.headers.items()}
    if response.status_code < 300:
        assert _BANNER_TEXT.findall(response.text) == [headers[MARKING_HEADER.lower()]] * 2
    return Answer(
        ok=response.status_code == 200,
        body=response.text,
        status=response.status_code,
        headers=headers,
    )


def _web_models(corpus: Corpus, user: str) -> Answer:
    """Every page of the Models page, following its Next links."""
    paths = ["/ui/models"]
    while True:
        page = _web(corpus, user, paths[-1])
        if not page.ok:
            return page
        after = re.search(r'<a rel="next" href="([^"]+)"', page.body)
        if after is None:
            break
        paths.append(after.group(1).replace("&amp;", "&"))
    return _web(corpus, user, *paths)


def _api_models(corpus: Corpus, user: str) -> Answer:
    """Every page of GET /v1/models, following next_cursor (three versions a page)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = _api(corpus, user, "/v1/models", params)
        if not page.ok:
            return page
        items += page.body["items"]
        assert page.body["total"] >= len(items)
        if page.body["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": page.body["next_cursor"]}
    page.body = {**page.body, "items": items}
    return page


def _api_pages(corpus: Corpus, user: str, path: str) -> Answer:
    """Every page of a paged API listing, two records a page, following next_cursor; the
    answer holds all the items and the total (which every page must give the same)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    totals = set()
    while True:
        page = _api(corpus, user, path, params)
        if not page.ok:
            return page
        items += page.body["items"]
        totals.add(page.body["total"])
        if page.body["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page.body["next_cursor"]}
    assert len(totals) == 1, (path, totals)
    page.body = {**page.body, "items": items}
    return page


def _web_pages(corpus: Corpus, user: str, path: str) -> Answer:
    """Every page of a web table, following its Next links."""
    paths = [path]
    while True:
        page = _web(corpus, user, paths[-1])
        if not page.ok:
            return page
        after = re.search(r'<a rel="next" href="([^"]+)"', page.body)
        if after is None:
            break
        paths.append(after.group(1).replace("&amp;", "&"))
    return _web(corpus, user, *paths)


def _web_predict(corpus: Corpus, user: str, ref: str) -> Answer:
    path = f"/ui/models/{quote(ref, safe='')}/predict"
    return _web_post(corpus, user, path, {"text": PREDICT_TEXT, "marking": "UNCLASSIFIED"})


def _api_predict(corpus: Corpus, user: str, ref: str) -> Answer:
    response = corpus.client.post(
        f"/v1/models/{quote(ref, safe='')}/predict",
        json={"texts": [PREDICT_TEXT], "marking": "UNCLASSIFIED"},
        headers={"Authorization": f"Bearer {corpus.tokens[user]}"},
    )
    return Answer(
        ok=response.status_code == 200,
        body=response.json() if response.content else None,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
    )


def _lib_predict(session: Session, ref: str) -> dict[str, Any]:
    classifier = open_classifier(session, ref)
    predictions = classifier.predict([PREDICT_TEXT], [UNCLASSIFIED])
    return {
        "model": classifier.version.to_dict(),
        "predictions": [p.to_dict() for p in predictions],
    }


def _lib_embed(session: Session, ref: str) -> dict[str, Any]:
    version, model = open_embedder(session, ref)
    vector = model.encode([PREDICT_TEXT])[0]
    return {"model": version.to_dict(), "name": model.name, "dim": int(vector.shape[0])}


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


def _mined_pairs(session: Session) -> list[dict[str, Any]]:
    """The training pairs an embedder refined by the subject would be mined from."""
    try:
        pairs = mine_pairs(session)
    except InvalidInput:  # nothing readable with headings, titles or subjects
        return []
    return [{**vars(p), "marking": p.marking.banner()} for p in pairs]


def _search_value(session: Session, query: str) -> dict[str, Any]:
    return search(session, query, k=20).to_dict()


def _py(session: Session) -> garrison.Session:
    """The Python API's session (``ws.session(user)``) over the same store session."""
    return garrison.Session(garrison.Workspace(session.workspace), session)


#: Read paths without an id: name -> call(corpus, session, user, query).
LISTINGS: dict[str, Callable[[Corpus, Session, str, str], Answer]] = {
    "lib:documents": lambda c, s, u, q: _lib(lambda: Documents(s).list()),
    "lib:findings": lambda c, s, u, q: _lib(lambda: Documents(s).findings()),
    "lib:chunks": lambda c, s, u, q: _lib(lambda: Chunks(s).list()),
    "lib:dedup": lambda c, s, u, q: _lib(lambda: dedup_report(s)),
    "lib:search": lambda c, s, u, q: _lib(lambda: _search_value(s, q)),
    "lib:label-search": lambda c, s, u, q: _lib(lambda: _label_search(s, q, LABEL_REL)),
    "lib:label-search-low": lambda c, s, u, q: _lib(lambda: _label_search(s, q, LABEL_LOW)),
    "lib:predictions": lambda c, s, u, q: _lib(lambda: _predictions(s)),
    "api:label-search": lambda c, s, u, q: _api(
        c, u, "/v1/search", {"q": q, "k": 20, "label": LABEL_REL}
    ),
    "web:label-search": lambda c, s, u, q: _web(
        c, u, "/ui/search", params={"q": q, "label": LABEL_REL}
    ),
    "lib:datasets": lambda c, s, u, q: _lib(
        lambda: [v.to_dict(records=True) for v in Datasets(s).list()]
    ),
    "lib:models": lambda c, s, u, q: _lib(lambda: [v.to_dict() for v in Models(s).list()]),
    "lib:mined-pairs": lambda c, s, u, q: _lib(lambda: _mined_pairs(s)),
    "api:models": lambda c, s, u, q: _api(c, u, "/v1/models"),
    "api:models-pages": lambda c, s, u, q: _api_models(c, u),
    "web:models": lambda c, s, u, q: _web_models(c, u),
    "api:documents": lambda c, s, u, q: _api(c, u, "/v1/documents"),
    "api:documents-pages": lambda c, s, u, q: _api_pages(c, u, "/v1/documents"),
    "api:chunks-pages": lambda c, s, u, q: _api_pages(c, u, "/v1/chunks"),
    "api:findings-pages": lambda c, s, u, q: _api_pages(c, u, "/v1/findings"),
    "web:documents-sorted": lambda c, s, u, q: _web_pages(c, u, "/ui/documents?sort=name&dir=desc"),
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
    "web:datasets": lambda c, s, u, q: _web(c, u, "/ui/datasets"),
    "lib:jobs": lambda c, s, u, q: _lib(lambda: _lib_jobs(s)),
    "py:documents": lambda c, s, u, q: _lib(lambda: _py(s).documents()),
    "py:findings": lambda c, s, u, q: _lib(lambda: _py(s).findings()),
    "py:chunks": lambda c, s, u, q: _lib(lambda: _py(s).chunks()),
    "py:search": lambda c, s, u, q: _lib(lambda: _py(s).search(q, k=20).to_dict()),
    "py:datasets": lambda c, s, u, q: _lib(
        lambda: [v.to_dict(records=True) for v in _py(s).datasets()]
    ),
    "lib:document-names": lambda c, s, u, q: _lib(lambda: document_names(s, c.ids)),
    "lib:chunk-vectors": lambda c, s, u, q: _lib(lambda: _chunk_vectors(c, s)),
}
#: Read paths taking an id: name -> call(corpus, session, user, id).
BY_ID: dict[str, Callable[[Corpus, Session, str, str], Answer]] = {
    "lib:document": lambda c, s, u, i: _lib(lambda: Documents(s).show(i, elements=True)),
    "lib:lineage": lambda c, s, u, i: _lib(lambda: Lineage(s).of(i)),
    "lib:dataset": lambda c, s, u, i: _lib(lambda: Datasets(s).get(i).to_dict(records=True)),
    "lib:model": lambda c, s, u, i: _lib(lambda: Models(s).get(i).to_dict()),
    "api:model": lambda c, s, u, i: _api(c, u, f"/v1/models/{quote(i, safe='')}"),
    "lib:model-use": lambda c, s, u, i: _lib(lambda: Models(s).use(i, "test").to_dict()),
    "lib:embedder": lambda c, s, u, i: _lib(lambda: _lib_embed(s, i)),
    "lib:predict": lambda c, s, u, i: _lib(lambda: _lib_predict(s, i)),
    "api:predict": lambda c, s, u, i: _api_predict(c, u, i),
    "web:model": lambda c, s, u, i: _web(c, u, f"/ui/models/{quote(i, safe='')}"),
    "web:predict": lambda c, s, u, i: _web_predict(c, u, i),
    "lib:doc-chunks": lambda c, s, u, i: _lib(lambda: Chunks(s).list(doc_id=i)),
    "api:document": lambda c, s, u, i: _api(c, u, f"/v1/documents/{i}", {"elements": "true"}),
    "api:lineage": lambda c, s, u, i: _api(c, u, f"/v1/lineage/{i}"),
    "api:dataset": lambda c, s, u, i: _api(c, u, f"/v1/datasets/{i}"),
    "api:doc-chunks": lambda c, s, u, i: _api(c, u, "/v1/chunks", {"doc_id": i}),
    "web:document": lambda c, s, u, i: _web(c, u, f"/ui/documents/{quote(i, safe='')}"),
    "web:lineage": lambda c, s, u, i: _web(c, u, f"/ui/lineage/{quote(i, safe='')}"),
    "web:original": lambda c, s, u, i: _web_original(c, u, i),
    "web:dataset": lambda c, s, u, i: _web(c, u, f"/ui/datasets/{quote(i, safe='')}"),
    "py:document": lambda c, s, u, i: _lib(lambda: _py(s).document(i, elements=True)),
    "py:dataset": lambda c, s, u, i: _lib(lambda: _py(s).dataset(i).to_dict(records=True)),
    "py:doc-chunks": lambda c, s, u, i: _lib(lambda: _py(s).chunks(doc_id=i)),
    "cli:document": lambda c, s, u, i: _lib(
        lambda: Documents(s).show(resolve_id(s, i, "document"), elements=True)
    ),
    "cli:lineage": lambda c, s, u, i: _lib(
        lambda: Lineage(s).of(resolve_id(s, i, "chunk", "element", "document"))
    ),
    "lib:id-prefixes": lambda c, s, u, i: _lib(lambda: {k: readable_ids(s, k, i) for k in KINDS}),
}


def _chunk_vectors(corpus: Corpus, session: Session) -> dict[str, Any]:
    found = chunk_vectors(session, corpus.vectors)
    return {k: {"model": v.model, "marking": v.marking.banner()} for k, v in found.items()}


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


_MODEL_ROW = re.compile(r'<a href="/ui/models/[^"]+">([^<]+)</a> <code>')


def _check_models_listed(corpus: Corpus, session: Session, name: str, a: Answer) -> None:
    """A model listing holds exactly the versions the subject dominates, and counts only them."""
    readable = [m for m in corpus.models if _can(session, m["marking"])]
    assert a.ok, (name, a.status, a.error)
    if name == "web:models":
        assert sorted(_MODEL_ROW.findall(a.body)) == sorted(m["name"] for m in readable)
        assert f"Model versions you may read ({len(readable)})" in a.body or not readable
        return
    items = a.body if name == "lib:models" else a.body["items"]
    assert sorted(m["id"] for m in items) == sorted(m["id"] for m in readable), name
    if name == "api:models-pages":
        assert a.body["total"] == len(readable)


def _check_listing(corpus: Corpus, view: View, session: Session, name: str, query: str, a: Answer):
    role = next(iter(session.subject.roles))
    if name in {"lib:models", "api:models-pages", "web:models"}:
        _check_models_listed(corpus, session, name, a)
        return
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
    if name.endswith("-pages"):
        # The total counts what the pages show, which the leak checks passed: nothing above.
        assert a.body["total"] == len(a.body["items"]), (name, a.body["total"])
        if name == "api:chunks-pages":
            shown = sorted(c["id"] for c in a.body["items"])
            assert shown == sorted(c["id"] for c in view.readable_chunks)
            _check_seq(corpus, session, a.body["items"])
        if name == "api:documents-pages":
            assert a.body["total"] == len(Documents(session).list())
        return
    if name == "lib:label-search" and not _can(session, CLASSIFIERS["canaryclsrel"][0]):
        # A label only unreadable predictions carry answers like a label nobody has.
        nobody = _without_echo(_label_search(session, query, LABEL_NOBODY))
        assert _without_echo(a.body) == nobody, (name, query)
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
    if name in ("lib:chunks", "api:chunks", "py:chunks"):
        items = a.body if not name.startswith("api") else a.body["items"]
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


#: Paths that use a model of one kind: name -> the kind they need.
_MODEL_USES = {
    "lib:embedder": "embedder",
    "lib:predict": "classifier",
    "api:predict": "classifier",
    "web:predict": "classifier",
}
_PREDICTION_MARKING = re.compile(r'<dd class="prediction-marking">([^<]+)</dd>')


def _check_model_use(corpus: Corpus, name: str, session: Session, ref: str, a: Answer) -> bool:
    """Check a model use; True when it is fully checked (no missing-twin comparison needed).

    A prediction is marked at least as high as the model (and the UNCLASSIFIED input); a
    readable version of the other kind is refused as such (400), never as if missing.
    """
    system = corpus.ws.session()
    if a.ok:
        model = Models(system).resolve(ref).marking
        if name == "web:predict":
            shown = _PREDICTION_MARKING.findall(a.body)
        elif name == "lib:embedder":
            return True
        else:
            shown = [p["marking"] for p in a.body["predictions"]]
        assert len(shown) == 1, (name, ref)
        for banner in shown:
            marking = session.parse_marking(banner)
            assert dominates(marking, model) and dominates(marking, UNCLASSIFIED), (name, banner)
        if name != "lib:predict":
            page = session.parse_marking(a.headers[MARKING_HEADER.lower()])
            assert dominates(page, model), (name, ref)
        return True
    readable = [m for m in corpus.models if _can(session, m["marking"])]
    try:
        version = Models(session).resolve(ref)
    except GarrisonError:
        return False
    assert version.id in {m["id"] for m in readable}
    assert version.kind != _MODEL_USES[name], (name, ref, a.error, a.status)
    assert a.status == 400 or (a.error or "").startswith("InvalidInput"), (name, a.status)
    return True


def _check_by_id(corpus: Corpus, name: str, call: Callable[..., Answer], args: tuple, a: Answer):
    *head, record_id = args
    if name in _MODEL_USES and _check_model_use(corpus, name, head[1], record_id, a):
        return
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
                    *EMBEDDERS,
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


#: Every read path of models: listings, then those taking a reference.
MODEL_LISTINGS = ("lib:models", "api:models", "api:models-pages", "web:models")
MODEL_BY_REF = (
    "lib:model",
    "lib:model-use",
    "lib:embedder",
    "lib:predict",
    "api:model",
    "api:predict",
    "web:model",
    "web:predict",
)
_NUMBERS = itertools.count(1)


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_model_versions_of_random_markings_never_reach_a_reader_below_them(
    corpus: Corpus, data: st.DataObject
) -> None:
    """A new embedder or classifier at a random marking (over a random readable embedder) is
    seen, used and predicted with only by subjects who dominate it; one above system high is
    never registered; every prediction is marked at least as high as the model."""
    system = corpus.ws.session()
    assert corpus.root is not None and corpus.tiny is not None
    kind = data.draw(st.sampled_from(["embedder", "classifier"]), label="kind")
    banner = data.draw(st.sampled_from(MODEL_MARKINGS), label="marking")
    # The fixed embedders only, so what is drawn never depends on earlier examples.
    embedders = sorted(n for n, (k, _, _) in MODEL_NAMES.items() if k == "embedder")
    base_name = data.draw(st.sampled_from(embedders), label="base")
    base = Models(system).resolve(base_name).id if kind == "classifier" else None
    name = f"canarydyn{next(_NUMBERS):03d}"
    given_marking = system.parse_marking(banner)
    base_marking = Models(system).resolve(base).marking if base else UNCLASSIFIED
    if not system.can_read(given_marking):
        with pytest.raises(NotPermitted):
            _register_model(system, corpus.root, corpus.tiny, name, kind, banner, base)
        assert name not in {v.name for v in Models(system).list()}
        target = name  # never registered: every path answers as for a missing model
    else:
        version = _register_model(system, corpus.root, corpus.tiny, name, kind, banner, base)
        # A model is marked at least as high as what it was given and its base.
        assert dominates(version.marking, given_marking)
        assert dominates(version.marking, base_marking)
        corpus.models.append(version.to_dict())
        corpus.canaries[name] = version.marking.banner()
        corpus.ids.append(version.id)
        target = data.draw(st.sampled_from([name, version.ref, version.id]), label="ref")
    user = _user(*data.draw(st.sampled_from(SUBJECTS), label="subject"))
    session = corpus.ws.session(user)
    view = _view(corpus, session)
    for path in MODEL_LISTINGS:
        answer = LISTINGS[path](corpus, session, user, "")
        _check_no_leak(view, session, answer, "", path)
        _check_listing(corpus, view, session, path, "", answer)
    for path in data.draw(
        st.lists(st.sampled_from(MODEL_BY_REF), min_size=3, max_size=5, unique=True),
        label="paths",
    ):
        call = BY_ID[path]
        args = (corpus, session, user, target)
        answer = call(*args)
        _check_no_leak(view, session, answer, target, f"{path}({target})")
        _check_by_id(corpus, path, call, args, answer)
        if name not in corpus.canaries or not _can(session, corpus.canaries[name]):
            assert not answer.ok, (path, target, user)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_search_ranks_only_on_vectors_and_models_the_subject_dominates(
    corpus: Corpus, data: st.DataObject
) -> None:
    from garrison.search import _search as search_module
    from garrison.store.index import ChunkIndex

    user = _user(*data.draw(st.sampled_from(SUBJECTS), label="subject"))
    query = data.draw(QUERIES, label="query")
    session = corpus.ws.session(user)
    ranked: list[dict[str, Any]] = []
    opened: list[str] = []
    nearest, query_model = ChunkIndex.nearest, search_module._query_model

    def spy_nearest(self: ChunkIndex, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows = nearest(self, *args, **kwargs)
        ranked.extend(rows)
        return rows

    def spy_model(session: Session, name: str) -> Any:
        model = query_model(session, name)
        if model is not None:
            opened.append(name)
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChunkIndex, "nearest", spy_nearest)
        patch.setattr(search_module, "_query_model", spy_model)
        result = search(session, query, k=20)
    # The vector branch ranked only vectors the subject dominates, embedded the query only with
    # a model the subject dominates, and ran exactly when there was such a vector to rank.
    for row in ranked:
        assert _can(session, corpus.vectors[row["chunk_id"]][1]), (user, row["chunk_id"])
    for name in opened:
        assert _can(session, EMBEDDERS[name.split("@")[0]]), (user, name)
    usable = any(_can(session, c) and _can(session, v) for c, v, _ in corpus.vectors.values())
    assert result.mode == ("hybrid" if usable else "text"), (user, result.mode)
    assert len(opened) == (1 if usable else 0)
    shown = json.dumps(result.to_dict()).lower()
    for name, banner in EMBEDDERS.items():
        if not _can(session, banner):
            assert name not in shown, (user, name)


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


def test_damaged_documents_hidden_from_stewards_below_them(tmp_path: Path) -> None:
    """A document whose original failed its check is marked damaged: stewards see damaged
    documents they may read, and nothing of one they may not (not its id, not a count)."""
    from garrison.core.errors import NotFound
    from garrison.store.damage import mark_damaged

    ws = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH)
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        _write(folder, "low", "(U) A routine note on the motor pool.\n")
        _write(folder, "high", "SECRET//NOFORN\n\n(S//NF) The convoy leaves at dawn.\n")
        system = ws.session()
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        docs = {d["filename"]: d["id"] for d in Documents(system).list()}
        for doc_id in docs.values():
            assert mark_damaged(system, doc_id, "test")
        system.add_user("ustew", SubjectSpec(clearance="U", citizenship="USA", roles=("steward",)))
        system.add_user("sstew", SubjectSpec(clearance="S", citizenship="USA", roles=("steward",)))
        low, high = ws.session("ustew"), ws.session("sstew")
        assert [d["id"] for d in Documents(low).list(status="damaged")] == [docs["low.txt"]]
        assert docs["high.txt"] not in json.dumps(Documents(low).list())
        with pytest.raises(NotFound):
            Documents(low).show(docs["high.txt"])
        assert {d["id"] for d in Documents(high).list(status="damaged")} == set(docs.values())
    finally:
        ws.close()


# -- the assistant --------------------------------------------------------------------------------

#: Where the Ask page repeats the question: its form field and the answer's "Question:" line.
_ASK_ECHOES = re.compile(r"<textarea[^>]*>[^<]*</textarea>|<p class=\"asked\">.*?</p>", re.S)
#: Ceilings an asker may choose for an answer (None: no ceiling).
_ASK_CEILINGS = [None, "UNCLASSIFIED", "CONFIDENTIAL", "SECRET//REL TO USA, GBR"]


def _answer_body(data: dict[str, Any]) -> dict[str, Any]:
    """An answer without what it echoes of the asker's own words and its timings."""
    return {k: v for k, v in data.items() if k not in ("question", "timings")}


def _web_ask_stream(corpus: Corpus, user: str, form: dict[str, str]) -> Answer:
    """The Ask page's event stream for ``form`` (after :func:`_web_post`: its CSRF token), less
    the ``question`` event, which repeats what the asker typed."""
    response = _browser(corpus, user).post(
        "/ui/ask/stream", data={**form, "csrf": corpus.csrf[user]}
    )
    events = []
    for block in response.text.split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            if fields["event"] != "question":
                events.append([fields["event"], json.loads(fields["data"])])
    assert events and events[0][0] == "marking", events  # the marking before any text
    return Answer(
        ok=response.status_code == 200,
        body=events,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
    )


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
    form = {"question": question, "k": "6", "max_marking": ceiling or ""}
    web = _web_post(corpus, user, "/ui/ask", form)
    web.body = _ASK_ECHOES.sub("", web.body)  # the question, as the asker typed it
    _check_no_leak(view, session, web, "", "web /ui/ask")
    streamed = _web_ask_stream(corpus, user, form)
    _check_no_leak(view, session, streamed, "", "web /ui/ask/stream")
    assert lib.ok and api.ok and web.ok and streamed.ok, (lib.error, api.body, web.status)
    assert [d["text"] for n, d in streamed.body if n == "sentence"] == [
        s["text"] for s in lib.body["sentences"]
    ]
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
