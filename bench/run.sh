#!/usr/bin/env bash
# Apache ZooKeeper 3.8 and zkrs side by side, on this machine.
#
#   bench/run.sh            # the full run (~15 minutes); writes bench/RESULTS.md
#   bench/run.sh --quick    # a short smoke run (small counts) for CI; writes nothing in bench/
#
# Each server runs in turn with the same settings (standalone, maxClientCnxns=0, forceSync
# default = yes, its own data dir under /tmp, a spare port on 127.0.0.1), pinned to CPU 0;
# the load tool (compat-tests' zkrs-bench) is pinned to CPU 1. Apache ZooKeeper gets the JVM's
# default settings and a warm-up pass before anything is measured (zkrs gets the same pass).
# The server's CPU time (utime+stime from /proc/<pid>/stat) is read around each measured phase.
# Prints ONE markdown table: workload | metric | Apache ZK | zkrs | ratio (zkrs ÷ Apache).
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/zkrs-target), SERVER_CPU (0), CLIENT_CPU (1),
# BENCH_TMP (/tmp), ONLY (apache or zkrs: run one server only, for profiling; zkrs-ensemble: only
# zkrs's 3-member runs), ZKRS_BIN (another zkrs binary, for A/B runs).
set -euo pipefail

QUICK=0
case ${1:-} in
  --quick) QUICK=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/zkrs-target}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
JAVA=${JAVA:-java}
JAVA_DIR=/usr/share/java

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Sizes. Full: the issue's numbers. Quick: a smoke run of a few seconds per server.
if ((QUICK)); then
  W1_N=100; W1_D=0.5; W64_N=5000; W64_D=0.5
  R1_N=1000; R1_D=0.5; R64_N=50000; R64_D=0.5
  WARM_D=0; WATCHERS=50; ROUNDS=2; STORM=100; IDLE=300; HOLD=1; BULK=5000
else
  W1_N=5000; W1_D=5; W64_N=1000000; W64_D=8
  R1_N=100000; R1_D=5; R64_N=10000000; R64_D=8
  WARM_D=5; WATCHERS=1000; ROUNDS=5; STORM=2000; IDLE=10000; HOLD=15; BULK=1000000
fi

# ---------------------------------------------------------------------------------------------
# Build.
log "building zkrs and zkrs-bench (release)"
(cd "$ROOT" && nice -n 5 cargo build --release --quiet --bin zkrs \
  && nice -n 5 cargo build --release --quiet -p compat-tests --bin zkrs-bench)
ZKRS=${ZKRS_BIN:-$CARGO_TARGET_DIR/release/zkrs}
BENCH=$CARGO_TARGET_DIR/release/zkrs-bench

NCPU=$(nproc)
if ((NCPU >= 2)); then
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_CLIENT=(taskset -c "$CLIENT_CPU")
else
  PIN_SERVER=()
  PIN_CLIENT=()
fi
B=("${PIN_CLIENT[@]}" "$BENCH")

