"""``POST /v1/ask``: marked answers, the same refusal either way, and the error conventions."""

from __future__ import annotations

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
