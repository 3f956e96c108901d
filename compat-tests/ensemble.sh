#!/usr/bin/env bash
# Starts (or stops) a 3-member zkrs ensemble on loopback for the compat suites.
#   compat-tests/ensemble.sh start <zkrs-binary> <dir> [base-port]   -> prints host:port of each member
#   compat-tests/ensemble.sh stop <dir>
set -euo pipefail
cmd=${1:?start|stop}
case "$cmd" in
start)
  bin=${2:?zkrs binary}; dir=${3:?dir}; base=${4:-21910}
  mkdir -p "$dir"
  servers=""
  for i in 1 2 3; do servers+="server.$i=127.0.0.1:$((base + 10 + i)):$((base + 20 + i))"$'\n'; done
  for i in 1 2 3; do
    d="$dir/m$i"; mkdir -p "$d"; echo "$i" > "$d/myid"
    # znodeCacheSizeMB=0: every read of a saved znode goes through the store.
    cat > "$d/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d
clientPort=$((base + i))
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
extendedTypesEnabled=true
znode.container.checkIntervalMs=1000
znodeCacheSizeMB=0
enforceQuota=true
$servers
CFG
    "$bin" --config "$d/zoo.cfg" > "$d/zkrs.log" 2>&1 &
    echo $! > "$d/pid"
  done
  # Wait until every member serves (Mode leader or follower).
  for _ in $(seq 1 300); do
    ok=0
    for i in 1 2 3; do
      mode=$(echo srvr | nc -q1 127.0.0.1 $((base + i)) 2>/dev/null | sed -n 's/^Mode: //p' || true)
      case "$mode" in leader|follower) ok=$((ok + 1));; esac
    done
    [ "$ok" = 3 ] && { echo "127.0.0.1:$((base + 1)) 127.0.0.1:$((base + 2)) 127.0.0.1:$((base + 3))"; exit 0; }
    sleep 0.1
  done
  echo "ensemble did not start" >&2; tail -20 "$dir"/m*/zkrs.log >&2; exit 1
  ;;
stop)
  dir=${2:?dir}
  for p in "$dir"/m*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  # Wait for the members to exit (they flush RocksDB on SIGTERM), so that the
  # caller can remove the directory.
  for p in "$dir"/m*/pid; do
    [ -f "$p" ] || continue
    for _ in $(seq 1 100); do kill -0 "$(cat "$p")" 2>/dev/null || break; sleep 0.1; done
  done
  ;;
esac