# 10,000 idle sessions need 10,000+ descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/zkrs-bench.XXXXXX")
REC=$WORK/record.tsv
: >"$REC"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"/*/data "$WORK"/*.manifest
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the kernel's ephemeral range (32768 and up here): a port there may be the local end of
# some outgoing connection, which a connect test cannot see but a server's bind fails on.
spare_port() {
  local p=$((20000 + RANDOM % 12000))
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

now_ns() { date +%s%N; }
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
dir_mib() { du -sb "$1" | awk '{printf "%.1f", $1 / 1048576}'; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$REC"; }

# ---------------------------------------------------------------------------------------------
# Servers. start_<name> DIR PORT: starts in the background, sets SPID; waits for an answer.

write_cfg() { # dir port
  mkdir -p "$1/data"
  cat >"$1/zoo.cfg" <<CFG
tickTime=2000
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
CFG
}

start_apache() { # dir port
  local cp="$JAVA_DIR/zookeeper.jar:$JAVA_DIR/zookeeper-jute.jar:$JAVA_DIR/slf4j-simple.jar"
  # The JVM's defaults (no heap or GC flags); slf4j-simple writes the INFO log to a file.
  "${PIN_SERVER[@]}" "$JAVA" -Dzookeeper.log.dir="$1" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg" \
    >>"$1/server.log" 2>&1 </dev/null &
  SPID=$!
}

start_zkrs() { # dir port
  RUST_LOG=${RUST_LOG:-info} "${PIN_SERVER[@]}" "$ZKRS" --config "$1/zoo.cfg" \
    >>"$1/server.log" 2>&1 </dev/null &
  SPID=$!
}

# start NAME DIR PORT [LABEL]: starts and waits for the first answer (recorded if LABEL).
start() {
  local t0
  t0=$(now_ns)
  "start_$1" "$2" "$3"
  PIDS+=("$SPID")
  local args=(probe --addr "127.0.0.1:$3" --since-ns "$t0" --timeout 600)
  if [[ -n ${4:-} ]]; then
    args+=(--record "$REC" --server "$1" --label "$4")
  fi
  if ! "${B[@]}" "${args[@]}" >"$2/probe.out"; then
    log "$1 did not answer; log tail:"
    tail -n 30 "$2/server.log" >&2
    exit 1
  fi
}

stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  local i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# The workloads against one server.

bench_server() { # name
  local name=$1 dir=$WORK/$1 port
  port=$(spare_port)
  write_cfg "$dir" "$port"
  log "$name: starting on 127.0.0.1:$port (data $dir/data)"
  start "$name" "$dir" "$port"
  local pid=$SPID
  record "fresh server" "RSS MiB ↓" "$name" "$(rss_mib "$pid")"
  local c=(--addr "127.0.0.1:$port" --server-pid "$pid")
  local r=("${c[@]}" --record "$REC" --server "$name")
  local g1=(-s 1 -o 1) g64=(-s 16 -o 64)

  if [[ $WARM_D != 0 ]]; then
    log "$name: warm-up (not measured)"
    "${B[@]}" create "${c[@]}" "${g64[@]}" -n 2000000 -d "$WARM_D" --tag warm --manifest "$dir/warm.manifest" >/dev/null
    "${B[@]}" set "${c[@]}" "${g64[@]}" -n 2000000 -d "$WARM_D" --manifest "$dir/warm.manifest" >/dev/null
    "${B[@]}" get "${c[@]}" "${g64[@]}" -n 20000000 -d "$WARM_D" >/dev/null
    "${B[@]}" mixed "${c[@]}" "${g64[@]}" -n 20000000 -d "$WARM_D" >/dev/null
    "${B[@]}" get "${c[@]}" "${g1[@]}" -n 20000000 -d "$WARM_D" >/dev/null
    "${B[@]}" delete "${c[@]}" "${g64[@]}" -n 20000000 -d 600 --manifest "$dir/warm.manifest" >/dev/null
  fi

  log "$name: writes"
  "${B[@]}" create "${r[@]}" "${g1[@]}" -n $W1_N -d $W1_D --tag c1 --manifest "$dir/c1.manifest" --label "create 1×1"
  "${B[@]}" create "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --tag c64 --manifest "$dir/c64.manifest" --label "create 16×64"
  "${B[@]}" set "${r[@]}" "${g1[@]}" -n $W1_N -d $W1_D --manifest "$dir/c1.manifest" --label "setData 1×1"
  "${B[@]}" set "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --manifest "$dir/c64.manifest" --label "setData 16×64"
  "${B[@]}" delete "${r[@]}" "${g1[@]}" -n $W1_N -d $W1_D --manifest "$dir/c1.manifest" --label "delete 1×1"
  "${B[@]}" delete "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --manifest "$dir/c64.manifest" --label "delete 16×64"

  log "$name: reads (10k-znode tree)"
  "${B[@]}" get "${r[@]}" "${g1[@]}" -n $R1_N -d $R1_D --label "getData 1×1"
  "${B[@]}" get "${r[@]}" "${g64[@]}" -n $R64_N -d $R64_D --label "getData 16×64"
  "${B[@]}" children "${r[@]}" "${g1[@]}" -n $R1_N -d $R1_D --label "getChildren 1×1"
  "${B[@]}" children "${r[@]}" "${g64[@]}" -n $R64_N -d $R64_D --label "getChildren 16×64"
  "${B[@]}" mixed "${r[@]}" "${g64[@]}" -n $R64_N -d $R64_D --label "mixed 90% get/10% set 16×64"

  log "$name: watch fan-out, session storm"
  "${B[@]}" watch "${r[@]}" --watchers $WATCHERS --rounds $ROUNDS --label "watch fan-out ($WATCHERS watchers)"
  "${B[@]}" storm "${r[@]}" -n $STORM --concurrency 64 --label "session storm ($STORM open+close)"

  # On a fresh server, so that its memory is the sessions' and not what earlier workloads left.
  log "$name: $IDLE idle sessions (fresh server, fresh data dir)"
  stop "$pid"
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  start "$name" "$dir" "$port"
  pid=$SPID
  sleep 1
  local before idle_label="idle sessions ($IDLE, pinging)"
  before=$(rss_mib "$pid")
  "${B[@]}" idle "${r[@]}" -n $IDLE --hold $HOLD --label "$idle_label" >"$dir/idle.out" &
  local ipid=$! i max=0 v
  for ((i = 0; i < 6000; i++)); do
    grep -q READY "$dir/idle.out" 2>/dev/null && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  for i in 1 2 3 4; do
    sleep "$(awk -v h=$HOLD 'BEGIN {print h / 5}')"
    v=$(rss_mib "$pid")
    max=$(awk -v a="$max" -v b="$v" 'BEGIN {print (b > a) ? b : a}')
  done
  wait "$ipid"
  cat "$dir/idle.out"
  record "$idle_label" "server RSS MiB ↓" "$name" "$max"
  record "$idle_label" "RSS added by the sessions MiB ↓" "$name" \
    "$(awk -v a="$max" -v b="$before" 'BEGIN {printf "%.1f", a - b}')"
  echo "$name: RSS before the idle sessions $before MiB, while they were open $max MiB"
  stop "$pid"

  log "$name: bulk create of $BULK znodes (fresh data dir)"
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  start "$name" "$dir" "$port"
  pid=$SPID
  local bl="bulk create ($BULK znodes)"
  "${B[@]}" bulk --addr "127.0.0.1:$port" --server-pid "$pid" --record "$REC" --server "$name" \
    -s 16 -o 64 -n $BULK -d 1200 --label "$bl"
  sleep 1
  record "$bl" "server RSS MiB ↓" "$name" "$(rss_mib "$pid")"
  stop "$pid"
  record "$bl" "data dir MiB ↓" "$name" "$(dir_mib "$dir/data")"
  log "$name: restart with $BULK znodes"
  local rl="restart with $BULK znodes"
  start "$name" "$dir" "$port" "$rl"
  pid=$SPID
  cat "$dir/probe.out"
  sleep 1
  record "$rl" "server RSS MiB ↓" "$name" "$(rss_mib "$pid")"
  stop "$pid"
  rm -rf "$dir/data"
}

# ---------------------------------------------------------------------------------------------
# A 3-member ensemble of each server on loopback (all members pinned to the server CPU, as the
# standalone server is): the write workloads against the leader, which logs, proposes to both
# followers, waits for a quorum of fsynced ACKs, commits and answers.

# ens_run NAME CMD...: one ensemble workload. In the --quick smoke, a failure on Apache's side
# (a JVM ensemble on one busy core has dropped its clients mid-run) is reported with its
# members' warnings and the smoke goes on: the smoke checks the machinery and zkrs, no target.
ens_run() {
  local name=$1
  shift
  "$@" && return 0
  if ((QUICK)) && [[ $name == apache ]]; then
    log "apache ensemble: a workload failed (reference side, smoke run); members' warnings:"
    members_warnings apache "WARN|ERROR|Exception" 10
    return 0
  fi
  exit 1
}

# members_warnings NAME PATTERN N: the last N lines matching PATTERN in each member's log.
members_warnings() {
  local d
  for d in "$WORK/$1-ens"/m*; do
    echo "--- $d" >&2
    grep -E "$2" "$d/server.log" | tail -n "$3" >&2 || true
  done
}

bench_ensemble() { # name
  local name=$1 base i d servers="" pids=() leader="" lpid="" mode
  base=$(spare_port)
  # Client ports base+1..3, quorum base+11..13, election base+21..23: all must be free.
  local p busy=1
  while ((busy)); do
    busy=0
    for p in 1 2 3 11 12 13 21 22 23; do
      port_free $((base + p)) || busy=1
    done
    ((busy)) && base=$((base + 50))
  done
  for i in 1 2 3; do
    servers+="server.$i=127.0.0.1:$((base + 10 + i)):$((base + 20 + i))"$'\n'
  done
  for i in 1 2 3; do
    d="$WORK/$name-ens/m$i"
    write_cfg "$d" $((base + i))
    printf 'initLimit=10\nsyncLimit=5\n4lw.commands.whitelist=srvr,ruok\n%s' "$servers" >>"$d/zoo.cfg"
    echo "$i" >"$d/data/myid"
    "start_$name" "$d" $((base + i))
    PIDS+=("$SPID")
    pids+=("$SPID")
  done
  log "$name ensemble: members on 127.0.0.1:$((base + 1))-$((base + 3)); waiting for a leader"
  for ((i = 0; i < 1200; i++)); do
    local up=0 j
    for j in 1 2 3; do
      mode=$( (exec 3<>"/dev/tcp/127.0.0.1/$((base + j))" && printf srvr >&3 && cat <&3) 2>/dev/null \
        | sed -n 's/^Mode: //p' || true)
      case $mode in
        leader) up=$((up + 1)); leader=$((base + j)); lpid=${pids[$((j - 1))]} ;;
        follower) up=$((up + 1)) ;;
      esac
    done
    ((up == 3)) || leader=""
    [[ -n $leader ]] && break
    sleep 0.1
  done
  if [[ -z $leader ]]; then
    log "$name ensemble did not elect a leader; warnings and errors of each member:"
    members_warnings "$name" "WARN|ERROR|Exception|error" 15
    exit 1
  fi
  log "$name ensemble: leader on $leader"
  local r=(--addr "127.0.0.1:$leader" --server-pid "$lpid" --record "$REC" --server "$name")
  local g1=(-s 1 -o 1) g64=(-s 16 -o 64) m="$WORK/$name-ens"
  "${B[@]}" create --addr "127.0.0.1:$leader" "${g64[@]}" -n $W64_N -d $WARM_D --tag warm >/dev/null 2>&1 || true
  ens_run "$name" "${B[@]}" create "${r[@]}" "${g1[@]}" -n $W1_N -d $W1_D --tag c1 --manifest "$m/c1.manifest" --label "ensemble of 3: create 1×1"
  ens_run "$name" "${B[@]}" create "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --tag c64 --manifest "$m/c64.manifest" --label "ensemble of 3: create 16×64"
  ens_run "$name" "${B[@]}" set "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --manifest "$m/c64.manifest" --label "ensemble of 3: setData 16×64"
  ens_run "$name" "${B[@]}" delete "${r[@]}" "${g64[@]}" -n $W64_N -d $W64_D --manifest "$m/c64.manifest" --label "ensemble of 3: delete 16×64"
  for i in "${pids[@]}"; do stop "$i"; done
  rm -rf "$WORK/$name-ens"
}

