#!/usr/bin/env bash
# The main job on the bundled sample data (examples/sample). Results land in $1 (default .demo).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.demo}
ws="$out/workspace"
sample=examples/sample
rm -rf "$ws" && mkdir -p "$out"
export GARRISON_WORKSPACE="$ws"

echo "== 1. Workspace (system high SECRET//REL TO USA, FVEY)"
garrison init "$ws" --system-high "SECRET//REL TO USA, FVEY"

echo "== 2. Sample users"
while IFS=$'\t' read -r name clearance sci sap country grants roles; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  args=(user add "$name" --clearance "$clearance" --country "$country" --role "$roles")
  [[ "$sci" != "-" ]] && args+=(--sci "$sci")
  [[ "$sap" != "-" ]] && args+=(--sap "$sap")
  [[ "$grants" != "-" ]] && args+=(--grant "$grants")
  garrison "${args[@]}"
done < "$sample/users.tsv"
garrison user list

echo "== 3. Marking roll-ups (portions -> banner -> access expression)"
{
  while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    IFS=';' read -ra parts <<< "$line"
    trimmed=()
    for p in "${parts[@]}"; do trimmed+=("$(echo "$p" | xargs -0)"); done
    banner=$(garrison marking rollup "${trimmed[@]}" | tr -d '\n')
    printf '%-60s -> %s\n' "$line" "$banner"
    printf '%-60s    %s\n' "" "$(garrison marking expr "$banner" 2>&1 || true)"
  done < "$sample/rollups.txt"
} | tee "$out/rollups.txt"

echo "== 4. A marking that breaks a rule is refused (exit 2)"
garrison marking check "SECRET//NOFORN/REL TO USA, GBR" || echo "   (refused with exit $?)"

echo "== 5. Who may read what"
garrison access eval --auths "$(garrison user show cho --json | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["authorizations"]))')" -- \
  "$(garrison marking expr 'SECRET//REL TO USA, GBR')" "$(garrison marking expr 'SECRET//NOFORN')" \
  | paste -d' ' <(printf 'cho reads SECRET//REL TO USA, GBR:\ncho reads SECRET//NOFORN:\n') -

echo "== 6. Audit log: tail, signed checkpoint, verification"
garrison audit tail -n 5
garrison audit checkpoint --out "$out/checkpoint.json"
garrison audit verify --against "$out/checkpoint.json"

echo
echo "Done. Results are in $out/:"
echo "  $ws             the workspace (catalog.db, audit/, keys/)"
echo "  $out/rollups.txt          the marking roll-ups"
echo "  $out/checkpoint.json      a signed audit checkpoint to keep elsewhere"
