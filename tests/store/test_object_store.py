"""Blobs and the search index on S3: a real S3 protocol server (moto's) on loopback.

One server for the whole session (started as a subprocess on a free 127.0.0.1 port); each test
makes its own buckets, so tests do not see each other's objects.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.core.config import S3Settings, WorkspaceConfig
from garrison.core.errors import CheckFailed, InvalidInput, UnencryptedStorage
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.ops import run_doctor
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.blobs import S3BlobStore
from garrison.store.object_store import parse_s3_url, resolve_connection
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.conftest import require

PIPELINE = """
name: s3
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""

SECRET_WORDS = ("HARROW", "Reserve fuel", "quarterly maintenance")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session (fails under CI when moto is missing)."""
    require(
        importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask"),
        "moto[server] is not installed",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the moto S3 server did not start")
            time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _settings(endpoint: str) -> S3Settings:
    return S3Settings(
        endpoint_url=endpoint, region="us-east-1", access_key_id="test", secret_access_key="test"
    )


@functools.cache
def _client(endpoint: str) -> Any:
    return resolve_connection(_settings(endpoint), {}).client()


def _bucket(endpoint: str, *, sse: bool) -> str:
    name = f"g-{uuid.uuid4().hex[:20]}"
    client = _client(endpoint)
    client.create_bucket(Bucket=name)
    if sse:
        client.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    return name


def _objects(endpoint: str, bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = _client(endpoint)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def _events(root: Path) -> list[dict[str, Any]]:
    lines = (root / "audit" / "events.jsonl").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "memo.txt").write_text(
        "SECRET//NOFORN\n\n(U) The depot opened on Monday.\n\n"
        "(S//NF) Reserve fuel moves to depot HARROW on Thursday night.\n\nSECRET//NOFORN\n"
    )
    (folder / "report.txt").write_text(
        "(U) The quarterly maintenance report covers forty trucks and six trailers.\n"
    )
    return folder


@pytest.fixture(scope="module")
def s3_ws(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str
) -> Iterator[tuple[Workspace, str, str]]:
    """A SECRET workspace with blobs on a plain bucket and the index on an encrypted one,
    holding two ingested and indexed documents (shared: tests put back what they change)."""
    tmp_path = tmp_path_factory.mktemp("s3ws")
    blobs, index = _bucket(s3_endpoint, sse=False), _bucket(s3_endpoint, sse=True)
    ws = Workspace.init(
        tmp_path / "ws",
        system_high="SECRET//NOFORN",
        blob_url=f"s3://{blobs}/ws1/blobs",
        index_url=f"s3://{index}/ws1/index",
        s3=_settings(s3_endpoint),
    )
    ingest_paths(ws.session(), [str(_corpus(tmp_path / "in"))], IngestOptions(default_marking="U"))
    run_pipeline(ws.session(), parse_pipeline(PIPELINE, source="s3.yaml"))
    yield ws, blobs, index
    ws.close()


def test_blobs_and_index_live_in_buckets_and_search_works(
    s3_ws: tuple[Workspace, str, str], s3_endpoint: str
) -> None:
    ws, blobs, index = s3_ws
    assert isinstance(ws.blobs, S3BlobStore)
    assert not (ws.root / "blobs").exists() and not (ws.root / "index").exists()
    index_objects = _objects(s3_endpoint, index, "ws1/index/")
    assert any(k.startswith("ws1/index/chunks.lance/") for k in index_objects)
    assert ws.index.count() >= 2
    found = search(ws.session(), "HARROW fuel", k=5)
    assert found.mode == "hybrid"
    assert found.hits and "HARROW" in found.hits[0].snippet
    # The workspace reopens from garrison.toml alone and finds the same index.
    config = WorkspaceConfig.load(ws.root)
    assert config.blob_url == f"s3://{blobs}/ws1/blobs" and config.s3 is not None
    with Workspace.open(ws.root) as again:
        assert search(again.session(), "trucks trailers", k=5).hits


def test_search_on_s3_reads_nothing_above_the_reader(s3_ws: tuple[Workspace, str, str]) -> None:
    ws, _, _ = s3_ws
    ws.session().add_user("uma", SubjectSpec(clearance="U", roles=("viewer",)))
    found = search(ws.session("uma"), "HARROW fuel depot", k=10)
    assert all(hit.marking == "UNCLASSIFIED" for hit in found.hits)
    assert all("HARROW" not in hit.snippet for hit in found.hits)


def test_blob_objects_are_ciphertext_only(
    s3_ws: tuple[Workspace, str, str], s3_endpoint: str
) -> None:
    _, blobs, _ = s3_ws
    objects = _objects(s3_endpoint, blobs)
    assert len(objects) >= 2
    assert all(key.startswith("ws1/blobs/") for key in objects)
    for raw in objects.values():
        assert raw[:4] == b"GRB1"
        for word in (*SECRET_WORDS, "depot"):
            assert word.encode() not in raw


def test_tampered_or_moved_blob_object_is_detected_on_read(
    s3_ws: tuple[Workspace, str, str], s3_endpoint: str
) -> None:
    ws, blobs, _ = s3_ws
    store = ws.blobs
    assert isinstance(store, S3BlobStore)
    digests = [k.rsplit("/", 1)[1] for k in _objects(s3_endpoint, blobs)]
    first, second = digests[0], digests[1]
    assert store.get(first)  # intact: reads and hashes
    client = _client(s3_endpoint)
    intact = client.get_object(Bucket=blobs, Key=store.key(first))["Body"].read()
    raw = bytearray(intact)
    raw[-1] ^= 1
    client.put_object(Bucket=blobs, Key=store.key(first), Body=bytes(raw))
    with pytest.raises(CheckFailed):
        store.get(first)
    # Another blob's sealed payload put under this name fails too (the name is bound in).
    other = client.get_object(Bucket=blobs, Key=store.key(second))["Body"].read()
    client.put_object(Bucket=blobs, Key=store.key(first), Body=other)
    with pytest.raises(CheckFailed):
        store.get(first)
    client.put_object(Bucket=blobs, Key=store.key(first), Body=intact)
    assert store.get(first)


def test_blob_delete_and_exists(s3_ws: tuple[Workspace, str, str]) -> None:
    store = s3_ws[0].blobs
    digest = store.put(b"scratch bytes")
    assert store.put(b"scratch bytes") == digest and store.get(digest) == b"scratch bytes"
    assert store.delete(digest) and not store.exists(digest) and not store.delete(digest)


def test_init_refuses_an_unencrypted_index_bucket_above_unclassified(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = _bucket(s3_endpoint, sse=False)
    with pytest.raises(UnencryptedStorage) as err:
        Workspace.init(
            tmp_path / "ws",
            system_high="SECRET",
            index_url=f"s3://{bucket}/index",
            s3=_settings(s3_endpoint),
        )
    assert err.value.reason == "no-default-encryption" and err.value.exit_code == 5
    assert not (tmp_path / "ws").exists()
    assert not _objects(s3_endpoint, bucket)


def test_cli_init_refusal_exit_code_and_acceptance_with_env_credentials(
    tmp_path: Path,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    plain, encrypted = _bucket(s3_endpoint, sse=False), _bucket(s3_endpoint, sse=True)
    base = ["init", "--system-high", "SECRET", "--s3-endpoint", s3_endpoint]
    assert main([*base[:1], str(tmp_path / "a"), *base[1:], "--index", f"s3://{plain}/i"]) == 5
    err = capsys.readouterr().err
    assert "server-side encryption" in err and "Traceback" not in err
    path = str(tmp_path / "b")
    args = [*base[:1], path, *base[1:], "--index", f"s3://{encrypted}/i", "--blobs"]
    assert main([*args, f"s3://{plain}/b", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["index"] == f"s3://{encrypted}/i"
    toml = (tmp_path / "b" / "garrison.toml").read_text()
    assert s3_endpoint in toml and "secret-access-key" not in toml  # credentials stay in env
    events = _events(tmp_path / "b")
    check = next(e for e in events if e["action"] == "workspace.storage-encryption")
    assert check["decision"] == "allow" and check["details"]["algorithm"] == "AES256"
    # Init never adopts objects already under a prefix (another workspace's).
    _client(s3_endpoint).put_object(Bucket=plain, Key="b/x", Body=b"x")
    assert main([*base[:1], str(tmp_path / "c"), *base[1:], "--blobs", f"s3://{plain}/b"]) == 2


def test_unclassified_may_use_an_unencrypted_bucket_doctor_warns_then_fails_a_lost_bucket(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = _bucket(s3_endpoint, sse=False)
    root = tmp_path / "ws"
    Workspace.init(
        root, system_high="UNCLASSIFIED", index_url=f"s3://{bucket}/i", s3=_settings(s3_endpoint)
    ).close()
    checks = {c.name: c for c in run_doctor(root, environ={}).checks}
    assert checks["object-storage"].status == "passed"
    assert checks["index-encryption"].status == "warning"
    _client(s3_endpoint).delete_bucket(Bucket=bucket)  # empty: init writes nothing there
    checks = {c.name: c for c in run_doctor(root, environ={}).checks}
    assert checks["object-storage"].status == "failed"
    assert "cannot be reached" in checks["object-storage"].summary or "refused" in (
        checks["object-storage"].summary
    )
    assert "index-encryption" not in checks


def test_doctor_fails_an_index_bucket_whose_encryption_was_removed(
    s3_ws: tuple[Workspace, str, str], s3_endpoint: str
) -> None:
    ws, _, index = s3_ws
    root = ws.root
    checks = {c.name: c for c in run_doctor(root, environ={}).checks}
    assert checks["object-storage"].status == "passed"
    assert checks["index-encryption"].status == "passed"
    _client(s3_endpoint).delete_bucket_encryption(Bucket=index)
    checks = {c.name: c for c in run_doctor(root, environ={}).checks}
    failed = checks["index-encryption"]
    assert failed.status == "failed" and "SECRET" in failed.summary
    events = _events(root)
    verdicts = [e["decision"] for e in events if e["action"] == "workspace.storage-encryption"]
    assert verdicts[-2:] == ["allow", "deny"]
    # Every open workspace checks before it touches the index, and refuses (audited).
    with Workspace.open(root) as again, pytest.raises(UnencryptedStorage):
        search(again.session(), "HARROW", k=3)
    verdicts = [
        e["decision"] for e in _events(root) if e["action"] == "workspace.storage-encryption"
    ]
    assert verdicts[-3:] == ["allow", "deny", "deny"]
    _client(s3_endpoint).put_bucket_encryption(
        Bucket=index,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def test_urls_and_endpoints_are_checked() -> None:
    assert parse_s3_url("s3://bucket-1/a/b/").url == "s3://bucket-1/a/b"
    for bad in ("s3://B/x", "s3://ab", "s3://bucket/a//b", "s3://bucket/../x", "file:///x"):
        with pytest.raises(InvalidInput):
            parse_s3_url(bad)
    with pytest.raises(InvalidInput, match="HTTPS"):
        resolve_connection(S3Settings(endpoint_url="http://rgw.example.mil:7480"), {})
    with pytest.raises(InvalidInput, match="credentials"):
        resolve_connection(S3Settings(endpoint_url="https://key:secret@rgw.example.mil"), {})
    env = {"AWS_ENDPOINT_URL": "https://rgw.example.mil", "AWS_REGION": "eu-west-3"}
    conn = resolve_connection(None, env)
    assert (conn.endpoint_url, conn.region, conn.path_style) == (
        env["AWS_ENDPOINT_URL"],
        "eu-west-3",
        True,
    )
    options = resolve_connection(_settings("http://127.0.0.1:9"), {}).storage_options()
    assert options["allow_http"] == "true" and options["aws_access_key_id"] == "test"
    assert options["aws_virtual_hosted_style_request"] == "false"
