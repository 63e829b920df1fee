"""No read up on the evaluation read paths: runs, reports, transcripts, comparisons and the
Inspect export, through the library and the web pages, for the subjects of the no-read-up grid.

A module-scoped workspace holds runs at several markings (each run marked with the join of its
items), every item's transcript carrying a canary governed by the item's marking and every run a
canary governed by the run's. Hypothesis draws a subject, two runs and an item; whatever comes
back must not reveal a canary, a run reference or a marking the subject may not read, a run or
transcript the subject may not read answers exactly like a missing one, and every page's banner
dominates every marking shown on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.evaluate import ItemResult, Runs, SystemSpec
from garrison.evaluate.report import inspect_log, render_markdown, report_json, stats_only
from garrison.security.markings import dominates, join, parse_marking
from garrison.store.session import Session, SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.test_no_read_up import SUBJECTS, SYSTEM_HIGH, _user
from tests.web.conftest import csrf_of

#: Runs: name -> the markings of its items (the run is marked with their join).
RUNS = {
    "u": ["UNCLASSIFIED", "UNCLASSIFIED"],
    "c": ["UNCLASSIFIED", "CONFIDENTIAL"],
    "crel": ["CONFIDENTIAL//REL TO USA, GBR", "UNCLASSIFIED"],
    "snf": ["SECRET//NOFORN", "CONFIDENTIAL", "UNCLASSIFIED"],
    "srel": ["SECRET//REL TO USA, GBR", "UNCLASSIFIED//FOUO"],
}
MISSING = "RUN-000000000000"
_PORTION = re.compile(r'<span class="portion" title="Portion marking">([^<]+)</span>')
_BANNER = re.compile(r'id="banner-(?:top|bottom)"[^>]*>([^<]*)<')
_RUN_LINK = re.compile(r'href="/ui/eval/runs/(RUN-[0-9a-f]{12})"')


@dataclass
class EvalCorpus:
    ws: Workspace
    app: FastAPI
    tokens: dict[str, str]
    refs: dict[str, str]  # run name -> ref
    markings: dict[str, str]  # run name -> its banner
    canaries: dict[str, str]  # canary -> the banner that governs it
    browsers: dict[str, TestClient] = field(default_factory=dict)


def _item_canary(run: str, i: int) -> str:
    return f"canaryev{run}item{i}"


def _run_canary(run: str) -> str:
    return f"canaryev{run}run"


def _record(runs: Runs, name: str, marks: list[str]) -> str:
    spec = SystemSpec("assistant", "assistant", {"k": 4}, None, None)
    writer = runs._create(
        "qa",
        spec,
        {"seed": 0},
        suite_id="b" * 64,
        suite_ref="canary-suite@bbbbbbbbbbbb",
        scorers={"exact": "1"},
        item_count=len(marks),
        system_version=_run_canary(name),
    )
    for i, banner in enumerate(marks):
        writer.record(
            ItemResult(
                item_id=f"item-{i}",
                status="scored",
                marking=parse_marking(banner),
                scores={"exact": float(i % 2)},
                binary={"exact": True},
                cluster=f"item-{i}",
                slices={"marking": banner},
                transcript={
                    "item": {"input": {"question": "which depot?"}, "expected": {"a": "x"}},
                    "response": {"text": f"the answer is {_item_canary(name, i)}"},
                },
                position=i + 1,
            )
        )
    return writer.finish().ref


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalCorpus]:
    path = tmp_path_factory.mktemp("eval-no-read-up") / "ws"
    ws = Workspace.init(path, system_high=SYSTEM_HIGH)
    system = ws.session()
    tokens = {}
    for clearance, nation, role in SUBJECTS:
        name = _user(clearance, nation, role)
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=nation, roles=(role,)))
        tokens[name] = create_token(system, name, 30)[1]
    runs = Runs(system)
    refs = {name: _record(runs, name, marks) for name, marks in RUNS.items()}
    markings = {
        name: join(*(parse_marking(m) for m in marks)).banner() for name, marks in RUNS.items()
    }
    canaries = {_run_canary(n): markings[n] for n in RUNS}
    for name, marks in RUNS.items():
        canaries |= {_item_canary(name, i): m for i, m in enumerate(marks)}
    ws.close()
    app = create_app(path, WebSettings(page_size=100))
    with TestClient(app):
        reader = Workspace.open(path)
        try:
            yield EvalCorpus(reader, app, tokens, refs, markings, canaries)
        finally:
            reader.close(checkpoint=False)


def _browser(corpus: EvalCorpus, user: str) -> TestClient:
    if user not in corpus.browsers:
        client = TestClient(corpus.app, raise_server_exceptions=False, follow_redirects=False)
        page = client.get("/ui/login")
        signed = client.post(
            "/ui/login", data={"token": corpus.tokens[user], "csrf": csrf_of(page.text)}
        )
        assert signed.status_code == 303
        corpus.browsers[user] = client
    return corpus.browsers[user]


def _can(session: Session, banner: str) -> bool:
    return bool(session.can_read(session.parse_marking(banner)))


def _check_text(corpus: EvalCorpus, session: Session, text: str, where: str) -> None:
    lowered = text.lower()
    for canary, banner in corpus.canaries.items():
        if not _can(session, banner):
            assert canary not in lowered, f"{where}: {canary} leaked to {session.subject.name}"
    for name, ref in corpus.refs.items():
        if not _can(session, corpus.markings[name]):
            assert ref not in text, f"{where}: {ref} leaked to {session.subject.name}"


def _check_page(corpus: EvalCorpus, session: Session, text: str, where: str) -> None:
    _check_text(corpus, session, text, where)
    banners = set(_BANNER.findall(text))
    assert len(banners) == 1, where
    banner = session.parse_marking(banners.pop())
    assert session.can_read(banner), where
    for portion in _PORTION.findall(text):
        assert dominates(banner, session.parse_marking(portion)), (where, portion)


def _same_as_missing(client: TestClient, path: str, ref: str, missing_path: str) -> None:
    response, missing = client.get(path), client.get(missing_path)
    assert response.status_code == missing.status_code == 404, path
    assert response.text == missing.text, path


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_no_read_up_on_the_evaluation_read_paths(corpus: EvalCorpus, data: st.DataObject) -> None:
    user = _user(*data.draw(st.sampled_from(SUBJECTS), label="subject"))
    a = data.draw(st.sampled_from(sorted(RUNS)), label="run a")
    b = data.draw(st.sampled_from(sorted(RUNS)), label="run b")
    item = data.draw(st.integers(0, 2), label="item")
    session = corpus.ws.session(user)
    readable = {n for n, m in corpus.markings.items() if _can(session, m)}
    client = _browser(corpus, user)
    ref_a, ref_b = corpus.refs[a], corpus.refs[b]

    # the list shows exactly the readable runs
    listing = client.get("/ui/eval")
    assert listing.status_code == 200
    _check_page(corpus, session, listing.text, "web:eval")
    assert set(_RUN_LINK.findall(listing.text)) == {corpus.refs[n] for n in readable}
    library = Runs(session).list()
    assert {s.ref for s in library} == {corpus.refs[n] for n in readable}

    # a run's report page
    page = client.get(f"/ui/eval/runs/{ref_a}")
    if a in readable:
        assert page.status_code == 200
        _check_page(corpus, session, page.text, "web:eval-run")
        assert _BANNER.findall(page.text)[0] == corpus.markings[a]
        assert _run_canary(a) in page.text
        report = Runs(session).report(ref_a)
        assert report.marking.banner() == corpus.markings[a]
        for text in (
            render_markdown(report),
            json.dumps(report_json(report)),
            json.dumps(stats_only(report)),
            json.dumps(inspect_log(report, Runs(session).samples(ref_a))),
        ):
            _check_text(corpus, session, text, "lib:report")
    else:
        _same_as_missing(client, f"/ui/eval/runs/{ref_a}", ref_a, f"/ui/eval/runs/{MISSING}")

    # a transcript, under its own marking
    path = f"/ui/eval/runs/{ref_a}/items/item-{item}"
    exists = item < len(RUNS[a])
    if a in readable and exists:
        transcript = client.get(path)
        assert transcript.status_code == 200
        _check_page(corpus, session, transcript.text, "web:eval-transcript")
        assert _BANNER.findall(transcript.text)[0] == parse_marking(RUNS[a][item]).banner()
        assert _item_canary(a, item) in transcript.text
    elif a in readable:
        _same_as_missing(client, path, ref_a, f"/ui/eval/runs/{ref_a}/items/item-9")
    else:
        _same_as_missing(client, path, ref_a, f"/ui/eval/runs/{MISSING}/items/item-{item}")

    # two runs compared
    compare = f"/ui/eval/compare?a={ref_a}&b={ref_b}&metric=exact"
    if a in readable and b in readable:
        response = client.get(compare)
        assert response.status_code == 200
        _check_page(corpus, session, response.text, "web:eval-compare")
        expected = join(parse_marking(corpus.markings[a]), parse_marking(corpus.markings[b]))
        assert _BANNER.findall(response.text)[0] == expected.banner()
    else:
        hidden = ref_a if a not in readable else ref_b
        missing = compare.replace(hidden, MISSING)
        response, gone = client.get(compare), client.get(missing)
        assert response.status_code == gone.status_code == 404
        assert response.text == gone.text
