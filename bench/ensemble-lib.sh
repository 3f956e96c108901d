# Shared by bench/mixed-join.sh and bench/snap-sync.sh (sourced, after BASE is set): a
# 3-member ensemble on 127.0.0.1 under a temporary dir $D, members started with `member`,
# all killed (and $D removed, unless BENCH_KEEP is set) at exit.
D=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$D"' EXIT
CP=/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar

config() { # id: member id's data dir, myid and zoo.cfg
  local i=$1 d=$D/m$1
  mkdir -p "$d"
  echo "$i" > "$d/myid"
  {
    echo "tickTime=2000"; echo "initLimit=30"; echo "syncLimit=5"; echo "dataDir=$d"
    echo "clientPort=$((BASE + i))"; echo "clientPortAddress=127.0.0.1"
    echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"; echo "maxClientCnxns=0"
    for s in 1 2 3; do echo "server.$s=127.0.0.1:$((BASE + 10 + s)):$((BASE + 20 + s))"; done
  } > "$d/zoo.cfg"
}

member() { # server id: server is `apache` (Debian's ZooKeeper 3.8) or a zkrs binary; SPID
  if [ "$1" = apache ]; then
    java "-Dzookeeper.log.dir=$D/m$2" -cp "$CP" org.apache.zookeeper.server.quorum.QuorumPeerMain \
      "$D/m$2/zoo.cfg" > "$D/m$2/server.log" 2>&1 &
  else
    "$1" --config "$D/m$2/zoo.cfg" > "$D/m$2/server.log" 2>&1 &
  fi
  pids+=($!)
  SPID=$!
}

mode() { # port
  { echo srvr | nc -q 1 127.0.0.1 "$1" 2>/dev/null || true; } | sed -n 's/^Mode: //p'
}

wait_mode() { # port
  for _ in $(seq 1 1200); do
    case "$(mode "$1")" in leader | follower) return 0 ;; esac
    sleep 0.05
  done
  echo "port $1 did not serve" >&2
  exit 1
}
