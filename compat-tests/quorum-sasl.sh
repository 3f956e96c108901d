#!/bin/bash
# SASL between members, against Apache ZooKeeper 3.8: one Apache member and one zkrs member,
# both with quorum.auth.enableSasl and both requirements on, log in to each other (each id
# order: the larger id dials the election port, and the follower the leader's quorum port),
# and each refuses the other's wrong password. Only the logins are checked here; mixed
# ensembles themselves are compat-tests/mixed.py's.
#
#   compat-tests/quorum-sasl.sh <zkrs-binary> [base port]
set -u
BIN=$1
BASE=${2:-24900}
JARS=/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar
D=$(mktemp -d /tmp/zkrs-quorum-sasl-XXXX)
failed=0
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT

check() { # name file pattern
  if grep -q "$3" "$2"; then echo "PASS: $1"; else
    echo "FAIL: $1 (no \"$3\" in $2)"; failed=1
    # Who led and who logged in, for the record (the dir is removed at exit).
    grep -h "role \|LEADING\|FOLLOWING\|SASL\|sasl\|authenticat" "$D/a.log" "$D/z.log" | tail -20 | sed 's/^/    /'
  fi
}

# pair <apache id> <zkrs id> <learner password>: starts both, waits (up to 60 s: once on a
# busy CI machine the pair had not elected within 20 s) until both logs say what the checks
# look for, stops them.
pair() {
  local a=$1 z=$2 pw=$3 who id
  rm -rf "$D/a" "$D/z"
  cat > "$D/jaas" <<J
QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_test="secret"; };
QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required username="test" password="$pw"; };
J
  for who in a z; do
    id=$a; [ $who = z ] && id=$z
    mkdir -p "$D/$who"
    echo "$id" > "$D/$who/myid"
    cat > "$D/$who/zoo.cfg" <<C
tickTime=500
initLimit=10
syncLimit=4
dataDir=$D/$who
clientPort=$((BASE + id))
clientPortAddress=127.0.0.1
admin.enableServer=false
quorum.auth.enableSasl=true
quorum.auth.learnerRequireSasl=true
quorum.auth.serverRequireSasl=true
java.security.auth.login.config=$D/jaas
server.$a=127.0.0.1:$((BASE + 10 + a)):$((BASE + 20 + a))
server.$z=127.0.0.1:$((BASE + 10 + z)):$((BASE + 20 + z))
C
  done
  java -Djava.security.auth.login.config="$D/jaas" -Dzookeeper.log.dir="$D/a" -cp "$JARS" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$D/a/zoo.cfg" > "$D/a.log" 2>&1 &
  local ap=$!
  RUST_LOG=info "$BIN" --config "$D/z/zoo.cfg" > "$D/z.log" 2>&1 &
  local zp=$!
  pids=($ap $zp)
  for _ in $(seq 1 600); do
    if [ "$pw" = secret ]; then
      grep -q "Successfully authenticated learner" "$D/a.log" &&
        grep -q "server $a logged in as test" "$D/z.log" && break
    else
      grep -q "Mismatched response" "$D/a.log" && grep -q "wrong password" "$D/z.log" && break
    fi
    sleep 0.1
  done
  kill $ap $zp 2>/dev/null
  wait $ap $zp 2>/dev/null
  pids=()
}

for order in "1 2" "2 1"; do
  read -r a z <<< "$order"
  pair "$a" "$z" secret
  check "Apache member $a takes the login of zkrs member $z" "$D/a.log" \
    "Successfully authenticated learner: authenticationID=test"
  check "zkrs member $z takes the login of Apache member $a" "$D/z.log" \
    "quorum SASL: server $a logged in as test"
  pair "$a" "$z" wrong
  check "Apache member $a refuses zkrs member $z's wrong password" "$D/a.log" "Mismatched response"
  check "zkrs member $z refuses Apache member $a's wrong password" "$D/z.log" \
    "the login of server $a failed: DIGEST-MD5: mismatched response (wrong password)"
done
if [ $failed = 0 ]; then echo "quorum SASL with Apache ZooKeeper: all checks passed"; fi
exit $failed
