#!/usr/bin/env bash
# Read-only mode with real clients: a 3-member zkrs ensemble with readonlymode.enabled (set
# through the environment layer), two members stopped, then kazoo (read_only=True) and the
# official zkCli.sh (-r) against the member left: reads answered, writes refused with
# NotReadOnly, a client that does not allow read-only turned away; the quorum comes back and
# the member takes writes again.
#
#   compat-tests/readonly.sh <zkrs-binary> [base-port]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?zkrs binary}; BASE=${2:-24100}
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
DIR=$(mktemp -d)
trap '"$HERE/ensemble.sh" stop "$DIR"; rm -rf "$DIR"' EXIT
PASS=0; FAILED=0
pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $1"; }
isro() { echo isro | nc -q1 127.0.0.1 "$1" 2>/dev/null || true; }

echo "== read-only mode with real clients =="
read -r m1 _ _ < <(ZKRS_READONLYMODE_ENABLED=true "$HERE/ensemble.sh" start "$BIN" "$DIR" "$BASE")
p1=${m1##*:}
python3 - "$m1" <<'PY' && pass "kazoo writes /rotest through the quorum" || fail "kazoo writes /rotest through the quorum"
import sys
from kazoo.client import KazooClient
c = KazooClient(hosts=sys.argv[1]); c.start(timeout=15)
c.ensure_path("/rotest"); c.set("/rotest", b"hello"); c.stop()
PY
[ "$(isro "$p1")" = rw ] && pass "isro says rw with the quorum" || fail "isro says rw with the quorum"
kill "$(cat "$DIR/m2/pid")" "$(cat "$DIR/m3/pid")"
for _ in $(seq 1 300); do [ "$(isro "$p1")" = ro ] && break; sleep 0.1; done
[ "$(isro "$p1")" = ro ] && pass "isro says ro without the quorum" || fail "isro says ro without the quorum"

python3 - "$m1" <<'PY' && pass "kazoo read_only=True: CONNECTED_RO, reads, NotReadOnlyCallError on writes" || fail "kazoo read_only=True"
import sys
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NotReadOnlyCallError
c = KazooClient(hosts=sys.argv[1], read_only=True); c.start(timeout=15)
assert c.client_state == "CONNECTED_RO", c.client_state
assert c.get("/rotest")[0] == b"hello"
assert "rotest" in c.get_children("/")
for op in (lambda: c.create("/x"), lambda: c.set("/rotest", b"x"), lambda: c.delete("/rotest")):
    try:
        op(); raise SystemExit("a write was accepted")
    except NotReadOnlyCallError:
        pass
c.stop()
PY
python3 "$HERE/kazoo_refused.py" "$m1" && pass "kazoo without read_only is not connected" || fail "kazoo without read_only is not connected"
out=$(timeout 60 "$ZKCLI" -r -server "$m1" get /rotest 2>&1 </dev/null || true)
grep -qx hello <<<"$out" && pass "zkCli.sh -r get reads from the read-only member" || { fail "zkCli.sh -r get"; echo "$out" | tail -5; }
out=$(timeout 60 "$ZKCLI" -r -server "$m1" create /rotest2 x 2>&1 </dev/null || true)
grep -q "NotReadOnly\|Not a read-only call" <<<"$out" && pass "zkCli.sh -r create is refused (NotReadOnly)" || { fail "zkCli.sh -r create"; echo "$out" | tail -5; }

ZKRS_READONLYMODE_ENABLED=true "$BIN" --config "$DIR/m2/zoo.cfg" > "$DIR/m2/zkrs.log" 2>&1 & echo $! > "$DIR/m2/pid"
for _ in $(seq 1 300); do [ "$(isro "$p1")" = rw ] && break; sleep 0.1; done
[ "$(isro "$p1")" = rw ] && pass "isro says rw once the quorum is back" || fail "isro says rw once the quorum is back"
python3 - "$m1" <<'PY' && pass "kazoo writes again after the quorum is back" || fail "kazoo writes again after the quorum is back"
import sys
from kazoo.client import KazooClient
c = KazooClient(hosts=sys.argv[1]); c.start(timeout=15)
c.set("/rotest", b"again"); assert c.get("/rotest")[0] == b"again"; c.stop()
PY
echo "== read-only mode: $PASS passed, $FAILED failed =="
[ "$FAILED" = 0 ]
