"""No call home, anywhere: the demo's commands run under ``strace -f`` and every connection
attempt of every process and thread -- Python, LanceDB, tokenizers, Ray, libpq, uvicorn, DNS
lookups -- is read from the trace. Any address that is not loopback (or a Unix socket) fails
the test, even one the network namespace would have refused anyway.

Garrison must configure its libraries itself: the commands run with no ``HF_*_OFFLINE`` or
``RAY_*`` variables in their environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, require

#: ``sin_addr=inet_addr("10.0.0.1")`` and ``inet_pton(AF_INET6, "2001:db8::1", ...)``.
_ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
_CALLS = ("connect(", "sendto(", "sendmsg(", "sendmmsg(")


def outside_addresses(trace: str) -> list[str]:
    """Lines of an strace log that address anything but loopback or the unspecified address."""
    bad = []
    for line in trace.splitlines():
        if not any(call in line for call in _CALLS):
            continue
        for v4, v6 in _ADDRESS.findall(line):
            address = ipaddress.ip_address(v4 or v6)
            mapped = getattr(address, "ipv4_mapped", None)
            address = mapped or address
            if not (address.is_loopback or address.is_unspecified):
                bad.append(line.strip())
    return bad


def test_the_parser_finds_every_form_of_outside_address() -> None:
    trace = "\n".join(
        [
            '12 connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("93.184.216.34")}, 16) = -1 ENETUNREACH',  # noqa: E501
            '12 sendto(5, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("8.8.8.8")}, 16) = -1',  # noqa: E501
            '13 connect(4, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2606:4700::1", &sin6_addr), sin6_scope_id=0}, 28) = -1',  # noqa: E501
            '13 connect(4, {sa_family=AF_INET6, sin6_port=htons(80), inet_pton(AF_INET6, "::ffff:1.1.1.1", &sin6_addr)}, 28) = -1',  # noqa: E501
            '14 connect(6, {sa_family=AF_INET, sin_port=htons(8600), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',  # noqa: E501
            '14 connect(6, {sa_family=AF_INET6, sin6_port=htons(1), inet_pton(AF_INET6, "::1", &sin6_addr)}, 28) = 0',  # noqa: E501
            '15 connect(7, {sa_family=AF_UNIX, sun_path="/var/run/postgresql/.s.PGSQL.5432"}, 110) = 0',  # noqa: E501
        ]
    )
    assert [line.split()[0] for line in outside_addresses(trace)] == ["12", "12", "13", "13"]


def _strace() -> str:
    found = shutil.which("strace")
    require(found is not None, "strace is not installed (Debian package strace)")
    assert found is not None
    return found


def _env(tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "TRANSFORMERS_", "RAY_", "HUGGINGFACE", "TOKENIZERS"))
        # The suite skips the query model's ONNX export; the demo makes and uses it.
        and k != "GARRISON_QUERY_EXPORT"
    }
    bin_dir = Path(sys.executable).parent
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(tmp / "home"))
    (tmp / "home").mkdir(exist_ok=True)
    return env


def _traced(tmp: Path, name: str, *args: str, timeout: float = 600) -> str:
    log = tmp / f"{name}.strace"
    cmd = [_strace(), "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log)]
    done = subprocess.run(
        [*cmd, "--", sys.executable, "-m", "garrison.cli.main", *args],
        capture_output=True,
        text=True,
        env=_env(tmp),
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"garrison {' '.join(args)}: {done.stderr[-2000:]}"
    return log.read_text(errors="replace")


@pytest.mark.airgap
def test_the_demo_commands_reach_nothing_but_loopback(tmp_path: Path) -> None:
    ws, sample = str(tmp_path / "ws"), str(REPO / "examples" / "sample" / "docs")
    traces = {
        "init": _traced(tmp_path, "init", "init", ws, "--system-high", "SECRET//NOFORN"),
        "ingest": _traced(
            tmp_path, "ingest", "-w", ws, "ingest", sample, "--default-marking", "CONFIDENTIAL"
        ),
        # The default pipeline loads all-MiniLM-L6-v2 through transformers and tokenizers.
        "run": _traced(tmp_path, "run", "-w", ws, "run"),
        # Search embeds the query with the ONNX export the run made (onnxruntime, no torch).
        "search": _traced(tmp_path, "search", "-w", ws, "search", "fuel depot", "--json"),
        "ask": _traced(tmp_path, "ask", "-w", ws, "ask", "Which depot receives fuel?"),
        "ray": _traced(tmp_path, "ray", "-w", ws, "run", "--engine", "ray", "--workers", "1"),
    }
    assert list((Path(ws) / "cache" / "query-embedders").glob("*/export.json"))
    traces["serve"] = _serve_traced(tmp_path, ws)
    for name, trace in traces.items():
        assert trace.strip() or name == "init", f"{name}: strace recorded nothing"
        assert outside_addresses(trace) == [], f"{name} tried to reach the network"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_traced(tmp: Path, ws: str) -> str:
    """The API and web server, started under strace, asked for its health and a page."""
    import httpx

    port = _free_port()
    log = tmp / "serve.strace"
    cmd = [_strace(), "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log)]
    errors = tmp / "serve.stderr"
    with errors.open("wb") as err:
        server = subprocess.Popen(
            [*cmd, "--", sys.executable, "-m", "garrison.cli.main", "-w", ws, "serve",
             "--port", str(port)],
            env=_env(tmp),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, f"the server exited: {errors.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no start: {errors.read_text()[-2000:]}"
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/ui/login", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=10).status_code == 200
    finally:
        # Signalled alone, strace detaches and leaves the server running: stop the whole session.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        _reap(server.pid)
    return log.read_text(errors="replace")


def _reap(session: int, timeout: float = 30) -> None:
    """Wait until no process of ``session`` is left (the server outlives strace by a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(session, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(session, signal.SIGKILL)
