#!/usr/bin/env bash
# TLS on the secure client port with real clients: certificates made here with openssl (a CA,
# the server's and a client's; PEM stores, as ZooKeeper reads them with ssl.*.type=PEM), a
# server whose zoo.cfg names only secureClientPort and ssl.* keys, then kazoo (use_ssl) and the
# official zkCli.sh over Netty TLS: both work with a client certificate; without one, or in
# plain text, nothing is served (ssl.clientAuth defaults to need).
#
#   compat-tests/tls.sh zkrs <zkrs-binary> [port]     # start zkrs and test it
#   compat-tests/tls.sh apache [port]                 # the same against Apache ZooKeeper 3.8
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# Debian's zookeeper.jar names no netty jars in its class path (its netty-all.jar is empty):
# the Netty client and server need these.
NETTY=$(ls /usr/share/java/netty-{buffer,codec,common,handler,resolver,transport,transport-native-unix-common}.jar | tr '\n' ':')
WHAT=${1:?zkrs|apache}
if [ "$WHAT" = zkrs ]; then BIN=${2:?zkrs binary}; PORT=${3:-24281}; else PORT=${2:-24281}; fi
DIR=${TLS_DIR:-$(mktemp -d)}; mkdir -p "$DIR"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; [ "$FAILED" = 0 ] || tail -5 "$DIR/server.log"; [ -n "${TLS_DIR:-}" ] || rm -rf "$DIR"' EXIT
PASS=0; FAILED=0
pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $1"; }

# --- certificates
cd "$DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=zkrs-test-ca -keyout ca.key -out ca.pem 2>/dev/null
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$who.ext"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$who.ext" -out "$who.crt" 2>/dev/null
  # A PEM key store: the (unencrypted PKCS#8) key and the certificate.
  openssl pkcs8 -topk8 -nocrypt -in "$who.key" -out "$who.p8"
  cat "$who.p8" "$who.crt" >"$who.pem"
  # The same as a PKCS#12 store (Java's default store type).
  openssl pkcs12 -export -in "$who.crt" -inkey "$who.key" -name "$who" -passout pass:storepw -out "$who.p12"
done
keytool -importcert -noprompt -storetype PKCS12 -keystore trust.p12 -storepass storepw -alias ca -file ca.pem >/dev/null 2>&1
# And as Java KeyStores (JKS), the type older deployments still use.
keytool -importkeystore -noprompt -srckeystore server.p12 -srcstoretype PKCS12 -srcstorepass storepw \
  -destkeystore server.jks -deststoretype JKS -deststorepass storepw >/dev/null 2>&1
keytool -importcert -noprompt -storetype JKS -keystore trust.jks -storepass storepw -alias ca -file ca.pem >/dev/null 2>&1
cd - >/dev/null

mkdir -p "$DIR/data"
cat >"$DIR/zoo.cfg" <<CFG
tickTime=2000
dataDir=$DIR/data
secureClientPort=$PORT
secureClientPortAddress=127.0.0.1
ssl.keyStore.location=$DIR/server.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$DIR/ca.pem
ssl.trustStore.type=PEM
4lw.commands.whitelist=*
admin.enableServer=false
CFG
echo "== TLS with real clients ($WHAT on 127.0.0.1:$PORT) =="
[ "$WHAT" = apache ] && echo "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory" >>"$DIR/zoo.cfg"
start_server() {
  if [ "$WHAT" = zkrs ]; then
    "$BIN" --config "$DIR/zoo.cfg" >>"$DIR/server.log" 2>&1 &
  else
    java -Dzookeeper.log.dir="$DIR" -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar:$NETTY \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zoo.cfg" >>"$DIR/server.log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
}
start_server

# kazoo over TLS with the client's certificate: create, get, children, delete.
kazoo_tls() {
  python3 - "$PORT" "$DIR" <<'PY'
import sys
from kazoo.client import KazooClient
port, d = sys.argv[1], sys.argv[2]
c = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, verify_certs=True, ca=f"{d}/ca.pem",
                certfile=f"{d}/client.crt", keyfile=f"{d}/client.key")
