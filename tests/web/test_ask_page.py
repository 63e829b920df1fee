"""The Ask page: marked answers, citations per reader, refusals, conversations, inert text."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import garrison.web._ask as ask_page
from garrison.assist import REFUSAL, Generation, ask
from garrison.assist._text import estimate_tokens
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import Marking, parse_marking
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.assist.conftest import FAST, MEMO_U, SYSTEM_HIGH, write_corpus
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
_DOC_LINK = re.compile(r'href="/ui/documents/([0-9a-f]+)#e-([0-9a-f]+)"')


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    root = tmp_path_factory.mktemp("askweb")
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
    app = create_app(path, WebSettings(page_size=2))
    with TestClient(app):
        env = WebEnv(path=path, app=app, tokens=tokens, docs=docs)
        yield env
        for client in env.clients:
            client.close()


def _ask(client: TestClient, question: str, **fields: str) -> object:
    csrf = csrf_of(client.get("/ui/ask").text)
    return client.post("/ui/ask", data={"question": question, "csrf": csrf, **fields})


def _banners(text: str) -> list[str]:
    return _BANNERS.findall(text)


def test_ask_link_for_viewers_and_form_offers_only_readable_markings(env: WebEnv) -> None:
    page = env.login("uma").get("/ui/ask")
    assert page.status_code == 200
    assert 'href="/ui/ask" aria-current="page">Ask</a>' in page.text
    assert '<option value="UNCLASSIFIED"' in page.text
    assert "SECRET" not in page.text and "CONFIDENTIAL" not in page.text
    assert "SECRET" in env.login("sam").get("/ui/ask").text
    assert _banners(page.text) == ["UNCLASSIFIED"] * 2


def test_answer_banner_portions_and_citation_links_per_reader(env: WebEnv) -> None:
    question = f"When does the {MEMO_U} timetable change?"
    memo = env.docs["memo.txt"]
    sam = env.login("sam")
    response = _ask(sam, question)
    assert response.status_code == 200
    text = response.text
    # The answer is marked with its context: the SECRET memo's chunk holds both portions.
    marking = response.headers["X-Garrison-Marking"]
    assert _banners(text) == [marking] * 2
    assert text.count(f">{marking}</div>") >= 4  # the answer's own banner, above and below
    assert f'<span class="portion" title="Portion marking">(U)</span> The {MEMO_U}' in text
    links = _DOC_LINK.findall(text)
    assert links and links[0][0] == memo
    # The link opens the document viewer at the cited element.
    viewer = sam.get(f"/ui/documents/{memo}")
    assert f'id="e-{links[0][1]}"' in viewer.text
    assert MEMO_U in viewer.text.split(f'id="e-{links[0][1]}"', 1)[1][:400]

    uma = env.login("uma")
    low = _ask(uma, question)
    assert low.status_code == 200
    assert low.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    assert _banners(low.text) == ["UNCLASSIFIED"] * 2
    # The quote is shown with its portion mark, and no link: uma may not read the memo.
    assert f"(U)</span> The {MEMO_U} timetable changes on Monday." in low.text
    assert "Open the cited portion" not in low.text
    assert memo not in low.text and "/ui/documents/" not in low.text
    assert "SECRET" not in low.text and "ottervault" not in low.text


def test_secret_answer_for_a_secret_reader(env: WebEnv) -> None:
    response = _ask(env.login("sam"), "Where does the walruspeak ferry leave from?")
    assert response.headers["X-Garrison-Marking"] == "SECRET"
    assert _banners(response.text) == ["SECRET"] * 2
    assert "(S)</span> The harbor ferry walruspeak leaves the north pier" in response.text
    assert 'class="answer-banner banner-s"' in response.text
    assert env.docs["walruspeak.txt"] in response.text


def test_refusal_page_identical_with_and_without_unreadable_matches(env: WebEnv) -> None:
    uma = env.login("uma")
    unreadable = _ask(uma, "walruspeak narwhalglow")  # exist, but not for uma
    nothing = _ask(uma, "xylophonequartz")  # exist nowhere
    assert unreadable.status_code == nothing.status_code == 200
    assert REFUSAL in unreadable.text
    same_a = unreadable.text.replace("walruspeak narwhalglow", "Q")
    same_b = nothing.text.replace("xylophonequartz", "Q")
    assert same_a == same_b
    assert unreadable.headers["X-Garrison-Marking"] == "UNCLASSIFIED"
    assert "walruspeak" not in same_a and "narwhalglow" not in same_a


def test_invalid_and_unreadable_question_markings_are_refused_on_the_form(env: WebEnv) -> None:
    uma = env.login("uma")
    above = _ask(uma, "harbor ferry", question_marking="SECRET")
    assert above.status_code == 403 and 'role="alert"' in above.text
    assert _banners(above.text) == ["UNCLASSIFIED"] * 2
    bad = _ask(uma, "harbor ferry", question_marking="NOT A MARKING")
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert _ask(uma, "harbor ferry", k="0").status_code == 400


def test_csrf_is_required_on_every_post(env: WebEnv) -> None:
    sam = env.login("sam")
    for data in ({}, {"csrf": "forged"}):
        answer = sam.post("/ui/ask", data={"question": "harbor ferry", **data})
        assert answer.status_code == 403 and "The form expired" in answer.text
    kept = _ask(sam, "harbor ferry north pier", keep="1")
    conv_id = kept.headers["location"].split("/")[-1].split("#")[0]
    follow = sam.post(f"/ui/ask/conversations/{conv_id}", data={"question": "cargo crates"})
    assert follow.status_code == 403
    delete = sam.post(f"/ui/ask/conversations/{conv_id}/delete", data={"csrf": "x"})
    assert delete.status_code == 403
    assert sam.get(f"/ui/ask/conversations/{conv_id}").status_code == 200  # still there


def test_conversations_follow_up_list_open_delete(env: WebEnv) -> None:
    sue = env.login("sue")
    kept = _ask(sue, "Where does the walruspeak ferry leave from?", keep="1")
    assert kept.status_code == 303
    location = kept.headers["location"]
    assert location.startswith("/ui/ask/conversations/") and location.endswith("#latest")
    conv_id = location.split("/")[-1].split("#")[0]
    page = sue.get(f"/ui/ask/conversations/{conv_id}")
    assert page.status_code == 200 and page.headers["X-Garrison-Marking"] == "SECRET"
    assert "walruspeak leaves the north pier" in page.text
    # A follow-up question in the conversation.
    csrf = csrf_of(page.text)
    follow = sue.post(
        f"/ui/ask/conversations/{conv_id}",
        data={"question": "What cargo does it carry?", "csrf": csrf},
    )
    assert follow.status_code == 303
    page = sue.get(f"/ui/ask/conversations/{conv_id}")
    assert "Question 2" in page.text and 'id="turn-2"' in page.text
    assert "crates of engine parts" in page.text
    assert _banners(page.text) == ["SECRET"] * 2
    # A stored turn keeps no document ids; the page links afresh for a reader of the document.
    assert env.docs["walruspeak.txt"] in page.text

    # Two more conversations: newest first, two to a page.
    # One passage each (k=1): UNCLASSIFIED answers, so the first page is UNCLASSIFIED.
    second = _ask(sue, "zebrafox ferry", keep="1", k="1").headers["location"]
    third = _ask(sue, "greenhouse tomatoes water", keep="1", k="1").headers["location"]
    listing = sue.get("/ui/ask/conversations")
    ids = re.findall(r'href="/ui/ask/conversations/([0-9a-f]{32})"', listing.text)
    assert ids == [third.split("/")[-1][:32], second.split("/")[-1][:32]]
    assert 'rel="next"' in listing.text
    later = sue.get("/ui/ask/conversations?page=2")
    assert re.findall(r'href="/ui/ask/conversations/([0-9a-f]{32})"', later.text) == [conv_id]
    assert later.headers["X-Garrison-Marking"] == "SECRET"
    assert listing.headers["X-Garrison-Marking"] == "UNCLASSIFIED"

    # Delete.
    gone = sue.post(f"/ui/ask/conversations/{conv_id}/delete", data={"csrf": csrf_of(listing.text)})
    assert gone.status_code == 303 and gone.headers["location"] == "/ui/ask/conversations"
    assert sue.get(f"/ui/ask/conversations/{conv_id}").status_code == 404


def test_conversation_list_shows_only_ones_own_and_others_look_missing(env: WebEnv) -> None:
    sam, sue = env.login("sam"), env.login("sue")
    kept = _ask(sam, "Where does the quokkamoon ferry leave from?", keep="1")
    conv_id = kept.headers["location"].split("/")[-1].split("#")[0]
    assert conv_id in sam.get("/ui/ask/conversations").text
    assert conv_id not in sue.get("/ui/ask/conversations").text
    missing = "0" * 32
    csrf = csrf_of(sue.get("/ui/ask").text)
    for suffix, data in (
        ("", None),
        ("", {"question": "cargo", "csrf": csrf}),
        ("/delete", {"csrf": csrf}),
    ):
        if data is None:
            theirs = sue.get(f"/ui/ask/conversations/{conv_id}")
            nothing = sue.get(f"/ui/ask/conversations/{missing}")
        else:
            theirs = sue.post(f"/ui/ask/conversations/{conv_id}{suffix}", data=data)
            nothing = sue.post(f"/ui/ask/conversations/{missing}{suffix}", data=data)
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.text == nothing.text
        assert conv_id not in theirs.text and "quokkamoon" not in theirs.text
    assert sam.get(f"/ui/ask/conversations/{conv_id}").status_code == 200  # not deleted


def test_markup_and_links_in_quoted_text_are_inert(env: WebEnv) -> None:
    response = _ask(env.login("uma"), "What does the osprey signal read?")
    assert response.status_code == 200 and "osprey" in response.text
    body = response.text
    assert "<script>alert" not in body and "&lt;script&gt;alert(" in body
    assert 'href="http://evil.example' not in body and "<img" not in body
    # The citation quotes the text as it stands, escaped.
    assert body.count("&lt;/script&gt;") >= 2


@dataclass
class _Scripted:
    """A generator that writes hostile text, one sentence of it a quote of the context."""

    accredited: Marking = field(default_factory=lambda: parse_marking("TOP SECRET"))
    marking: Marking = field(default_factory=lambda: parse_marking("UNCLASSIFIED"))
    name: str = "scripted"
    context_tokens: int = 4096
    max_new_tokens: int = 256

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(
        self, messages: Sequence[dict[str, str]], *, content_marking: Marking
    ) -> Generation:
        return Generation(
            text="The harbor ferry zebrafox leaves the north pier at dawn. "
            "<script>alert('gen')</script> Read [this](http://evil.example/x) now! "
            "![pic](http://evil.example/p.png)",
            marking=parse_marking("UNCLASSIFIED"),
        )


def test_generated_answer_is_inert_and_unsupported_sentences_flagged(
    env: WebEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ask_page, "ask", functools.partial(ask, generator=_Scripted()))
    response = _ask(env.login("uma"), "Where does the zebrafox ferry leave from?")
    assert response.status_code == 200
    body = response.text
    assert "zebrafox leaves the north pier" in body
    assert "<script>alert" not in body and "&lt;script&gt;alert(" in body
    assert 'href="http://evil.example' not in body and "<img" not in body
    assert "[this](http://evil.example/x)" in body  # shown as the text it is
    flagged = re.findall(r'<p class="answer-sentence unsupported">(.*?)</p>', body, re.S)
    assert flagged and all("[unsupported]</strong>" in p for p in flagged)
    assert any("evil.example" in p for p in flagged)
    assert not any("zebrafox leaves" in p for p in flagged)  # the supported one is cited
    assert "Answered by scripted." in body


def test_question_marking_joins_into_the_answer_banner(env: WebEnv) -> None:
    response = _ask(env.login("sam"), "greenhouse tomatoes water", k="1", question_marking="SECRET")
    assert response.status_code == 200
    assert _banners(response.text) == ["SECRET"] * 2
    assert '<p class="asked"><span class="portion" title="Portion marking">(S)</span>' in (
        response.text
    )
    assert "(U)</span> The greenhouse tomatoes need water" in response.text


def test_a_refused_follow_up_shows_the_conversation_with_the_reason(env: WebEnv) -> None:
    sue = env.login("sue")
    kept = _ask(sue, "greenhouse tomatoes water", keep="1", k="1")
    conv_id = kept.headers["location"].split("/")[-1].split("#")[0]
    page = sue.get(f"/ui/ask/conversations/{conv_id}")
    refused = sue.post(
        f"/ui/ask/conversations/{conv_id}",
        data={"question": "harbor", "question_marking": "TOP SECRET", "csrf": csrf_of(page.text)},
    )
    assert refused.status_code == 403 and 'role="alert"' in refused.text
    assert "greenhouse tomatoes need water" in refused.text
    assert _banners(refused.text) == [page.headers["X-Garrison-Marking"]] * 2
    assert sue.get(f"/ui/ask/conversations/{conv_id}").text.count('class="answer"') == 1
