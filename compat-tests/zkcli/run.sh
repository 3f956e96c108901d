#!/usr/bin/env bash
# Drive the official zkCli.sh (Apache ZooKeeper 3.8 Java CLI) against a server.
#
#   compat-tests/zkcli/run.sh host:port
#
# Two modes of zkCli are used:
#   * one-shot:  zkCli.sh -server H:P <cmd> <args...>  -> exit code 0 on success,
#                1 on a KeeperException (the message is printed on stderr).
#                NOTE: one-shot mode exits without closing the session, so
#                ephemerals created this way live until the session times out.
#   * batch:     commands piped on stdin (JLine is not installed, so zkCli reads
#                plain lines); one session for all commands, closed by "quit".
#                Needed for addauth (auth is per session) and watches.
set -euo pipefail

SERVER=${1:?usage: $0 host:port}
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
[[ -x $ZKCLI ]] || { echo "FAIL: $ZKCLI not found (apt-get install zookeeper)"; exit 1; }

ROOT=/zkcli-$(date +%s)-$$-$RANDOM
PASS=0
FAILED=0
FAILED_NAMES=()
OUT=""
GLUED=""
RC=0

clean() { grep -v -e '^SLF4J' -e '^Connecting to ' -e '^Welcome to ZooKeeper' -e '^JLine support' -e '^$' || true; }

# zkCli prints the connection's "WATCHER:: / WatchedEvent state:SyncConnected"
# from its event thread, which can land in the middle of a command's output
# line ("[a, b" NL "WatchedEvent ..." NL ", c]"). glue() gives a second view
# of the output with those lines removed and the pieces around them joined;
# check() accepts a match in either view.
glue() {
  awk '/^WATCHER::$/ || /^WatchedEvent state:SyncConnected type:None path:null$/ { joined = 1; next }
       { if (joined && have) { line = line $0 } else { if (have) print line; line = $0; have = 1 } joined = 0 }
       END { if (have) print line }'
}

# one-shot: sets OUT (stdout+stderr, noise removed) and RC
zk() {
  local raw
  set +e
  raw=$(timeout 60 "$ZKCLI" -server "$SERVER" "$@" 2>&1 </dev/null)
  RC=$?
  set -e
  OUT=$(clean <<<"$raw")
  GLUED=$(glue <<<"$OUT")
}

# batch: one session, commands given as arguments (one per line); sets OUT, RC
zkb() {
  local raw
  set +e
  raw=$(printf '%s\n' "$@" quit | timeout 90 "$ZKCLI" -server "$SERVER" 2>&1)
  RC=$?
  set -e
  OUT=$(clean <<<"$raw")
  GLUED=$(glue <<<"$OUT")
}

pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
  echo "FAIL: $1 -- $2"
  echo "----- output (rc=$RC) -----"; printf '%s\n' "$OUT" | sed 's/^/    | /'; echo "---------------------------"
}

# check NAME EXPECTED_RC REGEX...   (every extended regex must match some line of OUT)
check() {
  local name=$1 want_rc=$2; shift 2
  if [[ $want_rc == any ]]; then :
  elif [[ $want_rc == nonzero ]]; then
    if [[ $RC == 0 ]]; then fail "$name" "expected non-zero exit code"; return; fi
  elif [[ $RC != "$want_rc" ]]; then
    fail "$name" "expected exit code $want_rc"; return
  fi
  local re
  for re in "$@"; do
    if ! grep -Eq -- "$re" <<<"$OUT" && ! grep -Eq -- "$re" <<<"$GLUED"; then fail "$name" "output does not match /$re/"; return; fi
  done
  pass "$name"
}

# check_not NAME REGEX... (no line of OUT may match)
check_not() {
  local name=$1; shift
  local re
  for re in "$@"; do
    if grep -Eq -- "$re" <<<"$OUT" || grep -Eq -- "$re" <<<"$GLUED"; then fail "$name" "output unexpectedly matches /$re/"; return; fi
  done
  pass "$name"
}

field() { # field NAME -> value of "NAME = value" line in OUT
  sed -n "s/^$1 = //p" <<<"$OUT" | head -n1
}

re_escape() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }

digest() { # digest user:password -> base64(sha1(user:password))
  python3 -c 'import sys,hashlib,base64;print(base64.b64encode(hashlib.sha1(sys.argv[1].encode()).digest()).decode())' "$1"
}

