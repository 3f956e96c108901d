#!/usr/bin/env bash
# Docker mode of the compat tests: zkrs as users run it, in its image, in the ensemble compose
# file, driven by the official zkCli.sh from another container over the compose network.
#
#   compat-tests/docker-mode.sh
#
# 1. docker/build.sh (zkrs:latest, zkrs-zkcli:latest; cached stages are skipped);
# 2. docker-compose -f docker/compose.ensemble.yml up (a unique project name; client ports
#    published on free 127.0.0.1 ports, so a zkrs on 2181 does not clash), wait until every
#    member is healthy (the image's ruok HEALTHCHECK), answers ruok on its published port and
#    serves (srvr prints its Mode: the ensemble has elected a leader);
# 3. compat-tests/zkcli/run.sh from a zkrs-zkcli container against zk1:2181, zk2:2181, zk3:2181;
# 4. failover: acknowledged writes on every member; stop a follower (docker stop), check the
#    others still serve and still hold the data; start it again and check it kept its data;
#    then kill the leader (SIGKILL) and check the same on the remaining members. Roles come
#    from `srvr` ("Mode:"); when the members run standalone (zkrs before ZAB, or
#    standaloneEnabled with one server) zk3 plays the follower and zk1 the leader. The follower
#    is back before the leader goes: a 3-server ensemble without two of its members has no
#    quorum. In an ensemble every member must serve every acknowledged write, whichever member
#    took it (cross-member checks, including the catch-up of a restarted member); standalone
#    members are checked for the writes they took themselves.
# 5. docker-compose down -v (also on failure, after printing the members' logs).
#
# Environment:
#   ZKRS_ENSEMBLE=auto|1|0     auto (default): cross-member checks when srvr reports a leader and
#                              followers; 1: require an ensemble; 0: per-member checks only
#   ZKRS_DOCKER_COMPOSE=file   another ensemble file (default docker/compose.ensemble.yml; e.g.
#                              docker/compose.ensemble5.yml): its services are the members
#   ZKRS_DOCKER_SKIP_BUILD=1   use the images as they are
#   ZKRS_DOCKER_SKIP_SUITE=1   skip step 3 (the zkCli suite, ~40 s per member): failover only
#   ZKRS_DOCKER_SUITE_TIMEOUT  seconds one member's zkCli suite may take (default 600)
#   LOG_DIR                    where the zkCli suite logs go (default /tmp/zkrs-compat-logs)
# Prints PASS/FAIL lines; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
T0=$(date +%s)
ENSEMBLE=${ZKRS_ENSEMBLE:-auto}
SUITE_TIMEOUT=${ZKRS_DOCKER_SUITE_TIMEOUT:-600}
INTERRUPTED=0
LOG_DIR=${LOG_DIR:-/tmp/zkrs-compat-logs}
mkdir -p "$LOG_DIR"
ZKCLI_IMAGE=zkrs-zkcli:latest
COMPOSE_FILE_PATH=$(realpath "${ZKRS_DOCKER_COMPOSE:-$root/docker/compose.ensemble.yml}")
project=zkrsdocker$$$RANDOM
client=$project-zkcli
# Publish the client ports on free ports of 127.0.0.1 (see the compose file).
for i in 1 2 3 4 5 6 7 8 9; do export "ZKRS_PORT_$i="; done

PASS=0
FAILED=0
FAILED_NAMES=()
OUT=""
RC=0

