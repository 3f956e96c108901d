#!/usr/bin/env bash
# Run the kazoo (Python client) suite.
#   compat-tests/kazoo/run.sh host:port     (or set ZK_HOSTS and pass nothing)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export ZK_HOSTS=${1:-${ZK_HOSTS:?usage: $0 host:port}}
PY=${PYTHON:-python3}
"$PY" -c 'import kazoo, pytest' 2>/dev/null || { echo "FAIL: kazoo/pytest missing (pip install -r $HERE/requirements.txt)"; exit 1; }
cd "$HERE"
echo "== kazoo suite against $ZK_HOSTS =="
exec timeout 600 "$PY" -m pytest -v -p no:randomly "${@:2}"
