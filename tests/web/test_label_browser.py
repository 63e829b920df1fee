"""The labeling pages in a real headless Chromium: keys, text selection and drawing.

A steward's projects (made with library calls in the fixture) are labeled by annotators of
different clearances: number keys and Enter, S to skip, a span selected with the keyboard and
one with the mouse, a box drawn on the image; a reviewer accepts and rejects; a low-cleared
annotator walks their whole queue without meeting a higher task, and its URL is the 404 page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.label import LabelProjects, my_labels, task_labels
from garrison.web import create_app
from tests.browser import launch_chromium, serve
from tests.web.label_world import ENTITY_TEXT, build_label_workspace
from tests.web.test_browser import GREEN, RED, Browsing

TOPICS = {"logistics": "1", "weather": "2", "personnel": "3"}


class World:
    def __init__(self, path: Path, tokens: dict[str, str], records: dict[str, Any]) -> None:
        self.path = path
        self.tokens = tokens
        self.records = records


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(*build_label_workspace(tmp_path_factory.mktemp("label-browser")))


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[tuple[str, Any]]:
    """The UI on a free loopback port, and the app (its workspace, for library checks)."""
    app = create_app(world.path)
    with serve(app, lifespan="on") as url:
        yield url, app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots go to ``$GARRISON_TEST_ARTIFACTS`` (or a temporary directory)."""
    env = os.environ.get("GARRISON_TEST_ARTIFACTS")
    folder = Path(env) / "label" if env else tmp_path_factory.mktemp("label-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browsing(browser: Any, served: tuple[str, Any]) -> Iterator[Any]:
    opened: list[Browsing] = []

    def open_one(token: str) -> Browsing:
        one = Browsing(browser, served[0])
        one.context.set_default_timeout(30_000)  # the machine may be busy: wait, never race
        opened.append(one)
        one.login(token)
        return one

    yield open_one
    for one in opened:
        one.close()


def _session(served: tuple[str, Any], user: str) -> Any:
    return served[1].state.workspace.get().session(user)


def _topic(served: tuple[str, Any], world: World, task_id: str) -> str:
    page, _ = LabelProjects(_session(served, "stew")).tasks("topics", limit=100)
    record = next(t["record_id"] for t in page if t["id"] == task_id)
    return str(world.records[record][1])


def _task_id(b: Browsing) -> str:
    return str(b.page.url.rsplit("/", 1)[1])


def test_low_annotator_labels_with_keys_and_never_meets_a_higher_task(
    world: World, served: tuple[str, Any], browsing: Any
) -> None:
    b = browsing(world.tokens["ann_u"])
    b.goto("/ui/label/projects/topics")
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.page.click("#start-labeling")
    b.page.wait_for_url("**/ui/label/tasks/*")
    seen = []
    skipped = None
    while "/ui/label/tasks/" in b.page.url:
        task_id = _task_id(b)
        seen.append(task_id)
        b.assert_banner("UNCLASSIFIED", GREEN)
        assert b.page.inner_text("#task-marking") == "UNCLASSIFIED"
        if skipped is None:
            skipped = task_id
            with b.page.expect_navigation():
                b.page.keyboard.press("s")
        else:
            key = TOPICS[_topic(served, world, task_id)]
            b.page.keyboard.press(key)
            assert b.page.is_checked(f"#class-{key}")
            with b.page.expect_navigation():
                b.page.keyboard.press("Enter")
    assert b.page.url.endswith("?done=1")
    assert "Nothing is left for you" in b.page.inner_text("main")
    readable = [r for r, (m, t, _) in world.records.items() if t and m == "UNCLASSIFIED"]
    assert len(seen) == len(set(seen)) == len(readable)
    labels = {v.task_id: v for v in my_labels(_session(served, "ann_u"), "topics")}
    assert labels[skipped].status == "skipped"
    for task_id in seen[1:]:
        assert labels[task_id].status == "submitted"
        assert labels[task_id].value == _topic(served, world, task_id)
    # The SECRET task's address is the same 404 page as a made-up one.
    page, _ = LabelProjects(_session(served, "stew")).tasks("topics", limit=100)
    secret = next(t["id"] for t in page if t["marking"] == "SECRET")
    forbidden = b.goto(f"/ui/label/tasks/{secret}")
    forbidden_html = b.page.content()
    b.assert_banner("UNCLASSIFIED", GREEN)
    missing = b.goto(f"/ui/label/tasks/{'0' * 32}")
    assert forbidden.status == missing.status == 404
    assert forbidden_html == b.page.content()


def test_secret_annotator_spans_by_keys_and_mouse_then_a_box(
    world: World, served: tuple[str, Any], browsing: Any, artifacts: Path
) -> None:
    b = browsing(world.tokens["ann_s"])
    b.goto("/ui/label/projects/entities")
    b.page.click("#start-labeling")
    b.page.wait_for_url("**/ui/label/tasks/*")
    task_id = _task_id(b)
    text = ENTITY_TEXT.removeprefix("(U) ")
    person = text.index("Colonel Avery")
    # Keys: move to the span, extend it with Shift, pick PERSON (1) and add it (A).
    b.page.focus("#span-text")
    b.page.keyboard.press("1")
    for _ in range(person):
        b.page.keyboard.press("ArrowRight")
    for _ in range(2):
        b.page.keyboard.press("Control+Shift+ArrowRight")
    b.page.keyboard.press("a")
    assert b.page.locator("#span-list li").count() == 1
    # Mouse: select "Port Sable" (a selection made in the page, then the mouse released).
    b.page.keyboard.press("2")
    b.page.evaluate(
        """word => {
            const el = document.getElementById('span-text');
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode())) {
                const at = node.data.indexOf(word);
                if (at >= 0) {
                    const range = document.createRange();
                    range.setStart(node, at);
                    range.setEnd(node, at + word.length);
                    const sel = window.getSelection();
                    sel.removeAllRanges();
                    sel.addRange(range);
                    el.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
                    return;
                }
            }
        }""",
        "Port Sable",
    )
    assert b.page.locator("#span-list li").count() == 2
    assert b.page.locator("mark.span-mark").count() == 2
    b.page.screenshot(path=str(artifacts / "spans.png"), full_page=True)
    with b.page.expect_navigation():
        b.page.keyboard.press("Enter")
    label = next(
        v for v in my_labels(_session(served, "ann_s"), "entities") if v.task_id == task_id
    )
    place = text.index("Port Sable")
    assert label.value == [
        {"start": person, "end": person + len("Colonel Avery"), "type": "PERSON"},
        {"start": place, "end": place + len("Port Sable"), "type": "PLACE"},
    ]
    # A box drawn with the mouse is kept in the image's own pixels.
    b.goto("/ui/label/projects/boxes")
    b.page.click("#start-labeling")
    b.page.wait_for_url("**/ui/label/tasks/*")
    box_task = _task_id(b)
    b.page.wait_for_function("document.getElementById('box-image').complete")
    area = b.page.locator("#box-overlay").bounding_box()
    scale = area["width"] / 160
    b.page.keyboard.press("2")  # crate
    b.page.mouse.move(area["x"] + 40 * scale, area["y"] + 30 * scale)
    b.page.mouse.down()
    b.page.mouse.move(area["x"] + 70 * scale, area["y"] + 55 * scale, steps=4)
    b.page.mouse.move(area["x"] + 100 * scale, area["y"] + 80 * scale, steps=4)
    b.page.mouse.up()
    assert b.page.locator("#box-list li").count() == 1
    assert "GarrisonCam" in b.page.inner_text(".exif")
    b.page.screenshot(path=str(artifacts / "boxes.png"), full_page=True)
    with b.page.expect_navigation():
        b.page.keyboard.press("Enter")
    box = next(v for v in my_labels(_session(served, "ann_s"), "boxes") if v.task_id == box_task)
    (only,) = box.value
    assert only["label"] == "crate"
    for key, want in (("x", 40), ("y", 30), ("w", 60), ("h", 50)):
        assert abs(only[key] - want) <= 1.5, (key, only)


def test_reviewer_accepts_and_rejects(
    world: World, served: tuple[str, Any], browsing: Any, artifacts: Path
) -> None:
    annotator = browsing(world.tokens["ann_s2"])
    annotator.goto("/ui/label/projects/topics")
    annotator.page.click("#start-labeling")
    annotator.page.wait_for_url("**/ui/label/tasks/*")
    for _ in range(2):
        task_id = _task_id(annotator)
        annotator.page.keyboard.press(TOPICS[_topic(served, world, task_id)])
        with annotator.page.expect_navigation():
            annotator.page.keyboard.press("Enter")
    reviewer = browsing(world.tokens["rev"])
    reviewer.goto("/ui/label/projects/topics")
    reviewer.page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    reviewer.goto("/ui/label/projects/topics/review")
    reviewer.page.screenshot(path=str(artifacts / "review.png"), full_page=True)
    first = reviewer.page.get_attribute("form.review-accept", "action")
    reviewer.page.click("#accept-label")
    reviewer.page.wait_for_url("**/review?done=accept")
    assert "Accepted." in reviewer.page.inner_text("main")
    second = reviewer.page.get_attribute("form.review-reject", "action")
    assert second != first
    reviewer.page.fill("#reject-reason", "the topic is wrong")
    reviewer.page.click("#reject-label")
    reviewer.page.wait_for_url("**/review?done=reject")
    banner = reviewer.banners()[0]["text"]
    assert banner in ("UNCLASSIFIED", "CONFIDENTIAL", "SECRET")
    if banner == "SECRET":
        reviewer.assert_banner("SECRET", RED)
    states = {}
    page, _ = LabelProjects(_session(served, "stew")).tasks("topics", limit=100)
    for task in page:
        for view in task_labels(_session(served, "rev"), task["id"]):
            states[view.id] = view
    assert states[str(first).rsplit("/", 1)[1]].review_state == "accepted"
    rejected = states[str(second).rsplit("/", 1)[1]]
    assert rejected.review_state == "rejected"