echo "== zkCli suite against $SERVER (root $ROOT) =="

# ---------------------------------------------------------------- create / get
zk create "$ROOT" rootdata
check "create root" 0 "^Created $ROOT\$"

zk create "$ROOT" again
check "create existing node fails with NodeExists" nonzero "Node already exists: $ROOT"

zk create "$ROOT/missing-parent/child" x
check "create under missing parent fails with NoNode" nonzero "Node does not exist: $ROOT/missing-parent/child"

zk create "$ROOT/child" hello
check "create child with data" 0 "^Created $ROOT/child\$"

zk get "$ROOT/child"
check "get returns data" 0 "^hello\$"

zk get -s "$ROOT/child"
check "get -s returns data and stat" 0 "^hello\$" "^dataVersion = 0\$" "^dataLength = 5\$" "^numChildren = 0\$" "^ephemeralOwner = 0x0\$" "^cZxid = 0x[0-9a-f]+\$"
czxid=$(field cZxid); mzxid=$(field mZxid)
if [[ -n $czxid && $czxid == "$mzxid" ]]; then pass "fresh node has cZxid == mZxid"; else fail "fresh node has cZxid == mZxid" "cZxid=$czxid mZxid=$mzxid"; fi

zk get "$ROOT/nope"
check "get missing node fails with NoNode" nonzero "Node does not exist: $ROOT/nope"

# ---------------------------------------------------------------- set / versions
zk set "$ROOT/child" world
check "set without version" 0
zk get -s "$ROOT/child"
check "get after set shows new data and dataVersion 1" 0 "^world\$" "^dataVersion = 1\$" "^dataLength = 5\$"
mzxid2=$(field mZxid)
if [[ $((mzxid2)) -gt $((czxid)) ]]; then pass "set advances mZxid"; else fail "set advances mZxid" "cZxid=$czxid mZxid=$mzxid2"; fi

zk set -v 0 "$ROOT/child" stale
check "set -v with wrong version fails with BadVersion" nonzero "version No is not valid : $ROOT/child"

zk set -v 1 "$ROOT/child" fresh
check "set -v with correct version" 0
zk get -s "$ROOT/child"
check "conditional set applied" 0 "^fresh\$" "^dataVersion = 2\$"

zk set "$ROOT/nope" x
check "set on missing node fails with NoNode" nonzero "Node does not exist: $ROOT/nope"

# ---------------------------------------------------------------- sequential
# The sequence suffix comes from the parent's child-create counter: ROOT has had
# exactly one child created so far, so the first sequential child gets ...0001.
zk create -s "$ROOT/seq-" a
check "create -s uses parent cversion as suffix" 0 "^Created $ROOT/seq-0000000001\$"
zk create -s "$ROOT/seq-" b
check "create -s increments suffix" 0 "^Created $ROOT/seq-0000000002\$"

# ---------------------------------------------------------------- container
zk create -c "$ROOT/cont"
check "create -c (container)" 0 "^Created $ROOT/cont\$"
zk stat "$ROOT/cont"
check "container reports ephemeralOwner 0x0" 0 "^ephemeralOwner = 0x0\$" "^numChildren = 0\$"
zk create "$ROOT/cont/inside" x
check "create child of container" 0 "^Created $ROOT/cont/inside\$"

# ---------------------------------------------------------------- ls / stat
zk ls "$ROOT"
check "ls lists children" 0 "^\[child, cont, seq-0000000001, seq-0000000002\]\$"

zk ls -s "$ROOT"
check "ls -s lists children and stat" 0 "^\[child, cont, seq-0000000001, seq-0000000002\]\$" "^numChildren = 4\$" "^cversion = 4\$" "^dataLength = 8\$"

zk stat "$ROOT"
check "stat" 0 "^numChildren = 4\$" "^dataVersion = 0\$" "^aclVersion = 0\$" "^pZxid = 0x[0-9a-f]+\$"

zk ls -R "$ROOT"
check "ls -R lists the subtree" 0 "^$ROOT/cont/inside\$" "^$ROOT/child\$" "^$ROOT/seq-0000000002\$"

zk getAllChildrenNumber "$ROOT"
check "getAllChildrenNumber counts all descendants" 0 "^5\$"

zk ls "$ROOT/nope"
check "ls missing node fails with NoNode" nonzero "Node does not exist: $ROOT/nope"

