#!/usr/bin/env bash
# Start/stop a standalone Apache ZooKeeper 3.8 (Debian package) as the
# reference server ("oracle") for the compatibility suites.
#
#   compat-tests/oracle.sh start [port]   # default port 2281
#   compat-tests/oracle.sh stop  [port]
#   compat-tests/oracle.sh status [port]
#
# The server listens on 127.0.0.1:<port> only, uses a fresh data dir under
# /tmp/zkrs-oracle-<port>/ and logs to /tmp/zkrs-oracle-<port>/server.log.
#
# It enforces hard quotas (enforceQuota=true): run the zkCli suite against it with
# ZKCLI_ENFORCED_QUOTA=1, as scripts/test does against zkrs.
#
# ORACLE_EXTENDED_TYPES=1 starts it with zookeeper.extendedTypesEnabled=true
# (TTL nodes), which makes the TTL checks of the C and Java suites run instead
# of being skipped. ORACLE_JAVA_OPTS adds more -D settings.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status [port]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
CMD=$1
PORT=${2:-2281}
[[ $PORT =~ ^[0-9]+$ ]] || { echo "bad port: $PORT" >&2; exit 2; }

BASE=/tmp/zkrs-oracle-$PORT
PIDFILE=$BASE/server.pid
LOG=$BASE/server.log
JAVA=${JAVA:-java}
JAVA_DIR=/usr/share/java

# zookeeper.jar's manifest Class-Path already lists its runtime dependencies
# (zookeeper-jute, netty, jackson, jetty, commons-*, slf4j-api, ...).
# slf4j-simple is added so the server log is actually written somewhere.
classpath() {
  local cp="$JAVA_DIR/zookeeper.jar:$JAVA_DIR/zookeeper-jute.jar"
  if [[ -f $JAVA_DIR/slf4j-simple.jar ]]; then
    cp="$cp:$JAVA_DIR/slf4j-simple.jar"
  fi
  echo "$cp"
}

ruok() {
  # prints the reply of the ruok four-letter word (empty if none)
  if command -v nc >/dev/null 2>&1; then
    printf ruok | nc -w 2 -q 1 127.0.0.1 "$PORT" 2>/dev/null || true
  else
    # bash /dev/tcp fallback
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf ruok >&3 && timeout 2 cat <&3) 2>/dev/null || true
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

running_pid() {
  if [[ -f $PIDFILE ]]; then
    local pid
    pid=$(cat "$PIDFILE")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      echo "$pid"
      return 0
    fi
  fi
  return 1
}

start() {
  if pid=$(running_pid); then
    echo "oracle already running on 127.0.0.1:$PORT (pid $pid)"
    return 0
  fi
  if port_in_use; then
    echo "ERROR: 127.0.0.1:$PORT is already in use by something else" >&2
    exit 1
  fi
  [[ -f $JAVA_DIR/zookeeper.jar ]] || { echo "ERROR: $JAVA_DIR/zookeeper.jar missing (apt-get install zookeeper)" >&2; exit 1; }
  command -v "$JAVA" >/dev/null || { echo "ERROR: java not found" >&2; exit 1; }

  rm -rf "$BASE"
  mkdir -p "$BASE/data" "$BASE/conf"
  cat > "$BASE/conf/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$BASE/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
autopurge.purgeInterval=0
enforceQuota=true
CFG

  local extra=()
  if [[ ${ORACLE_EXTENDED_TYPES:-0} == 1 ]]; then
    extra+=(-Dzookeeper.extendedTypesEnabled=true)
  fi
  # More -D settings, e.g. ORACLE_JAVA_OPTS=-Dznode.container.checkIntervalMs=3600000.
  if [[ -n ${ORACLE_JAVA_OPTS:-} ]]; then
    read -r -a more <<<"$ORACLE_JAVA_OPTS"
    extra+=("${more[@]}")
  fi

  # Same main class as Debian's zkServer.sh; with no server.N lines it runs standalone.
  nohup "$JAVA" -Xmx256m -XX:+UseSerialGC "${extra[@]+"${extra[@]}"}" \
    -Dzookeeper.log.dir="$BASE" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dzookeeper.admin.enableServer=false \
    -cp "$(classpath)" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$BASE/conf/zoo.cfg" \
    >"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" > "$PIDFILE"

  local i
  for ((i = 0; i < 120; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ERROR: oracle exited during startup; log follows:" >&2
      tail -n 50 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if [[ $(ruok) == imok ]]; then
      echo "oracle (Apache ZooKeeper $(zk_version)) running on 127.0.0.1:$PORT (pid $pid, log $LOG)"
      return 0
    fi
    sleep 0.5
  done
  echo "ERROR: oracle did not answer ruok within 60s; log follows:" >&2
  tail -n 50 "$LOG" >&2 || true
  kill "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  exit 1
}

zk_version() {
  local out
  if command -v nc >/dev/null 2>&1; then
    out=$(printf srvr | nc -w 2 -q 1 127.0.0.1 "$PORT" 2>/dev/null || true)
  else
    out=""
  fi
  sed -n 's/^Zookeeper version: *//p' <<<"$out" | head -n1
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    echo "oracle not running on port $PORT"
    rm -f "$PIDFILE"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PIDFILE"
  echo "oracle on port $PORT stopped (pid $pid)"
}

status() {
  if pid=$(running_pid); then
    echo "running (pid $pid), ruok -> $(ruok)"
  else
    echo "not running"
    return 1
  fi
}

case $CMD in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