elapsed() { echo "$(($(date +%s) - T0))s"; }
step() { echo; echo "=== docker mode: $* ($(elapsed)) ==="; }
pass() { PASS=$((PASS + 1)); echo "PASS: $1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
  echo "FAIL: $1 -- $2"
  if [[ -n $OUT ]]; then printf '%s\n' "$OUT" | head -n 30 | sed 's/^/    | /'; fi
}
die() { fail "$1" "$2"; exit 1; }
compose() { docker-compose -p "$project" -f "$COMPOSE_FILE_PATH" "$@"; }
cid() { compose ps -q "$1"; }

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 || $FAILED -ne 0 ]]; then
    echo; echo "--- members' logs (tail) ---"
    compose logs --no-color --tail=40 2>&1 | sed 's/^/    /'
  fi
  docker rm -f "$client" >/dev/null 2>&1
  echo; echo "--- docker-compose down -v ---"
  compose down -v --remove-orphans 2>&1 | sed 's/^/    /'
  echo
  echo "== docker mode: $PASS passed, $FAILED failed, $(elapsed) =="
  if [[ $INTERRUPTED == 1 ]]; then
    echo "DOCKER MODE FAILED (interrupted)"
    rc=130
  elif [[ $FAILED -ne 0 ]]; then
    printf '  failed: %s\n' "${FAILED_NAMES[@]}"
    echo "DOCKER MODE FAILED"
    rc=1
  elif [[ $rc -ne 0 ]]; then
    echo "DOCKER MODE FAILED (exit $rc)"
  else
    echo "DOCKER MODE PASSED"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM

# ------------------------------------------------------------------------- helpers
clean() { grep -v -e '^SLF4J' -e '^Connecting to ' -e '^Welcome to ZooKeeper' -e '^JLine support' -e '^$' || true; }

# zk MEMBER CMD ARGS...: one-shot zkCli.sh in the client container; sets OUT and RC
zk() {
  local m=$1 raw; shift
  set +e
  raw=$(docker exec "$client" timeout 60 zkCli.sh -server "$m:2181" "$@" 2>&1 </dev/null)
  RC=$?
  set -e
  OUT=$(clean <<<"$raw")
}

# zkb MEMBER CMD...: one zkCli.sh session, one command per argument; sets OUT and RC
zkb() {
  local m=$1 raw; shift
  set +e
  raw=$(printf '%s\n' "$@" quit | docker exec -i "$client" timeout 90 zkCli.sh -server "$m:2181" 2>&1)
  RC=$?
  set -e
  OUT=$(clean <<<"$raw")
}

# fourlw MEMBER WORD: the answer, over the compose network
fourlw() { docker exec "$client" sh -c 'printf %s "$1" | timeout 10 nc -w 3 "$0" 2181' "$1" "$2" 2>/dev/null || true; }
mode_of() { fourlw "$1" srvr | sed -n 's/^Mode: //p'; }

health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(cid "$1")"; }

