"""The server keeps no access log: request counts and timings only, never a path or a query."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from garrison.api import create_app
from garrison.api._metrics import HttpMetrics
from garrison.api._tls import make_server
from garrison.store.workspace import Workspace
from tests.api.test_tls import Pki, pki  # noqa: F401 - the certificates fixture


def test_mutual_tls_server_has_no_access_log(pki: Pki) -> None:  # noqa: F811
    server = make_server(
        create_app("/nonexistent"),
        "127.0.0.1",
        0,
        str(pki.server.cert),
        str(pki.server.key),
        str(pki.ca.cert),
    )
    assert server.config.access_log is False


def test_api_requests_are_counted_without_paths_or_queries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN").close()
    app = create_app(tmp_path / "ws")
    with TestClient(app) as client, caplog.at_level(logging.DEBUG, logger="garrison.http"):
        client.get("/v1/search", params={"q": "canaryquery"})  # unauthenticated: 401
        client.get("/v1/documents/deadbeefcafe0001")
        client.get("/v1/health")
        snap = app.state.metrics.flush()
    assert snap.requests == 3 and snap.by_status["4xx"] == 2 and snap.by_status["2xx"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "garrison.http"]
    assert len(lines) == 1 and lines[0].startswith("http.requests count=3 ")
    for secret in ("canaryquery", "deadbeefcafe0001", "/v1", "health"):
        assert secret not in lines[0]


def test_summaries_are_periodic_and_reset(caplog: pytest.LogCaptureFixture) -> None:
    metrics = HttpMetrics(interval_s=0.0)
    with caplog.at_level(logging.INFO, logger="garrison.http"):
        metrics.record(200, 1.5)
        metrics.record(503, 2.5)
    lines = [r.getMessage() for r in caplog.records if r.name == "garrison.http"]
    assert lines == [
        "http.requests count=1 (2xx 1) mean_ms=1.5 max_ms=1.5",
        "http.requests count=1 (5xx 1) mean_ms=2.5 max_ms=2.5",
    ]
    assert metrics.total == 2 and metrics.flush().requests == 0
