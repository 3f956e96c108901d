#!/usr/bin/env bash
# The same seeded random client requests against Apache ZooKeeper 3.8 and zkrs, every answer
# and watch event compared (compat-tests/src/difftest/main.rs says what is compared and how).
#
#   compat-tests/difftest.sh ZKRS_BINARY [base-port] [--ensemble] [-- zkrs-difftest options]
#
# Both servers standalone, fresh data dirs, TTL nodes on, enforced quotas, and the container
# check an hour apart (no container or TTL node goes away during a run on either side).
# With --ensemble, a 3-member ensemble of each, session k on member k (one of them the
# leader), so writes go through followers and reads are served by them.
# Default: seeds 1-40, 1,500 steps each, 3 sessions per server (ensemble: seeds 1001-1015,
# 1,000 steps each). An ensemble of Apache ZooKeeper 3.8 now and then leaves a request
# unanswered (a follower's sync, a pipelined request): such a run is tried once more, then
# counted inconclusive, and the test fails when more than a third of the runs are.
set -euo pipefail
cd "$(dirname "$0")/.."
ZKRS=${1:?usage: $0 ZKRS_BINARY [base-port] [--ensemble] [-- options]}
shift
BASE_PORT=24980
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then BASE_PORT=$1; shift; fi
ENSEMBLE=0
if [[ ${1:-} == --ensemble ]]; then ENSEMBLE=1; shift; fi
[[ ${1:-} == -- ]] && shift
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/zkrs-target}
CP=/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar

dir=$(mktemp -d)
pids=()
extra=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [[ $ENSEMBLE == 1 ]] || compat-tests/oracle.sh stop "$((BASE_PORT + 1))" >/dev/null 2>&1 || true
  [[ -n ${DIFFTEST_KEEP:-} ]] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

settings() {
  cat <<CFG
tickTime=2000
initLimit=30
syncLimit=5
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
extendedTypesEnabled=true
enforceQuota=true
znode.container.checkIntervalMs=3600000
admin.enableServer=false
CFG
}

serving() { printf srvr | nc -w 2 -q 1 127.0.0.1 "$1" 2>/dev/null | grep -qE '^Mode: (standalone|leader|follower)'; }
wait_serving() {
  for _ in $(seq 1 600); do serving "$1" && return 0; sleep 0.1; done
  echo "FAIL: nothing serves on port $1"
  tail -20 "$dir"/*/server.log "$dir"/zkrs.log 2>/dev/null || true
  exit 1
}

if [[ $ENSEMBLE == 1 ]]; then
  # Members: zkrs on BASE+1..3 (quorum +11..13, election +21..23), Apache on BASE+31..33
  # (+41..43, +51..53).
  member() { # kind offset id
    local kind=$1 off=$2 id=$3 d="$dir/$1$3"
    mkdir -p "$d"
    echo "$id" > "$d/myid"
    {
      settings
      echo "dataDir=$d"
      echo "clientPort=$((BASE_PORT + off + id))"
      for s in 1 2 3; do
        echo "server.$s=127.0.0.1:$((BASE_PORT + off + 10 + s)):$((BASE_PORT + off + 20 + s))"
      done
    } > "$d/zoo.cfg"
    if [[ $kind == apache ]]; then
      java -Xmx256m -XX:+UseSerialGC "-Dzookeeper.log.dir=$d" \
        -Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=3600000 \
        -Dzookeeper.admin.enableServer=false -cp "$CP" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" > "$d/server.log" 2>&1 &
    else
      "$ZKRS" --config "$d/zoo.cfg" > "$d/server.log" 2>&1 &
    fi
    pids+=($!)
  }
  for id in 1 2 3; do member zkrs 0 "$id"; member apache 30 "$id"; done
  a_addrs=() b_addrs=()
  for id in 1 2 3; do
    wait_serving "$((BASE_PORT + id))"
    wait_serving "$((BASE_PORT + 30 + id))"
    b_addrs+=("127.0.0.1:$((BASE_PORT + id))")
    a_addrs+=("127.0.0.1:$((BASE_PORT + 30 + id))")
  done
  A=$(IFS=,; echo "${a_addrs[*]}")
  B=$(IFS=,; echo "${b_addrs[*]}")
  default=(--seed 1001 --runs 15 --steps 1000)
  # A bare check that passes takes Apache's ensemble down (its answer has no Stat).
  extra=(--no-bare-check)
else
  { settings; echo "dataDir=$dir/data"; echo "clientPort=$BASE_PORT"; } > "$dir/zoo.cfg"
  "$ZKRS" --config "$dir/zoo.cfg" > "$dir/zkrs.log" 2>&1 &
  pids+=($!)
  ORACLE_EXTENDED_TYPES=1 ORACLE_JAVA_OPTS=-Dznode.container.checkIntervalMs=3600000 \
    compat-tests/oracle.sh start "$((BASE_PORT + 1))"
  wait_serving "$BASE_PORT"
  wait_serving "$((BASE_PORT + 1))"
  A=127.0.0.1:$((BASE_PORT + 1))
  B=127.0.0.1:$BASE_PORT
  default=(--seed 1 --runs 40 --steps 1500)
fi

cargo build -q -p compat-tests --bin zkrs-difftest
args=("$@")
[[ ${#args[@]} -eq 0 ]] && args=("${default[@]}")
if ! "$CARGO_TARGET_DIR/debug/zkrs-difftest" --a "$A" --b "$B" "${extra[@]+"${extra[@]}"}" "${args[@]}"; then
  echo "--- zkrs logs (sessions expired, tail) ---"
  grep -ai "expir" "$dir"/zkrs*/server.log "$dir/zkrs.log" 2>/dev/null | tail -5 || true
  tail -30 "$dir"/zkrs*/server.log "$dir/zkrs.log" 2>/dev/null || true
  echo "--- Apache ZooKeeper logs (sessions expired) ---"
  grep -a "Expiring session" "$dir"/apache*/server.log "/tmp/zkrs-oracle-$((BASE_PORT + 1))/server.log" 2>/dev/null | tail -5 || true
  exit 1
fi
