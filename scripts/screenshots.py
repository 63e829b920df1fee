"""Regenerate the web UI screenshots in docs/screenshots/ from the bundled sample data.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]

Builds a workspace from examples/sample in a temporary directory (hashing embedder, so it takes
seconds), serves the UI on a free loopback port, and drives the system Chromium
(/usr/bin/chromium) with Playwright at 1366x768: the search page, a SECRET//NOFORN document and
the findings queue, as the steward ``ben``.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from garrison.web import create_app

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample" / "docs"
PIPELINE = """
name: screenshots
stages:
  - normalize: {}
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 96, overlap_tokens: 8}
  - embed: {model: hashing}
"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def build(root: Path) -> tuple[Path, str, str]:
    """A workspace of the sample documents; returns (path, steward token, memo id)."""
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = ws.session()
    system.add_user("ben", SubjectSpec(clearance="S", roles=("steward",), grants=("CUI",)))
    options = IngestOptions(default_marking="CONFIDENTIAL//NOFORN", source="sample-share")
    ingest_paths(system, [str(SAMPLE)], options)
    run_pipeline(system, parse_pipeline(PIPELINE, source="screenshots.yaml"))
    token = create_token(system, "ben", 1)[1]
    memo = next(
        d["id"]
        for d in Documents(system).list()
        if (d["filename"] or "").startswith("logistics-memo")
    )
    ws.close()
    return root / "ws", token, memo


def serve(path: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(path), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path, token, memo = build(Path(tmp))
        server, thread, base = serve(path)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.goto(f"{base}/ui/login")
                page.get_by_label("API token", exact=True).fill(token)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/ui/search")
                page.goto(f"{base}/ui/search?q=depot+fuel")
                page.locator("#q").blur()
                page.screenshot(path=str(out / "search.png"))
                page.goto(f"{base}/ui/documents/{memo}")
                page.screenshot(path=str(out / "document.png"))
                page.goto(f"{base}/ui/findings")
                page.screenshot(path=str(out / "findings.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)
    for png in sorted(out.glob("*.png")):
        print(f"{png} ({png.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
