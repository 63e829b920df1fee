"""``garrison serve`` in a process of its own, for benchmarks that drive it over loopback.

The load generator then has its own interpreter (and interpreter lock): what a benchmark measures
is the server, as an operator runs it, not the server and its clients sharing one process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["free_port", "garrison_serve"]

#: The command line ``garrison`` runs (the console script, without relying on PATH).
_GARRISON = (sys.executable, "-c", "from garrison.cli.main import main; main()")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def garrison_serve(path: Path, *, start_s: float = 120) -> Iterator[str]:
    """``garrison serve`` over the workspace at ``path`` on a free loopback port; its base URL.

    Waits until ``/v1/health`` answers; stops the server (SIGTERM, so it shuts down cleanly and
    checkpoints its audit log) when the block ends.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [*_GARRISON, "serve", "--workspace", str(path), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"garrison serve did not start (exit status {proc.poll()})")
            try:
                if httpx.get(f"{base}/v1/health", timeout=5).status_code == 204:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
