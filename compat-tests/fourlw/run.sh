#!/usr/bin/env bash
# Four-letter-word checks with netcat (netcat-openbsd).
#
#   compat-tests/fourlw/run.sh host:port
#
# Each word is sent as the first 4 bytes of a fresh TCP connection, exactly as
# `echo ruok | nc host port` does; the server must answer and close the socket.
# Assumes 4lw.commands.whitelist=* (standalone or an ensemble member).
set -euo pipefail

SERVER=${1:?usage: $0 host:port}
HOST=${SERVER%:*}
PORT=${SERVER##*:}
command -v nc >/dev/null || { echo "FAIL: nc not installed (apt-get install netcat-openbsd)"; exit 1; }

PASS=0
FAILED=0
FAILED_NAMES=()
OUT=""

# send WORD: OUT = reply; ELAPSED = milliseconds until the server closed the socket.
# Without -q, netcat-openbsd only returns before the -w idle timeout when the
# server closes the connection, so ELAPSED also checks "reply then close".
send() {
  local t0 t1
  t0=$(date +%s%N)
  OUT=$(printf '%s' "$1" | timeout 15 nc -w 5 "$HOST" "$PORT" 2>/dev/null || true)
  t1=$(date +%s%N)
  ELAPSED=$(((t1 - t0) / 1000000))
}

pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
  echo "FAIL: $1 -- $2"
  printf '%s\n' "$OUT" | head -n 40 | sed 's/^/    | /'
}

# check NAME REGEX... : every extended regex must match a line of OUT,
# and the server must have closed the connection promptly.
check() {
  local name=$1; shift
  local re
  if [[ -z $OUT ]]; then fail "$name" "empty reply"; return; fi
  for re in "$@"; do
    if ! grep -Eq -- "$re" <<<"$OUT"; then fail "$name" "reply does not match /$re/"; return; fi
  done
  if ((ELAPSED > 3000)); then fail "$name" "server did not close the connection after replying (${ELAPSED}ms)"; return; fi
  pass "$name"
}

# A Java double as Double.toString prints it (ZooKeeper's average latency, rounded to four
# places): "0.25", "1.0", and below 0.001 "8.0E-4".
JAVA_DOUBLE='[0-9]+\.[0-9]+(E-?[0-9]+)?'

echo "== four-letter-word suite against $SERVER =="

send ruok
if [[ $OUT == imok ]]; then pass "ruok -> imok (exactly, no newline)"; else fail "ruok -> imok (exactly, no newline)" "got '$OUT'"; fi

send stat
check "stat" "^Zookeeper version: [0-9]+\.[0-9]+\.[0-9]+" "^Clients:\$" "^Latency min/avg/max: [0-9]+/$JAVA_DOUBLE/[0-9]+\$" \
  "^Received: [0-9]+\$" "^Sent: [0-9]+\$" "^Connections: [0-9]+\$" "^Outstanding: [0-9]+\$" "^Zxid: 0x[0-9a-f]+\$" \
  "^Mode: (standalone|leader|follower|observer)\$" "^Node count: [0-9]+\$"
# the stat connection itself is listed among the clients
check "stat lists the calling connection" "^ /127\.0\.0\.1:[0-9]+\[[0-9]+\]\(queued=[0-9]+,recved=[0-9]+,sent=[0-9]+\)"

send srvr
check "srvr" "^Zookeeper version: [0-9]+\.[0-9]+\.[0-9]+" "^Mode: (standalone|leader|follower|observer)\$" "^Node count: [0-9]+\$" "^Zxid: 0x[0-9a-f]+\$"
if grep -q '^Clients:' <<<"$OUT"; then fail "srvr has no client list" "srvr printed Clients:"; else pass "srvr has no client list"; fi

send mntr
check "mntr" "^zk_version	[0-9]+\.[0-9]+\.[0-9]+" "^zk_server_state	(standalone|leader|follower|observer)\$" "^zk_znode_count	[0-9]+\$" \
  "^zk_num_alive_connections	[0-9]+\$" "^zk_outstanding_requests	[0-9]+\$" "^zk_watch_count	[0-9]+\$" \
  "^zk_ephemerals_count	[0-9]+\$" "^zk_approximate_data_size	[0-9]+\$" "^zk_avg_latency	$JAVA_DOUBLE\$"
if grep -vqP '^[^\t ]+\t\S' <<<"$OUT"; then
  fail "mntr lines are 'key<TAB>value'" "malformed line: $(grep -vP '^[^\t ]+\t\S' <<<"$OUT" | head -n1)"
else
  pass "mntr lines are 'key<TAB>value'"
fi

send conf
check "conf" "^clientPort=$PORT\$" "^tickTime=[0-9]+\$" "^minSessionTimeout=[0-9]+\$" "^maxSessionTimeout=[0-9]+\$" "^dataDir="

send envi
check "envi" "^Environment:\$" "^zookeeper\.version=[0-9]+\.[0-9]+\.[0-9]+" "^java\.version="

send isro
if [[ $OUT == rw ]]; then pass "isro -> rw"; else fail "isro -> rw" "got '$OUT'"; fi

send wchs
check "wchs" "^[0-9]+ connections watching [0-9]+ paths\$" "^Total watches:[0-9]+\$"

send cons
check "cons" "^ /127\.0\.0\.1:[0-9]+\[[0-9]+\]\(queued=[0-9]+,recved=[0-9]+,sent=[0-9]+\)"

send dirs
check "dirs" "^datadir_size: [0-9]+\$" "^logdir_size: [0-9]+\$"

send srst
check "srst" "^Server stats reset\.\$"

send crst
check "crst" "^Connection stats reset\.\$"

echo "== four-letter-word suite: $PASS passed, $FAILED failed =="
if [[ $FAILED -ne 0 ]]; then
  printf '  failed: %s\n' "${FAILED_NAMES[@]}"
  exit 1
fi
