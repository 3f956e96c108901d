#!/usr/bin/env bash
# Compile (plain javac, jars from the Debian packages in /usr/share/java) and run
# the ZooKeeper Java client + Curator suite.
#   compat-tests/java/run.sh host:port
set -euo pipefail
SERVER=${1:?usage: $0 host:port}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD_DIR:-$HERE/build}
J=/usr/share/java

CP="$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/curator-client.jar:$J/curator-framework.jar:$J/curator-recipes.jar:$J/guava.jar:$J/slf4j-api.jar"
for jar in zookeeper.jar zookeeper-jute.jar curator-client.jar curator-framework.jar curator-recipes.jar guava.jar slf4j-api.jar; do
  [[ -f $J/$jar ]] || { echo "FAIL: $J/$jar missing (run compat-tests/install-deps.sh)"; exit 1; }
done
# a logging backend so client warnings are visible (WARN and above only)
LOGCP=""
[[ -f $J/slf4j-simple.jar ]] && LOGCP=":$J/slf4j-simple.jar"

mkdir -p "$BUILD"
SRC="$HERE/src/ZkCompat.java"
if [[ ! -f $BUILD/ZkCompat.class || $SRC -nt $BUILD/ZkCompat.class ]]; then
  javac -nowarn -implicit:none -sourcepath "" -d "$BUILD" -cp "$CP" "$SRC"
fi
exec timeout 300 java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx256m \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -Dorg.slf4j.simpleLogger.logFile=System.err \
  -Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn=error \
  -Dzookeeper.sasl.client=false \
  -cp "$BUILD:$CP$LOGCP" ZkCompat "$SERVER"
