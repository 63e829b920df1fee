"""Mixed-clearance load: concurrent API clients of different accesses against one real server.

A small workspace holds one document per marking -- U, C, S, S//NF, C//REL TO USA, AUS, GBR,
S//REL TO USA, GBR, a program (S//SAR-BP) -- and a mixed S//NF document with an UNCLASSIFIED
portion, each portion carrying its own canary word (pipeline with the ``hashing`` model). Ten
subjects span the clearances U, C and S, the citizenships USA, GBR, AUS and FRA, and one SAP
read-in. The API (with the web UI mounted, as ``garrison serve`` runs it) is served by uvicorn
on 127.0.0.1 on a free port, in a background thread.

``CLIENTS`` concurrent clients (one ``httpx.AsyncClient`` each, a subject each, round robin)
then search (``GET /v1/search``), ask (``POST /v1/ask``) and export (walking every page of
``GET /v1/chunks``, and ``GET /v1/documents``) for a bounded time. Every response is checked
against what its subject may read, computed beforehand from the library as the system sees it:
HTTP 200; no canary, chunk id or document id the subject may not read; a marking (header and
body) the subject dominates; counts (``total``, facets) no larger than what the subject may
read; and an export that yields exactly the chunks the subject may read. The test
(``tests/api/test_mixed_load.py``) runs it small; ``make bench`` runs it with 200 clients.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//SAR-BP//NOFORN"
PIPELINE = """
name: mixed-load
stages:
  - normalize: {}
  - quality: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
#: file stem -> (banner, [(portion mark, canary)]); every portion mentions the harbor report.
DOCUMENTS = {
    "unclass": ("UNCLASSIFIED", [("U", "canaryunc")]),
    "conf": ("CONFIDENTIAL", [("C", "canaryconf")]),
    "secret": ("SECRET", [("S", "canarysec")]),
    "noforn": ("SECRET//NOFORN", [("S//NF", "canarynf")]),
    "relconf": ("CONFIDENTIAL//REL TO USA, AUS, GBR", [("C//REL TO USA, AUS, GBR", "canaryrelc")]),
    "relsec": ("SECRET//REL TO USA, GBR", [("S//REL TO USA, GBR", "canaryrels")]),
    "program": ("SECRET//SAR-BP", [("S//SAR-BP", "canarysap")]),
    "mixed": ("SECRET//NOFORN", [("U", "canarymixu"), ("S//NF", "canarymixs")]),
}
#: name -> (clearance, citizenship, SAP accesses)
SUBJECTS = {
    "uusa": ("U", "USA", ()),
    "cusa": ("C", "USA", ()),
    "susa": ("S", "USA", ()),
    "sapusa": ("S", "USA", ("SAR-BP",)),
    "sgbr": ("S", "GBR", ()),
    "cgbr": ("C", "GBR", ()),
    "saus": ("S", "AUS", ()),
    "caus": ("C", "AUS", ()),
    "sfra": ("S", "FRA", ()),
    "ufra": ("U", "FRA", ()),
}
QUERIES = ("harbor report", "crane schedule pier", "north pier report", "harbor crane")
QUESTIONS = ("What does the harbor report mention?", "When is the crane schedule?")
CANARY = re.compile(r"canary[a-z]+")
CHUNK_PAGE = 3


@dataclass(frozen=True)
class Allowed:
    """What one subject may read, worked out from the library before the load starts."""

    token: str
    banners: frozenset[str]  # every marking the workspace holds that the subject may read
    canaries: frozenset[str]
    chunk_ids: frozenset[str]
    doc_ids: frozenset[str]
    all_chunk_ids: frozenset[str]
    all_doc_ids: frozenset[str]


@dataclass
class World:
    """The built workspace, each subject's allowance, and a handle that judges markings."""

    path: Path
    allowed: dict[str, Allowed]
    canaries: dict[str, str]  # canary -> governing banner
    workspace: Workspace
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)

    def may_read(self, who: str, banner: str) -> bool:
        """Whether ``who`` dominates ``banner`` (a response's marking is a join, so any banner)."""
        key = (who, banner)
        if key not in self._verdicts:
            session = self.workspace.session(who)
            try:
                verdict = bool(session.can_read(session.parse_marking(banner)))
            except Exception:
                verdict = False
            self._verdicts[key] = verdict
        return self._verdicts[key]

    def close(self) -> None:
        self.workspace.close(checkpoint=False)