zk stat "$ROOT/nope"
check "stat missing node fails with NoNode" nonzero "Node does not exist: $ROOT/nope"

zk ls /zookeeper
check "/zookeeper exists with config and quota" 0 "^\[config, quota\]\$"

zk sync "$ROOT"
check "sync" 0 "^Sync is OK\$"

# ---------------------------------------------------------------- delete
zk delete "$ROOT"
check "delete non-empty node fails with NotEmpty" nonzero "Node not empty: $ROOT"

zk delete -v 5 "$ROOT/seq-0000000001"
check "delete -v with wrong version fails with BadVersion" nonzero "version No is not valid : $ROOT/seq-0000000001"

zk delete -v 0 "$ROOT/seq-0000000001"
check "delete -v with correct version" 0
zk stat "$ROOT/seq-0000000001"
check "deleted node is gone" nonzero "Node does not exist: $ROOT/seq-0000000001"

zk delete "$ROOT/seq-0000000002"
check "delete" 0

zk delete "$ROOT/nope"
check "delete missing node fails with NoNode" nonzero "Node does not exist: $ROOT/nope"

zk stat "$ROOT"
# 2 creates + 2 deletes of seq nodes, plus child and cont = 6 changes, 2 children left
check "parent cversion counts creates and deletes" 0 "^numChildren = 2\$" "^cversion = 6\$"

# ---------------------------------------------------------------- ephemerals + session close
zkb "create -e $ROOT/eph edata" "stat $ROOT/eph" "getEphemerals $ROOT" "create $ROOT/eph/kid x"
check "create -e creates an ephemeral owned by the session" any "^Created $ROOT/eph\$" "^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*\$" "^\[$ROOT/eph\]\$"
check "ephemeral node cannot have children" any "Ephemerals cannot have children: $ROOT/eph/kid"
zk stat "$ROOT/eph"
check "ephemeral removed when its session is closed" nonzero "Node does not exist: $ROOT/eph"

# ---------------------------------------------------------------- watches (one session)
zkb "get -w $ROOT/child" "set $ROOT/child changed" \
    "ls -w $ROOT" "create $ROOT/w1" \
    "stat -w $ROOT/later" "create $ROOT/later" \
    "addWatch -m PERSISTENT_RECURSIVE $ROOT/cont" "create $ROOT/cont/deep" "create $ROOT/cont/deep/er" "set $ROOT/cont/deep/er v"
check "get -w fires NodeDataChanged" any "type:NodeDataChanged path:$ROOT/child\$"
check "ls -w fires NodeChildrenChanged" any "type:NodeChildrenChanged path:$ROOT\$"
check "stat -w on missing node fires NodeCreated" any "Node does not exist: $ROOT/later" "type:NodeCreated path:$ROOT/later\$"
check "addWatch PERSISTENT_RECURSIVE fires for descendants" any "type:NodeCreated path:$ROOT/cont/deep\$" "type:NodeCreated path:$ROOT/cont/deep/er\$" "type:NodeDataChanged path:$ROOT/cont/deep/er\$"

# ---------------------------------------------------------------- ACLs + digest auth
ALICE=$(digest alice:secret)
BOB=$(digest bob:pw)
zkb "addauth digest alice:secret" "create $ROOT/secure sdata" "setAcl $ROOT/secure auth::cdrwa" "getAcl -s $ROOT/secure" "whoami"
check "setAcl auth:: expands to the digest identity" any "^'digest,'alice:$(re_escape "$ALICE")\$" "^: cdrwa\$" "^aclVersion = 1\$"
check "whoami lists digest and ip identities" any "^digest: alice\$" "^ip: $(re_escape "${ZKCLI_CLIENT_IP:-127.0.0.1}")\$"

zk get "$ROOT/secure"
check "get without auth fails with NoAuth" nonzero "Insufficient permission : $ROOT/secure"

zkb "addauth digest alice:wrong" "get $ROOT/secure" "set $ROOT/secure x"
check "wrong digest password does not grant access" any "Insufficient permission : $ROOT/secure"
check_not "wrong digest password cannot read data" "^sdata\$"

zkb "addauth digest alice:secret" "get $ROOT/secure" "set $ROOT/secure s2" "get $ROOT/secure"
check "correct digest auth grants access" any "^sdata\$" "^s2\$"

