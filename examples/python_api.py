"""Garrison from Python: a workspace, users, ingest, the pipeline, search and a question.

Run it from the repository root (``python examples/python_api.py``); it works in a temporary
folder and removes it at the end. It uses the hashing embedder, so it needs no model and no
network; the question is answered by the built-in extractive answerer (no generator needed).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import garrison

SAMPLE = Path(__file__).resolve().parent / "sample" / "docs"

#: The built-in stages, with the hashing embedder instead of all-MiniLM-L6-v2.
PIPELINE = """
name: quick
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 96, overlap_tokens: 8}
  - embed: {model: hashing}
"""

QUERY = "fuel depot"
QUESTION = "Which depot receives the reserve fuel stock, and when?"


def main() -> int:
    # 0. What a document's marks say before it is ever ingested: no workspace needed.
    preview = garrison.parse_file(SAMPLE / "draft-with-bad-mark.md")
    print(f"parse draft-with-bad-mark.md: ingest would {preview.verdict} it ({preview.reason})")
    preview = garrison.parse_file(SAMPLE / "logistics-memo.txt", system_high="SECRET//NOFORN")
    print(f"parse logistics-memo.txt: ingest would {preview.verdict} it, marked {preview.marking}")

    # 1. A workspace for a network accredited SECRET//NOFORN, and three users.
    with (
        tempfile.TemporaryDirectory(prefix="garrison-example-") as tmp,
        garrison.init(Path(tmp) / "ws", system_high="SECRET//NOFORN") as ws,
    ):
        admin = ws.session()  # the operator's system session (audited like anyone)
        admin.add_user("ben", clearance="S", grants=["CUI"], roles=["steward"])
        admin.add_user("dov", clearance="S", roles=["viewer"])
        admin.add_user("cho", clearance="S", country="GBR", roles=["viewer"])
        print(ws)

        # 2. A steward ingests the sample folder and runs the pipeline.
        with ws.session("ben") as ben:
            report = ben.ingest(SAMPLE, default_marking="CONFIDENTIAL//NOFORN")
            counts = report.counts
            print(
                f"ingested {counts['files']} files: {counts['parsed']} parsed, "
                f"{counts['quarantined']} quarantined, {counts['spilled']} spilled"
            )
            run = ben.run(PIPELINE)
            print(f"pipeline: {run.to_dict()['chunks']} chunks embedded")

        # 3. The same search as two readers: each sees only what it may read.
        for user in ("dov", "cho"):
            with ws.session(user) as reader:
                result = reader.search(QUERY, k=5)
                print(f"\nsearch {QUERY!r} as {user}: {len(result.hits)} hits")
                for hit in result.hits:
                    print(f"  [{hit.marking}] {hit.snippet[:70]}")
                answer = reader.ask(QUESTION)
                print(f"ask as {user} -> the answer is marked {answer.marking}")
                for sentence in answer.sentences:
                    print(f"  {sentence.portion} {sentence.text}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