# ---------------------------------------------------------------------------------------------
# Floors: a bare TCP echo server (on the server's CPU) and the disk's fsync latency.

floors() {
  local port
  port=$(spare_port)
  "${PIN_SERVER[@]}" "$BENCH" echo-server --listen "127.0.0.1:$port" >/dev/null &
  local epid=$!
  PIDS+=("$epid")
  sleep 0.3
  local f=(--addr "127.0.0.1:$port" --record "$REC" --server floor)
  log "floor: TCP echo"
  "${B[@]}" echo "${f[@]}" -s 1 -o 1 -n $R1_N -d $R1_D --label "floor: TCP echo 1×1"
  "${B[@]}" echo "${f[@]}" -s 16 -o 64 -n $R64_N -d $R64_D --label "floor: TCP echo 16×64"
  kill "$epid" 2>/dev/null || true
  log "floor: fsync in $WORK's filesystem"
  "${B[@]}" fsync --dir "$WORK" -n $W1_N -d $W1_D --block 512 --prealloc --repeat 3 \
    --record "$REC" --label "floor: write+fdatasync 512 B, preallocated file"
  "${B[@]}" fsync --dir "$WORK" -n $W1_N -d $W1_D --block 512 --repeat 3 \
    --record "$REC" --label "floor: write+fdatasync 512 B, appending"
}

