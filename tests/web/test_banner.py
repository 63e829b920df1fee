"""The page banner: the join of every marking shown, in the conventional colours."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.security.markings import parse_marking
from garrison.store.workspace import Workspace
from garrison.web import BANNER_STYLES, PageMarkings, banner_style


@pytest.fixture(scope="module")
def page_factory(tmp_path_factory: pytest.TempPathFactory):
    ws = Workspace.init(
        tmp_path_factory.mktemp("banner") / "ws", system_high="TOP SECRET//SI//NOFORN"
    )
    yield lambda: PageMarkings(ws.session())
    ws.close(checkpoint=False)


@pytest.mark.parametrize(
    ("banner", "style", "background", "color"),
    [
        ("UNCLASSIFIED", "unclassified", "#007A33", "#FFFFFF"),
        ("UNCLASSIFIED//FOUO", "unclassified", "#007A33", "#FFFFFF"),
        ("CUI", "cui", "#502B85", "#FFFFFF"),
        ("CONFIDENTIAL", "confidential", "#0033A0", "#FFFFFF"),
        ("SECRET//NOFORN", "secret", "#C8102E", "#FFFFFF"),
        ("TOP SECRET", "top-secret", "#FF8C00", "#000000"),
        ("TOP SECRET//SI//NOFORN", "top-secret-sci", "#FCE83A", "#000000"),
    ],
)
def test_conventional_colours(banner: str, style: str, background: str, color: str) -> None:
    chosen = banner_style(parse_marking(banner))
    assert chosen == BANNER_STYLES[style]
    assert (chosen.background, chosen.color) == (background, color)


def test_css_uses_the_same_colours() -> None:
    css = (Path(__file__).parents[2] / "src/garrison/web/static/garrison.css").read_text()
    for style in BANNER_STYLES.values():
        rule = (
            f".{style.css_class} {{ background-color: {style.background}; color: {style.color}; }}"
        )
        assert rule in css


def test_an_empty_page_is_unclassified_and_green(page_factory) -> None:
    page = page_factory()
    assert page.banner() == "UNCLASSIFIED"
    assert page.style().background == "#007A33"


def test_a_secret_noforn_element_makes_the_page_red(page_factory) -> None:
    page = page_factory()
    assert page.portion("UNCLASSIFIED") == "(U)"
    assert page.portion("SECRET//NOFORN") == "(S//NF)"
    page.add("CONFIDENTIAL")
    assert page.banner() == "SECRET//NOFORN"
    assert page.style().background == "#C8102E"


def test_top_secret_is_orange_and_with_sci_yellow(page_factory) -> None:
    page = page_factory()
    page.add("SECRET")
    page.add("TOP SECRET")
    assert (page.banner(), page.style().background) == ("TOP SECRET", "#FF8C00")
    page.add("SECRET//SI")
    assert page.banner() == "TOP SECRET//SI"
    assert page.style().background == "#FCE83A"


def test_cui_alone_is_purple_and_classified_content_wins(page_factory) -> None:
    page = page_factory()
    page.add("CUI")
    page.add("UNCLASSIFIED")
    assert (page.banner(), page.style().background) == ("CUI", "#502B85")
    page.add("CONFIDENTIAL")
    assert page.style().background == "#0033A0"


def test_nothing_adds_nothing(page_factory) -> None:
    page = page_factory()
    assert page.add(None) is None and page.portion(None) is None
    assert page.banner() == "UNCLASSIFIED"


def test_join_of_release_markings(page_factory) -> None:
    page = page_factory()
    page.add("SECRET//REL TO USA, GBR")
    page.add("CONFIDENTIAL//REL TO USA, AUS, GBR")
    assert page.banner() == "SECRET//REL TO USA, GBR"


def test_public_surface() -> None:
    import garrison.web

    assert set(garrison.web.__all__) == {
        "BANNER_STYLES",
        "banner_style",
        "BannerStyle",
        "CSP",
        "PageMarkings",
        "SessionStore",
        "WebSettings",
        "build_ui",
        "create_app",
        "mount_ui",
    }
    assert all(hasattr(garrison.web, name) for name in garrison.web.__all__)
