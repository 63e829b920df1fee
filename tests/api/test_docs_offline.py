"""The API documentation pages render with nothing but the server itself.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) are loaded in a real headless Chromium from a
server on 127.0.0.1; every request each page makes is recorded, and the test fails on any that
goes anywhere else (a CDN script, a web font, a validator badge) and on any Content-Security-
Policy violation. The pages must also actually render: Swagger UI shows an operation, ReDoc the
API's title.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from garrison.api import create_app
from garrison.api._docs import DOCS_CSP
from garrison.store.workspace import Workspace
from tests.browser import launch_chromium, serve

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def workspace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "ws"
    Workspace.init(path, system_high="SECRET//NOFORN").close()
    return path


@pytest.fixture(scope="module")
def base_url(workspace_path: Path) -> Iterator[str]:
    with serve(create_app(workspace_path)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


class Recorder:
    """A page whose every request and console error is kept."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1366, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None
        )
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def offsite(self) -> list[str]:
        """Requests that left 127.0.0.1 (``data:`` and ``blob:`` URLs never leave the page)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.scheme not in ("http", "https") or parts.hostname != "127.0.0.1":
                out.append(url)
        return out

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def recorder(browser: Any) -> Iterator[Recorder]:
    one = Recorder(browser)
    yield one
    one.close()


def test_swagger_ui_renders_from_local_assets_only(base_url: str, recorder: Recorder) -> None:
    response = recorder.page.goto(base_url + "/docs")
    assert response is not None and response.status == 200
    # An operation of the API is on the page: Swagger UI ran and read the OpenAPI document.
    operation = recorder.page.locator(".opblock-summary-path", has_text="/v1/documents").first
    operation.wait_for()
    assert recorder.page.locator(".opblock").count() > 5
    recorder.page.wait_for_load_state("networkidle")
    assert recorder.offsite() == [], recorder.offsite()
    bundle = "/docs/assets/swagger-ui/swagger-ui-bundle.js"
    assert any(u.endswith(bundle) for u in recorder.requests)
    assert any(u.endswith("/openapi.json") for u in recorder.requests)
    assert not [e for e in recorder.errors if "Content Security Policy" in e], recorder.errors


def test_redoc_renders_from_local_assets_only(base_url: str, recorder: Recorder) -> None:
    response = recorder.page.goto(base_url + "/redoc")
    assert response is not None and response.status == 200
    title = recorder.page.locator("h1", has_text="Garrison").first
    title.wait_for()
    # The operations are listed too (the side menu is built from the document).
    recorder.page.get_by_text("Documents", exact=True).first.wait_for()
    recorder.page.wait_for_load_state("networkidle")
    assert recorder.offsite() == [], recorder.offsite()
    assert any(u.endswith("/docs/assets/redoc/redoc.standalone.js") for u in recorder.requests)
    assert not [r for r in recorder.requests if "fonts.googleapis" in r or "fonts.gstatic" in r]
    assert not [e for e in recorder.errors if "Content Security Policy" in e], recorder.errors
    # ReDoc is told to use system fonts, not its default web fonts.
    family = recorder.page.eval_on_selector("h1", "e => getComputedStyle(e).fontFamily")
    assert "Montserrat" not in family and "Roboto" not in family


def test_docs_pages_reference_only_packaged_assets(workspace_path: Path) -> None:
    """Without a browser: the HTML names local assets, each served, under a strict CSP."""
    with TestClient(create_app(workspace_path)) as client:
        for path, assets in (
            (
                "/docs",
                [
                    "/docs/assets/swagger-ui/swagger-ui.css",
                    "/docs/assets/swagger-ui/swagger-ui-bundle.js",
                    "/docs/assets/swagger-ui/swagger-init.js",
                ],
            ),
            (
                "/redoc",
                ["/docs/assets/redoc/redoc.standalone.js", "/docs/assets/redoc/redoc-init.js"],
            ),
        ):
            page = client.get(path)
            assert page.status_code == 200
            assert page.headers["content-security-policy"] == DOCS_CSP
            assert "<script>" not in page.text  # no inline script
            assert "cdn.jsdelivr.net" not in page.text and "fonts.googleapis" not in page.text
            for asset in assets:
                assert f'"{asset}"' in page.text
                served = client.get(asset)
                assert served.status_code == 200 and len(served.content) > 100
        # Licences travel with the copied assets.
        for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
            assert client.get(f"/docs/assets/{licence}").status_code == 200
        # The OpenAPI document does not list the documentation routes.
        spec = client.get("/openapi.json").json()
        assert "/docs" not in spec["paths"] and "/redoc" not in spec["paths"]
