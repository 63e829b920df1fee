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


# -- the rest of the register: the US-equivalent level's colour, banners written in full ---------


@pytest.mark.parametrize(
    ("marking", "style", "text"),
    [
        ("//NATO SECRET//ATOMAL", "secret", "//NATO SECRET//ATOMAL"),
        ("(//NS)", "secret", "//NATO SECRET"),
        ("(//CTS-B)", "top-secret", "//COSMIC TOP SECRET//BOHEMIA"),
        ("(//NC)", "confidential", "//NATO CONFIDENTIAL"),
        ("(//NR)", "confidential", "//NATO RESTRICTED"),
        ("(//NU)", "unclassified", "//NATO UNCLASSIFIED"),
        (
            "(//JOINT S CAN USA//REL TO USA, CAN)",
            "secret",
            "//JOINT SECRET CAN USA//REL TO USA, CAN",
        ),
        ("(//DEU S)", "secret", "//DEU SECRET"),
        ("(//DEU R)", "confidential", "//DEU RESTRICTED"),
        ("(//FGI S)", "secret", "//FGI SECRET"),
        ("SECRET//FGI DEU GBR", "secret", "SECRET//FGI DEU GBR"),
        ("(S//RD-SG 14 18//NF)", "secret", "SECRET//RD-SIGMA 14 18//NOFORN"),
        ("TOP SECRET//SI/BOHEMIA//FGI NATO//NOFORN", "top-secret-sci", None),
        ("TOP SECRET//SAR-MULTIPLE PROGRAMS", "top-secret", None),
        ("(U//SBU-NF)", "unclassified", "UNCLASSIFIED//SBU NOFORN"),
    ],
)
def test_register_markings_take_the_us_levels_colour_and_full_text(
    page_factory, marking: str, style: str, text: str | None
) -> None:
    page = page_factory()
    page.add(parse_marking(marking))
    assert page.style() == BANNER_STYLES[style]
    assert page.banner() == (text or parse_marking(marking).banner())


def test_a_page_of_nato_and_us_portions_is_the_registers_join(page_factory) -> None:
    page = page_factory()
    assert page.portion("//NATO SECRET//ATOMAL") == "(//NS//ATOMAL)"
    page.add("SECRET//RD//NOFORN")
    assert page.banner() == "SECRET//RD/ATOMAL//FGI NATO//NOFORN"
    assert page.style() == BANNER_STYLES["secret"]
    page.add(parse_marking("(//CTS)"))
    assert page.banner() == "TOP SECRET//RD/ATOMAL//FGI NATO//NOFORN"
    assert page.style() == BANNER_STYLES["top-secret"]


REGISTER_FILES = {
    "joint.txt": "//JOINT SECRET CAN USA//REL TO USA, CAN\n\n"
    "(//JOINT S CAN USA//REL TO USA, CAN) The joint ferry schedule is set.\n\n"
    "//JOINT SECRET CAN USA//REL TO USA, CAN\n",
    "deu.txt": "(//DEU S//REL TO USA, DEU) The partner report names the harbour.\n",
    "fgi.txt": "SECRET//FGI DEU GBR\n\n(//GBR C) The first note.\n\n(//DEU S) The second note.\n",
}


@pytest.fixture(scope="module")
def register_web(tmp_path_factory: pytest.TempPathFactory):
    from fastapi.testclient import TestClient

    from garrison.ingest.engine import IngestOptions, ingest_paths
    from garrison.store.documents import Documents
    from garrison.store.session import SubjectSpec
    from garrison.store.tokens import create_token
    from garrison.web import WebSettings, create_app
    from tests.web.conftest import csrf_of

    root = tmp_path_factory.mktemp("register-web")
    ws = Workspace.init(root / "ws", system_high="TOP SECRET//FGI NATO//NOFORN")
    (root / "in").mkdir()
    for name, text in REGISTER_FILES.items():
        (root / "in" / name).write_text(text)
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("viewer",)))
    token = create_token(system, "sam", 30)[1]
    docs = {d["filename"]: d["id"] for d in Documents(system).list()}
    ws.close()
    app = create_app(root / "ws", WebSettings())
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/ui/login")
        signed_in = client.post("/ui/login", data={"token": token, "csrf": csrf_of(page.text)})
        assert signed_in.status_code == 303
        yield client, docs


@pytest.mark.parametrize(
    ("name", "text", "portion"),
    [
        (
            "joint.txt",
            "//JOINT SECRET CAN USA//REL TO USA, CAN",
            "(//JOINT S CAN USA//REL TO USA, CAN)",
        ),
        ("deu.txt", "//DEU SECRET//REL TO USA, DEU", "(//DEU S//REL TO USA, DEU)"),
        ("fgi.txt", "SECRET//FGI DEU GBR", "(//DEU S)"),
    ],
)
def test_document_pages_draw_register_banners_in_full_and_red(
    register_web, name: str, text: str, portion: str
) -> None:
    import re

    client, docs = register_web
    html = client.get(f"/ui/documents/{docs[name]}").text
    found = re.findall(
        r'<div class="banner (banner-[a-z-]+)" id="banner-(top|bottom)"[^>]*>([^<]*)</div>', html
    )
    assert [(cls, where, banner) for cls, where, banner in found] == [
        ("banner-s", "top", text),
        ("banner-s", "bottom", text),
    ]
    assert portion in html
