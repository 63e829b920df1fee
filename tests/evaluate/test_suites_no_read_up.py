"""No read up through evaluation suites, library and API, for the subject grid of
tests/test_no_read_up.py (clearances x citizenships) with the evaluator role added.

Suites mix items at many markings, each item's question holding a canary governed by its
marking. Hypothesis draws a subject and a suite reference (or a reference to nothing) and calls
every suite read path as that subject: nothing above the subject may show (no canary, item id or
count), a suite with no readable item answers exactly like a missing one, and holdout items go
to evaluators only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.api import MARKING_HEADER, create_app
from garrison.core.errors import GarrisonError, NotFound, NotPermitted
from garrison.evaluate._suites import NewItem, Suites
from garrison.security.markings import join
from garrison.store.session import Session, SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from tests.test_no_read_up import CLEARANCES, NATIONS, SINGLE, SYSTEM_HIGH

ROLES = ("viewer", "evaluator", "steward")
SUBJECTS = [(c, n, r) for c in CLEARANCES for n in NATIONS for r in ROLES]
BANNERS = [banner for _, banner in SINGLE.values()]
#: Suite name -> (holdout, the banners of its items). Every name but the last is readable by
#: whoever may read one of its items; the last suite's items are all SECRET//NOFORN.
SUITES = {
    "mixed": (False, BANNERS),
    "heldout": (True, BANNERS[::2]),
    "lowhigh": (False, ["UNCLASSIFIED", "SECRET//NOFORN"]),
    "canarysuitenf": (True, ["SECRET//NOFORN", "SECRET//NOFORN"]),
}


def _user(clearance: str, nation: str, role: str) -> str:
    return f"{clearance}{nation}{role}".lower()


@dataclass
class Env:
    ws: Workspace
    client: TestClient
    tokens: dict[str, str]
    #: canary -> the marking that governs it
    canaries: dict[str, str]
    #: suite name -> its ref, id, holdout flag and [(item id, banner, canary)]
    suites: dict[str, tuple[str, str, bool, list[tuple[str, str, str]]]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root: Path = tmp_path_factory.mktemp("suitesnru")
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    system = ws.session()
    system.add_user("builder", SubjectSpec(clearance="S", roles=("evaluator",)))
    builder = Suites(ws.session("builder"))
    canaries: dict[str, str] = {"canarysuitenf": "SECRET//NOFORN"}
    suites = {}
    for name, (holdout, banners) in SUITES.items():
        items = []
        for n, banner in enumerate(banners):
            canary = f"canary{name[:6]}{n:02d}x"
            canaries[canary] = banner
            items.append(
                NewItem(
                    {"question": f"Where does {canary} go?"},
                    {"answer": f"{canary} goes north"},
                    builder.session.parse_marking(banner),
                    where=canary,
                )
            )
        version = builder.create(name, "qa", items, holdout=holdout)
        stored = [
            (i.id, i.marking.banner(), i.input["question"].split()[2])
            for i in builder.items(version.ref)
        ]
        suites[name] = (version.ref, version.id, holdout, stored)
    tokens = {}
    for clearance, nation, role in SUBJECTS:
        user = _user(clearance, nation, role)
        system.add_user(user, SubjectSpec(clearance=clearance, citizenship=nation, roles=(role,)))
        tokens[user] = create_token(system, user, 30)[1]
    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        yield Env(ws, client, tokens, canaries, suites)
    ws.close()


def _can(session: Session, banner: str) -> bool:
    return bool(session.can_read(session.parse_marking(banner)))


def _lib(call: Any) -> tuple[bool, str]:
    try:
        value = call()
    except GarrisonError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, json.dumps(value, default=str, sort_keys=True)


def _api(env: Env, user: str, path: str) -> tuple[int, str, dict[str, str]]:
    response = env.client.get(path, headers={"Authorization": f"Bearer {env.tokens[user]}"})
    return response.status_code, response.text, {k.lower(): v for k, v in response.headers.items()}


@settings(max_examples=60, deadline=None)
@given(
    subject=st.sampled_from(SUBJECTS),
    name=st.sampled_from([*SUITES, None]),
    how=st.sampled_from(["name", "ref", "id"]),
)
def test_suites_never_reveal_what_the_reader_may_not_read(
    env: Env, subject: tuple[str, str, str], name: str | None, how: str
) -> None:
    user = _user(*subject)
    session = env.ws.session(user)
    suites = Suites(session)
    evaluator = subject[2] == "evaluator"
    forbidden = [w for w, m in env.canaries.items() if not _can(session, m)]
    hidden_ids = [
        i
        for _, _, _, items in env.suites.values()
        for i, banner, _ in items
        if not _can(session, banner)
    ]
    hidden_suites = [
        sid
        for _, sid, _, items in env.suites.values()
        if not any(_can(session, b) for _, b, _ in items)
    ]
    if name is None:
        ref = {"name": "nosuchsuite", "ref": "nosuchsuite@0123456789ab", "id": "0" * 64}[how]
        readable: list[tuple[str, str, str]] = []
        holdout = False
    else:
        sref, sid, holdout, items = env.suites[name]
        ref = {"name": name, "ref": sref, "id": sid}[how]
        readable = [(i, b, c) for i, b, c in items if _can(session, b)]

    answers: list[str] = []
    ok, text = _lib(lambda: [v.to_dict() for v in suites.list()])
    assert ok
    answers.append(text)
    listed = {v["name"]: v for v in json.loads(text)}
    for sname, (_, _, _, items) in env.suites.items():
        count = sum(_can(session, b) for _, b, _ in items)
        if count:
            assert listed[sname]["count"] == count
            assert (
                listed[sname]["marking"]
                == join(
                    *(session.parse_marking(b) for _, b, _ in items if _can(session, b))
                ).banner()
            )
        else:
            assert sname not in listed

    ok, shown = _lib(lambda: suites.get(ref).to_dict())
    answers.append(shown)
    ok_items, items_text = _lib(lambda: [i.to_dict() for i in suites.items(ref)])
    answers.append(items_text)
    api_show = _api(env, user, f"/v1/eval/suites/{ref}")
    api_items = _api(env, user, f"/v1/eval/suites/{ref}/items?limit=500")
    api_list = _api(env, user, "/v1/eval/suites")
    answers += [api_show[1], api_items[1], api_list[1], *api_show[2].values()]
    if not readable:
        # Missing and forbidden read the same (the reference aside).
        assert not ok and shown.startswith(NotFound.__name__)
        assert shown.replace(ref, "REF") == "NotFound: No evaluation suite REF."
        assert not ok_items and items_text.replace(ref, "REF") == shown.replace(ref, "REF")
        assert api_show[0] == api_items[0] == 404
    else:
        assert ok and json.loads(shown)["count"] == len(readable)
        assert api_show[0] == 200
        assert api_show[2][MARKING_HEADER.lower()] == json.loads(shown)["marking"]
        if holdout and not evaluator:
            assert not ok_items and items_text.startswith(NotPermitted.__name__)
            assert api_items[0] == 403
        else:
            assert ok_items
            got = [(i["id"], i["marking"]) for i in json.loads(items_text)]
            assert got == [(i, b) for i, b, _ in readable]
            assert api_items[0] == 200 and json.loads(api_items[1])["total"] == len(readable)
    # What the subject asked for is echoed back in the not-found answer: not a leak.
    everything = "\n".join(answers).replace(ref, "REF")
    for word in forbidden:
        assert word not in everything, (user, word)
    for hidden in [*hidden_ids, *hidden_suites]:
        assert hidden not in everything and hidden[:12] not in everything, user
