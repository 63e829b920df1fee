"""The dataset pages: listing, one version (versions, card, splits, records) and the export.

A workspace with the web UI's documents plus one hostile file, and three datasets: everything
(SECRET//NOFORN), the UNCLASSIFIED texts alone, and a hostile-named one. Pages are read as
readers at several levels; what they may not read never shows, and answers like a missing one.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from garrison.datasets import Datasets, Selection
from garrison.datasets.export import FORMATS
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.audit import AuditAction
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import WebSettings, create_app
from garrison.web._banner import PageMarkings
from garrison.web._datasets import SAMPLE_PER_SPLIT, sample_records
from tests.api.conftest import FAST
from tests.web.conftest import WebEnv, build_web_workspace, csrf_of

HOSTILE = "cards<img src=x onerror=alert(1)>"
DO_MARKING = "SECRET//REL TO USA, GBR/DISPLAY ONLY FRA"
HOSTILE_TEXT = '(U) The depot <script>alert("x")</script> note & <b>bold</b> claims.\n'
_BANNER = re.compile(r'id="banner-(?:top|bottom)"[^>]*>([^<]*)<')
_RECORD = re.compile(r'<p class="dataset-record-text">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def dsweb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    root = tmp_path_factory.mktemp("dsweb")
    path, tokens, docs = build_web_workspace(root)
    ws = Workspace.open(path)
    system = ws.session()
    extra = root / "extra"
    extra.mkdir()
    (extra / "hostile.txt").write_text(HOSTILE_TEXT)
    ingest_paths(system, [str(extra)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    datasets = Datasets(system)
    datasets.create("everything", Selection(), ratios={"train": 0.5, "test": 0.5})
    datasets.create("lowtext", Selection(max_marking="UNCLASSIFIED", fields=("language",)))
    datasets.create(HOSTILE, Selection(max_marking="UNCLASSIFIED", fields=("language",)), seed=3)
    # Readable by a FRA steward only through DISPLAY ONLY: viewable, never exported.
    shared = root / "shared"
    shared.mkdir()
    (shared / "fra.txt").write_text(
        f"{DO_MARKING}\n\n(S//REL TO USA, GBR/DISPLAY ONLY FRA) The shared depot plan.\n\n"
        f"{DO_MARKING}\n"
    )
    ingest_paths(system, [str(shared)], IngestOptions(default_marking=DO_MARKING, source="fra"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    datasets.create("fra", Selection(source="fra", fields=("language",)))
    system.add_user("pierre", SubjectSpec(clearance="S", citizenship="FRA", roles=("steward",)))
    tokens["pierre"] = create_token(system, "pierre", 30)[1]
    ws.close()
    app = create_app(path, WebSettings())
    with TestClient(app):
        env = WebEnv(path=path, app=app, tokens=tokens, docs=docs)
        yield env
        for client in env.clients:
            client.close()


def _system_versions(env: WebEnv) -> dict[str, Any]:
    ws = Workspace.open(env.path)
    try:
        datasets = Datasets(ws.session())
        return {v.name: (v, datasets.records(v)) for v in datasets.list()}
    finally:
        ws.close(checkpoint=False)


def _banners(html: str) -> list[str]:
    return _BANNER.findall(html)


def test_listing_shows_readable_datasets_only(dsweb: WebEnv) -> None:
    sam = dsweb.login("sam")
    page = sam.get("/ui/datasets")
    assert page.status_code == 200
    for name in ("everything", "lowtext"):
        assert f'href="/ui/datasets/{name}"' in page.text
    assert _banners(page.text) == ["SECRET//NOFORN"] * 2
    assert page.headers["x-garrison-marking"] == "SECRET//NOFORN"
    assert '<a href="/ui/datasets" aria-current="page">Datasets</a>' in page.text

    una = dsweb.login("una")
    low = una.get("/ui/datasets")
    assert low.status_code == 200
    assert 'href="/ui/datasets/lowtext"' in low.text
    assert "everything" not in low.text  # the name is governed by the version's marking
    assert _banners(low.text) == ["UNCLASSIFIED"] * 2


def test_a_version_page_shows_versions_card_splits_and_records(dsweb: WebEnv) -> None:
    versions = _system_versions(dsweb)
    version, _records = versions["everything"]
    sam = dsweb.login("sam")
    page = sam.get("/ui/datasets/everything")
    assert page.status_code == 200, page.text
    html = page.text
    assert _banners(html) == ["SECRET//NOFORN"] * 2
    assert f"everything@{version.id[:12]}" in html
    # Versions, the card's tables, the split counts of the manifest.
    assert 'class="dataset-versions"' in html and version.id[:12] in html
    assert "Records by marking" in html and "VAULTIS readiness" in html
    splits = version.to_dict()["splits"]
    counts = re.findall(r'<td class="count split-count">(\d+)</td>', html)
    assert sorted(int(c) for c in counts) == sorted(splits.values())
    # Records, each with its own portion mark; the S//NF one is there for a S//NF reader.
    shown = _RECORD.findall(html)
    assert 0 < len(shown) <= SAMPLE_PER_SPLIT * len(splits)
    assert any("(S//NF)" in r and "HARROW" in r for r in shown)
    assert any('<span class="portion" title="Portion marking">(U)</span>' in r for r in shown)
    # By id and by NAME@PREFIX too.
    for ref in (version.id, f"everything@{version.id[:8]}"):
        again = sam.get(f"/ui/datasets/{quote(ref, safe='')}")
        assert again.status_code == 200 and f"everything@{version.id[:12]}" in again.text


def test_a_lower_reader_sees_low_records_at_the_low_banner(dsweb: WebEnv) -> None:
    una = dsweb.login("una")
    page = una.get("/ui/datasets/lowtext")
    assert page.status_code == 200
    assert _banners(page.text) == ["UNCLASSIFIED"] * 2
    shown = _RECORD.findall(page.text)
    assert shown and all("(U)" in r for r in shown)
    assert "HARROW" not in page.text and "NOFORN" not in page.text
    # The text-only version never shows the document ids behind its records.
    assert dsweb.docs["memo.txt"] not in page.text


def test_above_the_reader_is_the_one_not_found_page(dsweb: WebEnv) -> None:
    version, _ = _system_versions(dsweb)["everything"]
    una = dsweb.login("una")
    missing = una.get("/ui/datasets/nosuchdataset")
    for ref in ("everything", version.id, f"everything@{version.id[:10]}"):
        hidden = una.get(f"/ui/datasets/{quote(ref, safe='')}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text
        assert "everything" not in hidden.text and version.id not in hidden.text


def test_card_names_and_record_texts_are_escaped(dsweb: WebEnv) -> None:
    sam = dsweb.login("sam")
    page = sam.get(f"/ui/datasets/{quote(HOSTILE, safe='')}")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "cards&lt;img src=x onerror=alert(1)&gt;" in page.text
    listing = sam.get("/ui/datasets").text
    assert "<img src=x" not in listing
    records = sam.get("/ui/datasets/lowtext").text
    assert '<script>alert("x")</script>' not in records and "<b>bold</b>" not in records
    assert "&lt;script&gt;" in records and "&amp;" in records


def test_records_are_judged_one_by_one(dsweb: WebEnv) -> None:
    """A record is shown only when the reader may read its own marking and the version's
    marking dominates it; one whose banner is not its full marking's is left out (fail
    closed)."""
    version, records = _system_versions(dsweb)["lowtext"]
    ws = Workspace.open(dsweb.path)
    try:
        una = ws.session("una")
        base = records[0]
        planted = [
            replace(
                base,
                id="high" * 16,
                text="planted secret text",
                marking="SECRET",
                detail=parse_marking("SECRET"),
            ),
            # A banner that is not its full marking's is left out too.
            replace(base, id="junk" * 16, text="planted junk text", marking="NOT A MARKING//X"),
            replace(
                base,
                id="conf" * 16,
                text="planted conf text",
                marking="CONFIDENTIAL",
                detail=parse_marking("CONFIDENTIAL"),
            ),
            base,
        ]
        page = PageMarkings(una)
        shown = sample_records(una, version, planted, page)
        texts = [r["text"] for rows in shown.values() for r in rows]
        assert texts == [base.text]
        assert page.banner() == "UNCLASSIFIED"
        # A reader who may read SECRET still never gets a record above the version's marking.
        sam = ws.session("sam")
        page = PageMarkings(sam)
        shown = sample_records(sam, version, planted, page)
        assert [r["text"] for rows in shown.values() for r in rows] == [base.text]
        # At most SAMPLE_PER_SPLIT per split.
        many = [replace(base, id=f"{i:064x}") for i in range(SAMPLE_PER_SPLIT + 5)]
        shown = sample_records(una, version, many, PageMarkings(una))
        assert [len(rows) for rows in shown.values()] == [SAMPLE_PER_SPLIT]
    finally:
        ws.close(checkpoint=False)


def test_a_stale_version_shows_no_records_and_no_export(
    dsweb: WebEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Datasets, "_stale", lambda self, *args: True)
    stu = dsweb.login("stu")
    page = stu.get("/ui/datasets/everything")
    assert page.status_code == 200
    assert "stale-marking" in page.text
    assert _RECORD.findall(page.text) == []
    assert "Download export" not in page.text


def _export(client: TestClient, ref: str, fmt: str = "jsonl") -> Any:
    page = client.get(f"/ui/datasets/{quote(ref, safe='')}")
    return client.post(
        f"/ui/datasets/{quote(ref, safe='')}/export",
        data={"format": fmt, "csrf": csrf_of(page.text)},
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_steward_downloads_an_audited_export(dsweb: WebEnv, fmt: str) -> None:
    if fmt == "hf":
        pytest.importorskip("datasets")
    version, records = _system_versions(dsweb)["everything"]
    stu = dsweb.login("stu")
    page = stu.get("/ui/datasets/everything")
    assert "Download export" in page.text and f'<option value="{fmt}"' in page.text
    response = _export(stu, "everything", fmt)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["x-garrison-marking"] == "SECRET//NOFORN"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        top = names[0].split("/")[0]
        assert top == f"everything-{version.id[:12]}-{fmt}"
        for name in ("BANNER.txt", "manifest.json", "SHA256SUMS", "manifest.sig", "card.md"):
            assert f"{top}/{name}" in names
        assert archive.read(f"{top}/BANNER.txt").decode().strip() == "SECRET//NOFORN"
        # Every file the checksums name is in the zip, byte for byte.
        sums = archive.read(f"{top}/SHA256SUMS").decode().splitlines()
        assert sums and all(f"{top}/{line.split(maxsplit=1)[1]}" in names for line in sums)
        data = [n for n in names if n.startswith((f"{top}/data/", f"{top}/hf/"))]
        assert data, names
        if fmt in ("jsonl", "chat"):
            rows = [
                json.loads(line)
                for name in data
                for line in archive.read(name).decode().splitlines()
            ]
            assert sorted(r["id"] for r in rows) == sorted(r.id for r in records)
    event = next(
        e for e in reversed(dsweb.audit_tail(20)) if e.action == AuditAction.DATASET_EXPORT
    )
    assert (event.actor, event.decision, event.object_id) == ("stu", "allow", version.id)
    assert event.details["format"] == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_refused_to_a_viewer_and_through_display_only(dsweb: WebEnv, fmt: str) -> None:
    sam = dsweb.login("sam")  # a viewer: may read, may not export
    page = sam.get("/ui/datasets/everything")
    assert "Download export" not in page.text
    refused = _export(sam, "everything", fmt)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    event = next(
        e for e in reversed(dsweb.audit_tail(20)) if e.action == AuditAction.DATASET_EXPORT
    )
    assert (event.actor, event.decision) == ("sam", "deny")
    # A FRA steward reads the version through DISPLAY ONLY: viewing yes, export never.
    pierre = dsweb.login("pierre")
    page = pierre.get("/ui/datasets/fra")
    assert page.status_code == 200 and "The shared depot plan" in page.text
    assert _banners(page.text) == [DO_MARKING] * 2
    assert "Download export" not in page.text  # not offered; refused when posted anyway
    refused = _export(pierre, "fra", fmt)
    assert refused.status_code == 403 and "DISPLAY ONLY" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert _banners(refused.text) == [DO_MARKING] * 2
    event = next(
        e for e in reversed(dsweb.audit_tail(20)) if e.action == AuditAction.DATASET_EXPORT
    )
    assert (event.actor, event.decision) == ("pierre", "deny")


def test_export_refused_without_csrf_or_a_known_format(dsweb: WebEnv) -> None:

    stu = dsweb.login("stu")
    no_csrf = stu.post("/ui/datasets/everything/export", data={"format": "jsonl"})
    assert no_csrf.status_code == 403 and "application/zip" not in no_csrf.headers["content-type"]
    bad = _export(stu, "everything", fmt="tar")
    assert bad.status_code == 400 and "Unknown export format" in bad.text
    # A GET never exports: it goes back to the page.
    assert stu.get("/ui/datasets/everything/export").status_code == 303
    # A version above the reader is the one 404, for the export too.
    una = dsweb.login("una")
    hidden = una.post(
        "/ui/datasets/everything/export",
        data={"format": "jsonl", "csrf": csrf_of(una.get("/ui/datasets").text)},
    )
    assert hidden.status_code == 404
