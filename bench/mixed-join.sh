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
. "$(dirname "$0")/ensemble-lib.sh"

config 1
config 2
member apache 1
member apache 2
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
  if [ "$1" = zkrs ]; then member "$ZKRS" 3; else member apache 3; fi
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
