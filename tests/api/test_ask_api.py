"""``POST /v1/ask``: marked answers, the same refusal either way, and the error conventions."""

from __future__ import annotations

import json

from garrison.api import MARKING_HEADER
from garrison.assist import REFUSAL

from .conftest import Env


def test_answer_is_marked_in_body_and_header(env: Env) -> None:
    response = env.client.post(
        "/v1/ask", json={"question": "When did the depot open?"}, headers=env.auth("sam")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["marking"] == response.headers[MARKING_HEADER]
    assert not body["refused"] and body["citations"]
    assert any("depot opened on Monday" in c["quote"] for c in body["citations"])
    assert body["generator"] == "extractive"


def test_a_reader_below_a_source_never_sees_it(env: Env) -> None:
    response = env.client.post(
        "/v1/ask",
        json={"question": "Where does the reserve fuel move to on Thursday?"},
        headers=env.auth("una"),
    )
    assert response.status_code == 200
    text = response.text
    assert "HARROW" not in text and "Reserve fuel" not in text
    assert response.headers[MARKING_HEADER] == "UNCLASSIFIED"
    # The SECRET memo's UNCLASSIFIED paragraph may be quoted, but not the memo's id.
    opened = env.client.post(
        "/v1/ask", json={"question": "When did the depot open?"}, headers=env.auth("una")
    ).json()
    memo = [c for c in opened["citations"] if "depot opened on Monday" in c["quote"]]
    assert memo and all("doc_id" not in c and c["locator"] == {} for c in memo)


def test_refusal_is_identical_with_and_without_unreadable_matches(env: Env) -> None:
    def ask(question: str) -> dict[str, object]:
        response = env.client.post("/v1/ask", json={"question": question}, headers=env.auth("una"))
        assert response.status_code == 200
        body = response.json()
        body.pop("timings")
        body.pop("question")
        return body

    unreadable, nothing = ask("HARROW"), ask("xylophonequartz")
    assert unreadable == nothing and unreadable["refused"]
    assert unreadable["answer"] == f"(U) {REFUSAL}"


def test_error_conventions(env: Env) -> None:
    post = env.client.post
    assert post("/v1/ask", json={"question": "depot"}).status_code == 401
    too_high = post("/v1/ask", json={"question": "(S) depot"}, headers=env.auth("una"))
    assert too_high.status_code == 403
    bad_mark = post("/v1/ask", json={"question": "(S//BOGUS) depot"}, headers=env.auth("sam"))
    assert bad_mark.status_code == 400
    assert post("/v1/ask", json={"question": ""}, headers=env.auth("sam")).status_code == 422
    unknown = post(
        "/v1/ask", json={"question": "depot", "conversation": "a" * 32}, headers=env.auth("sam")
    )
    assert unknown.status_code == 404


def test_conversations_over_the_api_are_the_owners(env: Env) -> None:
    first = env.client.post(
        "/v1/ask", json={"question": "depot convoy", "conversation": "new"}, headers=env.auth("sam")
    )
    conv_id = first.json()["conversation_id"]
    assert first.status_code == 200 and conv_id
    again = env.client.post(
        "/v1/ask", json={"question": "and the trucks?", "conversation": conv_id},
        headers=env.auth("sam"),
    )  # fmt: skip
    assert again.status_code == 200 and again.json()["conversation_id"] == conv_id
    other = env.client.post(
        "/v1/ask", json={"question": "trucks", "conversation": conv_id}, headers=env.auth("stu")
    )
    assert other.status_code == 404


def test_streamed_answer_sends_the_marking_before_any_text(env: Env) -> None:
    headers = {**env.auth("sam"), "Accept": "text/event-stream"}
    response = env.client.post(
        "/v1/ask", json={"question": "When did the depot open?"}, headers=headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: ")
        events.append((name[7:], json.loads(data[6:])))
    assert events[0][0] == "marking" and events[-1][0] == "answer"
    final = events[-1][1]
    assert events[0][1]["marking"] == final["marking"] == response.headers[MARKING_HEADER]
    sentences = [data for name, data in events if name == "sentence"]
    assert sentences == final["sentences"] and sentences
    assert [d for n, d in events if n == "citation"] == final["citations"]
    # The same answer as the JSON form.
    plain = env.client.post(
        "/v1/ask", json={"question": "When did the depot open?"}, headers=env.auth("sam")
    ).json()
    assert plain["answer"] == final["answer"] and plain["marking"] == final["marking"]
