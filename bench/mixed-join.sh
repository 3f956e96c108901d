#!/usr/bin/env bash
# A member joining an Apache ZooKeeper 3.8 ensemble that holds N znodes, on an empty data
# dir (SNAP from the Apache leader): zkrs and Apache ZooKeeper side by side, each run on the
# same ensemble. Prints the time from the member's start to `Mode: follower` and its peak
# resident memory (VmHWM).
#
#   bench/mixed-join.sh [znodes] [base-port]      # default 1000000, 25600
set -euo pipefail
N=${1:-1000000}
BASE=${2:-25600}
: "${CARGO_TARGET_DIR:=$HOME/.cache/zkrs-target}"
ZKRS=$CARGO_TARGET_DIR/release/zkrs
BENCH=$CARGO_TARGET_DIR/release/zkrs-bench
CP=/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar
D=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$D"' EXIT

config() { # id
  local i=$1 d=$D/m$1
  mkdir -p "$d"
  echo "$i" > "$d/myid"
  {
    echo "tickTime=2000"; echo "initLimit=30"; echo "syncLimit=5"; echo "dataDir=$d"
    echo "clientPort=$((BASE + i))"; echo "clientPortAddress=127.0.0.1"
    echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"; echo "maxClientCnxns=0"
    for s in 1 2 3; do echo "server.$s=127.0.0.1:$((BASE + 10 + s)):$((BASE + 20 + s))"; done
  } > "$d/zoo.cfg"
}

apache() { # id
  java "-Dzookeeper.log.dir=$D/m$1" -cp "$CP" org.apache.zookeeper.server.quorum.QuorumPeerMain \
    "$D/m$1/zoo.cfg" > "$D/m$1/server.log" 2>&1 &
  pids+=($!)
  SPID=$!
}

mode() { # port
  { echo srvr | nc -q 1 127.0.0.1 "$1" 2>/dev/null || true; } | sed -n 's/^Mode: //p'
}

wait_mode() { # port
  for _ in $(seq 1 1200); do
    case "$(mode "$1")" in leader | follower) return 0 ;; esac
    sleep 0.05
  done
  echo "port $1 did not serve" >&2
  exit 1
}

config 1
config 2
apache 1
apache 2
wait_mode $((BASE + 1))
wait_mode $((BASE + 2))
lead=$BASE
for i in 1 2; do [ "$(mode $((BASE + i)))" = leader ] && lead=$((BASE + i)); done
echo "Apache members 1 and 2 serve; creating $N znodes through the leader ($lead)"
"$BENCH" bulk --addr "127.0.0.1:$lead" -s 16 -o 64 -n "$N" -d 1200 --label bulk > "$D/bulk.out"
grep -E "ops/s|creates" "$D/bulk.out" | head -2 || true

join() { # kind
  rm -rf "$D/m3"
  config 3
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$1" = zkrs ]; then
    "$ZKRS" --config "$D/m3/zoo.cfg" > "$D/m3/server.log" 2>&1 &
    pids+=($!)
    SPID=$!
  else
    apache 3
  fi
  local pid=$SPID
  wait_mode $((BASE + 3))
  t1=$(date +%s.%N)
  sleep 1
  local hwm rss
  hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  printf '| %s | %.2f | %s | %s |\n' "$1" "$(echo "$t1 - $t0" | bc)" "$hwm" "$rss"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "| member 3 | start to follower s | peak RSS MiB | RSS after MiB |"
echo "|---|---:|---:|---:|"
for kind in zkrs apache zkrs apache; do join "$kind"; done
