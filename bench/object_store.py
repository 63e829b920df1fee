"""Object storage: sealed blobs on S3 vs. raw S3 objects, and the index on S3 vs. on disk.

Both sides talk to the same loopback S3 protocol server (moto's, started here): the blob ratio
is the price of Garrison's sealing, hash check and exists-check on top of the object store; the
index ratio is what a search pays for a bucket instead of the workspace folder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._timing import interleaved
from garrison.core.config import S3Settings
from garrison.security.crypto import generate_key
from garrison.store.blobs import S3BlobStore
from garrison.store.index import ChunkIndex
from garrison.store.object_store import S3Location, resolve_connection


@contextlib.contextmanager
def _server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _rows(n: int, dim: int) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dim)).astype("float32")
    return [
        {
            "chunk_id": f"c{i}",
            "doc_id": f"d{i // 10}",
            "marking_id": i % 3,
            "vector_marking_id": i % 3,
            "text": f"chunk {i} about depot {i % 50} and fuel",
            "model": "bench",
            "vector": vectors[i].tolist(),
        }
        for i in range(n)
    ]


def run(*, quick: bool = False) -> dict[str, Any]:
    blobs_n, size = (20, 64 * 1024) if quick else (100, 256 * 1024)
    rows_n, dim, queries = (2_000, 64, 20) if quick else (20_000, 384, 50)
    with _server() as endpoint, tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        conn = resolve_connection(
            S3Settings(endpoint_url=endpoint, access_key_id="b", secret_access_key="b"), {}
        )
        client = conn.client()
        client.create_bucket(Bucket="bench-blobs")
        client.create_bucket(Bucket="bench-index")
        store = S3BlobStore(conn, S3Location("bench-blobs", "sealed"), generate_key())
        payloads = [os.urandom(size) for _ in range(blobs_n)]
        rounds = [0]

        def sealed() -> None:
            rounds[0] += 1
            digests = [store.put(p + rounds[0].to_bytes(4, "big")) for p in payloads]
            for d in digests:
                store.get(d)

        def raw() -> None:
            for i, p in enumerate(payloads):
                key = f"raw/{rounds[0]}/{i}"
                client.put_object(Bucket="bench-blobs", Key=key, Body=p)
                client.get_object(Bucket="bench-blobs", Key=key)["Body"].read()

        blob_cand, blob_base = interleaved(sealed, raw, rounds=2 if quick else 3)

        rows = _rows(rows_n, dim)
        remote = ChunkIndex("s3://bench-index/index", storage_options=conn.storage_options())
        local = ChunkIndex(Path(tmp) / "index")
        for index in (remote, local):
            index.replace_documents([], rows)
            index.ensure_fts()
        probes = [rows[i * 7 % rows_n]["vector"] for i in range(queries)]

        def search(index: ChunkIndex) -> None:
            for vector in probes:
                index.nearest(vector, "marking_id IN (0, 1)", limit=10, columns=["chunk_id"])
                index.full_text(
                    "depot fuel", "marking_id IN (0, 1)", limit=10, columns=["chunk_id"]
                )

        idx_cand, idx_base = interleaved(
            lambda: search(remote), lambda: search(local), rounds=2 if quick else 3
        )
    return {
        "title": "Object storage: sealed blobs and the index on S3",
        "what": __doc__.strip().splitlines()[0],
        "notes": [
            "moto is a single-process Python server holding objects in memory, on a shared "
            "2-core machine: the S3 figures bound moto's request handling, not a production "
            "store's (Ceph RGW, AWS); the ratios show where time goes, each LanceDB query "
            "reading index files through the object store."
        ],
        "results": {
            "blobs per round": blobs_n,
            "blob size (KiB)": size // 1024,
            "sealed put+get per blob (ms)": round(blob_cand / blobs_n * 1000, 2),
            "raw S3 put+get per object (ms)": round(blob_base / blobs_n * 1000, 2),
            "blob overhead (sealed / raw)": round(blob_cand / blob_base, 2),
            "index rows": rows_n,
            "vector dimension": dim,
            "S3 index: vector + full-text query pair (ms)": round(idx_cand / queries * 1000, 1),
            "local index: vector + full-text query pair (ms)": round(idx_base / queries * 1000, 1),
            "index slowdown (S3 / local)": round(idx_cand / idx_base, 2),
        },
    }