val() { # label metric server
  awk -F'\t' -v w="$1" -v m="$2" -v s="$3" '$1 == w && $2 == m && $3 == s {v = $4} END {print v}' "$REC"
}

# Each server's distance from the floors.
vs_floor() {
  local fs fe1 fe64 s w
  fs=$(val "floor: write+fdatasync 512 B, preallocated file" "p50 ms ↓" floor)
  fe1=$(val "floor: TCP echo 1×1" "p50 ms ↓" floor)
  fe64=$(val "floor: TCP echo 16×64" "ops/s ↑" floor)
  for s in apache zkrs; do
    for w in create setData delete; do
      record "$w 1×1" "p50 ÷ fsync floor p50 ↓" "$s" \
        "$(awk -v a="$(val "$w 1×1" "p50 ms ↓" "$s")" -v f="$fs" 'BEGIN {if (a != "" && f > 0) print a / f}')"
    done
    for w in getData getChildren; do
      record "$w 1×1" "p50 ÷ echo floor p50 ↓" "$s" \
        "$(awk -v a="$(val "$w 1×1" "p50 ms ↓" "$s")" -v f="$fe1" 'BEGIN {if (a != "" && f > 0) print a / f}')"
      record "$w 16×64" "echo floor ops/s ÷ ops/s ↓" "$s" \
        "$(awk -v a="$(val "$w 16×64" "ops/s ↑" "$s")" -v f="$fe64" 'BEGIN {if (a > 0) print f / a}')"
    done
  done
}

