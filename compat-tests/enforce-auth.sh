#!/usr/bin/env bash
# Enforced authentication (enforce.auth.enabled, enforce.auth.schemes=digest) with real
# clients: kazoo and the official zkCli.sh get nothing served before `addauth digest`
# (kazoo sees SESSIONCLOSEDREQUIRESASLAUTH); kazoo with digest auth data gets everything.
#
#   compat-tests/enforce-auth.sh zkrs <zkrs-binary> [port]   # start zkrs and test it
#   compat-tests/enforce-auth.sh apache [port]               # the same against Apache ZooKeeper 3.8
set -euo pipefail
WHAT=${1:?zkrs|apache}
if [ "$WHAT" = zkrs ]; then BIN=${2:?zkrs binary}; PORT=${3:-24381}; else PORT=${2:-24381}; fi
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
DIR=$(mktemp -d)
PID=""
PASS=0; FAILED=0
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; [ "$FAILED" = 0 ] || tail -5 "$DIR/server.log"; rm -rf "$DIR"' EXIT
pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $1"; }

mkdir -p "$DIR/data"
cat >"$DIR/zoo.cfg" <<CFG
tickTime=2000
dataDir=$DIR/data
clientPort=$PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
enforce.auth.enabled=true
enforce.auth.schemes=digest
CFG
echo "== enforced authentication with real clients ($WHAT on 127.0.0.1:$PORT) =="
if [ "$WHAT" = zkrs ]; then
  "$BIN" --config "$DIR/zoo.cfg" >>"$DIR/server.log" 2>&1 &
else
  java -Dzookeeper.log.dir="$DIR" \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zoo.cfg" >>"$DIR/server.log" 2>&1 &
fi
PID=$!
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

kazoo() {
  python3 - "$PORT" "$1" <<'PY'
import sys
from kazoo.client import KazooClient
from kazoo.exceptions import SessionClosedRequireSaslError
port, mode = sys.argv[1], sys.argv[2]
if mode == "none":
    c = KazooClient(hosts=f"127.0.0.1:{port}", connection_retry={"max_tries": 1})
    try:
        c.start(timeout=5)
        c.exists("/")
        raise SystemExit("served without authentication")
    except SessionClosedRequireSaslError:
        pass
    finally:
        c.stop()
else:
    c = KazooClient(hosts=f"127.0.0.1:{port}", auth_data=[("digest", "alice:secret")])
    c.start(timeout=15)
    c.create("/enforced", b"v")
    assert c.get("/enforced")[0] == b"v"
    c.delete("/enforced")
    c.stop()
PY
}
kazoo none && pass "kazoo without auth: SESSIONCLOSEDREQUIRESASLAUTH, nothing served" \
  || fail "kazoo without auth is refused"
kazoo digest && pass "kazoo with digest auth: create, get, delete" || fail "kazoo with digest auth"

zkcli() { printf '%s\nquit\n' "$@" | timeout 60 "$ZKCLI" -server "127.0.0.1:$PORT" 2>&1 || true; }
out=$(zkcli "create /cli x" "ls /")
if ! grep -q "^Created /cli" <<<"$out" && kazoo absent; then
  pass "zkCli.sh without addauth: nothing served"
else
  fail "zkCli.sh without addauth: nothing served"
fi
echo "== enforced authentication: $PASS passed, $FAILED failed =="
[ "$FAILED" = 0 ]
