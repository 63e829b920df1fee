"""Web UI basics in a real headless Chromium: dark mode, keyboard shortcuts, narrow screens.

- Dark mode follows the system's preference (``prefers-color-scheme``) and changes the page's
  colours, never the banners': their text and computed colours are the same in both modes.
- ``/`` focuses the search box (from any page), ``j``/``k`` move through the results, and
  neither does anything while the user types in a field.
- At a 375 px wide viewport no table makes the page wider than the screen, and the banners stay
  on screen at the top and the bottom wherever the page is scrolled.

No page may report a Content-Security-Policy violation (the shortcuts are a static script).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.datasets import Datasets, Selection
from garrison.store.workspace import Workspace
from garrison.web import create_app
from tests.browser import launch_chromium, serve
from tests.web.conftest import build_web_workspace
from tests.web.test_browser import BLUE, GREEN, RED, WHITE

TIMEOUT_MS = 10_000
NARROW = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], dict]]:
    """The web UI's workspace plus a dataset, served on a free loopback port."""
    path, tokens, docs = build_web_workspace(tmp_path_factory.mktemp("uibasics"))
    ws = Workspace.open(path)
    Datasets(ws.session()).create("everything", Selection(), ratios={"train": 0.5, "test": 0.5})
    ws.close()
    with serve(create_app(path)) as url:
        yield url, tokens, docs


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


