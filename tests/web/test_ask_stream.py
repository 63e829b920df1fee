"""The Ask page's streamed answers over plain HTTP: ``POST /ui/ask/stream`` and the follow-up
stream of a conversation.

Events come in order with the marking first, they say what the form post's page says, a refusal
reads the same whether or not unreadable sources exist, another subject's conversation looks
missing, and the CSRF token is required exactly as on the forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.assist import REFUSAL, ask
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditAction
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.assist.conftest import CANARIES, FAST, MEMO_S, MEMO_U, SYSTEM_HIGH, write_corpus
from tests.web.conftest import WebEnv, csrf_of

#: Viewers of the corpus: name -> clearance.
READERS = {"uma": "U", "sam": "S", "sue": "S"}
#: A readable document whose text carries markup and links.
HOSTILE = (
    "(U) The osprey signal reads <script>alert('osprey')</script> at the gate. "
    "The osprey chart is at [the osprey map](http://evil.example/osprey) and "
    "![osprey](http://evil.example/o.png) beside it.\n"
)
_BANNERS = re.compile(r'id="banner-(?:top|bottom)"[^>]*>([^<]*)<')
ORDER = re.compile(r"marking question (sentence )+(citation )*done")


def build_ask_env(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The assistant's marked corpus (and the hostile document), indexed, with viewers."""
    path = root / "ws"
    ws = Workspace.init(path, system_high=SYSTEM_HIGH)
    write_corpus(root / "in")
    (root / "in" / "osprey.txt").write_text(HOSTILE)
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    tokens = {}
    for name, clearance in READERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=("viewer",)))
        tokens[name] = create_token(system, name, 30)[1]
    docs = {Path(d["filename"]).name: d["id"] for d in Documents(system).list()}
    ws.close()
    return path, tokens, docs


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    path, tokens, docs = build_ask_env(tmp_path_factory.mktemp("askstream"))
    app = create_app(path, WebSettings())
    with TestClient(app):
        env = WebEnv(path=path, app=app, tokens=tokens, docs=docs)
        yield env
        for client in env.clients:
            client.close()


