"""Run the benchmarks and write reports to bench/results/ (``make bench``).

Every benchmark times Garrison's path and a baseline in the same run, interleaved, and reports
the ratio: absolute numbers on a shared machine are noise, ratios much less so.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    access,
    api,
    ask,
    audit,
    cold_search,
    dedup,
    embed,
    engines,
    fuzz,
    headings,
    incremental,
    ingest,
    isolation,
    label,
    label_active,
    mixed_load,
    object_store,
    office,
    onnx,
    pdf,
    pipeline,
    pipeline_memory,
    redteam,
    search,
    train,
)

RESULTS = Path(__file__).parent / "results"
BENCHMARKS = {
    "access": access.run,
    "api": api.run,
    "ask": ask.run,
    "audit": audit.run,
    "cold_search": cold_search.run,
    "dedup": dedup.run,
    "embed": embed.run,
    "engines": engines.run,
    "headings": headings.run,
    "fuzz": fuzz.run,
    "incremental": incremental.run,
    "ingest": ingest.run,
    "isolation": isolation.run,
    "label": label.run,
    "label_active": label_active.run,
    "office": office.run,
    "object_store": object_store.run,
    "mixed_load": mixed_load.run,
    "onnx": onnx.run,
    "pdf": pdf.run,
    "pipeline": pipeline.run,
    "pipeline_memory": pipeline_memory.run,
    "redteam": redteam.run,
    "search": search.run,
    "train": train.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {list(BENCHMARKS)})"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for name in args.names or list(BENCHMARKS):
        print(f"== {name}", file=sys.stderr)
        report = BENCHMARKS[name](quick=args.quick)
        report["machine"] = {"python": platform.python_version(), "cpu": platform.machine()}
        report["when"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        lines = [f"# {report['title']}", "", report["what"], "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in report["results"].items()]
        if report.get("notes"):
            lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
        (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
        for key, value in report["results"].items():
            print(f"   {key}: {value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
