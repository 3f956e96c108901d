#!/usr/bin/env bash
# A zkrs member joining two zkrs members that hold N znodes, on an empty data dir (SNAP from
# the leader), while one client reads from the leader one request at a time. Prints, for each
# zkrs binary given (default: this tree's release build), the time from the member's start to
# `Mode: follower`, the leader's and the new member's peak resident memory (VmHWM) during
# the join, and the reading client's latencies (p99.9 and max: a leader that stops to write
# the snapshot shows in the max).
#
#   bench/snap-sync.sh [znodes] [base-port] [zkrs binary ...]   # default 1000000, 25700
#
# A binary given as `A+B` runs members 1 and 2 with A and the joining member with B (two
# builds syncing each other); B may be `apache`: Apache ZooKeeper 3.8 joins (ZooKeeper's
# snapshot stream from the zkrs leader).
set -euo pipefail
N=${1:-1000000}
BASE=${2:-25700}
shift 2 2>/dev/null || shift $#
: "${CARGO_TARGET_DIR:=$HOME/.cache/zkrs-target}"
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$CARGO_TARGET_DIR/release/zkrs")
BENCH=$CARGO_TARGET_DIR/release/zkrs-bench
. "$(dirname "$0")/ensemble-lib.sh"

mib() { # pid field
  awk -v f="$2:" '$1 == f {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}

echo "| binary | start to follower s | leader peak RSS MiB | member 3 peak RSS MiB | reads p99.9 ms | reads max ms |"
echo "|---|---:|---:|---:|---:|---:|"
for given in "${BINARIES[@]}"; do
  bin=${given%%+*}
  joiner=${given#*+}
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pids=()
  rm -rf "$D"/m*
  config 1
  config 2
  member "$bin" 1
  p1=$SPID
  member "$bin" 2
  p2=$SPID
  wait_mode $((BASE + 1))
  wait_mode $((BASE + 2))
  lead=$((BASE + 1)) lpid=$p1
  [ "$(mode $((BASE + 2)))" = leader ] && lead=$((BASE + 2)) lpid=$p2
  "$BENCH" bulk --addr "127.0.0.1:$lead" -s 16 -o 64 -n "$N" -d 1200 --label bulk > "$D/bulk.out"
  # One reader on the leader all along the join.
  "$BENCH" get --addr "127.0.0.1:$lead" -s 1 -o 1 -n 100000000 -d 25 --label reads > "$D/get.out" &
  reader=$!
  sleep 4
  echo 5 > "/proc/$lpid/clear_refs" # the leader's peak RSS from here on
  config 3
  t0=$(date +%s.%N)
  member "$joiner" 3
  p3=$SPID
  wait_mode $((BASE + 3))
  t1=$(date +%s.%N)
  sleep 2
  lhwm=$(mib "$lpid" VmHWM)
  hwm3=$(mib "$p3" VmHWM)
  wait "$reader"
  p999=$(sed -n 's/.* p999_ms=\([0-9.,]*\).*/\1/p' "$D/get.out" | head -1)
  max=$(sed -n 's/.* max_ms=\([0-9.,]*\).*/\1/p' "$D/get.out" | head -1)
  printf '| %s | %.2f | %s | %s | %s | %s |\n' "$given" "$(echo "$t1 - $t0" | bc)" "$lhwm" "$hwm3" "$p999" "$max"
done
