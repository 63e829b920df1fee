"""The suite runs with no route to anything but loopback (scripts/run-tests.sh)."""

from __future__ import annotations

import os
import socket

import pytest

from tests.conftest import require


def test_only_loopback_interface() -> None:
    require(
        os.environ.get("GARRISON_NETNS") == "1",
        "not running inside the test network namespace (run `make test` as root)",
    )
    # if_nameindex asks the kernel about this process's namespace (/sys/class/net would show
    # the host's devices, since sysfs is not remounted).
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


def test_outbound_connections_fail() -> None:
    require(os.environ.get("GARRISON_NETNS") == "1", "not inside the test network namespace")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        with pytest.raises(OSError):
            sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routable anyway


def test_loopback_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            conn, _ = server.accept()
            conn.close()
