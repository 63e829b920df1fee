#!/usr/bin/env bash
# Runs the test suite. As root, pytest runs inside a fresh network namespace that has only a
# loopback interface, so nothing the tests start (subprocesses included) can reach a network.
# Services the tests need are reached over Unix sockets (PostgreSQL) or started inside.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

pytest_cmd=("$BIN/python" -m pytest "$@")
if [ "$(id -u)" = "0" ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -n true 2>/dev/null; then
  export GARRISON_NETNS=1
  unshare -n -- bash -c 'ip link set lo up && exec "$@"' netns "${pytest_cmd[@]}"
  rc=$?
else
  if [ "${CI:-}" = "true" ]; then
    echo "run-tests: cannot create a network namespace (needs root, unshare and ip)." >&2
    exit 1
  fi
  echo "run-tests: not root or no unshare: running without a network namespace." >&2
  "${pytest_cmd[@]}"
  rc=$?
fi
# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
exit "$rc"
