#!/usr/bin/env bash
# The main job on the bundled sample data (examples/sample). Results land in $1 (default .demo).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.demo}
ws="$out/workspace"
sample=examples/sample
rm -rf "$ws" "$out/legacy.db" && mkdir -p "$out"
export GARRISON_WORKSPACE="$ws"
step() { printf '\n== %s\n' "$*"; }

step "1. A workspace for a network accredited SECRET//NOFORN"
garrison init "$ws" --system-high "SECRET//NOFORN"

step "2. Users: clearances, read-ins, citizenship, grants and roles"
while IFS=$'\t' read -r name clearance sci sap country grants roles; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  args=(user add "$name" --clearance "$clearance" --country "$country" --role "$roles")
  [[ "$sci" != "-" ]] && args+=(--sci "$sci")
  [[ "$sap" != "-" ]] && args+=(--sap "$sap")
  [[ "$grants" != "-" ]] && args+=(--grant "$grants")
  garrison "${args[@]}"
done < "$sample/users.tsv"
garrison user list

step "3. Ingest a folder of marked documents (unmarked content defaults to CONFIDENTIAL//NOFORN)"
garrison ingest "$sample/docs" --default-marking "CONFIDENTIAL//NOFORN" --source sample-share --as ben

step "4. Ingest a table from a legacy database"
python3 - "$sample/legacy/parts.csv" "$out/legacy.db" <<'PY'
import csv, sqlite3, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
with sqlite3.connect(sys.argv[2]) as db:
    db.execute("create table parts (id integer primary key, nsn text, item text, qty integer,"
               " depot text, received date)")
    db.executemany("insert into parts values (:id, :nsn, :item, :qty, :depot, :received)", rows)
PY
garrison ingest "sqlite:///$(cd "$out" && pwd)/legacy.db" --table parts \
  --default-marking "CONFIDENTIAL//NOFORN" --as ben

step "5. What the operator sees (quarantined and spilled documents: reason only, no marking)"
garrison docs ls

step "6. What cho (SECRET, British citizen, viewer) may see: only what is released to GBR"
garrison docs ls --as cho

step "7. Marking findings for stewards"
garrison docs findings --as ben

step "8. One document, element by element, with each portion's marking"
memo=$(garrison docs ls --json | python3 -c 'import json,sys; print(next(d["id"] for d in json.load(sys.stdin) if (d["filename"] or "").startswith("logistics")))')
garrison docs show "$memo" --elements --as dov

step "9. Asking for something one may not read looks exactly like asking for nothing"
garrison docs show "$memo" --as eli || echo "   (exit $?)"
garrison docs show 0000000000000000000000000000000000000000000000000000000000000000 --as eli || echo "   (exit $?)"

step "10. The default pipeline: normalize, language, PII, quality, dedup, chunk, embed"
garrison run --as ben
garrison chunks ls --as cho
chunk=$(garrison chunks ls --json | python3 -c 'import json,sys; print(next(c["id"] for c in json.load(sys.stdin) if "HARROW" in c["text"]))')
garrison lineage "$chunk"

step "10b. One question, two readers: each answer quotes only what its reader may read, and is marked so"
question="Which depot receives the reserve fuel stock, and when?"
garrison ask "$question" --as dov --json > "$out/ask-dov.json"
garrison ask "$question" --as cho --json > "$out/ask-cho.json"
python3 - "$out/ask-dov.json" "$out/ask-cho.json" <<'PY'
import json, sys, textwrap
columns = []
for path, who in zip(sys.argv[1:], ("dov (TOP SECRET, USA)", "cho (SECRET, GBR)")):
    answer = json.load(open(path))
    lines = [f"as {who}", answer["marking"], ""]
    for s in answer["sentences"]:
        refs = "".join(f" [{n}]" for n in s["citations"])
        lines += textwrap.wrap(f"{s['portion']} {s['text']}{refs}", 44) or [""]
    lines += ["", answer["marking"]]
    columns.append(lines)
height = max(len(c) for c in columns)
for row in range(height):
    left, right = (c[row] if row < len(c) else "" for c in columns)
    print(f"  {left:<46}  {right}")
PY

step "11. A dataset version with leakage-free splits, exported, signed and verified"
garrison dataset create logistics --split train=0.7,validation=0.15,test=0.15 --seed 7 --as ben
rm -rf "$out/export-parquet" "$out/export-hf" "$out/signing-key.pem"
garrison dataset export logistics --format parquet --out "$out/export-parquet" --as ben
garrison dataset export logistics --format hf --out "$out/export-hf" --as ben
garrison key export --out "$out/signing-key.pem"
garrison verify "$out/export-parquet" --trusted-key "$out/signing-key.pem"
garrison verify "$out/export-hf" --trusted-key "$out/signing-key.pem"