# - [x] / - [ ] lines for the issue's targets.
check() { # description label metric ge|le threshold [server-only]
  local a z
  if [[ ${6:-} == zkrs-only ]]; then
    z=$(val "$2" "$3" zkrs)
    awk -v z="$z" -v op="$4" -v t="$5" -v d="$1" 'BEGIN {
      if (z == "") { print "- [?] " d ": not measured"; exit }
      ok = (op == "ge") ? z >= t : z <= t
      printf "- [%s] %s: %.2f (target %s %s)\n", ok ? "x" : " ", d, z, op == "ge" ? "≥" : "≤", t }'
    return
  fi
  a=$(val "$2" "$3" apache)
  z=$(val "$2" "$3" zkrs)
  awk -v a="$a" -v z="$z" -v op="$4" -v t="$5" -v d="$1" 'BEGIN {
    if (a == "" || z == "" || a == 0) { print "- [?] " d ": not measured"; exit }
    r = z / a; ok = (op == "ge") ? r >= t : r <= t
    printf "- [%s] %s: zkrs ÷ Apache = %.2f (target %s %s)\n", ok ? "x" : " ", d, r, op == "ge" ? "≥" : "≤", t }'
}

targets() {
  local w
  for w in create setData delete; do
    check "$w throughput ≥3×" "$w 16×64" "ops/s ↑" ge 3
    check "ensemble of 3: $w throughput ≥3×" "ensemble of 3: $w 16×64" "ops/s ↑" ge 3
  done
  check "ensemble of 3: create 16×64 p99 ≤1/3" "ensemble of 3: create 16×64" "p99 ms ↓" le 0.3333
  for w in getData getChildren; do
    check "$w throughput ≥3×" "$w 16×64" "ops/s ↑" ge 3
  done
  check "mixed throughput ≥3×" "mixed 90% get/10% set 16×64" "ops/s ↑" ge 3
  for w in "create 1×1" "create 16×64" "setData 1×1" "setData 16×64" "delete 1×1" "delete 16×64" \
    "getData 1×1" "getData 16×64" "getChildren 1×1" "getChildren 16×64" "mixed 90% get/10% set 16×64"; do
    check "$w p99 ≤1/3" "$w" "p99 ms ↓" le 0.3333
  done
  check "RSS with $BULK znodes ≤1/10" "bulk create ($BULK znodes)" "server RSS MiB ↓" le 0.1
  check "RSS with $BULK znodes after restart ≤1/10" "restart with $BULK znodes" "server RSS MiB ↓" le 0.1
  check "RSS with $IDLE idle sessions ≤1/10" "idle sessions ($IDLE, pinging)" "server RSS MiB ↓" le 0.1
  check "RSS added by $IDLE idle sessions ≤1/10" "idle sessions ($IDLE, pinging)" "RSS added by the sessions MiB ↓" le 0.1
  check "restart with $BULK znodes ≤1/5 time" "restart with $BULK znodes" "start to first answer ms ↓" le 0.2
  check "watch fan-out ≥3× (time until all events ≤1/3)" "watch fan-out ($WATCHERS watchers)" "all events arrived ms (median round) ↓" le 0.3333
  for w in create setData delete; do
    check "zkrs $w 1×1 p50 within 1.5× of the fsync floor" "$w 1×1" "p50 ÷ fsync floor p50 ↓" le 1.5 zkrs-only
  done
  for w in getData getChildren; do
    check "zkrs $w 1×1 p50 within 2× of the TCP echo floor" "$w 1×1" "p50 ÷ echo floor p50 ↓" le 2 zkrs-only
    check "zkrs $w 16×64 throughput within 2× of the TCP echo floor" "$w 16×64" "echo floor ops/s ÷ ops/s ↓" le 2 zkrs-only
  done
}

