"""The web UI in a real headless Chromium, against the real server on 127.0.0.1.

One server and one browser for the module; each test opens its own context (cookie jar). The
banner is checked by its text and by its computed colours; screenshots of the main pages go to
``$GARRISON_TEST_ARTIFACTS`` (or a temporary directory), never into the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.web import create_app
from tests.browser import launch_chromium, serve
from tests.web.conftest import WebEnv

GREEN = "rgb(0, 122, 51)"
RED = "rgb(200, 16, 46)"
BLUE = "rgb(0, 51, 160)"
WHITE = "rgb(255, 255, 255)"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def base_url(web: WebEnv) -> Iterator[str]:
    """The UI served by uvicorn on a free loopback port, in a thread."""
    with serve(create_app(web.path)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("GARRISON_TEST_ARTIFACTS")
    folder = Path(env) / "web" if env else tmp_path_factory.mktemp("web-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browsing:
    """One browser context (one user's cookie jar), its page, and any CSP violations seen."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base = base_url
        self.context = browser.new_context(viewport={"width": 1366, "height": 768})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda msg: self.problems.append(msg.text) if msg.type == "error" else None,
        )

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def login(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.get_by_label("API token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/ui/search")

    def banners(self) -> list[dict[str, str]]:
        """Text and computed colours of the top and bottom banners."""
        result: list[dict[str, str]] = self.page.eval_on_selector_all(
            ".banner",
            """els => els.map(e => ({id: e.id, text: e.innerText.trim(),
                background: getComputedStyle(e).backgroundColor,
                color: getComputedStyle(e).color}))""",
        )
        return result

    def assert_banner(self, text: str, background: str, color: str = WHITE) -> None:
        found = self.banners()
        assert [b["id"] for b in found] == ["banner-top", "banner-bottom"]
        for b in found:
            assert (b["text"], b["background"], b["color"]) == (text, background, color)

    def close(self) -> None:
        assert not [p for p in self.problems if "Content Security Policy" in p], self.problems
        self.context.close()


@pytest.fixture
def browsing(browser: Any, base_url: str) -> Iterator[Any]:
    opened: list[Browsing] = []

    def open_one() -> Browsing:
        one = Browsing(browser, base_url)
        opened.append(one)
        return one

    yield open_one
    for one in opened:
        one.close()


def test_sign_in_search_and_open_a_document(web: WebEnv, browsing: Any, artifacts: Path) -> None:
    b = browsing()
    b.goto("/ui/login")
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.page.screenshot(path=str(artifacts / "login.png"))
    b.login(web.tokens["sam"])
    b.assert_banner("UNCLASSIFIED", GREEN)  # nothing shown yet
    b.page.get_by_label("Search for").fill("HARROW fuel")
    b.page.get_by_role("button", name="Search", exact=True).click()
    b.page.wait_for_selector(".hit")
    b.assert_banner("SECRET//NOFORN", RED)
    assert "(S//NF)" in b.page.inner_text(".hits")
    b.page.screenshot(path=str(artifacts / "search.png"), full_page=True)
    b.page.get_by_role("link", name="memo.txt").first.click()
    b.page.wait_for_selector(".elements")
    b.assert_banner("SECRET//NOFORN", RED)
    texts = b.page.locator(".element-text").all_inner_texts()
    assert texts[0].startswith("(U) The depot opened")
    assert any(t.startswith("(S//NF) Reserve fuel") for t in texts)
    b.page.screenshot(path=str(artifacts / "document.png"), full_page=True)
    b.goto(f"/ui/documents/{web.docs['public.txt']}")
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.goto(f"/ui/documents/{web.docs['conf.txt']}")
    b.assert_banner("CONFIDENTIAL", BLUE)


def test_below_the_marking_is_the_same_not_found_page(web: WebEnv, browsing: Any) -> None:
    b = browsing()
    b.login(web.tokens["una"])
    forbidden = b.goto(f"/ui/documents/{web.docs['memo.txt']}")
    forbidden_html = b.page.content()
    b.assert_banner("UNCLASSIFIED", GREEN)
    missing = b.goto(f"/ui/documents/{'0' * 64}")
    assert forbidden.status == missing.status == 404
    assert forbidden_html == b.page.content()
    assert "HARROW" not in forbidden_html and "memo" not in forbidden_html


def test_steward_resolves_a_finding_and_the_admin_sees_it(
    web: WebEnv, browsing: Any, artifacts: Path
) -> None:
    steward = browsing()
    steward.login(web.tokens["stu"])
    steward.goto("/ui/findings")
    steward.assert_banner("CONFIDENTIAL", BLUE)
    steward.page.screenshot(path=str(artifacts / "findings.png"), full_page=True)
    row = steward.page.locator("tr", has_text="unmarked-portion")
    row.get_by_label("Resolution note").fill("portion confirmed (C) by the originator")
    row.get_by_role("button", name="Resolve").click()
    steward.page.wait_for_selector("text=Resolved by stu")  # swapped in place by htmx
    steward.goto("/ui/jobs")
    steward.assert_banner("UNCLASSIFIED", GREEN)
    steward.page.screenshot(path=str(artifacts / "jobs.png"), full_page=True)

    admin = browsing()
    admin.login(web.tokens["ada"])
    admin.goto("/ui/audit?action=finding.resolve")
    admin.assert_banner("SECRET//NOFORN", RED)
    assert "portion confirmed (C) by the originator" in admin.page.inner_text("table.audit")
    admin.page.screenshot(path=str(artifacts / "audit.png"), full_page=True)
    admin.goto("/ui/users")
    admin.assert_banner("UNCLASSIFIED", GREEN)


def test_keyboard_reaches_the_skip_link_first(web: WebEnv, browsing: Any) -> None:
    b = browsing()
    b.login(web.tokens["sam"])
    b.goto("/ui/documents")  # the search page focuses its query box on load
    b.page.keyboard.press("Tab")
    assert b.page.evaluate("document.activeElement.className") == "skip-link"
    b.page.keyboard.press("Enter")
    assert b.page.evaluate("document.activeElement.id") == "main"


def test_models_pages_and_the_classify_form(
    web: WebEnv, browsing: Any, artifacts: Path, tmp_path: Path
) -> None:
    from garrison.store.workspace import Workspace
    from tests.models.registered import URGENT_P, register_test_models
    from tests.models.tiny import tiny_sentence_transformer

    ws = Workspace.open(web.path)
    try:
        models = register_test_models(
            ws.session("stu"), tiny_sentence_transformer(tmp_path / "tiny"), tmp_path
        )
    finally:
        ws.close(checkpoint=False)
    low = browsing()
    low.login(web.tokens["una"])
    low.page.get_by_role("link", name="Models", exact=True).click()
    low.page.wait_for_selector("table.models")
    low.assert_banner("UNCLASSIFIED", GREEN)
    assert "topic-s" not in low.page.content()
    high = browsing()
    high.login(web.tokens["sam"])
    high.goto("/ui/models")
    high.assert_banner("SECRET//NOFORN", RED)
    high.page.screenshot(path=str(artifacts / "models.png"), full_page=True)
    high.page.get_by_role("link", name="topic-c", exact=True).click()
    high.page.wait_for_selector("table.metrics, .predict-form")
    high.assert_banner("CONFIDENTIAL", BLUE)
    high.page.get_by_label("Text", exact=True).fill("convoy fuel report")
    high.page.get_by_label("Marking of the text").select_option("SECRET")
    high.page.get_by_role("button", name="Classify").click()
    high.page.wait_for_selector(".prediction")
    high.assert_banner("SECRET", RED)
    assert high.page.inner_text(".prediction-label") == "urgent"
    assert high.page.inner_text(".prediction-probability") == f"{URGENT_P:.3f}"
    assert high.page.inner_text(".prediction-marking") == "SECRET"
    high.page.screenshot(path=str(artifacts / "model.png"), full_page=True)
    assert high.page.url.endswith(f"/ui/models/topic-c%40{models['topic-c'].id[:12]}/predict")


def test_ask_a_question_and_open_the_cited_portion(web: WebEnv, browsing: Any) -> None:
    b = browsing()
    b.login(web.tokens["sam"])
    b.page.get_by_role("link", name="Ask", exact=True).click()
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.page.get_by_label("Question", exact=True).fill("When does reserve fuel move to HARROW?")
    b.page.get_by_label("Keep in a new conversation (for follow-up questions)").uncheck()
    b.page.get_by_role("button", name="Ask", exact=True).click()
    b.page.wait_for_selector(".answer")
    b.assert_banner("SECRET//NOFORN", RED)
    assert "(S//NF) Reserve fuel moves to depot HARROW" in b.page.inner_text(".answer-text")
    b.page.get_by_role("link", name="Open the cited portion").first.click()
    b.page.wait_for_selector(".elements")
    b.assert_banner("SECRET//NOFORN", RED)
    assert b.page.url.split("#", 1)[1].startswith("e-")
    assert "HARROW" in b.page.inner_text(f"#{b.page.url.split('#', 1)[1]}")
