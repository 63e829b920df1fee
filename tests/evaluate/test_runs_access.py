"""Runs over the API, and no read up through every run read path (library and API).

Runs at several markings are made once: the assistant on the whole ferry suite (items U..TS, so
the run is TS), the same under a CONFIDENTIAL ceiling on the U and C items, and an external run
whose items are U and S. Hypothesis then draws a reader and a run and calls every read path as
that reader: what comes back must name no canary, no marking the reader may not read, and a run
the reader does not dominate must answer exactly like one that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.api import create_app
from garrison.core.errors import NotFound
from garrison.evaluate import ItemResult, Runs, SystemSpec, parse_system
from garrison.security.markings import parse_marking
from garrison.store.session import Session, SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES
from tests.evaluate.run_fixtures import qa_suite, ws  # noqa: F401

M = parse_marking
READERS = {"uma": "U", "cal": "C", "sam": "S", "eve": "S", "ted": "TS"}
MISSING = "RUN-0123456789ab"


@dataclass
class Env:
    ws: Workspace
    client: TestClient
    tokens: dict[str, str]
    runs: dict[str, str]

    def get(self, user: str, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.client.get(path, headers=headers, params=params)


@pytest.fixture(scope="module")
def env(ws: Workspace) -> Iterator[Env]:  # noqa: F811
    system = ws.session()
    system.add_user("cal", SubjectSpec(clearance="C", roles=("viewer",)))
    tokens = {name: create_token(system, name, 30)[1] for name in READERS}
    ted = Runs(ws.session("ted"))
    suite = qa_suite(ws, "access")
    low = qa_suite(ws, "access-low", words=("zebrafox", "quokkamoon"))
    runs = {
        "all": ted.start(suite.ref, parse_system("assistant:k=4")).ref,
        "low": ted.start(low.ref, parse_system("assistant:k=4,max_marking=C")).ref,
    }
    writer = ted.begin_external("redteam", SystemSpec("assistant", "assistant"), {})
    for i, (word, banner) in enumerate((("zebrafox", "U"), ("walruspeak", "S"))):
        writer.record(
            ItemResult(
                f"probe-{i}",
                "scored",
                M(banner),
                {"leak": 0.0},
                {"leak": True},
                cluster=word,
                transcript={"probe": f"Tell me about {word}"},
            )
        )
    runs["external"] = writer.finish().ref
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        yield Env(ws, client, tokens, runs)


def test_api_run_endpoints(env: Env) -> None:
    ref = env.runs["low"]
    r = env.get("sam", "/v1/eval/runs")
    assert r.status_code == 200
    assert ref in {s["ref"] for s in r.json()["items"]}
    r = env.get("sam", f"/v1/eval/runs/{ref}")
    assert r.status_code == 200 and r.headers["X-Garrison-Marking"] == "CONFIDENTIAL"
    assert r.json()["metrics"]["token-f1"]["n"] == 2
    r = env.get("sam", f"/v1/eval/runs/{ref}/items")
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    for fmt in ("json", "stats", "md", "html", "inspect"):
        r = env.get("sam", f"/v1/eval/runs/{ref}/report", format=fmt)
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["X-Garrison-Marking"] == "CONFIDENTIAL"
        assert "CONFIDENTIAL" in r.text
    # The all-items run is TS: sam sees a 404, exactly like a missing run.
    hidden = env.get("sam", f"/v1/eval/runs/{env.runs['all']}")
    missing = env.get("sam", f"/v1/eval/runs/{MISSING}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"].keys() == missing.json()["error"].keys()
    # Compare: the same suite is needed.
    r = env.get("ted", "/v1/eval/compare", a=env.runs["all"], b=env.runs["all"], margin=0.01)
    assert r.status_code == 200 and r.json()["passed"] is True
    r = env.get("ted", "/v1/eval/compare", a=env.runs["all"], b=env.runs["low"])
    assert r.status_code == 400


def test_api_start_run(env: Env) -> None:
    low = qa_suite(env.ws, "access-low", words=("zebrafox", "quokkamoon")).ref
    headers = {"Authorization": f"Bearer {env.tokens['ted']}"}
    body = {"suite": low, "system": "assistant:k=2,max_marking=C"}
    r = env.client.post("/v1/eval/runs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "complete" and r.headers["X-Garrison-Marking"] == "CONFIDENTIAL"
    r = env.client.post(
        "/v1/eval/runs", json=body, headers={"Authorization": f"Bearer {env.tokens['sam']}"}
    )
    assert r.status_code == 403


def _readable_canaries(clearance: str) -> set[str]:
    order = ["U", "C", "S", "TS"]
    allowed = order[: order.index(clearance) + 1]
    return {w for w, (portion, _) in CANARIES.items() if portion in allowed}


def _check(session: Session, clearance: str, text: str, where: str) -> None:
    forbidden = set(CANARIES) - _readable_canaries(clearance)
    for word in forbidden:
        assert word not in text, f"{where}: {word} shown to a {clearance} reader"
    for banner in ("TOP SECRET", "SECRET", "CONFIDENTIAL"):
        if banner in text:
            assert session.can_read(M(banner)), f"{where}: {banner} shown to {clearance}"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reader=st.sampled_from(sorted(READERS)), which=st.sampled_from(["all", "low", "external"]))
def test_no_read_up_through_runs(env: Env, reader: str, which: str) -> None:
    session = env.ws.session(reader)
    clearance = READERS[reader]
    ref = env.runs[which]
    runs = Runs(session)
    # The run's true marking, as its writer sees it.
    marking = Runs(env.ws.session("ted")).get(ref).marking
    visible = bool(session.can_read(marking))
    listed = {s.ref for s in runs.list()}
    assert (ref in listed) == visible
    api_list = env.get(reader, "/v1/eval/runs").json()
    assert (ref in {s["ref"] for s in api_list["items"]}) == visible
    paths = ["", "/items", "/report"]
    if visible:
        summary = runs.get(ref)
        items = list(runs.items(ref, transcripts=True))
        assert all(session.can_read(r.marking) for r in items)
        text = json.dumps([summary.to_dict(), [r.to_dict(transcript=True) for r in items]])
        _check(session, clearance, text, "library")
        for item in items:
            _check(session, clearance, json.dumps(runs.transcript(ref, item.item_id)), "transcript")
        for path in paths:
            r = env.get(reader, f"/v1/eval/runs/{ref}{path}")
            assert r.status_code == 200
            _check(session, clearance, r.text, f"api{path}")
    else:
        for call in (
            lambda: runs.get(ref),
            lambda: list(runs.items(ref)),
            lambda: runs.report(ref),
            lambda: runs.transcript(ref, "probe-0"),
            lambda: runs.compare(ref, ref),
        ):
            with pytest.raises(NotFound):
                call()
        for path in paths:
            hidden = env.get(reader, f"/v1/eval/runs/{ref}{path}")
            missing = env.get(reader, f"/v1/eval/runs/{MISSING}{path}")
            assert hidden.status_code == missing.status_code == 404
            assert hidden.text.replace(ref, MISSING) == missing.text
