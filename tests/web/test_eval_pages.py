"""The Evaluations pages: runs list, a run's report, transcripts and compare, each read as the
signed-in subject; in the test client and in headless Chromium."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from garrison.evaluate import ItemResult, Runs, SystemSpec
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from garrison.web._banner import banner_style
from tests.browser import serve
from tests.web.conftest import csrf_of
from tests.web.test_browser import (  # noqa: F401
    BLUE,
    GREEN,
    RED,
    Browsing,
    artifacts,
    browser,
)

USERS = {
    "eve": ("S", ("evaluator",)),  # reads every run
    "cal": ("C", ("viewer",)),  # reads only the CONFIDENTIAL run
    "una": ("U", ("viewer",)),  # reads no run
}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
N = 24


@dataclass
class EvalEnv:
    path: Path
    app: FastAPI
    tokens: dict[str, str]
    runs: dict[str, str]  # name -> run ref
    clients: list[TestClient] = field(default_factory=list)

    def login(self, user: str) -> TestClient:
        client = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        self.clients.append(client)
        page = client.get("/ui/login")
        response = client.post(
            "/ui/login", data={"token": self.tokens[user], "csrf": csrf_of(page.text)}
        )
        assert response.status_code == 303, response.text
        return client


def _record(runs: Runs, name: str, marks: list[str], better: bool) -> str:
    spec = SystemSpec("assistant", "assistant", {"k": 8 if better else 2}, "eve", None)
    writer = runs._create(
        "qa",
        spec,
        {"seed": 0},
        suite_id="a" * 64,
        suite_ref="depot-qa@aaaaaaaaaaaa",
        scorers={"exact": "1", "token_f1": "1"},
        item_count=N,
        system_version=name,
    )
    for i in range(N):
        exact = 1.0 if (i % 4 != 0 or better) else 0.0
        writer.record(
            ItemResult(
                item_id=f"item-{i:02d}",
                status="scored" if i < N - 1 else "error",
                marking=parse_marking(marks[i % len(marks)]),
                scores={"exact": exact, "token_f1": min(1.0, 0.1 * (i % 10) + 0.2 * better)}
                if i < N - 1
                else {},
                binary={"exact": True, "token_f1": False} if i < N - 1 else {},
                cluster=f"doc-{i % 5}",
                slices={"marking": marks[i % len(marks)], "source": f"doc-{i % 5}.txt"},
                latency_ms=12.0,
                error=None if i < N - 1 else "timed out",
                transcript={
                    "item": {"input": {"question": f"Q{i} {HOSTILE}"}, "expected": {"a": "x"}},
                    "context": [f"context {i}"],
                    "response": {"text": f"answer {i} {HOSTILE}"},
                },
                position=i + 1,
            )
        )
    return writer.finish().ref


def _build(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    path = root / "ws"
    ws = Workspace.init(path, system_high="SECRET//NOFORN")
    system = ws.session()
    tokens = {}
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    runs = Runs(system)
    refs = {
        "secret": _record(runs, "a", ["SECRET//NOFORN", "UNCLASSIFIED", "CONFIDENTIAL"], False),
        "conf": _record(runs, "b", ["CONFIDENTIAL", "UNCLASSIFIED"], True),
        "conf2": _record(runs, "c", ["UNCLASSIFIED", "CONFIDENTIAL"], False),
    }
    ws.close()
    return path, tokens, refs


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalEnv]:
    path, tokens, refs = _build(tmp_path_factory.mktemp("eval-web"))
    app = create_app(path, WebSettings(page_size=2))
    with TestClient(app):
        one = EvalEnv(path=path, app=app, tokens=tokens, runs=refs)
        yield one
        for client in one.clients:
            client.close()


def _banners(text: str) -> list[str]:
    return re.findall(
        r'<div class="banner ([^"]+)" id="banner-(?:top|bottom)"[^>]*>([^<]*)</div>', text
    )


def _assert_banner(text: str, banner: str) -> None:
    css = banner_style(parse_marking(banner)).css_class
    assert _banners(text) == [(css, banner), (css, banner)]


# -- the runs list -------------------------------------------------------------------------------


def test_an_evaluator_sees_every_run_in_pages(env: EvalEnv) -> None:
    client = env.login("eve")
    first = client.get("/ui/eval")
    assert first.status_code == 200
    assert 'href="/ui/eval" aria-current="page">Evaluations</a>' in first.text
    assert "Evaluation runs you may read (3)" in first.text
    following = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert following is not None
    second = client.get(following.group(1).replace("&amp;", "&"))
    listed = [
        ref for ref in env.runs.values() if f'/ui/eval/runs/{ref}"' in first.text + second.text
    ]
    assert sorted(listed) == sorted(env.runs.values())
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text
    # the compare form offers every run, so the banner covers every run on any page
    _assert_banner(first.text, "SECRET//NOFORN")
    _assert_banner(second.text, "SECRET//NOFORN")
    for ref in env.runs.values():
        assert f'<option value="{ref}">' in first.text


def test_a_lower_cleared_viewer_does_not_see_a_higher_run(env: EvalEnv) -> None:
    client = env.login("cal")
    page = client.get("/ui/eval")
    assert page.status_code == 200
    secret = env.runs["secret"]
    assert secret not in page.text
    assert env.runs["conf"] in page.text and env.runs["conf2"] in page.text
    _assert_banner(page.text, "CONFIDENTIAL")
    missing = client.get("/ui/eval/runs/RUN-000000000000")
    for path in (
        f"/ui/eval/runs/{secret}",
        f"/ui/eval/runs/{secret}/items/item-01",
        f"/ui/eval/compare?a={secret}&b={env.runs['conf']}",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.text == missing.text.replace("RUN-000000000000", secret) or (
            "There is nothing here that you can open." in response.text
        )
        assert secret not in response.text
        _assert_banner(response.text, "UNCLASSIFIED")


def test_a_viewer_who_reads_no_run_sees_none(env: EvalEnv) -> None:
    page = env.login("una").get("/ui/eval")
    assert "There are no evaluation runs you may read." in page.text
    assert "Compare two runs" not in page.text
    _assert_banner(page.text, "UNCLASSIFIED")


# -- a run's report and transcripts ----------------------------------------------------------


def test_a_run_report_page(env: EvalEnv) -> None:
    client = env.login("eve")
    ref = env.runs["secret"]
    page = client.get(f"/ui/eval/runs/{ref}")
    assert page.status_code == 200
    _assert_banner(page.text, "SECRET//NOFORN")
    assert page.headers["X-Garrison-Marking"] == "SECRET//NOFORN"
    for heading in ("What was run", "Counts", "Metrics", "Score distributions and slices", "Power"):
        assert f">{heading}</h2>" in page.text
    assert "not-eligible</td><td>0" in page.text and "error</td><td>1" in page.text
    # figures are SVG images in data: URIs (the CSP forbids inline styles); no inline SVG
    images = re.findall(
        r'<img class="figure" alt="([^"]+)" src="data:image/svg\+xml;base64,([^"]+)"', page.text
    )
    assert {"Distribution of exact", "exact by marking", "token_f1 by source"} <= {
        alt for alt, _ in images
    }
    for _, data in images:
        assert base64.b64decode(data).startswith(b"<svg ")
    assert "<svg" not in page.text
    # the items, each under its own marking, each linked to its transcript
    assert "Item results you may read (24)" in page.text
    assert page.text.count(f'href="/ui/eval/runs/{ref}/items/item-') == 24
    assert '<span class="portion" title="Portion marking">(S//NF)</span>' in page.text
    assert '<span class="portion" title="Portion marking">(U)</span>' in page.text
    assert "timed out" in page.text
    assert HOSTILE not in page.text


def test_a_transcript_under_its_own_marking(env: EvalEnv) -> None:
    client = env.login("eve")
    ref = env.runs["secret"]
    page = client.get(f"/ui/eval/runs/{ref}/items/item-01")  # an UNCLASSIFIED item
    assert page.status_code == 200
    _assert_banner(page.text, "UNCLASSIFIED")
    assert "Transcript of item <code>item-01</code>" in page.text
    assert HOSTILE not in page.text and "<script>alert" not in page.text
    assert "Q1 &lt;script&gt;alert(" in page.text and "answer 1 &lt;script&gt;" in page.text
    assert "context 1" in page.text
    secret_item = client.get(f"/ui/eval/runs/{ref}/items/item-00")
    _assert_banner(secret_item.text, "SECRET//NOFORN")
    assert client.get(f"/ui/eval/runs/{ref}/items/item-99").status_code == 404


# -- compare ------------------------------------------------------------------------------------


def test_compare_two_runs(env: EvalEnv) -> None:
    client = env.login("eve")
    a, b = env.runs["secret"], env.runs["conf"]
    page = client.get(f"/ui/eval/compare?a={a}&b={b}")
    assert page.status_code == 200
    _assert_banner(page.text, "SECRET//NOFORN")
    assert "Paired differences" in page.text and "Adjusted p" in page.text
    assert page.text.count("<td>paired-bootstrap</td>") == 2  # clustered: exact and token_f1
    assert re.search(r"PASS: |FAIL: ", page.text)
    assert 'alt="Paired differences, B minus A"' in page.text
    one = client.get(f"/ui/eval/compare?a={a}&b={b}&metric=exact")
    assert one.text.count("<td>paired-bootstrap</td>") == 1
    assert 'value="exact"' in one.text


def test_compare_errors_are_shown_on_the_form(env: EvalEnv) -> None:
    client = env.login("eve")
    a, b = env.runs["secret"], env.runs["conf"]
    page = client.get(f"/ui/eval/compare?a={a}&b={b}&metric=nonsense")
    assert page.status_code == 400
    assert 'role="alert"' in page.text and "nonsense" in page.text
    _assert_banner(page.text, "UNCLASSIFIED")
    empty = client.get("/ui/eval/compare")
    assert empty.status_code == 200 and "Paired differences" not in empty.text
    _assert_banner(empty.text, "UNCLASSIFIED")


def test_compare_as_a_lower_cleared_viewer(env: EvalEnv) -> None:
    client = env.login("cal")
    page = client.get(f"/ui/eval/compare?a={env.runs['conf2']}&b={env.runs['conf']}")
    assert page.status_code == 200
    _assert_banner(page.text, "CONFIDENTIAL")


# -- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(env: EvalEnv) -> Iterator[str]:
    with serve(create_app(env.path, WebSettings(page_size=2))) as url:
        yield url


def test_browser_evaluator_lists_opens_and_compares(
    browser: Any,  # noqa: F811
    base_url: str,
    env: EvalEnv,
    artifacts: Path,  # noqa: F811
) -> None:
    one = Browsing(browser, base_url)
    one.context.set_default_timeout(60_000)  # a report draws its figures on a shared CPU
    try:
        one.login(env.tokens["eve"])
        one.page.get_by_role("link", name="Evaluations").click()
        one.page.wait_for_url("**/ui/eval")
        one.assert_banner("SECRET//NOFORN", RED)
        assert one.page.locator("table.eval-runs tbody tr").count() == 2
        ref = env.runs["secret"]
        link = one.page.get_by_role("link", name=ref, exact=True)
        if link.count() == 0:
            one.page.get_by_role("link", name="Next").click()
            link = one.page.get_by_role("link", name=ref, exact=True)
        link.click()
        one.page.wait_for_url(f"**/ui/eval/runs/{ref}")
        one.assert_banner("SECRET//NOFORN", RED)
        one.page.screenshot(path=str(artifacts / "eval-run.png"), full_page=True)
        figure = one.page.get_by_role("img", name="Distribution of exact")
        assert figure.evaluate("img => img.complete && img.naturalWidth > 0")
        assert one.page.get_by_role("heading", name="What was run").is_visible()
        one.page.get_by_role("link", name="item-01", exact=True).click()
        one.assert_banner("UNCLASSIFIED", GREEN)
        assert one.page.locator("script", has_text="alert").count() == 0
        one.goto("/ui/eval")
        one.page.get_by_label("Run A (baseline)").fill(ref)
        one.page.get_by_label("Run B (candidate)").fill(env.runs["conf"])
        one.page.get_by_role("button", name="Compare").click()
        one.page.wait_for_url("**/ui/eval/compare?**")
        one.assert_banner("SECRET//NOFORN", RED)
        assert one.page.get_by_role("img", name="Paired differences, B minus A").evaluate(
            "img => img.complete && img.naturalWidth > 0"
        )
        assert one.page.get_by_role("cell", name="paired-bootstrap").count() == 2
        one.page.screenshot(path=str(artifacts / "eval-compare.png"), full_page=True)
    finally:
        one.close()


def test_browser_lower_cleared_viewer_never_sees_the_higher_run(
    browser: Any,  # noqa: F811
    base_url: str,
    env: EvalEnv,
) -> None:
    one = Browsing(browser, base_url)
    one.context.set_default_timeout(60_000)  # a report draws its figures on a shared CPU
    try:
        one.login(env.tokens["cal"])
        one.goto("/ui/eval")
        one.assert_banner("CONFIDENTIAL", BLUE)
        secret = env.runs["secret"]
        assert secret not in one.page.content()
        response = one.goto(f"/ui/eval/runs/{secret}")
        assert response.status == 404
        one.assert_banner("UNCLASSIFIED", GREEN)
        assert secret not in one.page.locator("main").inner_text()
    finally:
        one.close()