step "11b. A labeling round: tasks by clearance, blind overlap, review, labels back as a dataset"
garrison user add gil --clearance C --country USA --role annotator
garrison user add hal --clearance S --country USA --role reviewer
garrison label project create logistics-topics --dataset logistics --classes schedule,supply,other \
  --overlap 2 --review-rate 0.5 --marking UNCLASSIFIED --as ben
python3 - "$ws" <<'PY'
import sys
from garrison.label import (LabelProjects, accept, export_dataset, export_labels, fix,
                            next_review, next_task, project_stats, submit)
from garrison.store.workspace import Workspace

ws = Workspace.open(sys.argv[1])
def topic(text, careless):
    low = text.lower()
    if "schedule" in low or "convoy" in low:
        return "other" if careless else "schedule"
    return "supply" if any(w in low for w in ("fuel", "parts", "pallet", "supply")) else "other"
for user, careless in (("dov", False), ("gil", True)):
    session, seen = ws.session(user), set()
    while (task := next_task(session, "logistics-topics")) is not None:
        submit(session, task.id, topic(task.text, careless))
        seen.add(task.marking.banner())
    print(f"  {user} labeled tasks marked {', '.join(sorted(seen)) or 'nothing'}")
reviewer, reviewed = ws.session("hal"), 0
while (item := next_review(reviewer, "logistics-topics")) is not None:
    right = topic(item.task.text, False)
    (accept(reviewer, item.label.id) if item.label.value == right
     else fix(reviewer, item.label.id, right))
    reviewed += 1
stats = project_stats(ws.session("ben"), "logistics-topics")
print(f"  progress: {stats['complete']} of {stats['production']} tasks complete, "
      f"labels {stats['labels']}, reviews {stats['review']}")
_, labeled = export_labels(ws.session("ben"), "logistics-topics")
pairs = [r.labels["annotators"] for r in labeled]
both = [p for p in pairs if len([a for a in p if a["kind"] == "annotation"]) == 2]
agree = sum(1 for p in both if p[0]["value"] == p[1]["value"])
print(f"  pairwise agreement: {agree} of {len(both)} doubly labeled tasks"
      + (f" ({agree / len(both):.0%})" if both else ""))
low = project_stats(ws.session("gil"), "logistics-topics")
print(f"  gil (CONFIDENTIAL) counts {low['tasks']} tasks of {stats['tasks']}")
version = export_dataset(ws.session("ben"), "logistics-topics", name="logistics-labeled")
print(f"  labels exported as {version.name}@{version.id[:12]} [{version.marking.banner()}]")
ws.close()
PY

step "12. Marking roll-ups (portions -> banner)"
{
  while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    IFS=';' read -ra parts <<< "$line"
    trimmed=()
    for p in "${parts[@]}"; do trimmed+=("$(echo "$p" | xargs -0)"); done
    printf '%-56s -> %s\n' "$line" "$(garrison marking rollup "${trimmed[@]}")"
  done < "$sample/rollups.txt"
} | tee "$out/rollups.txt"

step "13. The audit log: recent events, a signed checkpoint kept elsewhere, verification"
garrison audit tail -n 6
garrison audit checkpoint --out "$out/checkpoint.json"
garrison audit verify --against "$out/checkpoint.json"

step "Summary"
python3 - "$ws" <<'PY'
import json, subprocess, sys
def run(*args):
    return json.loads(subprocess.run(["garrison", *args, "--json"], capture_output=True,
                                     text=True, check=True).stdout)
docs = run("docs", "ls")
chunks = run("chunks", "ls")
versions = run("dataset", "ls")
rows = [
    ("documents parsed", sum(d["status"] == "parsed" for d in docs)),
    ("documents quarantined", sum(d["status"] == "quarantined" for d in docs)),
    ("documents spilled (nothing kept)", sum(d["status"] == "spilled" for d in docs)),
    ("chunks (embedded)", len(chunks)),
    ("dataset versions", len(versions)),
    ("dataset records", sum(v["records"] for v in versions)),
]
for label, value in rows:
    print(f"  {label:<34} {value}")
PY

cat <<DONE

Done. Results are in $out/:
  $ws             the workspace: catalog.db, encrypted blobs/, audit/, keys/
  $out/export-parquet/      the dataset as Parquet: data, manifest, checksums, signature, card
  $out/export-hf/           the same dataset in the Hugging Face datasets layout
  $out/signing-key.pem      the public key that checks the exports' signatures
  $out/rollups.txt          the marking roll-ups
  $out/checkpoint.json      a signed audit checkpoint to keep outside the workspace
Explore further with: GARRISON_WORKSPACE=$ws .venv/bin/garrison docs ls
DONE
