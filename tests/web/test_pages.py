"""Every page of the web UI through an in-process client: roles, markings, CSRF, sessions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from garrison.cli.main import main
from garrison.core.clock import set_clock, utc_now
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from garrison.web import CSP, WebSettings, create_app
from tests.web.conftest import WebEnv, csrf_of

_BANNERS = re.compile(
    r'<div class="banner (banner-[a-z-]+)" id="banner-(top|bottom)"[^>]*>([^<]*)</div>'
)


def banners(html: str) -> list[tuple[str, str]]:
    """(css class, text) of the top and bottom banners; they must agree."""
    found = _BANNERS.findall(html)
    assert [where for _, where, _ in found] == ["top", "bottom"], found
    top, bottom = [(cls, text) for cls, _, text in found]
    assert top == bottom
    return [top]


def banner(html: str) -> tuple[str, str]:
    return banners(html)[0]


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """A clock the test moves: ``clock[0]`` is now."""
    now = [datetime.now(UTC)]
    set_clock(lambda: now[0])
    try:
        yield now
    finally:
        set_clock(None)


# -- getting in ---------------------------------------------------------------------------------


def test_root_and_ui_root_redirect_to_search_then_to_sign_in(web: WebEnv) -> None:
    client = web.client()
    assert client.get("/").headers["location"] == "/ui/"
    assert client.get("/ui").headers["location"] == "/ui/"
    assert client.get("/ui/").headers["location"] == "/ui/search"
    response = client.get("/ui/search?q=depot")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fsearch%3Fq%3Ddepot"


def test_sign_in_page_is_unclassified_with_security_headers(web: WebEnv) -> None:
    response = web.client().get("/ui/login")
    assert response.status_code == 200
    assert banner(response.text) == ("banner-u", "UNCLASSIFIED")
    assert response.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    cookie = response.headers["set-cookie"]
    assert "garrison_login_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert '<label for="token">' in response.text
    assert 'class="skip-link" href="#main"' in response.text
    assert "<script>" not in response.text and " style=" not in response.text


def test_sign_in_with_a_token_sets_a_strict_http_only_cookie(web: WebEnv) -> None:
    client = web.client()
    page = client.get("/ui/login?next=/ui/documents")
    response = client.post(
        "/ui/login",
        data={"token": web.tokens["sam"], "csrf": csrf_of(page.text), "next": "/ui/documents"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/documents"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "garrison_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; set under TLS (see test_tls_login)
    assert client.get("/ui/documents").status_code == 200
    last = web.audit_tail(5)
    assert any(e.actor == "sam" and e.action == "web.login" for e in last)


def test_next_never_leaves_the_ui(web: WebEnv) -> None:
    client = web.client()
    page = client.get("/ui/login")
    response = client.post(
        "/ui/login",
        data={"token": web.tokens["sam"], "csrf": csrf_of(page.text), "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/ui/search"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-token", "malformed token"),
        ("gt_0123456789abcdef_" + "A" * 43, "unknown token or wrong secret"),
        ("", "no credentials"),
    ],
)
def test_failed_sign_in_is_audited_and_refused(web: WebEnv, token: str, reason: str) -> None:
    client = web.client()
    page = client.get("/ui/login")
    response = client.post("/ui/login", data={"token": token, "csrf": csrf_of(page.text)})
    assert response.status_code == 401
    assert "Sign-in failed" in response.text
    assert banner(response.text) == ("banner-u", "UNCLASSIFIED")
    last = web.audit_tail(1)[0]
    assert (last.action, last.decision, last.reason) == ("login", "deny", reason)
    assert "garrison_session" not in response.headers.get("set-cookie", "")


def test_sign_in_form_needs_its_csrf_cookie(web: WebEnv) -> None:
    client = web.client()
    response = client.post("/ui/login", data={"token": web.tokens["sam"], "csrf": "forged"})
    assert response.status_code == 403
    last = web.audit_tail(1)[0]
    assert (last.action, last.decision) == ("login", "deny")


def test_sign_out_needs_csrf_ends_the_session_and_is_audited(web: WebEnv) -> None:
    client = web.login("sam")
    page = client.get("/ui/documents")
    assert client.post("/ui/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/ui/documents").status_code == 200  # still signed in
    response = client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 200 and "Sign in to Garrison" in response.text
    assert web.audit_tail(1)[0].action == "web.logout"
    client.cookies.delete("garrison_session")
    client.cookies.set("garrison_session", "stale", path="/ui")
    assert client.get("/ui/documents").status_code == 303


def test_htmx_requests_without_a_session_are_redirected_by_header(web: WebEnv) -> None:
    response = web.client().get("/ui/findings", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["hx-redirect"].startswith("/ui/login")


# -- sessions expire ----------------------------------------------------------------------------


def test_sessions_expire_when_idle(web: WebEnv, clock: list[datetime]) -> None:
    client = web.login("sam")
    clock[0] += timedelta(hours=4)
    assert client.get("/ui/documents").status_code == 200  # activity renews the idle timer
    clock[0] += timedelta(hours=7, minutes=59)
    assert client.get("/ui/documents").status_code == 200
    idle = web.login("sam")
    clock[0] += timedelta(hours=8)
    assert idle.get("/ui/documents").status_code == 303


def test_sessions_expire_absolutely(web: WebEnv, clock: list[datetime]) -> None:
    client = web.login("sam")
    for _ in range(6):
        clock[0] += timedelta(hours=1, minutes=59)
        assert client.get("/ui/documents").status_code == 200
    clock[0] += timedelta(minutes=7)  # 12 h after sign-in, however active
    assert client.get("/ui/documents").status_code == 303


def test_session_settings_are_configurable(web: WebEnv, clock: list[datetime]) -> None:
    app = create_app(web.path, WebSettings(idle_timeout=timedelta(minutes=5)))
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/ui/login")
        client.post("/ui/login", data={"token": web.tokens["sam"], "csrf": csrf_of(page.text)})
        assert client.get("/ui/documents").status_code == 200
        clock[0] += timedelta(minutes=5)
        assert client.get("/ui/documents").status_code == 303


def test_a_disabled_user_is_signed_out_at_the_next_request(web: WebEnv) -> None:
    client = web.login("una")
    assert client.get("/ui/documents").status_code == 200
    ws = Workspace.open(web.path)
    try:
        ws.session().update_user("una", SubjectSpec(disabled=True))
        assert client.get("/ui/documents").status_code == 303
        ws.session().update_user("una", SubjectSpec(disabled=False))
    finally:
        ws.close(checkpoint=False)


def test_serve_checks_the_session_options(capsys: pytest.CaptureFixture[str], web: WebEnv) -> None:
    code = main(["serve", "-w", str(web.path), "--session-idle", "60", "--session-max", "30"])
    assert code == 2
    assert "--session-max must be at least --session-idle" in capsys.readouterr().err


# -- search -------------------------------------------------------------------------------------


def test_search_shows_snippets_with_portion_marks_and_the_joined_banner(web: WebEnv) -> None:
    response = web.login("sam").get("/ui/search", params={"q": "HARROW fuel"})
    assert response.status_code == 200
    assert banner(response.text) == ("banner-s", "SECRET//NOFORN")
    assert response.headers["x-garrison-marking"] == "SECRET//NOFORN"
    assert "(S//NF)" in response.text and "<mark>HARROW</mark>" in response.text
    assert 'href="/ui/documents/' + web.docs["memo.txt"] + '"' in response.text
    assert "<h3>Marking</h3>" in response.text  # facets


def test_search_below_a_marking_shows_nothing_of_it(web: WebEnv) -> None:
    response = web.login("una").get("/ui/search", params={"q": "depot"})
    text = response.text
    assert banner(text) == ("banner-u", "UNCLASSIFIED")
    for secret in ("HARROW", "Reserve fuel", "memo.txt", "(C)", "Convoy schedules", "(S//NF)"):
        assert secret not in text
    assert "<mark>depot</mark>" in text and "(U)" in text
    assert web.docs["memo.txt"] not in text


def test_search_filters_ceiling_and_pagination(web: WebEnv) -> None:
    client = web.login("sam")
    capped = client.get("/ui/search", params={"q": "depot", "max_marking": "UNCLASSIFIED"})
    assert banner(capped.text) == ("banner-u", "UNCLASSIFIED")
    assert "HARROW" not in capped.text
    assert 'value="UNCLASSIFIED"' in capped.text
    bad = client.get("/ui/search", params={"q": "depot", "max_marking": "SECRET//BOGUS"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert banner(bad.text) == ("banner-u", "UNCLASSIFIED")
    app = create_app(web.path, WebSettings(page_size=2))
    with TestClient(app, follow_redirects=False) as small:
        page = small.get("/ui/login")
        small.post("/ui/login", data={"token": web.tokens["sam"], "csrf": csrf_of(page.text)})
        first = small.get("/ui/search", params={"q": "depot"})
        assert first.text.count('<li class="hit">') == 2 and 'rel="next"' in first.text
        second = small.get("/ui/search", params={"q": "depot", "page": 2})
        assert 'rel="prev"' in second.text and "page 2" in second.text
        assert second.text.count('<li class="hit">') == 2


def test_search_without_a_query_is_an_empty_green_page(web: WebEnv) -> None:
    response = web.login("ada").get("/ui/search")
    assert response.status_code == 200
    assert banner(response.text) == ("banner-u", "UNCLASSIFIED")
    assert 'role="search"' in response.text and '<label for="q">' in response.text


# -- documents ----------------------------------------------------------------------------------


def test_document_viewer_shows_elements_in_order_with_portion_marks(web: WebEnv) -> None:
    response = web.login("sam").get(f"/ui/documents/{web.docs['memo.txt']}")
    assert response.status_code == 200
    text = response.text
    assert banner(text) == ("banner-s", "SECRET//NOFORN")
    opened, harrow = text.index("The depot opened on Monday"), text.index("Reserve fuel moves")
    assert opened < harrow
    assert re.search(r'class="portion"[^>]*>\(U\)</span> The depot opened', text)
    assert re.search(r'class="portion"[^>]*>\(S//NF\)</span> Reserve fuel', text)
    assert "line " in text  # locators
    assert f'href="/ui/lineage/{web.docs["memo.txt"]}"' in text
    assert "Download the original" not in text  # a viewer exports nothing


def test_unclassified_document_page_is_green(web: WebEnv) -> None:
    response = web.login("sam").get(f"/ui/documents/{web.docs['public.txt']}")
    assert banner(response.text) == ("banner-u", "UNCLASSIFIED")


def test_a_forbidden_document_looks_exactly_like_a_missing_one(web: WebEnv) -> None:
    client = web.login("una")
    forbidden = client.get(f"/ui/documents/{web.docs['memo.txt']}")
    missing = client.get(f"/ui/documents/{'0' * 64}")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.content == missing.content
    skip = {"content-length"}
    assert {k: v for k, v in forbidden.headers.items() if k not in skip} == {
        k: v for k, v in missing.headers.items() if k not in skip
    }
    assert banner(forbidden.text) == ("banner-u", "UNCLASSIFIED")
    for path in ("/lineage/", "/documents/"):
        a = client.get(f"/ui{path}{web.docs['conf.txt']}")
        b = client.get(f"/ui{path}{'0' * 64}")
        assert (a.status_code, a.content) == (b.status_code, b.content)
    last = web.audit_tail(6)
    assert any(e.reason == "not readable by the subject" for e in last)


def test_documents_list_and_lineage(web: WebEnv) -> None:
    client = web.login("una")
    listing = client.get("/ui/documents")
    assert banner(listing.text) == ("banner-u", "UNCLASSIFIED")
    assert "public.txt" in listing.text and "memo.txt" not in listing.text
    chunk_link = re.search(
        r'href="/ui/lineage/([0-9a-f]+)"', client.get("/ui/search?q=trucks").text
    )
    assert chunk_link
    lineage = client.get(f"/ui/lineage/{chunk_link.group(1)}")
    assert lineage.status_code == 200 and "chunk" in lineage.text and "element" in lineage.text
    assert banner(lineage.text) == ("banner-u", "UNCLASSIFIED")


def test_originals_download_for_stewards_only(web: WebEnv) -> None:
    doc = web.docs["public.txt"]
    steward = web.login("stu")
    page = steward.get(f"/ui/documents/{doc}")
    assert "Download the original" in page.text
    response = steward.get(f"/ui/documents/{doc}/original")
    assert response.status_code == 200
    assert response.content.startswith(b"(U) The quarterly maintenance report")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="public.txt"'
    assert response.headers["x-garrison-marking"] == "UNCLASSIFIED"
    assert web.audit_tail(1)[0].action == "doc.original"
    assert web.login("sam").get(f"/ui/documents/{doc}/original").status_code == 403
    una = web.login("una")
    forbidden = una.get(f"/ui/documents/{web.docs['memo.txt']}/original")
    missing = una.get(f"/ui/documents/{'0' * 64}/original")
    assert (forbidden.status_code, forbidden.content) == (404, missing.content)
    spill = steward.get(f"/ui/documents/{web.docs['spill.txt']}/original")
    assert spill.status_code == 404


# -- findings -----------------------------------------------------------------------------------


def test_findings_queue_shows_spills_without_content(web: WebEnv) -> None:
    response = web.login("stu").get("/ui/findings")
    text = response.text
    assert response.status_code == 200
    assert "unmarked-portion" in text and "spill" in text
    assert "(withheld: spill)" in text
    assert "spillword" not in text and "spill.txt" not in text
    assert banner(text) == ("banner-c", "CONFIDENTIAL")  # the unmarked.txt finding's document
    assert 'name="note"' in text and 'hx-post="/ui/findings/' in text
    viewer = web.login("sam").get("/ui/findings")
    assert viewer.status_code == 200 and 'name="note"' not in viewer.text


def test_resolving_a_finding_needs_csrf_is_audited_and_moves_it(web: WebEnv) -> None:
    client = web.login("stu")
    page = client.get("/ui/findings?kind=unmarked-portion")
    finding_id = re.search(r'id="finding-([0-9a-f]{32})"', page.text).group(1)
    url = f"/ui/findings/{finding_id}/resolve"
    refused = client.post(url, data={"note": "checked", "csrf": "nope"})
    assert refused.status_code == 403
    assert web.audit_tail(1)[0].action == "web.csrf"
    viewer = web.login("sam")
    page_sam = viewer.get("/ui/findings")
    denied = viewer.post(url, data={"note": "x", "csrf": csrf_of(page_sam.text)})
    assert denied.status_code == 403
    done = client.post(
        url,
        data={"note": "portion is (C) like its neighbours", "csrf": csrf_of(page.text)},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200 and done.text.lstrip().startswith(
        f'<tr id="finding-{finding_id}"'
    )
    assert "Resolved by stu" in done.text
    event = next(e for e in reversed(web.audit_tail(5)) if e.action == "finding.resolve")
    assert (event.actor, event.object_id) == ("stu", finding_id)
    assert event.details["note"] == "portion is (C) like its neighbours"
    assert f'id="finding-{finding_id}"' not in client.get("/ui/findings").text
    assert f'id="finding-{finding_id}"' in client.get("/ui/findings?state=all").text


def test_resolving_without_javascript_redirects_back(web: WebEnv) -> None:
    client = web.login("stu")
    page = client.get("/ui/findings?kind=spill")
    finding_id = re.search(r'id="finding-([0-9a-f]{32})"', page.text).group(1)
    response = client.post(
        f"/ui/findings/{finding_id}/resolve",
        data={"note": "reported to security", "csrf": csrf_of(page.text), "back": "/ui/findings"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/findings"
    empty = client.post(
        f"/ui/findings/{finding_id}/resolve", data={"note": " ", "csrf": csrf_of(page.text)}
    )
    assert empty.status_code == 400


# -- jobs ---------------------------------------------------------------------------------------


def test_jobs_page_for_stewards_lists_jobs_and_quarantine(web: WebEnv) -> None:
    client = web.login("stu")
    response = client.get("/ui/jobs")
    assert response.status_code == 200
    assert banner(response.text) == ("banner-u", "UNCLASSIFIED")
    assert "ingest" in response.text and "(withheld: spill)" in response.text
    job_id = re.search(r'href="/ui/jobs/([^"]+)"', response.text).group(1)
    job = client.get(f"/ui/jobs/{job_id}")
    assert job.status_code == 200
    assert web.login("sam").get("/ui/jobs").status_code == 403


def test_job_items_hide_documents_the_subject_may_not_know(web: WebEnv) -> None:
    ws = Workspace.open(web.path)
    try:
        ws.session().add_user("ucs", SubjectSpec(clearance="U", roles=("steward",)))
        from garrison.store.tokens import create_token

        web.tokens["ucs"] = create_token(ws.session(), "ucs", 1)[1]
    finally:
        ws.close(checkpoint=False)
    client = web.login("ucs")
    jobs = client.get("/ui/jobs").text
    ingest = re.search(r'href="/ui/jobs/([^"]+)"><code>[^<]*</code></a></td>\s*<td>ingest', jobs)
    page = client.get(f"/ui/jobs/{ingest.group(1)}")
    assert "public.txt" in page.text
    assert "memo.txt" not in page.text and "conf.txt" not in page.text
    assert banner(page.text) == ("banner-u", "UNCLASSIFIED")
    assert banner(web.login("stu").get(f"/ui/jobs/{ingest.group(1)}").text)[1] == "SECRET//NOFORN"


# -- admin --------------------------------------------------------------------------------------


def test_audit_viewer_for_admins_at_system_high(web: WebEnv) -> None:
    client = web.login("ada")
    response = client.get("/ui/audit", params={"action": "login", "decision": "deny"})
    assert response.status_code == 200
    assert banner(response.text) == ("banner-s", "SECRET//NOFORN")
    assert "decision-deny" in response.text
    for user in ("cal", "sam", "stu"):
        refused = web.login(user).get("/ui/audit")
        assert refused.status_code == 403 and "Not permitted" in refused.text
        assert banner(refused.text) == ("banner-u", "UNCLASSIFIED")


def test_users_and_tokens_create_once_and_revoke(web: WebEnv) -> None:
    client = web.login("ada")
    page = client.get("/ui/users")
    assert page.status_code == 200 and "stu" in page.text and "CN=ada,O=Garrison,C=US" in page.text
    assert banner(page.text) == ("banner-u", "UNCLASSIFIED")
    assert client.post("/ui/tokens", data={"user": "una", "csrf": "x"}).status_code == 403
    created = client.post(
        "/ui/tokens", data={"user": "una", "expires_in": "2", "csrf": csrf_of(page.text)}
    )
    assert created.status_code == 200
    secret = re.search(r'value="(gt_[0-9a-f]{16}_[^"]+)"', created.text).group(1)
    token_id = secret.split("_")[1]
    assert "shown once" in created.text
    assert secret not in client.get("/ui/users").text  # never again
    web.tokens["una-new"] = secret
    una = web.login("una-new")
    assert una.get("/ui/documents").status_code == 200
    revoked = client.post(f"/ui/tokens/{token_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert revoked.status_code == 303
    assert web.audit_tail(1)[0].action == "token.revoke"
    browser = web.client()
    login = browser.get("/ui/login")
    refused = browser.post("/ui/login", data={"token": secret, "csrf": csrf_of(login.text)})
    assert refused.status_code == 401
    for user in ("sam", "stu"):
        viewer = web.login(user)
        assert viewer.get("/ui/users").status_code == 403
        form = viewer.get("/ui/documents")
        attempt = viewer.post("/ui/tokens", data={"user": user, "csrf": csrf_of(form.text)})
        assert attempt.status_code == 403


def test_navigation_follows_roles(web: WebEnv) -> None:
    admin = web.login("ada").get("/ui/search").text
    assert 'href="/ui/audit"' in admin and 'href="/ui/users"' in admin
    viewer = web.login("sam").get("/ui/search").text
    assert 'href="/ui/audit"' not in viewer and 'href="/ui/jobs"' not in viewer
    steward = web.login("stu").get("/ui/search").text
    assert 'href="/ui/jobs"' in steward and 'href="/ui/users"' not in steward


# -- the rest -----------------------------------------------------------------------------------


def test_unknown_pages_are_the_not_found_page(web: WebEnv) -> None:
    client = web.login("sam")
    unknown = client.get("/ui/nothing-here")
    assert unknown.status_code == 404 and banner(unknown.text) == ("banner-u", "UNCLASSIFIED")


def test_static_files_are_served_from_the_package(web: WebEnv) -> None:
    client = web.client()
    js = client.get("/ui/static/htmx.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cache-control"].startswith("public")
    css = client.get("/ui/static/garrison.css")
    assert css.status_code == 200 and "#C8102E" in css.text
    assert client.get("/ui/static/LICENSE-htmx.txt").status_code == 200


def test_the_api_is_unchanged_beside_the_ui(web: WebEnv) -> None:
    client = web.client()
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {web.tokens['sam']}"})
    assert response.status_code == 200 and response.json()["name"] == "sam"
    assert client.get("/v1/nothing").json()["error"]["code"] == "not-found"
    assert "/ui" not in str(client.get("/openapi.json").json()["paths"])


def test_pages_render_fast(web: WebEnv) -> None:
    client = web.login("stu")
    for url in (
        "/ui/search?q=depot",
        f"/ui/documents/{web.docs['memo.txt']}",
        "/ui/findings",
        "/ui/jobs",
    ):
        start = utc_now()
        assert client.get(url).status_code == 200
        assert (utc_now() - start).total_seconds() < 1.0, url
