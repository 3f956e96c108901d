#!/usr/bin/env bash
# Build and run the C client (libzookeeper_mt, synchronous API) suite.
#   compat-tests/c/run.sh host:port
set -euo pipefail
SERVER=${1:?usage: $0 host:port}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD_DIR:-/tmp/zkrs-compat-c}
mkdir -p "$BUILD"
[[ -f /usr/include/zookeeper/zookeeper.h ]] || { echo "FAIL: libzookeeper-mt-dev not installed"; exit 1; }
gcc -std=c11 -O1 -g -Wall -Wextra -Wno-unused-parameter -DTHREADED \
  -o "$BUILD/zkcompat" "$HERE/zkcompat.c" -lzookeeper_mt -lpthread
exec timeout 300 "$BUILD/zkcompat" "$SERVER"
