"""The Ask page's streamed answers in a real headless Chromium, and its fallback without scripts.

The page's script posts to the stream and renders the events: the banners (the page's and the
answer's) change before any answer text is on the page -- checked on the order of the DOM
mutations themselves -- the citations come at the end with their links, quoted markup stays
text, follow-ups stream into the conversation, and with JavaScript off the same form posts and
the server renders the whole page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from garrison.web import create_app
from tests.browser import launch_chromium, serve
from tests.web.test_ask_stream import build_ask_env
from tests.web.test_browser import GREEN, RED, Browsing

#: Records, in order, every change of the top banner and every answer sentence put on the page.
OBSERVE = """
window.__order = [];
new MutationObserver(records => {
  for (const r of records) {
    const target = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    if (target && target.closest && target.closest('#banner-top')) {
      window.__order.push('banner');
    }
    for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      const sel = '.answer-sentence';
      const found = n.matches(sel) ? [n] : [...n.querySelectorAll(sel)];
      for (const s of found) window.__order.push('sentence');
    }
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The assistant's corpus served by uvicorn on a free loopback port, and the tokens."""
    path, tokens, _docs = build_ask_env(tmp_path_factory.mktemp("askbrowser"))
    with serve(create_app(path)) as url:
        yield url, tokens


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


class Asking(Browsing):
    """A browser context signed in to the Ask page, recording dialogs and stream requests."""

    def __init__(self, browser: Any, base_url: str, *, javascript: bool = True) -> None:
        if javascript:
            super().__init__(browser, base_url)
        else:
            self.base = base_url
            self.context = browser.new_context(java_script_enabled=False)
            self.context.set_default_timeout(10_000)
            self.page = self.context.new_page()
            self.problems = []
        self.dialogs: list[str] = []
        self.streams: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on(
            "request", lambda r: self.streams.append(r.url) if r.url.endswith("/stream") else None
        )

    def login(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.get_by_label("API token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/ui/search")

    def ask(self, question: str, *, keep: bool = False, k: int = 8) -> None:
        self.page.get_by_label("Question", exact=True).fill(question)
        self.page.get_by_label("Passages to consider").fill(str(k))
        box = self.page.get_by_label("Keep in a new conversation (for follow-up questions)")
        if keep:
            box.check()
        else:
            box.uncheck()
        self.page.get_by_role("button", name="Ask", exact=True).click()

    def answered(self) -> Any:
        """The answer once its stream has ended (its footer names the answerer)."""
        self.page.wait_for_selector(".answer[aria-busy=false]")
        return self.page.locator(".answer").last


@pytest.fixture
def asking(chromium: Any, served: tuple[str, dict[str, str]]) -> Iterator[Any]:
    opened: list[Asking] = []
    base, tokens = served

    def open_one(user: str, *, javascript: bool = True) -> Asking:
        one = Asking(chromium, base, javascript=javascript)
        opened.append(one)
        one.login(tokens[user])
        one.goto("/ui/ask")
        return one

    yield open_one
    for one in opened:
        one.close()


def test_the_banner_changes_before_any_answer_text(asking: Any) -> None:
    b = asking("sam")
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.page.evaluate(OBSERVE)
    b.ask("Where does the walruspeak ferry leave from?")
    answer = b.answered()
    assert b.page.url.endswith("/ui/ask")  # no navigation: the page rendered the stream
    assert b.streams == [b.base + "/ui/ask/stream"]
    b.assert_banner("SECRET", RED)
    assert b.page.title().startswith("SECRET · ")
    order = b.page.evaluate("window.__order")
    assert "sentence" in order and order.index("banner") < order.index("sentence"), order
    banners = answer.locator(".answer-banner").all_inner_texts()
    assert banners == ["SECRET", "SECRET"]
    text = answer.locator(".answer-text").inner_text()
    assert "(S) The harbor ferry walruspeak leaves the north pier at dawn." in text
    # The citations come last, numbered as the sentences cite them, and open the portion.
    assert answer.locator("ol.citations li").count() >= 1
    refs = answer.locator(".cite-ref").all_inner_texts()
    assert refs and refs[0] == "[1]"
    assert answer.locator("p.help").last.inner_text() == "Answered by extractive."
    b.page.get_by_role("link", name="Open the cited portion").first.click()
    b.page.wait_for_selector(".elements")
    b.assert_banner("SECRET", RED)
    assert "walruspeak" in b.page.inner_text(f"#{b.page.url.split('#', 1)[1]}")


def test_a_second_answer_replaces_the_first_and_its_banner(asking: Any) -> None:
    b = asking("sam")
    b.ask("Where does the walruspeak ferry leave from?")
    b.answered()
    b.assert_banner("SECRET", RED)
    b.ask("greenhouse tomatoes water", k=1)  # one passage, UNCLASSIFIED
    b.page.wait_for_selector("text=greenhouse tomatoes need water")
    b.answered()
    assert b.page.locator(".answer").count() == 1
    assert "walruspeak" not in b.page.inner_text("main")
    b.assert_banner("UNCLASSIFIED", GREEN)


def test_quoted_markup_stays_text_in_a_streamed_answer(asking: Any) -> None:
    b = asking("uma")
    b.ask("What does the osprey signal read?")
    answer = b.answered()
    assert "<script>alert('osprey')</script>" in answer.inner_text()
    assert b.page.locator("main script").count() == 1  # the page's own script tag only
    assert b.page.locator("main img").count() == 0
    assert b.page.locator("main a[href^='http']").count() == 0
    assert b.dialogs == []


def test_a_refused_form_shows_its_reason(asking: Any) -> None:
    b = asking("uma")
    b.ask("   ")
    b.page.wait_for_selector("p.error[role=alert]")
    assert "empty" in b.page.inner_text("p.error[role=alert]")
    assert b.page.locator(".answer").count() == 0
    b.assert_banner("UNCLASSIFIED", GREEN)


def test_follow_ups_stream_into_the_conversation(asking: Any) -> None:
    b = asking("sue")
    b.ask("greenhouse tomatoes water", keep=True, k=1)
    b.answered()
    b.assert_banner("UNCLASSIFIED", GREEN)
    b.page.get_by_role("link", name="continue it").click()
    b.page.wait_for_selector("#turn-1")
    b.page.evaluate(OBSERVE)
    b.page.get_by_label("Question", exact=True).fill("Where does the walruspeak ferry leave from?")
    b.page.get_by_role("button", name="Ask", exact=True).click()
    b.page.wait_for_selector("#turn-2[aria-busy=false]")
    assert "/ask/conversations/" in b.page.url and b.streams[-1].endswith("/stream")
    b.assert_banner("SECRET", RED)
    assert b.page.inner_text("#conversation-marking") == "SECRET"
    assert b.page.get_by_role("heading", name="Question 2").count() == 1
    assert "walruspeak leaves the north pier" in b.page.inner_text("#turn-2")
    order = b.page.evaluate("window.__order")
    assert order.index("banner") < order.index("sentence"), order
    assert b.page.input_value("#follow-question") == ""
    # What the page shows is what the conversation now holds.
    b.page.reload()
    b.page.wait_for_selector("#turn-2")
    b.assert_banner("SECRET", RED)


def test_without_javascript_the_form_posts_and_the_page_is_rendered(asking: Any) -> None:
    b = asking("sam", javascript=False)
    b.ask("Where does the walruspeak ferry leave from?")
    b.page.wait_for_selector(".answer")
    assert b.streams == []
    b.assert_banner("SECRET", RED)
    assert "walruspeak leaves the north pier" in b.page.inner_text(".answer-text")
    assert b.page.locator("ol.citations li").count() >= 1


def test_the_script_is_served_from_the_origin(served: tuple[str, dict[str, str]]) -> None:
    import urllib.request

    base, _tokens = served
    with urllib.request.urlopen(base + "/ui/static/ask.js") as response:
        body = response.read().decode()
        assert response.headers["Content-Type"].startswith(("text/javascript", "application/"))
    assert "innerHTML" not in body and "eval(" not in body
