"""The labeling pages over plain HTTP: every form post (with and without its CSRF token), the
queue by clearance, blind overlap, drafts, skips and flags, spans and boxes without script,
typed markings, the image endpoint, the dashboard and the review queue."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.label import LabelProjects, my_labels, task_labels
from garrison.security.markings import dominates, parse_marking
from garrison.web import WebSettings, create_app
from tests.web.label_world import ENTITY_TEXT, LabelEnv, build_label_workspace, csrf_of

_TASK = re.compile(r"/ui/label/tasks/([0-9a-f]+)$")
_BANNER = re.compile(r'id="banner-top"[^>]*>([^<]+)<')


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelEnv]:
    path, tokens, records = build_label_workspace(tmp_path_factory.mktemp("label-web"))
    app = create_app(path, WebSettings())
    with TestClient(app):
        built = LabelEnv(path=path, app=app, tokens=tokens, records=records)
        yield built
        for client in built.clients:
            client.close()


def banner(html: str) -> str:
    found = _BANNER.search(html)
    assert found
    return found.group(1).strip()


def start(client: TestClient, project: str) -> str | None:
    """Post the project's Start form; the task id opened, or None when nothing is left."""
    page = client.get(f"/ui/label/projects/{project}")
    assert page.status_code == 200, page.text
    response = client.post(f"/ui/label/projects/{project}/start", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    return _next_of(response)


def _next_of(response: Any) -> str | None:
    location = response.headers["location"]
    found = _TASK.search(location)
    if found:
        return found.group(1)
    assert location.endswith("?done=1"), location
    return None


def post_task(client: TestClient, task_id: str, data: dict[str, Any]) -> Any:
    page = client.get(f"/ui/label/tasks/{task_id}")
    assert page.status_code == 200, page.text
    return client.post(f"/ui/label/tasks/{task_id}", data={"csrf": csrf_of(page.text), **data})


def task_of(env: LabelEnv, project: str, record_marking: str) -> str:
    """A task id of the project whose record has this marking (read as the steward)."""
    page, _ = LabelProjects(env.session("stew")).tasks(project, limit=100)
    return next(t["id"] for t in page if t["marking"] == record_marking)


def topic_of(env: LabelEnv, task_id: str) -> str:
    steward = env.session("stew")
    page, _ = LabelProjects(steward).tasks("topics", limit=100)
    record = next(t["record_id"] for t in page if t["id"] == task_id)
    return env.records[record][1]


def test_projects_list_and_nav(env: LabelEnv) -> None:
    client = env.login("ann_u")
    page = client.get("/ui/label")
    assert page.status_code == 200
    for name in ("topics", "tags", "entities", "prefs", "answers", "boxes"):
        assert f"/ui/label/projects/{name}" in page.text
    assert banner(page.text) == "UNCLASSIFIED"
    assert 'href="/ui/label" aria-current="page"' in page.text
    assert client.get("/ui/label/projects/nope").status_code == 404


def test_low_annotator_walks_only_readable_tasks_and_higher_ids_look_missing(
    env: LabelEnv,
) -> None:
    client = env.login("ann_u")
    seen: list[str] = []
    task_id = start(client, "topics")
    while task_id is not None:
        page = client.get(f"/ui/label/tasks/{task_id}")
        assert banner(page.text) == "UNCLASSIFIED"
        seen.append(task_id)
        response = client.post(
            f"/ui/label/tasks/{task_id}",
            data={
                "csrf": csrf_of(page.text),
                "action": "submit",
                "value": topic_of(env, task_id),
            },
        )
        assert response.status_code == 303, response.text
        task_id = _next_of(response)
    readable = [
        r
        for r, (m, t, _) in env.records.items()
        if t and dominates(parse_marking("UNCLASSIFIED"), parse_marking(m))
    ]
    assert len(seen) == len(set(seen)) == len(readable)
    # The dashboard counts only what they may read; no annotator table for them.
    dashboard = client.get("/ui/label/projects/topics")
    assert f"({len(readable)} tasks you may read in all)" in dashboard.text
    assert "Annotators" not in dashboard.text and "Agreement" not in dashboard.text
    assert f"Your work: {len(readable)} submitted" in dashboard.text
    # A SECRET task's page, its post and its image are the one 404 page, like a missing id.
    secret = task_of(env, "topics", "SECRET")
    forbidden = client.get(f"/ui/label/tasks/{secret}")
    missing = client.get(f"/ui/label/tasks/{'0' * 32}")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.text == missing.text
    assert "personnel" not in forbidden.text
    csrf = csrf_of(client.get("/ui/label").text)
    posted = client.post(
        f"/ui/label/tasks/{secret}", data={"csrf": csrf, "action": "submit", "value": "weather"}
    )
    assert posted.status_code == 404 and posted.text == missing.text
    assert client.get(f"/ui/label/tasks/{secret}/image").status_code == 404


def test_blind_overlap_and_task_banners(env: LabelEnv) -> None:
    first = env.login("ann_s")
    task_id = start(first, "topics")
    assert task_id is not None
    page = first.get(f"/ui/label/tasks/{task_id}")
    # A task already labeled by ann_u (overlap 2) never shows their label or name.
    assert "ann_u" not in page.text
    marking = banner(page.text)
    assert marking in ("UNCLASSIFIED", "CONFIDENTIAL", "SECRET")
    assert f'id="task-marking">{marking}<' in page.text
    assert page.text.count(marking) >= 2  # top and bottom banners


def test_csrf_is_required_on_every_form(env: LabelEnv) -> None:
    client = env.login("ann_s2")
    before = len(my_labels(env.session("ann_s2"), "prefs"))
    for url in ("/ui/label/projects/prefs/start",):
        for data in ({}, {"csrf": "wrong"}):
            assert client.post(url, data=data).status_code == 403
    assert len(my_labels(env.session("ann_s2"), "prefs")) == before
    task_id = start(client, "prefs")
    assert task_id is not None
    for data in ({"action": "submit", "value": "a"}, {"csrf": "x", "action": "skip"}):
        response = client.post(f"/ui/label/tasks/{task_id}", data=data)
        assert response.status_code == 403
        assert "The form expired" in response.text
    assert [v.status for v in my_labels(env.session("ann_s2"), "prefs")] == ["draft"]
    reviewer = env.login("rev")
    response = reviewer.post(
        f"/ui/label/review/{'0' * 32}", data={"action": "accept", "project": "topics"}
    )
    assert response.status_code == 403


def test_preference_draft_then_submit(env: LabelEnv) -> None:
    client = env.login("ann_s2")
    task_id = start(client, "prefs")
    assert task_id is not None
    page = client.get(f"/ui/label/tasks/{task_id}")
    assert "Text A" in page.text and "Text B" in page.text
    assert 'class="pair-body">Report' in page.text
    saved = post_task(client, task_id, {"action": "draft", "value": "b"})
    assert saved.status_code == 200 and "Draft saved." in saved.text
    assert 'value="b" id="prefer-b" checked' in saved.text
    # The draft comes back first.
    assert start(client, "prefs") == task_id
    bad = post_task(client, task_id, {"action": "submit", "value": "c"})
    assert bad.status_code == 400 and "A preference is" in bad.text
    done = post_task(client, task_id, {"action": "submit", "value": "a"})
    assert done.status_code == 303
    mine = [v for v in my_labels(env.session("ann_s2"), "prefs") if v.task_id == task_id]
    assert [(v.status, v.value) for v in mine] == [("submitted", "a")]
    # A submitted label shows read-only.
    again = client.get(f"/ui/label/tasks/{task_id}")
    assert again.status_code == 200 and "labels never change" in again.text


def test_skip_and_flag_with_reason(env: LabelEnv) -> None:
    client = env.login("ann_u")
    task_id = start(client, "tags")
    assert task_id is not None
    flagged = post_task(client, task_id, {"action": "flag", "reason": ""})
    assert flagged.status_code == 400 and "A flag needs a reason." in flagged.text
    skipped = post_task(client, task_id, {"action": "skip", "reason": "unclear record"})
    assert skipped.status_code == 303
    mine = my_labels(env.session("ann_u"), "tags")
    assert [(v.status, v.reason) for v in mine if v.task_id == task_id] == [
        ("skipped", "unclear record")
    ]
    # A skipped task is no longer theirs to open.
    assert client.get(f"/ui/label/tasks/{task_id}").status_code == 404
    following = _next_of(skipped)
    assert following is not None and following != task_id
    multi = post_task(client, following, {"action": "submit", "value": ["weather", "logistics"]})
    assert multi.status_code == 303
    labels = {v.task_id: v for v in my_labels(env.session("ann_u"), "tags")}
    assert labels[following].value == ["logistics", "weather"]
    assert _next_of(multi) is None  # the skipped task is not handed back to them
    flag_next = start(client, "prefs")
    assert flag_next is not None
    flagged = post_task(client, flag_next, {"action": "flag", "reason": "duplicate record"})
    assert flagged.status_code == 303
    labels = {v.task_id: v for v in my_labels(env.session("ann_u"), "prefs")}
    assert labels[flag_next].flagged and labels[flag_next].reason == "duplicate record"


def test_spans_without_script_keep_exact_offsets(env: LabelEnv) -> None:
    client = env.login("ann_s")
    task_id = start(client, "entities")
    assert task_id is not None
    page = client.get(f"/ui/label/tasks/{task_id}")
    assert "🚚" in page.text
    text = ENTITY_TEXT.removeprefix("(U) ")
    start_at = text.index("Colonel Avery")
    end_at = start_at + len("Colonel Avery")
    place = text.index("Port Sable")
    added = post_task(
        client,
        task_id,
        {"action": "add_span", "new_start": start_at, "new_end": end_at, "new_type": "PERSON"},
    )
    assert added.status_code == 200
    assert f'name="span" value="{start_at},{end_at},PERSON"' in added.text
    assert "<q>Colonel Avery</q>" in added.text
    assert '<mark class="span-mark" data-types="PERSON"' in added.text
    form = {
        "csrf": csrf_of(added.text),
        "span": [f"{start_at},{end_at},PERSON", f"{place},{place + 10},PLACE"],
    }
    removed = client.post(f"/ui/label/tasks/{task_id}", data={**form, "action": "remove_span:0"})
    assert removed.status_code == 200
    assert "PERSON" not in re.sub(
        r"<fieldset class=\"span-types\">.*?</fieldset>", "", removed.text, flags=re.S
    )
    outside = client.post(
        f"/ui/label/tasks/{task_id}",
        data={**form, "span": [f"{place},{len(text) + 5},PLACE"], "action": "submit"},
    )
    assert outside.status_code == 400 and "outside the record" in outside.text
    done = client.post(f"/ui/label/tasks/{task_id}", data={**form, "action": "submit"})
    assert done.status_code == 303
    label = next(v for v in my_labels(env.session("ann_s"), "entities") if v.task_id == task_id)
    assert label.value == [
        {"start": start_at, "end": end_at, "type": "PERSON"},
        {"start": place, "end": place + 10, "type": "PLACE"},
    ]
    assert text[start_at:end_at] == "Colonel Avery"


def test_answer_marking_defaults_to_the_record_and_may_be_raised(env: LabelEnv) -> None:
    client = env.login("ann_s")
    task_id = start(client, "answers")
    assert task_id is not None
    page = client.get(f"/ui/label/tasks/{task_id}")
    record_marking = banner(page.text)
    assert f'<option value="{record_marking}" selected>' in page.text
    response = post_task(
        client, task_id, {"action": "submit", "answer": "A ledger entry.", "marking": "SECRET"}
    )
    assert response.status_code == 303
    label = next(v for v in my_labels(env.session("ann_s"), "answers") if v.task_id == task_id)
    assert label.marking.banner() == "SECRET" and label.value == "A ledger entry."
    shown = client.get(f"/ui/label/tasks/{task_id}")
    assert banner(shown.text) == "SECRET"
    assert 'id="label-marking">SECRET<' in shown.text
    # A marking above the annotator is refused in one sentence.
    low = env.login("ann_u")
    low_task = start(low, "answers")
    assert low_task is not None
    refused = post_task(low, low_task, {"action": "submit", "answer": "x", "marking": "SECRET"})
    assert refused.status_code == 400 and "above what you may read" in refused.text


def test_boxes_image_exif_and_plain_form(env: LabelEnv) -> None:
    client = env.login("ann_u")
    task_id = start(client, "boxes")
    assert task_id is not None
    page = client.get(f"/ui/label/tasks/{task_id}")
    assert f'src="/ui/label/tasks/{task_id}/image"' in page.text
    assert "GarrisonCam" in page.text and "Model 7" in page.text
    image = client.get(f"/ui/label/tasks/{task_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG") and b"GarrisonCam" not in image.content
    assert image.headers["x-garrison-marking"] == "UNCLASSIFIED"
    # Not handed to another annotator: the image is missing for them.
    other = env.login("ann_s2")
    assert other.get(f"/ui/label/tasks/{task_id}/image").status_code == 404
    # A reviewer may see the image of a task they may read (what a review page shows).
    reviewer = env.login("rev")
    assert reviewer.get(f"/ui/label/tasks/{task_id}/image").status_code == 200
    # ...but not the annotation page: it is not handed to them.
    assert reviewer.get(f"/ui/label/tasks/{task_id}").status_code == 404
    added = post_task(
        client,
        task_id,
        {
            "action": "add_box",
            "new_x": 40,
            "new_y": 30,
            "new_w": 60,
            "new_h": 50,
            "new_label": "truck",
        },
    )
    assert added.status_code == 200 and 'name="box" value="40,30,60,50,truck"' in added.text
    done = client.post(
        f"/ui/label/tasks/{task_id}",
        data={"csrf": csrf_of(added.text), "box": ["40,30,60,50,truck"], "action": "submit"},
    )
    assert done.status_code == 303
    label = next(v for v in my_labels(env.session("ann_u"), "boxes") if v.task_id == task_id)
    assert label.value == [{"x": 40.0, "y": 30.0, "w": 60.0, "h": 50.0, "label": "truck"}]


def test_dashboard_for_stewards_shows_agreement_and_gold_accuracy(env: LabelEnv) -> None:
    # Make sure a task has two replicas: ann_s labels the topics it is handed.
    client = env.login("ann_s")
    task_id = start(client, "topics")
    while task_id is not None:
        response = post_task(client, task_id, {"action": "submit", "value": topic_of(env, task_id)})
        task_id = _next_of(response)
    steward = env.login("stew")
    page = steward.get("/ui/label/projects/topics")
    assert page.status_code == 200
    assert "Krippendorff&#39;s alpha (nominal)" in page.text
    assert re.search(r"\[-?\d\.\d\d, -?\d\.\d\d\]|<td></td>", page.text)
    assert '<th scope="row">ann_u</th>' in page.text and '<th scope="row">ann_s</th>' in page.text
    assert "Wilson" in page.text
    assert banner(page.text) == "SECRET"  # the labels summarized reach SECRET
    low = env.login("rev_u")
    low_page = low.get("/ui/label/projects/topics")
    assert banner(low_page.text) == "UNCLASSIFIED"


def test_review_accept_reject_fix_and_clearance(env: LabelEnv) -> None:
    reviewer = env.login("rev")
    page = reviewer.get("/ui/label/projects/topics/review")
    assert page.status_code == 200 and 'id="accept-label"' in page.text
    label_id = re.search(r'action="/ui/label/review/([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    csrf = csrf_of(page.text)
    missing_reason = reviewer.post(
        f"/ui/label/review/{label_id}",
        data={"csrf": csrf, "action": "reject", "project": "topics", "reason": " "},
    )
    assert missing_reason.status_code == 400 and "needs a reason" in missing_reason.text
    accepted = reviewer.post(
        f"/ui/label/review/{label_id}",
        data={"csrf": csrf, "action": "accept", "project": "topics"},
    )
    assert accepted.status_code == 303
    page = reviewer.get("/ui/label/projects/topics/review?done=accept")
    assert "Accepted." in page.text
    second = re.search(r'action="/ui/label/review/([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert second != label_id
    rejected = reviewer.post(
        f"/ui/label/review/{second}",
        data={"csrf": csrf, "action": "reject", "project": "topics", "reason": "wrong topic"},
    )
    assert rejected.status_code == 303
    page = reviewer.get("/ui/label/projects/topics/review")
    third = re.search(r'action="/ui/label/review/([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    fixed = reviewer.post(
        f"/ui/label/review/{third}",
        data={"csrf": csrf, "action": "fix", "project": "topics", "value": "weather"},
    )
    assert fixed.status_code == 303
    states = {}
    for view in _all_topic_labels(env):
        states[view.id] = view
    assert states[label_id].review_state == "accepted"
    assert states[second].review_state == "rejected"
    assert any(v.kind == "fix" and v.parent_id == third for v in states.values())
    # A reviewer cleared UNCLASSIFIED sees only labels of tasks they dominate.
    low = env.login("rev_u")
    seen = 0
    while True:
        page = low.get("/ui/label/projects/topics/review")
        assert banner(page.text) == "UNCLASSIFIED"
        found = re.search(r'action="/ui/label/review/([0-9a-f]+)"', page.text)
        if found is None:
            assert 'id="review-empty"' in page.text
            break
        low.post(
            f"/ui/label/review/{found.group(1)}",
            data={"csrf": csrf_of(page.text), "action": "accept", "project": "topics"},
        )
        seen += 1
        assert seen < 20
    assert "CONFIDENTIAL" not in page.text and "SECRET" not in page.text
    # Annotators do not reach the review queue's verdicts on higher labels either.
    ann = env.login("ann_u")
    csrf_u = csrf_of(ann.get("/ui/label").text)
    secret_label = next(
        v.id
        for v in _all_topic_labels(env)
        if v.marking.banner() == "SECRET" and v.kind == "annotation"
    )
    response = ann.post(
        f"/ui/label/review/{secret_label}",
        data={"csrf": csrf_u, "action": "accept", "project": "topics"},
    )
    assert response.status_code in (403, 404)


def _all_topic_labels(env: LabelEnv) -> list[Any]:
    steward = env.session("stew")
    page, _ = LabelProjects(steward).tasks("topics", limit=100)
    out = []
    reviewer = env.session("rev")
    for task in page:
        out.extend(task_labels(reviewer, task["id"]))
    return out


def test_viewer_cannot_label(env: LabelEnv, tmp_path: Path) -> None:
    client = env.login("view")
    page = client.get("/ui/label/projects/topics")
    assert page.status_code == 200 and 'id="start-labeling"' not in page.text
    response = client.post("/ui/label/projects/topics/start", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 403


def test_signed_out_browsers_go_to_sign_in(env: LabelEnv) -> None:
    client = env.client()
    for url in ("/ui/label", "/ui/label/projects/topics", f"/ui/label/tasks/{'0' * 32}"):
        response = client.get(url)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")
    posted = client.post("/ui/label/projects/topics/start", data={"csrf": "x"})
    assert posted.status_code == 303 and posted.headers["location"] == "/ui/login"


def test_a_higher_task_is_audited_as_denied(env: LabelEnv) -> None:
    from garrison.security.audit import AuditAction
    from garrison.store.workspace import Workspace

    client = env.login("ann_c")
    secret = task_of(env, "topics", "SECRET")
    assert client.get(f"/ui/label/tasks/{secret}").status_code == 404
    ws = env.app.state.workspace.get()
    assert isinstance(ws, Workspace)
    events = [e for e in ws.audit.tail(20) if e.actor == "ann_c"]
    denied = [e for e in events if e.action == AuditAction.LABEL_TASK.value]
    assert denied and denied[-1].decision == "deny"


def test_failed_calibration_pauses_and_a_steward_resumes(env: LabelEnv) -> None:
    client = env.login("ann_c")
    task_id = start(client, "calib")
    assert task_id is not None
    wrong = next(
        t for t in ("logistics", "weather", "personnel") if t != topic_of_any(env, "calib", task_id)
    )
    response = post_task(client, task_id, {"action": "submit", "value": wrong})
    assert response.status_code == 303
    assert response.headers["location"].endswith("?done=paused")
    page = client.get(response.headers["location"])
    assert "You are paused in this project" in page.text
    steward = env.login("stew")
    dashboard = steward.get("/ui/label/projects/calib")
    assert 'id="paused"' in dashboard.text and 'id="resume-ann_c"' in dashboard.text
    assert "calibration accuracy 0.00 below 1.00" in dashboard.text
    bad = steward.post("/ui/label/projects/calib/resume", data={"annotator": "ann_c"})
    assert bad.status_code == 403
    resumed = steward.post(
        "/ui/label/projects/calib/resume",
        data={"csrf": csrf_of(dashboard.text), "annotator": "ann_c"},
    )
    assert resumed.status_code == 303 and resumed.headers["location"].endswith("?done=resumed")
    again = steward.post(
        "/ui/label/projects/calib/resume",
        data={"csrf": csrf_of(dashboard.text), "annotator": "ann_c"},
    )
    assert again.status_code == 400 and "is not paused" in again.text
    # Reviewers see who is paused but may not resume.
    reviewer = env.login("rev")
    assert 'id="resume-' not in reviewer.get("/ui/label/projects/calib").text
    assert start(client, "calib") is not None


def topic_of_any(env: LabelEnv, project: str, task_id: str) -> str:
    page, _ = LabelProjects(env.session("stew")).tasks(project, limit=100)
    record = next(t["record_id"] for t in page if t["id"] == task_id)
    return env.records[record][1]


def test_an_annotator_reviewing_never_learns_which_tasks_are_gold(env: LabelEnv) -> None:
    client = env.login("ann_c")
    page = client.get("/ui/label/projects/answers/review")
    assert page.status_code == 200
    assert "(production)" not in page.text and "(gold)" not in page.text


def test_agreement_on_many_tasks_keeps_the_value_of_all(monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.label import _agreement_report as _label_data
    from garrison.label.agreement import krippendorff_alpha

    units = [{"a": "x", "b": "x"}] * 30 + [{"a": "x", "b": "y"}] * 10 + [{"a": "y", "b": "y"}] * 20
    full = krippendorff_alpha(units)
    monkeypatch.setattr(_label_data, "MAX_BOOTSTRAP_UNITS", 25)
    estimate = _label_data._estimate(krippendorff_alpha, units)
    assert estimate.value == pytest.approx(full) and estimate.n == len(units)
    assert estimate.low <= full <= estimate.high