def parse_events(body: str) -> list[tuple[str, Any]]:
    """The (name, data) of each server-sent event in ``body``."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def _stream(client: TestClient, question: str, path: str = "/ui/ask/stream", **fields: str) -> Any:
    csrf = fields.pop("csrf", None) or csrf_of(client.get("/ui/ask").text)
    return client.post(path, data={"question": question, "csrf": csrf, **fields})


def _names(events: list[tuple[str, Any]]) -> str:
    return "".join(f"{name} " for name, _ in events).strip()


def test_events_in_order_marking_first_then_text_then_citations(env: WebEnv) -> None:
    sam = env.login("sam")
    response = _stream(sam, "Where does the walruspeak ferry leave from?")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["X-Garrison-Marking"] == "SECRET"
    assert response.headers["cache-control"] == "no-store"
    events = parse_events(response.text)
    assert ORDER.fullmatch(_names(events)), _names(events)
    name, marking = events[0]
    assert name == "marking"
    assert marking["marking"] == marking["page_marking"] == "SECRET"
    assert marking["banner_class"] == marking["page_banner_class"] == "banner-s"
    assert marking["anchor"] == "answer"
    # The first event carries markings only: no answer text has come yet.
    assert "walruspeak" not in json.dumps(marking) and "pier" not in json.dumps(marking)
    question = events[1][1]
    assert question == {"text": "Where does the walruspeak ferry leave from?", "portion": "(U)"}
    sentences = [data for name, data in events if name == "sentence"]
    citations = [data for name, data in events if name == "citation"]
    portions = {s["text"]: s["portion"] for s in sentences}
    assert portions["The harbor ferry walruspeak leaves the north pier at dawn."] == "(S)"
    numbers = [n for s in sentences for n in s["citations"]]
    assert sorted(numbers) == [c["n"] for c in citations]
    doc = env.docs["walruspeak.txt"]
    assert all(c["link"].startswith("/ui/documents/") for c in citations)
    assert any(c["link"].startswith(f"/ui/documents/{doc}#e-") for c in citations)
    done = events[-1][1]
    assert done["refused"] is False and done["generator"] == "extractive"
    assert done["conversation_id"] is None and done["conversation_url"] is None


def test_the_stream_says_what_the_form_page_says(env: WebEnv) -> None:
    question = f"When does the {MEMO_U} timetable change?"
    uma = env.login("uma")
    events = parse_events(_stream(uma, question).text)
    csrf = csrf_of(uma.get("/ui/ask").text)
    page = uma.post("/ui/ask", data={"question": question, "csrf": csrf})
    assert page.status_code == 200
    marking = events[0][1]
    assert marking["page_marking"] == page.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    assert _BANNERS.findall(page.text) == ["UNCLASSIFIED"] * 2
    ws = Workspace.open(env.path)
    try:
        expected = ask(ws.session("uma"), question)
    finally:
        ws.close(checkpoint=False)
    sentences = [d for n, d in events if n == "sentence"]
    assert [s["text"] for s in sentences] == [s.text for s in expected.sentences]
    assert [s["portion"] for s in sentences] == [s.portion for s in expected.sentences]
    citations = [d for n, d in events if n == "citation"]
    assert [c["quote"] for c in citations] == [c.quote for c in expected.citations]
    for s in sentences:
        assert s["text"] in page.text
    # uma may not read the SECRET memo: the quote comes without a link, and nothing of it leaks.
    assert citations and all(c["link"] is None for c in citations)
    body = json.dumps(events)
    assert env.docs["memo.txt"] not in body and "/ui/documents/" not in body
    assert MEMO_S not in body and "SECRET" not in body


def test_a_refusal_streams_the_same_with_and_without_unreadable_matches(env: WebEnv) -> None:
    uma = env.login("uma")
    unreadable = _stream(uma, "walruspeak narwhalglow")  # exist, but not for uma
    nothing = _stream(uma, "xylophonequartz")  # exist nowhere
    assert unreadable.status_code == nothing.status_code == 200
    assert unreadable.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    assert unreadable.text.replace("walruspeak narwhalglow", "Q") == nothing.text.replace(
        "xylophonequartz", "Q"
    )
    events = parse_events(nothing.text)
    assert _names(events) == "marking question sentence done"
    assert events[0][1]["marking"] == "UNCLASSIFIED"
    assert events[2][1]["text"] == REFUSAL
    assert events[-1][1]["refused"] is True
    assert "walruspeak" not in unreadable.text.replace("walruspeak narwhalglow", "Q")


def test_refused_forms_answer_with_one_error_event(env: WebEnv) -> None:
    uma = env.login("uma")
    above = _stream(uma, "harbor ferry", question_marking="SECRET")
    assert above.status_code == 403
    assert above.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    [(name, data)] = parse_events(above.text)
    assert name == "error" and data["status"] == 403 and data["message"]
    bad = _stream(uma, "harbor ferry", question_marking="NOT A MARKING")
    assert bad.status_code == 400 and parse_events(bad.text)[0][0] == "error"
    empty = _stream(uma, "   ")
    assert empty.status_code == 400 and parse_events(empty.text)[0][0] == "error"
    assert _stream(uma, "harbor ferry", k="0").status_code == 400  # the form's own check


def test_csrf_is_required_and_nothing_is_asked_without_it(env: WebEnv) -> None:
    sam = env.login("sam")
    kept = parse_events(_stream(sam, "harbor ferry north pier", keep="1").text)
    conv_id = kept[-1][1]["conversation_id"]
    for path in ("/ui/ask/stream", f"/ui/ask/conversations/{conv_id}/stream"):
        for data in ({}, {"csrf": "forged"}):
            before = len(env.audit_tail(10_000))
            response = sam.post(path, data={"question": "harbor ferry", **data})
            assert response.status_code == 403 and "The form expired" in response.text
            assert not response.headers["content-type"].startswith("text/event-stream")
            after = env.audit_tail(10_000)[before:]
            assert [e.action for e in after] == [AuditAction.WEB_CSRF.value]
    page = sam.get(f"/ui/ask/conversations/{conv_id}")
    assert page.text.count('class="answer"') == 1  # no turn was added


def test_signed_out_browsers_are_sent_to_sign_in(env: WebEnv) -> None:
    response = env.client().post("/ui/ask/stream", data={"question": "harbor", "csrf": "x"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"


def test_a_kept_question_starts_a_conversation(env: WebEnv) -> None:
    sue = env.login("sue")
    kept = _stream(sue, "Where does the walruspeak ferry leave from?", keep="1")
    events = parse_events(kept.text)
    done = events[-1][1]
    conv_id = done["conversation_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", conv_id)
    assert done["conversation_url"] == f"/ui/ask/conversations/{conv_id}"
    assert done["conversation_marking"] == "SECRET"
    page = sue.get(done["conversation_url"])
    assert page.status_code == 200 and "walruspeak leaves the north pier" in page.text
    assert f'data-stream="/ui/ask/conversations/{conv_id}/stream"' in page.text


def test_follow_ups_stream_into_the_conversation_with_its_banner(env: WebEnv) -> None:
    sue = env.login("sue")
    first = parse_events(_stream(sue, "greenhouse tomatoes water", keep="1", k="1").text)
    conv_id = first[-1][1]["conversation_id"]
    assert first[0][1]["page_marking"] == "UNCLASSIFIED"
    path = f"/ui/ask/conversations/{conv_id}/stream"
    csrf = csrf_of(sue.get(f"/ui/ask/conversations/{conv_id}").text)
    second = parse_events(
        _stream(sue, "Where does the walruspeak ferry leave from?", path, csrf=csrf).text
    )
    assert second[0][1]["anchor"] == "turn-2"
    assert second[0][1]["marking"] == second[0][1]["page_marking"] == "SECRET"
    assert second[-1][1]["conversation_marking"] == "SECRET"
    # A question about UNCLASSIFIED text in a conversation that holds a SECRET turn: the
    # history is part of what the answer is made from, so answer and page stay SECRET.
    third = _stream(sue, "greenhouse tomatoes water", path, csrf=csrf, k="1")
    events = parse_events(third.text)
    assert [d["portion"] for n, d in events if n == "sentence"] == ["(U)"]
    assert events[0][1]["marking"] == "SECRET"
    assert events[0][1]["page_marking"] == third.headers["X-Garrison-Marking"] == "SECRET"
    assert events[0][1]["anchor"] == "turn-3"
    page = sue.get(f"/ui/ask/conversations/{conv_id}")
    assert 'id="turn-3"' in page.text and _BANNERS.findall(page.text) == ["SECRET"] * 2


def test_another_subjects_conversation_looks_missing(env: WebEnv) -> None:
    sam, sue = env.login("sam"), env.login("sue")
    kept = parse_events(_stream(sam, "Where does the quokkamoon ferry leave from?", keep="1").text)
    conv_id = kept[-1][1]["conversation_id"]
    csrf = csrf_of(sue.get("/ui/ask").text)
    theirs = _stream(sue, "cargo", f"/ui/ask/conversations/{conv_id}/stream", csrf=csrf)
    missing = _stream(sue, "cargo", f"/ui/ask/conversations/{'0' * 32}/stream", csrf=csrf)
    new = _stream(sue, "cargo", "/ui/ask/conversations/new/stream", csrf=csrf)
    assert theirs.status_code == missing.status_code == new.status_code == 404
    assert theirs.text == missing.text == new.text
    assert theirs.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    assert conv_id not in theirs.text and "quokkamoon" not in theirs.text
    # sam's conversation is untouched, and sam may follow up on it.
    mine = csrf_of(sam.get(f"/ui/ask/conversations/{conv_id}").text)
    follow = _stream(sam, "cargo crates", f"/ui/ask/conversations/{conv_id}/stream", csrf=mine)
    assert follow.status_code == 200 and parse_events(follow.text)[0][1]["anchor"] == "turn-2"


def test_no_canary_above_the_reader_in_any_stream(env: WebEnv) -> None:
    for user, clearance in READERS.items():
        client = env.login(user)
        for word in CANARIES:
            response = _stream(client, f"Where does the {word} ferry leave from?")
            body = response.text.replace(f"the {word} ferry", "Q")
            readable = {"U": {"zebrafox"}, "S": {"zebrafox", "quokkamoon", "walruspeak"}}
            for other in set(CANARIES) - readable[clearance]:
                assert other not in body, (user, word, other)
            for name, data in parse_events(response.text):
                if name == "marking":
                    assert clearance == "S" or data["page_marking"] == "UNCLASSIFIED"


def test_hostile_text_comes_as_data(env: WebEnv) -> None:
    events = parse_events(_stream(env.login("uma"), "What does the osprey signal read?").text)
    quotes = [d["quote"] for n, d in events if n == "citation"]
    assert any("<script>alert('osprey')</script>" in q for q in quotes)  # as text, for textContent
    assert all(d["link"] is None or d["link"].startswith("/ui/documents/") for n, d in events
               if n == "citation")  # fmt: skip