c.start(timeout=15)
c.create("/tls-kazoo", b"secret")
assert c.get("/tls-kazoo")[0] == b"secret"
assert "tls-kazoo" in c.get_children("/")
c.delete("/tls-kazoo")
c.stop()
PY
}
kazoo_tls && pass "kazoo over TLS with a client certificate: create, get, children, delete" || fail "kazoo over TLS with a client certificate"
python3 "$HERE/kazoo_refused.py" "127.0.0.1:$PORT" "$DIR/ca.pem" && pass "kazoo over TLS without a client certificate is not connected" || fail "kazoo over TLS without a client certificate is not connected"
# zkCli.sh's own main class, run as zkCli.sh runs it, with the netty jars on the class path
# (Debian's zkEnv.sh sets a class path of its own, without them).
zkcli_tls() {
  timeout 60 java -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:$NETTY" \
    -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
    -Dzookeeper.client.secure=true -Dzookeeper.ssl.keyStore.location="$DIR/client.pem" \
    -Dzookeeper.ssl.keyStore.type=PEM -Dzookeeper.ssl.trustStore.location="$DIR/ca.pem" \
    -Dzookeeper.ssl.trustStore.type=PEM \
    org.apache.zookeeper.ZooKeeperMain -server "127.0.0.1:$PORT" "$@" 2>&1 </dev/null || true
}
out=$(zkcli_tls create /tls-zkcli hello)
grep -q "^Created /tls-zkcli" <<<"$out" && pass "zkCli (ZooKeeperMain) over Netty TLS creates" || { fail "zkCli over Netty TLS creates"; tail -5 <<<"$out"; }
out=$(zkcli_tls get /tls-zkcli)
grep -qx hello <<<"$out" && pass "zkCli (ZooKeeperMain) over Netty TLS reads" || { fail "zkCli over Netty TLS reads"; tail -5 <<<"$out"; }
out=$(printf ruok | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" -CAfile "$DIR/ca.pem" \
  -cert "$DIR/client.crt" -key "$DIR/client.key" 2>/dev/null || true)
[ "$out" = imok ] && pass "ruok over TLS (openssl s_client) answers imok" || fail "ruok over TLS answered '$out'"
# Plain text on the secure port: no ZooKeeper answer comes back.
reply=$(printf '\x00\x00\x00\x2c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x75\x30\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' \
  | timeout 5 nc -q2 127.0.0.1 "$PORT" 2>/dev/null | od -An -tx1 | head -c 60 || true)
# (at most a TLS alert record, 0x15, comes back)
case "$(tr -d ' \n' <<<"$reply")" in
  "" | 15*) pass "a plain-text handshake on the secure port gets no session" ;;
  *) fail "a plain-text handshake on the secure port got: $reply" ;;
esac
# The same server with PKCS#12, then JKS, key and trust stores (made by openssl and keytool).
restart_with_stores() { # extension TYPE
  kill "$PID"; wait "$PID" 2>/dev/null || true
  sed -i -e '/^ssl\./d' "$DIR/zoo.cfg"
  printf 'ssl.keyStore.location=%s\nssl.keyStore.type=%s\nssl.keyStore.password=storepw\n' "$DIR/server.$1" "$2" >>"$DIR/zoo.cfg"
  printf 'ssl.trustStore.location=%s\nssl.trustStore.type=%s\nssl.trustStore.password=storepw\n' "$DIR/trust.$1" "$2" >>"$DIR/zoo.cfg"
  start_server
}
for store in p12:PKCS12 jks:JKS; do
  restart_with_stores "${store%%:*}" "${store##*:}"
  kazoo_tls && pass "${store##*:} stores: kazoo over TLS with a client certificate" || fail "${store##*:} stores: kazoo over TLS"
  python3 "$HERE/kazoo_refused.py" "127.0.0.1:$PORT" "$DIR/ca.pem" && pass "${store##*:} stores: no session without a client certificate" || fail "${store##*:} stores: no session without a client certificate"
done
echo "== TLS: $PASS passed, $FAILED failed =="
[ "$FAILED" = 0 ]