machine() {
  local fsp fsa
  fsp=$(val "floor: write+fdatasync 512 B, preallocated file" "p50 ms ↓" floor)
  fsa=$(val "floor: write+fdatasync 512 B, appending" "p50 ms ↓" floor)
  echo "- nproc: $(nproc); CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "- kernel: $(uname -r); data dirs on $(df -T "$WORK" | awk 'NR == 2 {print $2 " (" $1 ")"}')"
  echo "- disk fsync floor (write+fdatasync of 512 B, best of 3): p50 $(printf '%.3f' "${fsp:-0}") ms into a preallocated file, $(printf '%.3f' "${fsa:-0}") ms appending"
  echo "- Apache ZooKeeper: $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo '?') on $("$JAVA" -version 2>&1 | head -n1)"
  echo "- zkrs: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- . ':!bench/RESULTS.md' ':!bench/results.tsv' 2>/dev/null || echo ' + uncommitted changes')"
  echo "- server pinned to CPU $SERVER_CPU, zkrs-bench to CPU $CLIENT_CPU (taskset); load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---------------------------------------------------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
floors
case ${ONLY:-} in
  apache) bench_server apache ;;
  zkrs) bench_server zkrs ;;
  zkrs-ensemble) bench_ensemble zkrs ;;
  *)
    bench_server apache
    bench_server zkrs
    bench_ensemble apache
    bench_ensemble zkrs
    ;;
esac
vs_floor

TABLE=$("$BENCH" table "$REC")
echo
echo "$TABLE"
echo
targets
log "done in $((SECONDS - T0)) s"

if ((!QUICK)) && [[ -z ${ONLY:-} ]]; then
  {
    echo "# zkrs vs Apache ZooKeeper 3.8: benchmark results"
    echo
    echo "Produced by \`bench/run.sh\` on $(date -u +%Y-%m-%d) in $((SECONDS - T0)) s. Ratio = zkrs ÷ Apache;"
    echo "↑ = higher is better, ↓ = lower is better. Grids: sessions × outstanding requests per session."
    echo
    echo "## Machine"
    echo
    machine
    echo
    echo "## Results"
    echo
    echo "$TABLE"
    echo
    echo "## Targets"
    echo
    targets
  } >"$ROOT/bench/RESULTS.md"
  cp "$REC" "$ROOT/bench/results.tsv"
  log "wrote bench/RESULTS.md and bench/results.tsv"
fi