class Tab:
    """One browser context (a cookie jar) with its page; CSP violations are collected."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int]) -> None:
        self.base = base
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type == "error" else None
        )

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response)
        return response

    def login(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.get_by_label("API token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/ui/search")

    def banners(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.page.eval_on_selector_all(
            ".banner",
            """els => els.map(e => {
                const r = e.getBoundingClientRect();
                const s = getComputedStyle(e);
                return {id: e.id, text: e.innerText.trim(), background: s.backgroundColor,
                        color: s.color, top: r.top, bottom: r.bottom, left: r.left,
                        right: r.right};
            })""",
        )
        return found

    def active(self) -> dict[str, Any]:
        active: dict[str, Any] = self.page.evaluate(
            """() => {
                const a = document.activeElement;
                const hit = a && a.closest ? a.closest('.hit') : null;
                const hits = [...document.querySelectorAll('.hits > .hit')];
                return {id: a ? a.id : null, tag: a ? a.tagName : null,
                        hit: hit ? hits.indexOf(hit) : -1,
                        current: hits.findIndex(h => h.classList.contains('hit-current'))};
            }"""
        )
        return active

    def close(self) -> None:
        assert not [p for p in self.problems if "Content Security Policy" in p], self.problems
        self.context.close()


@pytest.fixture
def tab(browser: Any, served: tuple[str, dict[str, str], dict]) -> Iterator[Any]:
    opened: list[Tab] = []

    def open_one(viewport: dict[str, int] | None = None) -> Tab:
        one = Tab(browser, served[0], viewport or {"width": 1366, "height": 768})
        opened.append(one)
        return one

    yield open_one
    for one in opened:
        one.close()


def _colours(t: Tab) -> list[tuple[str, str, str, str]]:
    return [(b["id"], b["text"], b["background"], b["color"]) for b in t.banners()]


def test_dark_mode_changes_the_page_never_the_banners(tab: Any, served: Any) -> None:
    _, tokens, docs = served
    t = tab()
    t.login(tokens["sam"])
    pages = [
        ("/ui/login", "UNCLASSIFIED", GREEN),
        ("/ui/search?q=HARROW+fuel", "SECRET//NOFORN", RED),
        (f"/ui/documents/{docs['conf.txt']}", "CONFIDENTIAL", BLUE),
        ("/ui/datasets/everything", "SECRET//NOFORN", RED),
    ]
    for path, text, background in pages:
        seen = {}
        for scheme in ("light", "dark"):
            t.page.emulate_media(color_scheme=scheme)
            t.goto(path)
            seen[scheme] = (
                _colours(t),
                t.page.evaluate("getComputedStyle(document.body).backgroundColor"),
                t.page.evaluate("getComputedStyle(document.body).color"),
                t.page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches"),
            )
        light, dark = seen["light"], seen["dark"]
        expected = [(i, text, background, WHITE) for i in ("banner-top", "banner-bottom")]
        assert light[0] == dark[0] == expected, (path, light[0], dark[0])
        # The page itself did turn dark: a dark background behind light text.
        assert (light[3], dark[3]) == (False, True)
        assert light[1] != dark[1] and light[2] != dark[2], path
        assert _luminance(dark[1]) < 0.1 < 0.8 < _luminance(light[1]), (light[1], dark[1])
        assert _luminance(dark[2]) > 0.6, dark[2]


def _luminance(rgb: str) -> float:
    """Relative luminance of ``rgb(r, g, b)`` (WCAG)."""
    values = [int(v) / 255 for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_slash_focuses_search_and_j_k_move_through_results(tab: Any, served: Any) -> None:
    _, tokens, _ = served
    t = tab()
    t.login(tokens["sam"])
    t.goto("/ui/search?q=depot")
    count = t.page.locator(".hits > .hit").count()
    assert count >= 3, count
    # With results on the page the box does not hold the focus, so j/k work at once.
    assert t.active()["id"] != "q"
    t.page.keyboard.press("j")
    assert t.active()["current"] == 0 and t.active()["hit"] == 0
    t.page.keyboard.press("j")
    t.page.keyboard.press("j")
    assert t.active()["current"] == 2 and t.active()["hit"] == 2
    t.page.keyboard.press("k")
    assert t.active()["current"] == 1 and t.active()["hit"] == 1
    for _ in range(count + 2):  # stops at the last result
        t.page.keyboard.press("j")
    assert t.active()["current"] == count - 1
    t.page.keyboard.press("k")
    # "/" focuses the search box and selects its text ...
    t.page.keyboard.press("/")
    assert t.active()["id"] == "q"
    assert t.page.evaluate("document.getElementById('q').selectionEnd") == len("depot")
    # ... where j, k and / are typed, not taken as shortcuts.
    t.page.keyboard.type("jk/")
    assert t.page.input_value("#q") == "jk/"
    assert t.active()["current"] == count - 2
    # Escape leaves the box; j moves again.
    t.page.keyboard.press("Escape")
    t.page.keyboard.press("j")
    assert t.active()["current"] == count - 1 and t.active()["id"] != "q"
    # Not in other fields either: a filter input keeps its j.
    t.page.focus("#f-source")
    t.page.keyboard.type("j/")
    assert t.page.input_value("#f-source") == "j/"
    assert t.active()["current"] == count - 1
    # Enter opens the focused result's link.
    t.page.evaluate("document.activeElement.blur()")
    t.page.keyboard.press("k")
    href = t.page.evaluate("document.activeElement.getAttribute('href')")
    assert href and href.startswith("/ui/") and "/ui/search" not in href
    t.page.keyboard.press("Enter")
    t.page.wait_for_url(f"**{href}")
    # From a page without a search box, "/" opens the search page with the box focused.
    t.goto("/ui/documents")
    t.page.keyboard.press("/")
    t.page.wait_for_url("**/ui/search")
    t.page.wait_for_function("document.activeElement && document.activeElement.id === 'q'")
    t.page.keyboard.type("HARROW")
    t.page.keyboard.press("Enter")
    t.page.wait_for_selector(".hit")
    assert "HARROW" in t.page.inner_text(".hits")


NARROW_PAGES = [
    ("ada", "/ui/search?q=depot"),
    ("ada", "/ui/documents"),
    ("stu", "/ui/findings?state=all"),
    ("ada", "/ui/jobs"),
    ("ada", "/ui/datasets"),
    ("ada", "/ui/datasets/everything"),
    ("ada", "/ui/models"),
    ("ada", "/ui/audit"),
    ("ada", "/ui/users"),
]


def test_tables_fit_a_narrow_screen_and_the_banners_stay(
    tab: Any, served: Any, tmp_path: Path
) -> None:
    _, tokens, _ = served
    signed: dict[str, Tab] = {}
    checked_tables = 0
    for user, path in NARROW_PAGES:
        if user not in signed:
            signed[user] = tab(NARROW)
            signed[user].login(tokens[user])
        t = signed[user]
        t.goto(path)
        width = t.page.evaluate("window.innerWidth")
        assert width == NARROW["width"]
        # The page never scrolls sideways ...
        scroll = t.page.evaluate("document.documentElement.scrollWidth")
        wide = t.page.evaluate(
            """w => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > w + 0.5)
                .filter(e => { let p = e.parentElement; while (p) {
                    if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return false;
                    p = p.parentElement; } return true; })
                .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)""",
            width,
        )
        assert scroll <= width, (path, scroll, wide)
        # ... and no table sticks out of it (a wide one scrolls inside its own box).
        tables = t.page.eval_on_selector_all(
            "main table",
            """els => els.map(e => {
                const box = e.closest('.table-scroll') || e;
                const r = box.getBoundingClientRect();
                return {left: r.left, right: r.right, scrolls: box.scrollWidth > box.clientWidth,
                        overflow: getComputedStyle(box).overflowX};
            })""",
        )
        for table in tables:
            assert table["left"] >= 0 and table["right"] <= width, (path, table)
            if table["scrolls"]:
                assert table["overflow"] in ("auto", "scroll"), (path, table)
        checked_tables += len(tables)
        # The banners are on screen at the top and the bottom, scrolled or not.
        for where in ("0", "document.body.scrollHeight"):
            t.page.evaluate(f"window.scrollTo(0, {where})")
            height = t.page.evaluate("window.innerHeight")
            top, bottom = t.banners()
            assert top["id"] == "banner-top" and bottom["id"] == "banner-bottom"
            assert top["text"] == bottom["text"] and top["text"]
            assert top["top"] >= 0 and top["bottom"] <= height / 3, (path, top)
            assert bottom["bottom"] <= height + 0.5 and bottom["top"] >= height * 2 / 3
            assert top["left"] <= 0.5 and top["right"] >= width - 0.5, (path, top)
        t.page.screenshot(path=str(tmp_path / f"narrow-{path.strip('/').replace('/', '-')}.png"))
    assert checked_tables >= 8