# wait_healthy MEMBER...: until docker reports every one healthy (90 s)
wait_healthy() {
  local m deadline=$(($(date +%s) + 90)) pending
  while :; do
    pending=()
    for m in "$@"; do [[ $(health_of "$m") == healthy ]] || pending+=("$m"); done
    ((${#pending[@]} == 0)) && return 0
    if (($(date +%s) > deadline)); then
      OUT=""
      for m in "${pending[@]}"; do OUT+="$m: $(health_of "$m")"$'\n'; done
      return 1
    fi
    sleep 1
  done
}

# wait_serving MEMBER...: until srvr prints a Mode on every one (90 s); ruok answers imok
# before an ensemble member has joined a quorum, srvr does not.
wait_serving() {
  local m deadline=$(($(date +%s) + 90)) pending
  while :; do
    pending=()
    for m in "$@"; do [[ -n $(mode_of "$m") ]] || pending+=("$m"); done
    ((${#pending[@]} == 0)) && return 0
    if (($(date +%s) > deadline)); then
      OUT=""
      for m in "${pending[@]}"; do OUT+="$m: $(fourlw "$m" srvr | head -n 3)"$'\n'; done
      return 1
    fi
    sleep 1
  done
}

# Markers: acknowledged writes, one per member, "/<project>-<member>" = "acked-<member>-<project>".
WRITTEN=()
marker() { echo "/$project-$1"; }
marker_value() { echo "acked-$1-$project"; }

# write_marker MEMBER [SUFFIX]: create the member's marker through that member; acknowledged
# when zkCli exits 0 having printed "Created".
write_marker() {
  local m=$1 name=$1${2:+-$2}
  zk "$m" create "$(marker "$name")" "$(marker_value "$name")"
  if [[ $RC == 0 ]] && grep -qx "Created $(marker "$name")" <<<"$OUT"; then
    WRITTEN+=("$m:$name")
    pass "write acknowledged by $m ($(marker "$name"))"
  else
    fail "write acknowledged by $m ($(marker "$name"))" "zkCli exit $RC"
  fi
}

# check_data MEMBER WHY: every marker MEMBER must hold is readable there, in one session after
# a sync. Standalone: the markers written through MEMBER itself.
check_data() {
  local m=$1 why=$2 entry w name cmds=() want=()
  for entry in "${WRITTEN[@]}"; do
    w=${entry%%:*} name=${entry#*:}
    if [[ $w == "$m" || $ENSEMBLE == 1 ]]; then
      # The cross-member check (ensemble): markers acknowledged by the other members, through
      # their own client ports, must be readable on $m too.
      cmds+=("get $(marker "$name")")
      want+=("$(marker_value "$name")")
    fi
  done
  if ((${#cmds[@]} == 0)); then return; fi
  local tries=0 missing
  while :; do
    zkb "$m" "sync /" "${cmds[@]}"
    missing=()
    for w in "${want[@]}"; do grep -qx -- "$w" <<<"$OUT" || missing+=("$w"); done
    ((${#missing[@]} == 0)) && break
    # after a leader change an ensemble may need a moment to elect and sync
    if ((++tries >= 5)); then
      fail "$m serves the acknowledged data ($why)" "missing ${missing[*]}"
      return
    fi
    sleep 3
  done
  pass "$m serves the acknowledged data ($why): ${#want[@]} znode(s)"
}

# roles MEMBER...: sets LEADER and FOLLOWER from srvr's Mode lines (and ENSEMBLE when auto)
roles() {
  local m mode modes=""
  LEADER="" FOLLOWER=""
  for m in "$@"; do
    mode=$(mode_of "$m")
    modes+="$m=$mode "
    case $mode in
      leader) LEADER=$m ;;
      follower) [[ -n $FOLLOWER ]] || FOLLOWER=$m ;;
    esac
  done
  echo "roles: $modes"
  if [[ -n $LEADER && -n $FOLLOWER ]]; then
    if [[ $ENSEMBLE == auto ]]; then
      ENSEMBLE=1
      echo "the members form an ensemble: cross-member checks on"
    fi
    [[ $ENSEMBLE == 1 ]] || echo "ZKRS_ENSEMBLE=0: per-member checks only"
    return
  fi
  if [[ $ENSEMBLE == 1 ]]; then
    OUT=$modes
    die "ensemble has a leader and a follower" "srvr modes: $modes"
  fi
  [[ $ENSEMBLE == auto ]] && ENSEMBLE=0
  # Standalone members (zkrs before ZAB): the last member (zk3) plays the follower, the first
  # (zk1) the leader.
  FOLLOWER=${MEMBERS[-1]} LEADER=${MEMBERS[0]}
  echo "members are standalone: $FOLLOWER plays the follower, $LEADER the leader"
}

# still_serving STOPPED WHY: every other member stays healthy, answers ruok and serves its data
still_serving() {
  local stopped=$1 why=$2 m
  for m in "${MEMBERS[@]}"; do
    [[ $m == "$stopped" ]] && continue
    if wait_serving "$m"; then pass "$m serves ($why): Mode $(mode_of "$m")"; else fail "$m serves ($why)" "srvr has no Mode after 90 s"; fi
    OUT=$(fourlw "$m" ruok)
    if [[ $OUT == imok ]]; then pass "$m answers ruok ($why)"; else fail "$m answers ruok ($why)" "got '$OUT'"; fi
    check_data "$m" "$why"
  done
}

# ------------------------------------------------------------------------- 1. images
step "build the images"
if [[ ${ZKRS_DOCKER_SKIP_BUILD:-0} == 1 ]]; then
  echo "ZKRS_DOCKER_SKIP_BUILD=1: using the existing images"
else
  docker/build.sh
fi
for image in zkrs:latest "$ZKCLI_IMAGE"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image exists" "run docker/build.sh"
done

# ------------------------------------------------------------------------- 2. ensemble up
mapfile -t MEMBERS < <(compose config --services | sort -V)
((${#MEMBERS[@]} >= 2)) || die "compose file has members" "$COMPOSE_FILE_PATH: ${MEMBERS[*]}"
step "docker-compose -p $project -f ${COMPOSE_FILE_PATH#"$root"/} up -d (members: ${MEMBERS[*]})"
compose up -d 2>&1 | sed 's/^/    /'
if wait_healthy "${MEMBERS[@]}"; then
  pass "members healthy (ruok HEALTHCHECK): ${MEMBERS[*]}"
else
  die "members healthy (ruok HEALTHCHECK)" "still not healthy after 90 s"
fi
for m in "${MEMBERS[@]}"; do
  hp=$(compose port "$m" 2181)
  # shellcheck disable=SC2016 # $0 expands in the inner bash
  OUT=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}"; printf ruok >&3; cat <&3' "$hp" 2>&1 || true)
  if [[ $hp == 127.0.0.1:* && $OUT == imok ]]; then
    pass "$m answers ruok on its published port $hp"
  else
    fail "$m answers ruok on its published port $hp" "got '$OUT'"
  fi
done
network=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$(cid zk1)" | awk '{print $1}')
docker run -d --name "$client" --network "$network" --label "zkrs.docker-mode=$project" \
  "$ZKCLI_IMAGE" sleep infinity >/dev/null
client_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$client")
echo "network $network; zkCli container $client at $client_ip"
if wait_serving "${MEMBERS[@]}"; then
  pass "members serve (srvr prints their Mode)"
else
  die "members serve (srvr prints their Mode)" "not after 90 s"
fi
roles "${MEMBERS[@]}"
[[ $ENSEMBLE == 1 ]] && pass "ensemble: leader $LEADER, followers report Mode: follower"
# The AdminServer on 8080 (the image's admin.enableServer=true), over the compose network.
for m in "${MEMBERS[@]}"; do
  # shellcheck disable=SC2016 # $0 expands in the container's sh
  OUT=$(docker exec "$client" sh -c 'printf "GET /commands/zabstate HTTP/1.0\r\n\r\n" | timeout 10 nc -w 3 "$0" 8080' "$m" 2>/dev/null || true)
  if [[ $OUT == *'"zabstate" : "broadcast"'* || ($ENSEMBLE != 1 && $OUT == *'"command" : "zabstate"'*) ]]; then
    pass "$m answers the AdminServer's zabstate on 8080"
  else
    fail "$m answers the AdminServer's zabstate on 8080" "got '${OUT:0:300}'"
  fi
done

# ------------------------------------------------------------------------- 3. zkCli suite
[[ ${ZKRS_DOCKER_SKIP_SUITE:-0} == 1 ]] && echo "ZKRS_DOCKER_SKIP_SUITE=1: no zkCli suite"
for m in "${MEMBERS[@]}"; do
  [[ ${ZKRS_DOCKER_SKIP_SUITE:-0} == 1 ]] && break
  step "compat-tests/zkcli/run.sh $m:2181 (in $ZKCLI_IMAGE)"
  log=$LOG_DIR/docker-zkcli-$m.log
  set +e
  # ZKCLI_CLIENT_IP: the address the server sees for this client (the suite's whoami check
  # assumes 127.0.0.1 unless it reads this variable).
  docker exec -e "ZKCLI_CLIENT_IP=$client_ip" "$client" \
    timeout "$SUITE_TIMEOUT" /compat-tests/zkcli/run.sh "$m:2181" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  OUT=""
  summary=$(grep -E '^== zkCli suite: ' "$log" | tail -n1 || true)
  failed=$(sed -n 's/^FAIL: \(.*\) -- .*/\1/p' "$log")
  if [[ $rc == 0 ]]; then
    pass "zkCli suite against $m:2181 ($summary)"
  elif [[ $failed == "whoami lists digest and ip identities" ]] &&
    grep -qx '    | digest: alice' "$log" && grep -qx "    | ip: ${client_ip//./\\.}" "$log"; then
    # The suite expects its client at 127.0.0.1 (it normally runs on the server's host); over
    # the compose network the server sees the zkCli container's address, which is right.
    pass "zkCli suite against $m:2181 ($summary; whoami shows the client's network address $client_ip, not 127.0.0.1: expected here)"
  elif [[ $rc == 124 ]]; then
    fail "zkCli suite against $m:2181" "did not finish within ${SUITE_TIMEOUT}s (log $log)"
  else
    fail "zkCli suite against $m:2181" "$summary; failed: $(tr '\n' ';' <<<"$failed") (log $log)"
  fi
done

# ------------------------------------------------------------------------- 4. failover
step "roles and acknowledged writes"
roles "${MEMBERS[@]}"
for m in "${MEMBERS[@]}"; do write_marker "$m"; done
for m in "${MEMBERS[@]}"; do check_data "$m" "before any failure"; done

step "stop the follower $FOLLOWER"
stopped=$FOLLOWER
compose stop "$stopped" 2>&1 | sed 's/^/    /'
[[ $(docker inspect -f '{{.State.Running}}' "$(cid "$stopped")") == false ]] || die "$stopped stopped" "still running"
still_serving "$stopped" "$stopped stopped"
for m in "${MEMBERS[@]}"; do [[ $m == "$stopped" ]] || write_marker "$m" "without-$stopped"; done

step "start $stopped again"
compose start "$stopped" 2>&1 | sed 's/^/    /'
if wait_healthy "$stopped"; then pass "$stopped healthy again"; else fail "$stopped healthy again" "not healthy after 90 s"; fi
if wait_serving "$stopped"; then pass "$stopped serves again: Mode $(mode_of "$stopped")"; else fail "$stopped serves again" "srvr has no Mode after 90 s"; fi
check_data "$stopped" "after its restart"

step "kill the leader"
roles "${MEMBERS[@]}"
stopped=$LEADER
echo "docker kill $stopped (SIGKILL: a crash, no graceful shutdown)"
docker kill "$(cid "$stopped")" >/dev/null
[[ $(docker inspect -f '{{.State.Running}}' "$(cid "$stopped")") == false ]] || die "$stopped killed" "still running"
still_serving "$stopped" "$stopped killed"
for m in "${MEMBERS[@]}"; do [[ $m == "$stopped" ]] || write_marker "$m" "without-$stopped"; done
for m in "${MEMBERS[@]}"; do
  [[ $m == "$stopped" ]] && continue
  st=$(health_of "$m")
  if [[ $st == healthy ]]; then pass "$m still healthy with $stopped down"; else OUT=""; fail "$m still healthy with $stopped down" "status $st"; fi
done

step "restart the killed $stopped"
compose start "$stopped" 2>&1 | sed 's/^/    /'
if wait_healthy "$stopped"; then pass "$stopped healthy after the crash"; else fail "$stopped healthy after the crash" "not healthy after 90 s"; fi
if wait_serving "$stopped"; then pass "$stopped serves after the crash: Mode $(mode_of "$stopped")"; else fail "$stopped serves after the crash" "srvr has no Mode after 90 s"; fi
check_data "$stopped" "after kill -9 and restart"

[[ $FAILED == 0 ]]
