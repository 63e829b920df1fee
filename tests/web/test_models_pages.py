"""The Models pages: the versions one may read, a version's card and lineage, and the classify
form -- banners from the join of what is shown, one 404 page for unreadable and missing."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from garrison.models import ModelVersion
from garrison.security.audit import AuditAction
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from tests.models.registered import URGENT_P, register_test_models
from tests.models.tiny import tiny_sentence_transformer
from tests.web.conftest import WebEnv, csrf_of
from tests.web.test_pages import banner

GREEN = "banner-u"
BLUE = "banner-c"
RED = "banner-s"


@pytest.fixture(scope="module")
def models(web: WebEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelVersion]:
    root = tmp_path_factory.mktemp("models-web")
    tiny = tiny_sentence_transformer(root / "tiny")
    ws = Workspace.open(web.path)
    try:
        return register_test_models(ws.session("stu"), tiny, root)
    finally:
        ws.close(checkpoint=False)


def _page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    return response.text


def _names(html: str) -> set[str]:
    return set(re.findall(r'<a href="/ui/models/[^"]+">([^<]+)</a> <code>', html))


def _ref(version: ModelVersion) -> str:
    return quote(version.ref, safe="")


def _predict(client: TestClient, ref: str, page_html: str, **fields: str) -> httpx.Response:
    data = {"csrf": csrf_of(page_html), "text": "convoy fuel report", **fields}
    return client.post(f"/ui/models/{ref}/predict", data=data)


# -- the list -----------------------------------------------------------------------------------


def test_the_models_page_lists_what_each_reader_may_read(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    una = web.login("una")
    low = _page(una, "/ui/models")
    assert _names(low) == {"tiny", "topic"}
    assert banner(low) == (GREEN, "UNCLASSIFIED")
    assert "(U)" in low and "(C)" not in low
    for hidden in ("topic-s", "topic-c", "tiny-c", models["topic-s"].id[:12]):
        assert hidden not in low
    sam = web.login("sam")
    high = _page(sam, "/ui/models")
    assert _names(high) == set(models)
    assert banner(high) == (RED, "SECRET//NOFORN")
    assert "(S//NF)" in high and "(C)" in high
    # Each row names its base (a link), its kind, version and who registered it.
    row = next(r for r in high.split("<tr>") if ">topic-c</a>" in r)
    assert f'href="/ui/models/{_ref(models["tiny-c"])}"' in row
    assert "classifier" in row and "stu" in row
    cal = web.login("cal")  # CONFIDENTIAL
    conf = _page(cal, "/ui/models")
    assert _names(conf) == {"tiny", "tiny-c", "topic", "topic-c"}
    assert banner(conf) == (BLUE, "CONFIDENTIAL")


def test_the_navigation_links_the_models_page(web: WebEnv, models: dict[str, ModelVersion]) -> None:
    html = _page(web.login("una"), "/ui/models")
    assert '<a href="/ui/models" aria-current="page">Models</a>' in html
    assert '<a href="/ui/models">Models</a>' in _page(web.login("una"), "/ui/documents")


def test_the_models_page_is_paginated(web: WebEnv, models: dict[str, ModelVersion]) -> None:
    app = create_app(web.path, WebSettings(page_size=2))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        page = client.get("/ui/login")
        signed = client.post(
            "/ui/login", data={"token": web.tokens["sam"], "csrf": csrf_of(page.text)}
        )
        assert signed.status_code == 303
        seen: list[str] = []
        pages = []
        url = "/ui/models"
        for number in (1, 2, 3):
            html = _page(client, url)
            pages.append(html)
            following = re.search(r'<a rel="next" href="([^"]+)"', html)
            url = following.group(1).replace("&amp;", "&") if following else ""
            seen += sorted(_names(html))
            assert len(_names(html)) == (2 if number < 3 else 1)
            assert ('rel="prev"' in html) == (number > 1)
            assert ('rel="next"' in html) == (number < 3)
            assert "Model versions you may read (5)" in html
        assert sorted(seen) == sorted(models)
        # Each page's banner is the join of the rows on it, not of the whole list.
        for html in pages:
            shown = set(re.findall(r'<td><span class="portion"[^>]*>\(([^)]+)\)</span>', html))
            if shown == {"U"}:
                assert banner(html) == (GREEN, "UNCLASSIFIED")
        assert url == ""  # the last page has no next link
        refused = client.get("/ui/models?cursor=not-a-cursor")
        assert refused.status_code == 400 and banner(refused.text) == (GREEN, "UNCLASSIFIED")


# -- one version --------------------------------------------------------------------------------


def test_a_model_page_shows_identity_lineage_card_and_metrics(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    topic = models["topic"]
    html = _page(web.login("una"), f"/ui/models/{_ref(topic)}")
    assert banner(html) == (GREEN, "UNCLASSIFIED")
    assert topic.id in html and "classifier" in html
    assert f'href="/ui/models/{_ref(models["tiny"])}"' in html  # the base, readable: a link
    assert "Triage of convoy reports by urgency." in html
    assert "Trained on synthetic reports only." in html
    # Metrics from the card dict, nested per split and class, with their intervals.
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td class=\"metric-value\">([^<]+)</td><td>([^<]+)</td>", html
    )
    assert ("test › accuracy", "0.850", "[0.800, 0.900]") in rows
    assert ("test › per_class › urgent › precision", "0.750", "[0.600, 0.880]") in rows
    assert ("ece", "0.040", "[0.020, 0.070]") in rows
    assert re.search(r"<dt>Files</dt><dd>2</dd>", html)
    # By name (the newest version) too.
    assert topic.id in _page(web.login("una"), "/ui/models/topic")


def test_a_model_page_banner_is_the_join_of_the_model_and_its_base(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    html = _page(web.login("sam"), f"/ui/models/{_ref(models['topic-c'])}")
    assert banner(html) == (BLUE, "CONFIDENTIAL")
    assert f'href="/ui/models/{_ref(models["tiny-c"])}"' in html
    secret = _page(web.login("sam"), f"/ui/models/{_ref(models['topic-s'])}")
    assert banner(secret) == (RED, "SECRET//NOFORN")


def test_an_unreadable_model_is_the_same_404_page_as_a_missing_one(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    una = web.login("una")
    pairs = [
        ("topic-s", "topic-x"),
        (models["topic-s"].id, "f" * 64),
        (_ref(models["topic-s"]), quote(f"topic-s@{'0' * 12}", safe="")),
        (_ref(models["tiny-c"]), quote(f"tiny-x@{'0' * 12}", safe="")),
    ]
    for forbidden, missing in pairs:
        a = una.get(f"/ui/models/{forbidden}")
        b = una.get(f"/ui/models/{missing}")
        assert a.status_code == b.status_code == 404
        assert a.content == b.content
        assert dict(a.headers) == dict(b.headers)
        assert "topic-s" not in a.text and "SECRET" not in a.text
        assert banner(a.text) == (GREEN, "UNCLASSIFIED")


# -- classifying --------------------------------------------------------------------------------


def test_the_classify_form_shows_the_prediction_and_its_marking(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    sam = web.login("sam")
    ref = _ref(models["topic-c"])
    html = _page(sam, f"/ui/models/{ref}")
    assert f'action="/ui/models/{ref}/predict"' in html
    assert '<option value="SECRET">' in html and '<option value="TOP SECRET">' not in html
    response = _predict(sam, ref, html, marking="UNCLASSIFIED")
    assert response.status_code == 200, response.text[:500]
    out = response.text
    assert '<strong class="prediction-label">urgent</strong>' in out
    assert f'<span class="prediction-probability">{URGENT_P:.3f}</span>' in out
    # Marked with the join of the text's and the model's (its embedder's included).
    assert '<dd class="prediction-marking">CONFIDENTIAL</dd>' in out
    assert banner(out) == (BLUE, "CONFIDENTIAL")
    assert "convoy fuel report</textarea>" in out
    higher = _predict(sam, ref, html, marking="SECRET")
    assert '<dd class="prediction-marking">SECRET</dd>' in higher.text
    assert banner(higher.text) == (RED, "SECRET")
    events = [e for e in web.audit_tail(20) if e.actor == "sam"]
    assert any(
        e.action == AuditAction.MODEL_PREDICT and e.object_id == models["topic-c"].id
        for e in events
    )


def test_the_classify_form_needs_csrf(web: WebEnv, models: dict[str, ModelVersion]) -> None:
    una = web.login("una")
    ref = _ref(models["topic"])
    response = una.post(f"/ui/models/{ref}/predict", data={"text": "x", "csrf": "wrong"})
    assert response.status_code == 403
    assert "prediction-label" not in response.text
    assert any(e.action == AuditAction.WEB_CSRF and e.actor == "una" for e in web.audit_tail(10))
    assert una.post(f"/ui/models/{ref}/predict", data={"text": "x"}).status_code == 403


def test_the_classify_form_refuses_a_marking_above_the_reader(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    una = web.login("una")
    ref = _ref(models["topic"])
    html = _page(una, f"/ui/models/{ref}")
    for marking in ("SECRET", "TOP SECRET", "NOT A MARKING"):
        response = _predict(una, ref, html, marking=marking)
        assert response.status_code == 400
        text = response.text
        assert 'class="error" role="alert"' in text and "prediction-label" not in text
        assert banner(text) == (GREEN, "UNCLASSIFIED")
    empty = _predict(una, ref, html, text="")
    assert empty.status_code == 400


def test_classifying_with_an_unreadable_model_is_the_same_404(
    web: WebEnv, models: dict[str, ModelVersion]
) -> None:
    una = web.login("una")
    html = _page(una, "/ui/models")
    for marking in ("UNCLASSIFIED", "SECRET"):
        a = _predict(una, "topic-s", html, marking=marking)
        b = _predict(una, "topic-x", html, marking=marking)
        assert a.status_code == b.status_code == 404
        assert a.content == b.content


def test_only_classifiers_have_the_form(web: WebEnv, models: dict[str, ModelVersion]) -> None:
    una = web.login("una")
    html = _page(una, f"/ui/models/{_ref(models['tiny'])}")
    assert "predict-form" not in html and "embedder" in html
    response = _predict(una, _ref(models["tiny"]), html)
    assert response.status_code == 400
    assert "not a classifier" in response.text


def test_pages_hold_no_inline_script(web: WebEnv, models: dict[str, ModelVersion]) -> None:
    sam = web.login("sam")
    for path in ("/ui/models", f"/ui/models/{_ref(models['topic'])}"):
        html = _page(sam, path)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert ' style="' not in html
        assert not re.search(r"<[^>]+\son[a-z]+=", html)


def test_card_rendering_takes_any_shape() -> None:
    from garrison.web._models import card_fields, metric_rows

    rows = metric_rows(
        {
            "accuracy": {"value": 0.9, "low": 0.85, "high": 0.95},
            "validation": {"macro_f1": {"value": 0.7}},
            "examples": 120,
            "recall@10": [0.5, 0.75],
            "ece": {"value": float("nan"), "low": float("nan"), "high": float("nan")},
        }
    )
    assert rows == [
        {"name": "accuracy", "value": "0.900", "interval": "[0.850, 0.950]"},
        {"name": "validation › macro_f1", "value": "0.700", "interval": ""},
        {"name": "examples", "value": "120", "interval": ""},
        {"name": "recall@10", "value": "0.500, 0.750", "interval": ""},
        {"name": "ece", "value": "n/a", "interval": "[n/a, n/a]"},
    ]
    assert metric_rows(0.5) == [{"name": "metric", "value": "0.500", "interval": ""}]
    fields = card_fields(
        {
            "intended_use": "Triage.",
            "license": None,
            "labels": ["a", "b"],
            "training_data": [{"name": "reports", "records": 3}],
            "metrics": {"accuracy": {"value": 1.0}},
        }
    )
    assert fields[:3] == [
        {"label": "Intended use", "text": "Triage."},
        {"label": "License", "text": "—"},
        {"label": "Labels", "text": "a, b"},
    ]
    assert fields[3]["label"] == "Training data" and '"records": 3' in fields[3]["pre"]
    assert len(fields) == 4  # metrics are their own table
