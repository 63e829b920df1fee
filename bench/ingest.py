"""Ingest throughput: the full engine vs. parsing the same files in-process.

Garrison's path reads, hashes, parses each file in an isolated worker process (fork, rlimit,
timeout), applies the marking rules, encrypts the original into the blob store, and writes the
document, its elements and findings in one transaction after fsyncing its audit events. The
baseline only parses the same files in-process (``parse_bytes``). The ratio is the price of
isolation, encryption, durability and audit.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.parse import parse_bytes
from garrison.store.workspace import Workspace


def _corpus(folder: Path, n: int) -> None:
    marks = ["(U)", "(C)", "(S//NF)", ""]
    for i in range(n):
        paras = "\n\n".join(
            f"{marks[(i + j) % 4]} Paragraph {j} of report {i}: depot {i % 9} moved {j * 13} "
            "pallets of spare parts and logged the transfer."
            for j in range(8)
        )
        (folder / f"r{i:05d}.txt").write_text(f"SECRET//NOFORN\n\n{paras}\n\nSECRET//NOFORN\n")


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 100 if quick else 1000
    results: dict[str, Any] = {"files": n}
    with tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        _corpus(corpus, n)
        files = sorted(corpus.iterdir())

        t0 = time.perf_counter()
        elements = sum(len(parse_bytes(p.read_bytes(), filename=p.name).elements) for p in files)
        baseline = time.perf_counter() - t0

        timings = {}
        for workers in (1, 2):
            ws = Workspace.init(Path(tmp) / f"ws{workers}", system_high="SECRET//NOFORN")
            try:
                t0 = time.perf_counter()
                report = ingest_paths(
                    ws.session(),
                    [str(corpus)],
                    IngestOptions(default_marking="CONFIDENTIAL//NOFORN", workers=workers),
                )
                timings[workers] = time.perf_counter() - t0
                assert report.counts["parsed"] == n
            finally:
                ws.close()
        results.update(
            {
                "elements (baseline parse)": elements,
                "baseline in-process parse files/s": round(n / baseline),
                "garrison ingest files/s, 1 worker": round(n / timings[1]),
                "garrison ingest files/s, 2 workers": round(n / timings[2]),
                "cost (garrison 2 workers time / baseline time)": round(timings[2] / baseline, 1),
            }
        )
    return {
        "title": "Ingest throughput: isolated, encrypted, audited ingest vs. in-process parsing",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
    }