zk create "$ROOT/bobonly" bdata "digest:bob:$BOB:r"
check "create with explicit digest ACL" 0 "^Created $ROOT/bobonly\$"
zkb "addauth digest bob:pw" "getAcl $ROOT/bobonly" "get $ROOT/bobonly" "set $ROOT/bobonly nope"
check "read-only digest ACL allows read, refuses write" any "^: r\$" "^bdata\$" "Insufficient permission : $ROOT/bobonly"
# getACL hides the digest hash from callers without ADMIN permission on the node
check "getAcl masks digest ids for non-ADMIN callers" any "^'digest,'bob:x\$"
check_not "getAcl does not leak the digest hash to non-ADMIN callers" "$(re_escape "$BOB")"

zk create "$ROOT/ro" rodata "world:anyone:r"
check "create with world:anyone:r ACL" 0
zk set "$ROOT/ro" x
check "write to world-readable-only node fails with NoAuth" nonzero "Insufficient permission : $ROOT/ro"
zk getAcl "$ROOT/ro"
check "getAcl world:anyone:r" 0 "^'world,'anyone\$" "^: r\$"

zk setAcl -v 7 "$ROOT/child" world:anyone:cdrwa
check "setAcl -v with wrong aclVersion fails with BadVersion" nonzero "version No is not valid : $ROOT/child"

zk create "$ROOT/badacl" x "digest:nocolon:r"
check "create with malformed digest ACL fails with InvalidACL" nonzero "Acl is not valid : $ROOT/badacl"

# ---------------------------------------------------------------- quota (server keeps /zookeeper/quota stats)
zk create "$ROOT/q" ""
zk setquota -n 10 "$ROOT/q"
check "setquota -n" 0
zk create "$ROOT/q/a" abc
zk create "$ROOT/q/b" de
zk listquota "$ROOT/q"
check "listquota reports limit and server-maintained stats" 0 "^Output quota for $ROOT/q count=10," "^Output stat for $ROOT/q count=3,bytes=5\$"
zk delete "$ROOT/q/b"
zk listquota "$ROOT/q"
check "a delete leaves the quota's stats" 0 "^Output stat for $ROOT/q count=2,bytes=3\$"
zk delquota "$ROOT/q"
check "delquota" 0

# Hard limits refuse a change only on a server with enforceQuota=true (scripts/test starts
# zkrs so, and compat-tests/oracle.sh Apache ZooKeeper): ZKCLI_ENFORCED_QUOTA=1 says so.
if [[ ${ZKCLI_ENFORCED_QUOTA:-0} == 1 ]]; then
  zk create "$ROOT/hq" ""
  zk setquota -N 2 "$ROOT/hq"
  check "setquota -N (a hard count limit)" 0
  zk create "$ROOT/hq/a" x
  check "a create within the hard count limit (the quota's root counts)" 0
  zk create "$ROOT/hq/b" x
  check "a create past the hard count limit fails with QuotaExceeded" nonzero "Quota has exceeded : $ROOT/hq/b"
  zk stat "$ROOT/hq/b"
  check "the refused create made nothing" nonzero "Node does not exist: $ROOT/hq/b"
  zk create "$ROOT/hb" 12345
  zk setquota -B 10 "$ROOT/hb"
  check "setquota -B (a hard byte limit)" 0
  zk set "$ROOT/hb" 1234567890
  check "a setData up to the hard byte limit" 0
  zk set "$ROOT/hb" 12345678901
  check "a setData past the hard byte limit fails with QuotaExceeded" nonzero "Quota has exceeded : $ROOT/hb"
  zk get "$ROOT/hb"
  check "the refused setData changed nothing" 0 "^1234567890\$"
  zk create "$ROOT/hs" ""
  zk setquota -n 1 "$ROOT/hs"
  zk create "$ROOT/hs/a" x
  check "a soft limit only warns: the create past it succeeds" 0
  zk delquota "$ROOT/hq"
  zk delquota "$ROOT/hb"
  zk delquota "$ROOT/hs"
fi

# ---------------------------------------------------------------- deleteall
zkb "addauth digest alice:secret" "addauth digest bob:pw" "deleteall $ROOT"
zk stat "$ROOT"
check "deleteall removes the whole subtree" nonzero "Node does not exist: $ROOT"

echo "== zkCli suite: $PASS passed, $FAILED failed =="
if [[ $FAILED -ne 0 ]]; then
  printf '  failed: %s\n' "${FAILED_NAMES[@]}"
  exit 1
fi
