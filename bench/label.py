"""Labeling at scale: a project of 100,000 tasks with 3x overlap.

A dataset version of 100,000 records (a third each UNCLASSIFIED, CONFIDENTIAL, SECRET) is
written straight into a workspace, a project is created over it, and labels are bulk-loaded:
the first third of the tasks carry all three replicas, the second third one replica by the
annotator ``a1``. Then, as the library calls them: the next task (for a fresh annotator, for
``a1`` who must skip 33,000 open tasks they already labeled, and for an UNCLASSIFIED annotator
who sees a third of the tasks), the project's counts (steward and annotator), a list page deep
in the project, and the export of every label to JSONL. Targets: p95 < 200 ms for each
interactive call; the export in seconds.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from garrison.core.clock import utc_now
from garrison.datasets._versions import SnapshotRecord, _snapshot
from garrison.label import LabelProjects, export_file, next_task, project_stats
from garrison.security.markings import parse_marking
from garrison.store.datasets import add_version
from garrison.store.models import LabelRow, LabelTaskRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

BANNERS = ["UNCLASSIFIED", "CONFIDENTIAL", "SECRET"]
TOPICS = ["logistics", "weather", "personnel"]


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _timed(call: Callable[[], Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _dataset(ws: Workspace, n: int) -> str:
    system = ws.session()
    records = [
        SnapshotRecord(
            hashlib.sha256(f"r{i}".encode()).hexdigest()[:32],
            "element",
            "0" * 64,
            f"Report {i} is about {TOPICS[i % 3]}.",
            BANNERS[i % 3],
            "train",
            {},
            [],
        )
        for i in range(n)
    ]
    records.sort(key=lambda r: r.id)
    snapshot = ws.blobs.put(_snapshot(records))
    manifest = {
        "format": 1,
        "name": "bench",
        "marking": "SECRET",
        "selection": {},
        "split": {},
        "pipelines": [],
        "records": [{"id": r.id, "split": r.split, "marking": r.marking} for r in records],
    }
    version_id = hashlib.sha256(repr(manifest).encode()).hexdigest()
    add_version(
        system,
        version_id=version_id,
        name="bench",
        marking=parse_marking("SECRET"),
        manifest=manifest,
        record_count=n,
        snapshot=snapshot,
    )
    return version_id


def _load_labels(ws: Workspace, project_id: str, n: int) -> int:
    """Bulk replicas: tasks [0, n/3) get three, [n/3, 2n/3) one by ``a1``."""
    system = ws.session()
    now = utc_now()
    third = n // 3
    with ws.catalog.transaction() as orm:
        tasks = list(
            orm.execute(
                LabelTaskRow.__table__.select()
                .where(LabelTaskRow.project_id == project_id)
                .order_by(LabelTaskRow.seq)
            )
        )
        ids = {b: system.intern_marking(orm, parse_marking(b)) for b in BANNERS}
        rows = []
        for task in tasks[: 2 * third]:
            annotators = ["a1", "a2", "a3"] if task.seq < third else ["a1"]
            for who in annotators:
                rows.append(
                    {
                        "task_id": task.id,
                        "project_id": project_id,
                        "annotator": who,
                        "kind": "annotation",
                        "status": "submitted",
                        "value": TOPICS[task.seq % 3],
                        "reason": None,
                        "flagged": False,
                        "parent_id": None,
                        "schema_version": 1,
                        "marking_id": task.marking_id,
                        "review_state": None,
                        "created_at": now,
                        "submitted_at": now,
                    }
                )
        for start in range(0, len(rows), 5000):
            orm.execute(insert(LabelRow), rows[start : start + 5000])
        full = [t.id for t in tasks[:third]]
        for start in range(0, len(full), 500):
            orm.execute(
                update(LabelTaskRow)
                .where(LabelTaskRow.id.in_(full[start : start + 500]))
                .values(claimed=3, submitted=3, open=False)
            )
        one = [t.id for t in tasks[third : 2 * third]]
        for start in range(0, len(one), 500):
            orm.execute(
                update(LabelTaskRow)
                .where(LabelTaskRow.id.in_(one[start : start + 500]))
                .values(claimed=1, submitted=1)
            )
        del ids
    return len(rows)


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 5_000 if quick else 100_000
    rounds = 20 if quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", system_high="TOP SECRET")
        system = ws.session()
        system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
        for name, clearance in (
            ("a1", "S"),
            ("a2", "S"),
            ("a3", "S"),
            ("fresh", "S"),
            ("low", "U"),
        ):
            system.add_user(name, SubjectSpec(clearance=clearance, roles=("annotator",)))
        version = _dataset(ws, n)
        t0 = time.perf_counter()
        project = LabelProjects(ws.session("stew")).create(
            "bench", version, "classification", {"classes": TOPICS}, overlap=3,
            marking="UNCLASSIFIED",
        )  # fmt: skip
        create_s = time.perf_counter() - t0
        labels = _load_labels(ws, project.id, n)
        fresh, a1, low, stew = (ws.session(u) for u in ("fresh", "a1", "low", "stew"))
        for s in (fresh, a1, low, stew):  # warm the snapshot cache and marking ids once
            project_stats(s, "bench", agreement=False)

        def take(session: Any) -> Callable[[], Any]:
            def call() -> Any:
                task = next_task(session, "bench")
                # Skip what was taken, so each call hands out a new task, as real work does.
                from garrison.label import skip

                if task is not None:
                    skip(session, task.id, None)
                return task

            return call

        next_fresh = _timed(take(fresh), rounds)
        next_a1 = _timed(take(a1), rounds)
        next_low = _timed(take(low), rounds)
        counts_stew = _timed(
            lambda: project_stats(stew, "bench", agreement=False), max(5, rounds // 4)
        )
        counts_low = _timed(lambda: project_stats(low, "bench"), max(5, rounds // 4))
        t0 = time.perf_counter()
        full = project_stats(stew, "bench")
        report_s = time.perf_counter() - t0
        assert {f["name"] for f in full["agreement"]} >= {"Krippendorff's alpha (nominal)"}
        projects = LabelProjects(stew)
        deep = n // 2
        page = _timed(lambda: projects.tasks("bench", cursor=deep, limit=50), rounds)
        t0 = time.perf_counter()
        written = export_file(stew, "bench", "jsonl", Path(tmp) / "labels.jsonl")
        export_s = time.perf_counter() - t0
        ws.close()
    results = {
        "tasks": n,
        "labels loaded": labels,
        "project create (s)": round(create_s, 2),
        "next task p95, fresh annotator (ms)": round(_p95(next_fresh), 1),
        "next task p95, annotator with 33% labeled (ms)": round(_p95(next_a1), 1),
        "next task p95, UNCLASSIFIED annotator (ms)": round(_p95(next_low), 1),
        "project counts p95, steward (ms)": round(_p95(counts_stew), 1),
        "project counts p95, UNCLASSIFIED annotator (ms)": round(_p95(counts_low), 1),
        "list page p95, 50 tasks deep in the project (ms)": round(_p95(page), 1),
        "stats with agreement and Dawid–Skene, steward, once (s)": round(report_s, 2),
        "export to JSONL (s)": round(export_s, 2),
        "records exported (all their labels)": written["records"],
        "median next task, fresh (ms)": round(statistics.median(next_fresh), 1),
        "first next task, annotator with 33% labeled (ms)": round(next_a1[0], 1),
    }
    interactive = [v for k, v in results.items() if "p95" in k]
    met = all(v < 200 for v in interactive) and export_s < 60
    return {
        "title": "Labeling: 100,000 tasks with 3x overlap",
        "what": __doc__.strip().splitlines()[0] if __doc__ else "",
        "results": results,
        "notes": [
            "Targets: every interactive p95 < 200 ms; export of 100,000+ labels in seconds.",
            f"Targets met: {'yes' if met else 'no'}.",
            "The steward's counts are project_stats(..., agreement=False): progress, review "
            "counts and every annotator's standing and gold accuracy. The full stats with the "
            "agreement and aggregation report (Krippendorff's alpha, Cohen's and Fleiss' kappa "
            "with bootstrap intervals, majority vote and Dawid-Skene over every labeled task) "
            f"is not an interactive call and is timed once: {report_s:.0f} s here.",
            "Each next-task call claims a replica, then skips it, so successive calls hand out "
            "new tasks (the skip is timed with it).",
            "a1's labels were bulk-loaded, so a1 has no queue position yet: the first call scans "
            "past the 33,333 open tasks a1 already labeled (reported separately); later calls "
            "start after the last task handed out.",
            "Measured on a shared 2-core machine under load from other work (load average "
            f"{os.getloadavg()[0]:.1f} at the end of the run): absolute times are pessimistic.",
        ],
    }
