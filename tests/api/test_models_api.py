"""Models in the API: the paginated listing per reader, and classifying texts with POST
/v1/models/{ref}/predict -- outputs marked with the join, unreadable models answering like
missing ones, the texts' marking checked, and limits on what one request may hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from garrison.api import MARKING_HEADER
from garrison.api._predict import MAX_BODY_BYTES, MAX_TEXT_CHARS, MAX_TEXTS, BodyLimit
from garrison.models import ModelVersion
from garrison.security.audit import AuditAction
from tests.models.registered import URGENT_P, register_test_models
from tests.models.tiny import tiny_sentence_transformer

from .conftest import Env


@pytest.fixture(scope="module")
def models(env: Env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelVersion]:
    root = tmp_path_factory.mktemp("models-api")
    tiny = tiny_sentence_transformer(root / "tiny")
    ws = env.workspace()
    try:
        return register_test_models(ws.session("stu"), tiny, root)
    finally:
        ws.close(checkpoint=False)


def _predict(env: Env, user: str, ref: str, body: Any) -> Any:
    return env.client.post(f"/v1/models/{ref}/predict", json=body, headers=env.auth(user))


def _listing(env: Env, user: str, **params: Any) -> Any:
    response = env.client.get("/v1/models", params=params, headers=env.auth(user))
    assert response.status_code == 200, response.text
    return response.json()


# -- listing ------------------------------------------------------------------------------------


def test_each_reader_lists_only_the_versions_they_dominate(
    env: Env, models: dict[str, ModelVersion]
) -> None:
    low = _listing(env, "una")
    assert {m["name"] for m in low["items"]} == {"tiny", "topic"}
    assert low["total"] == 2 and low["next_cursor"] is None
    assert low["marking"] == "UNCLASSIFIED"
    high = _listing(env, "sam")
    assert {m["name"] for m in high["items"]} == set(models)
    assert high["marking"] == "SECRET//NOFORN"
    topic = next(m for m in high["items"] if m["name"] == "topic-c")
    assert topic["marking"] == "CONFIDENTIAL"  # registered at U over a C embedder: the join
    assert topic["base"] == models["tiny-c"].id and "manifest" not in topic
    classifiers = _listing(env, "sam", kind="classifier")
    assert {m["name"] for m in classifiers["items"]} == {"topic", "topic-s", "topic-c"}


def test_the_listing_pages_with_an_opaque_cursor(env: Env, models: dict[str, ModelVersion]) -> None:
    full = [m["id"] for m in _listing(env, "sam")["items"]]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = _listing(env, "sam", **params)
        assert page["total"] == len(models) and len(page["items"]) <= 2
        # The page is marked with what is on it, not with the whole listing.
        shown = {m["marking"] for m in page["items"]}
        if shown == {"UNCLASSIFIED"}:
            assert page["marking"] == "UNCLASSIFIED"
        seen += [m["id"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert models["topic"].id not in cursor  # opaque: no id in it
    assert seen == full and pages == 3
    # Totals count readable versions only.
    low = _listing(env, "una", limit=1)
    assert low["total"] == 2 and low["next_cursor"] is not None
    last = _listing(env, "una", limit=1, cursor=low["next_cursor"])
    assert last["next_cursor"] is None and len(last["items"]) == 1


@pytest.mark.parametrize("cursor", ["nonsense!", "eyJ4IjoxfQ", "eyJvZmZzZXQiOi0xfQ"])
def test_a_cursor_the_listing_did_not_give_is_refused(env: Env, cursor: str) -> None:
    response = env.client.get("/v1/models", params={"cursor": cursor}, headers=env.auth("una"))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The cursor is not one this listing gave."


@pytest.mark.parametrize("limit", [0, 501])
def test_the_page_size_is_bounded(env: Env, limit: int) -> None:
    response = env.client.get("/v1/models", params={"limit": limit}, headers=env.auth("una"))
    assert response.status_code == 422


# -- predicting ---------------------------------------------------------------------------------


def test_predictions_carry_the_join_of_input_and_model(
    env: Env, models: dict[str, ModelVersion]
) -> None:
    response = _predict(env, "una", "topic", {"texts": ["convoy fuel report", "radar signal"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["id"] == models["topic"].id
    assert body["model"]["ref"] == models["topic"].ref and body["model"]["kind"] == "classifier"
    assert len(body["predictions"]) == 2
    for p in body["predictions"]:
        assert p["label"] == "urgent"
        assert p["probability"] == pytest.approx(URGENT_P, abs=1e-5)
        assert p["probabilities"]["routine"] == pytest.approx(1 - URGENT_P, abs=1e-5)
        assert p["marking"] == "UNCLASSIFIED"
    assert body["marking"] == response.headers[MARKING_HEADER] == "UNCLASSIFIED"
    # The input's marking is joined in...
    conf = _predict(
        env, "sam", f"topic@{models['topic'].id[:12]}", {"texts": ["x"], "marking": "C"}
    )
    assert conf.status_code == 200, conf.text
    assert conf.json()["predictions"][0]["marking"] == "CONFIDENTIAL"
    assert conf.headers[MARKING_HEADER] == "CONFIDENTIAL"
    # ... and so is the model's, its embedder's included.
    joined = _predict(env, "sam", "topic-c", {"texts": ["x"], "marking": "UNCLASSIFIED"})
    assert joined.json()["predictions"][0]["marking"] == "CONFIDENTIAL"
    high = _predict(env, "sam", models["topic-s"].id, {"texts": ["x"], "marking": "C"})
    assert high.json()["predictions"][0]["marking"] == "SECRET//NOFORN"
    assert high.json()["model"]["marking"] == "SECRET//NOFORN"


def test_predicting_is_audited(env: Env, models: dict[str, ModelVersion]) -> None:
    assert _predict(env, "una", "topic", {"texts": ["a", "b", "c"]}).status_code == 200
    events = [e for e in env.audit_tail(10) if e.actor == "una"]
    use = next(e for e in events if e.action == AuditAction.MODEL_USE)
    assert use.object_id == models["topic"].id and use.details["purpose"] == "predict"
    predict = next(e for e in events if e.action == AuditAction.MODEL_PREDICT)
    assert predict.object_id == models["topic"].id
    assert predict.details == {"count": 3, "input_marking": "UNCLASSIFIED"}


@pytest.mark.parametrize(
    "body",
    [
        {"texts": ["x"]},
        {"texts": ["x"], "marking": "SECRET"},  # invalid for una whatever the model
        {"texts": []},
        {"texts": ["x"], "extra": 1},
    ],
)
def test_an_unreadable_classifier_answers_exactly_like_a_missing_one(
    env: Env, models: dict[str, ModelVersion], body: dict[str, Any]
) -> None:
    # Same-length references: the one the reader may not read, and one that does not exist.
    forbidden = _predict(env, "una", "topic-s", body)
    missing = _predict(env, "una", "topic-x", body)
    assert forbidden.status_code == missing.status_code
    assert forbidden.content.replace(b"topic-s", b"REF") == missing.content.replace(
        b"topic-x", b"REF"
    )
    assert dict(forbidden.headers) == dict(missing.headers)
    by_id = _predict(env, "una", models["topic-s"].id, body)
    missing_id = _predict(env, "una", "f" * 64, body)
    assert by_id.status_code == missing_id.status_code
    assert by_id.content.replace(models["topic-s"].id.encode(), b"ID") == (
        missing_id.content.replace(b"f" * 64, b"ID")
    )
    if body == {"texts": ["x"]}:
        assert forbidden.status_code == 404
        assert forbidden.json()["error"]["code"] == "not-found"
        assert models["topic-s"].id not in forbidden.text


def test_a_model_that_is_not_a_classifier_is_refused(
    env: Env, models: dict[str, ModelVersion]
) -> None:
    response = _predict(env, "una", "tiny", {"texts": ["x"]})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "not a classifier" in message and message.count(".") == 1


@pytest.mark.parametrize(
    ("user", "marking"),
    [
        ("una", "SECRET"),  # above the caller
        ("una", "CONFIDENTIAL"),
        ("sam", "TOP SECRET"),  # above system high, whoever asks
        ("sam", "SECRET//REL TO USA, GBR//NOFORN"),  # not a valid marking
        ("sam", "NOT A MARKING"),
    ],
)
def test_the_texts_marking_must_be_one_the_caller_dominates(
    env: Env, models: dict[str, ModelVersion], user: str, marking: str
) -> None:
    response = _predict(env, user, "topic", {"texts": ["x"], "marking": marking})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in {"invalid-input", "invalid-marking"}
    # Nothing was predicted: no use of the model was audited for the refused request.
    last = env.audit_tail(1)[0]
    assert last.action != AuditAction.MODEL_PREDICT


def test_limits_on_how_much_one_request_holds(env: Env, models: dict[str, ModelVersion]) -> None:
    many = _predict(env, "una", "topic", {"texts": ["x"] * (MAX_TEXTS + 1)})
    assert many.status_code == 400
    assert (
        many.json()["error"]["message"]
        == f"At most {MAX_TEXTS} texts are classified in one request."
    )
    long = _predict(env, "una", "topic", {"texts": ["y" * (MAX_TEXT_CHARS + 1)]})
    assert long.status_code == 400
    assert "characters" in long.json()["error"]["message"]
    empty = _predict(env, "una", "topic", {"texts": []})
    assert empty.status_code == 400
    assert _predict(env, "una", "topic", {"texts": ["x"] * MAX_TEXTS}).status_code == 200
    wrong = _predict(env, "una", "topic", {"texts": "not a list"})
    assert wrong.status_code == 422
    huge = env.client.post(
        "/v1/models/topic/predict",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={**env.auth("una"), "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json() == {
        "error": {
            "code": "too-large",
            "message": f"The request body is larger than {MAX_BODY_BYTES} bytes.",
        }
    }


# -- the body limit on its own ------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[TestClient]:
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo_body(body: dict[str, Any]) -> dict[str, Any]:
        return body

    app.add_middleware(BodyLimit, limit=64)
    with TestClient(app) as client:
        yield client


def test_the_body_limit_counts_bodies_sent_without_a_length(echo: TestClient) -> None:
    def chunks(n: int) -> Iterator[bytes]:
        yield b'{"a": "'
        for _ in range(n):
            yield b"x" * 10
        yield b'"}'

    headers = {"Content-Type": "application/json"}
    assert echo.post("/v1/echo", content=chunks(2), headers=headers).json() == {"a": "x" * 20}
    refused = echo.post("/v1/echo", content=chunks(10), headers=headers)
    assert refused.status_code == 413
    assert echo.post("/v1/echo", json={"a": "x" * 10}).status_code == 200
    too_long = json.dumps({"a": "x" * 100})
    assert echo.post("/v1/echo", content=too_long, headers=headers).status_code == 413


def test_the_body_limit_leaves_other_paths_alone(tmp_path: Path) -> None:
    app = FastAPI()

    @app.post("/ui/form")
    async def form(body: dict[str, Any]) -> dict[str, Any]:
        return {"n": len(body["a"])}

    app.add_middleware(BodyLimit, limit=8)
    with TestClient(app) as client:
        assert client.post("/ui/form", json={"a": "x" * 100}).json() == {"n": 100}


def test_a_classifier_whose_head_names_another_embedder_is_used_by_no_one(
    env: Env, models: dict[str, ModelVersion], tmp_path: Path
) -> None:
    from garrison.models import Models
    from tests.models.registered import classifier_folder

    # Registered without its embedder as base, the classifier would be UNCLASSIFIED over a
    # CONFIDENTIAL embedder: its marking would not cover what it uses, so it is refused to every
    # reader, and the refusal names neither the embedder nor its id.
    ws = env.workspace()
    try:
        Models(ws.session("stu")).register(
            kind="classifier",
            name="topic-h",
            folder=classifier_folder(tmp_path, models["tiny-c"].id, "topic-h"),
        )
    finally:
        ws.close(checkpoint=False)
    for reader in ("una", "sam"):
        refused = _predict(env, reader, "topic-h", {"texts": ["x"]})
        assert refused.status_code == 409
        assert "not its base" in refused.json()["error"]["message"]
        assert models["tiny-c"].id[:12] not in refused.text
