#!/usr/bin/env bash
# The same seeded random client requests against Apache ZooKeeper 3.8 and zkrs, every answer
# and watch event compared (compat-tests/src/difftest/main.rs says what is compared and how).
#
#   compat-tests/difftest.sh ZKRS_BINARY [base-port] [-- zkrs-difftest options]
#
# Both servers standalone, fresh data dirs, TTL nodes on, enforced quotas, and the container
# check an hour apart (no container or TTL node goes away during a run on either side).
# Default: seeds 1-40, 1,500 steps each, 3 sessions per server.
set -euo pipefail
cd "$(dirname "$0")/.."
ZKRS=${1:?usage: $0 ZKRS_BINARY [base-port] [-- options]}
shift
BASE_PORT=24980
if [[ $# -gt 0 && $1 != -- ]]; then BASE_PORT=$1; shift; fi
[[ ${1:-} == -- ]] && shift
ZK_PORT=$BASE_PORT
APACHE_PORT=$((BASE_PORT + 1))
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/zkrs-target}

dir=$(mktemp -d)
zk_pid=
cleanup() {
  [[ -n $zk_pid ]] && { kill "$zk_pid" 2>/dev/null || true; wait "$zk_pid" 2>/dev/null || true; }
  compat-tests/oracle.sh stop "$APACHE_PORT" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
extendedTypesEnabled=true
enforceQuota=true
znode.container.checkIntervalMs=3600000
admin.enableServer=false
CFG
"$ZKRS" --config "$dir/zoo.cfg" > "$dir/zkrs.log" 2>&1 &
zk_pid=$!
ORACLE_EXTENDED_TYPES=1 ORACLE_JAVA_OPTS=-Dznode.container.checkIntervalMs=3600000 \
  compat-tests/oracle.sh start "$APACHE_PORT"

serving() { printf srvr | nc -w 2 -q 1 127.0.0.1 "$1" 2>/dev/null | grep -q '^Mode:'; }
for port in "$ZK_PORT" "$APACHE_PORT"; do
  for _ in $(seq 1 200); do serving "$port" && break; sleep 0.1; done
  serving "$port" || { echo "FAIL: nothing serves on port $port"; tail -20 "$dir/zkrs.log"; exit 1; }
done

cargo build -q -p compat-tests --bin zkrs-difftest
args=("$@")
[[ ${#args[@]} -eq 0 ]] && args=(--seed 1 --runs 40 --steps 1500)
if ! "$CARGO_TARGET_DIR/debug/zkrs-difftest" --a "127.0.0.1:$APACHE_PORT" --b "127.0.0.1:$ZK_PORT" "${args[@]}"; then
  echo "--- zkrs log (sessions expired, tail) ---"
  grep -ai "expir" "$dir/zkrs.log" | tail -5 || true
  tail -30 "$dir/zkrs.log"
  echo "--- Apache ZooKeeper log (sessions expired) ---"
  grep -a "Expiring session" "/tmp/zkrs-oracle-$APACHE_PORT/server.log" | tail -5 || true
  exit 1
fi
