#!/usr/bin/env bash
# Run every compatibility suite against one server and summarise.
#
#   compat-tests/run-all.sh host:port [suite...]
#
# Suites (default: all, in this order): fourlw zkcli c kazoo java
# Exit status is non-zero if any suite failed. Per-suite logs are kept in
# $LOG_DIR (default /tmp/zkrs-compat-logs).
set -euo pipefail

SERVER=${1:?usage: $0 host:port [suite...]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
SUITES=("$@")
((${#SUITES[@]})) || SUITES=(fourlw zkcli c kazoo java)
LOG_DIR=${LOG_DIR:-/tmp/zkrs-compat-logs}
mkdir -p "$LOG_DIR"

HOST=${SERVER%:*}
PORT=${SERVER##*:}

# fail fast if nothing is listening
if ! (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "FAIL: nothing is listening on $SERVER"
  exit 1
fi

declare -A RESULT SUMMARY SECS
overall=0
for suite in "${SUITES[@]}"; do
  case $suite in
    fourlw) cmd=("$HERE/fourlw/run.sh" "$SERVER") ;;
    zkcli) cmd=("$HERE/zkcli/run.sh" "$SERVER") ;;
    c) cmd=("$HERE/c/run.sh" "$SERVER") ;;
    kazoo) cmd=("$HERE/kazoo/run.sh" "${ZK_HOSTS:-$SERVER}") ;;
    java) cmd=("$HERE/java/run.sh" "$SERVER") ;;
    *) echo "unknown suite: $suite" >&2; exit 2 ;;
  esac
  log="$LOG_DIR/$suite.log"
  echo
  echo "################ $suite ################"
  t0=$(date +%s)
  set +e
  "${cmd[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  SECS[$suite]=$(($(date +%s) - t0))
  if [[ $rc -eq 0 ]]; then RESULT[$suite]=PASS; else RESULT[$suite]=FAIL; overall=1; fi
  # the suite's own summary line (e.g. "== zkCli suite: 62 passed, 0 failed ==" or pytest's)
  SUMMARY[$suite]=$(grep -E '^== .*(passed|failed)|^=+ .*(passed|failed|error).* in [0-9.]+s' "$log" | tail -n1 \
    | sed -E 's/^=+ //; s/ =+$//' || true)
done

echo
echo "################ summary for $SERVER ################"
for suite in "${SUITES[@]}"; do
  printf '%-4s %-7s %4ss  %s\n' "${RESULT[$suite]}" "$suite" "${SECS[$suite]}" "${SUMMARY[$suite]}"
done
if [[ $overall -eq 0 ]]; then
  echo "ALL SUITES PASSED"
else
  echo "SOME SUITES FAILED (logs in $LOG_DIR)"
fi
exit $overall
