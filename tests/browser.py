"""What the browser tests share: an ASGI app served on a free loopback port in a thread, and
Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import require

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium as root in a container: no GPU, and none of its own background network traffic.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def launch_chromium(args: list[str] | None = None) -> Iterator[Any]:
    """A headless Chromium (Debian's), closed afterwards; skipped -- failed in CI -- without it."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is absent: apt-get install -y chromium")
    require(
        importlib.util.find_spec("playwright") is not None,
        "Playwright for Python is absent: pip install -e '.[dev]'",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args or ARGS)
        try:
            yield browser
        finally:
            browser.close()