@dataclass
class Tally:
    """What the clients saw: latencies per endpoint, errors and leaks (with a few examples)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    leaks: int = 0
    examples: list[str] = field(default_factory=list)
    exports_complete: int = 0

    def problem(self, kind: str, text: str) -> None:
        if kind == "leak":
            self.leaks += 1
        else:
            self.errors += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {text[:300]}")

    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def build_world(root: Path) -> World:
    """The marked workspace, its subjects with tokens, and what each may read."""
    path = root / "ws"
    ws = Workspace.init(path, system_high=SYSTEM_HIGH)
    folder = root / "in"
    folder.mkdir()
    canaries: dict[str, str] = {}
    for stem, (banner, portions) in DOCUMENTS.items():
        body = "\n\n".join(
            f"({mark}) The harbor report mentions {word} near the north pier and the crane "
            "schedule."
            for mark, word in portions
        )
        # No closing banner where the marking has a comma (the file would sniff as CSV).
        tail = "" if "," in banner else f"\n\n{banner}\n"
        (folder / f"{stem}.txt").write_text(f"{banner}\n\n{body}{tail}")
        for mark, word in portions:
            canaries[word] = ws.session().parse_marking(mark).banner()
    system = ws.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(PIPELINE, source="mixed-load.yaml"))
    chunks = Chunks(system).list()
    docs = Documents(system).list()
    assert len(docs) == len(DOCUMENTS) and all(d["status"] == "parsed" for d in docs), docs
    banners = {c["marking"] for c in chunks} | {d["marking"] for d in docs}
    allowed: dict[str, Allowed] = {}
    for name, (clearance, nation, sap) in SUBJECTS.items():
        system.add_user(
            name,
            SubjectSpec(clearance=clearance, citizenship=nation, sap=sap, roles=("viewer",)),
        )
        token = create_token(system, name, 30)[1]
        session = ws.session(name)
        readable = frozenset(b for b in banners if session.can_read(session.parse_marking(b)))
        allowed[name] = Allowed(
            token=token,
            banners=readable,
            canaries=frozenset(w for w, b in canaries.items() if b in readable),
            chunk_ids=frozenset(c["id"] for c in chunks if c["marking"] in readable),
            doc_ids=frozenset(d["id"] for d in docs if d["marking"] in readable),
            all_chunk_ids=frozenset(c["id"] for c in chunks),
            all_doc_ids=frozenset(d["id"] for d in docs),
        )
    # The grid is worth running only if it separates the subjects.
    assert len({a.canaries for a in allowed.values()}) >= 6
    return World(path=path, allowed=allowed, canaries=canaries, workspace=ws)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Idle keep-alive connections stay open this long: with the clients in the same process as the
#: server, a client can be slow to send its next request, and uvicorn's default of 5 s would
#: close the connection under it (a client-side disconnect error, not a server one).
KEEP_ALIVE_S = 300


@contextmanager
def serving(path: Path, *, subprocess: bool = False) -> Iterator[str]:
    """The API and web UI over ``path`` under uvicorn on a free loopback port; its base URL.

    In a background thread of this process, or (``subprocess``) in a process of its own, so
    that the server does not share the clients' interpreter lock.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    if subprocess:
        with _server_process(path, port):
            yield base
        return
    import uvicorn

    from garrison.web import create_app

    config = uvicorn.Config(
        create_app(path),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"mixed-load-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def _server_process(path: Path, port: int) -> Iterator[None]:
    import subprocess
    import sys

    code = (
        "import sys, uvicorn\n"
        "from garrison.web import create_app\n"
        "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), "
        f"log_level='warning', timeout_keep_alive={KEEP_ALIVE_S})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(port)])
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code == 204:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(60)


class _Checker:
    """Checks one response body against one subject's allowance."""

    def __init__(self, world: World, allowed: Allowed, tally: Tally, who: str) -> None:
        self.world = world
        self.allowed = allowed
        self.tally = tally
        self.who = who
        self.forbidden_chunks = allowed.all_chunk_ids - allowed.chunk_ids
        self.forbidden_docs = allowed.all_doc_ids - allowed.doc_ids

    def response(self, what: str, r: httpx.Response) -> Any | None:
        if r.status_code != 200:
            self.tally.problem("error", f"{self.who} {what}: HTTP {r.status_code} {r.text}")
            return None
        text = r.text
        for word in set(CANARY.findall(text.lower())) - self.allowed.canaries:
            self.tally.problem("leak", f"{self.who} {what}: canary {word}")
        for ident in self.forbidden_chunks | self.forbidden_docs:
            if ident in text:
                self.tally.problem("leak", f"{self.who} {what}: id {ident}")
        header = r.headers.get("x-garrison-marking", "")
        body = r.json()
        for banner in {header, body.get("marking", header)}:
            if not self.world.may_read(self.who, banner):
                self.tally.problem("leak", f"{self.who} {what}: marked {banner!r}")
        return body

    def count(self, what: str, n: int, limit: int) -> None:
        if n > limit:
            self.tally.problem("leak", f"{self.who} {what}: counts {n} of at most {limit}")


async def _client(
    base: str, world: World, who: str, deadline: float, tally: Tally, rng: random.Random
) -> None:
    allowed = world.allowed[who]
    check = _Checker(world, allowed, tally, who)
    headers = {"Authorization": f"Bearer {allowed.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as c:

        async def timed(endpoint: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                r = await c.request(method, url, **kw)
            except httpx.HTTPError as exc:
                tally.problem("error", f"{who} {endpoint}: {type(exc).__name__}")
                return None
            tally.latencies[endpoint].append((time.perf_counter() - t0) * 1000)
            return r

        done = 0
        while done == 0 or time.monotonic() < deadline:
            done += 1
            op = rng.choice(("search", "search", "ask", "export"))
            if op == "search":
                r = await timed("search", "GET", "/v1/search", params={"q": rng.choice(QUERIES)})
                body = check.response("search", r) if r is not None else None
                if body is not None:
                    check.count("search total", body["total"], len(allowed.chunk_ids))
                    for values in body["facets"].values():
                        check.count("search facet", sum(values.values()), len(allowed.chunk_ids))
            elif op == "ask":
                question = {"question": rng.choice(QUESTIONS)}
                r = await timed("ask", "POST", "/v1/ask", json=question)
                check.response("ask", r) if r is not None else None
            else:
                await _export(check, timed, allowed)


async def _export(check: _Checker, timed: Any, allowed: Allowed) -> None:
    """Walk every page of the chunk listing, then list documents: exactly what is readable."""
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": CHUNK_PAGE}
        if cursor:
            params["cursor"] = cursor
        r = await timed("export (chunk page)", "GET", "/v1/chunks", params=params)
        body = check.response("chunks", r) if r is not None else None
        if body is None:
            return
        check.count("chunks total", body["total"], len(allowed.chunk_ids))
        seen |= {item["id"] for item in body["items"]}
        cursor = body.get("next_cursor")
        if not cursor:
            break
    if seen != allowed.chunk_ids:
        check.tally.problem(
            "leak" if seen - allowed.chunk_ids else "error",
            f"{check.who} export: {len(seen)} chunks, {len(allowed.chunk_ids)} readable",
        )
    else:
        check.tally.exports_complete += 1
    r = await timed("documents", "GET", "/v1/documents")
    body = check.response("documents", r) if r is not None else None
    if body is not None:
        check.count("documents total", body["total"], len(allowed.all_doc_ids))
        for item in body["items"]:
            if item.get("id") in check.forbidden_docs:
                check.tally.problem("leak", f"{check.who} documents: {item['id']}")


async def drive(base: str, world: World, clients: int, seconds: float, seed: int = 7) -> Tally:
    """Run ``clients`` concurrent clients (subjects round robin) for about ``seconds``."""
    tally = Tally()
    names = sorted(world.allowed)
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(
            _client(base, world, names[i % len(names)], deadline, tally, random.Random(seed + i))
            for i in range(clients)
        )
    )
    return tally


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run(*, quick: bool = False) -> dict[str, Any]:
    """``make bench``: 200 clients for 30 s (quick: 50 for 5 s)."""
    clients, seconds = (50, 5.0) if quick else (200, 30.0)
    root = Path(tempfile.mkdtemp(prefix="garrison-bench-mixed-"))
    try:
        t0 = time.perf_counter()
        world = build_world(root)
        build_s = time.perf_counter() - t0
        load = round(os.getloadavg()[0], 1)
        try:
            with serving(world.path, subprocess=True) as base:
                t0 = time.perf_counter()
                tally = asyncio.run(drive(base, world, clients, seconds))
                wall = time.perf_counter() - t0
        finally:
            world.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results: dict[str, Any] = {
        "clients": clients,
        "subjects": len(SUBJECTS),
        "seconds": round(wall, 1),
        "requests": tally.requests(),
        "requests per second": round(tally.requests() / wall, 1),
        "errors": tally.errors,
        "leaks": tally.leaks,
        "complete exports": tally.exports_complete,
        "workspace build s": round(build_s, 1),
        "machine load average at start (1 min)": load,
    }
    for endpoint, xs in sorted(tally.latencies.items()):
        results[f"{endpoint}: requests"] = len(xs)
        results[f"{endpoint}: p50 ms"] = round(statistics.median(xs), 1)
        results[f"{endpoint}: p95 ms"] = round(_pct(xs, 95), 1)
    return {
        "title": "Mixed-clearance load: every response checked against its subject's access",
        "what": (
            f"{clients} concurrent API clients as {len(SUBJECTS)} subjects (U, C, S; USA, GBR, "
            "AUS, FRA; one SAP) search, ask and export (every page of /v1/chunks, then "
            f"/v1/documents) for {seconds:.0f} s against one uvicorn server on loopback, over "
            f"{len(DOCUMENTS)} documents at U, C, S, S//NF, REL TO and SAR markings."
        ),
        "results": results,
        "notes": [
            "Every response is checked: HTTP 200, no canary, id, marking or count above the "
            "subject's access, and each export yields exactly the chunks the subject may read.",
            "The server runs in a process of its own (uvicorn, one worker, as `garrison serve` "
            "runs it), the clients in one asyncio loop of the bench process, both on the same "
            "machine; each request writes a durable (fsynced) audit event, concurrent ones "
            "group committed (one write and fsync per batch), and the "
            "synchronous handlers queue for the server's worker threads (GARRISON_WORKER_THREADS, "
            "default 40), so with 200 "
            "clients the percentiles are mostly queueing. The machine is a shared 2-core VM: "
            "its load average (above) says how much of it the run had.",
            *tally.examples,
        ],
    }
