"""Audit append: Garrison's signed, Merkle-hashed, locked, fsynced append vs. a plain fsynced line.

The baseline writes the same event JSON to a file with flush + fsync, the least any durable
log must do; the ratio is the price of tamper evidence (signature, hashing, lock, state file).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench._timing import interleaved
from garrison.security.crypto import generate_signing_key
from garrison.store.audit_log import AuditLog


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 50 if quick else 300
    with tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        (Path(tmp) / "audit").mkdir()
        log = AuditLog(Path(tmp) / "audit", generate_signing_key(), checkpoint_every=100)
        plain = Path(tmp) / "plain.jsonl"
        event = {
            "actor": "bench",
            "action": "doc.read",
            "object_id": "x" * 64,
            "object_marking": "SECRET//NOFORN",
            "decision": "allow",
        }

        def garrison() -> None:
            for _ in range(n):
                log.append("bench", "doc.read", object_id="x" * 64, object_marking="SECRET//NOFORN")

        def baseline() -> None:
            with plain.open("a", encoding="utf-8") as fh:
                for _ in range(n):
                    fh.write(json.dumps(event, sort_keys=True) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())

        cand, base = interleaved(garrison, baseline, rounds=3 if quick else 5)
        report = log.verify(log.public_key)
        assert report.ok, report.problem
    return {
        "title": "Audit append: tamper-evident vs. plain durable append",
        "what": __doc__.strip().splitlines()[0],
        "results": {
            "events per round": n,
            "garrison events/s": round(n / cand),
            "baseline events/s": round(n / base),
            "overhead (garrison time / baseline time)": round(cand / base, 2),
        },
    }
