#!/usr/bin/env bash
# Installs (when missing) and starts a local PostgreSQL for the catalog tests, and creates a
# superuser role named after the current OS user so tests connect over the Unix socket with peer
# authentication (no password, no TCP -- it works from inside the tests' network namespace).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q" && break
  sleep 1
done
me=$(id -un)
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='$me'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE ROLE \"$me\" SUPERUSER LOGIN'"
echo "PostgreSQL $version is running (Unix socket /var/run/postgresql, role $me)."
