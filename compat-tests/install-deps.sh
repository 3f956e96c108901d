#!/usr/bin/env bash
# Idempotently install everything the compatibility suites need.
# Meant for CI: run as root on Debian 12 (bookworm). Safe to re-run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

# Debian packages:
#   zookeeper                 Apache ZooKeeper 3.8 server (the oracle) + zkCli.sh
#   libzookeeper-java         zookeeper.jar / zookeeper-jute.jar (pulled in by zookeeper)
#   zookeeper-bin             C client command line tools
#   libzookeeper-mt-dev       C client headers + libzookeeper_mt
#   libcurator-*-java         Curator 5.x jars (and guava via dependencies)
#   libslf4j-java             slf4j-simple.jar (log backend for the oracle and Java suite)
#   default-jdk-headless      javac for the Java suite
#   gcc, libc6-dev            build the C suite
#   netcat-openbsd            four-letter words
#   python3, python3-pip      kazoo suite
#   unzip, procps, coreutils  misc. tools used by the scripts
#   openssl                   certificates for the TLS suite
#   libnetty-java             the Netty jars of the Java client's TLS socket
#   krb5-kdc, krb5-admin-server, krb5-user
#                             a KDC of the Kerberos suite's own (krb5kdc, kdb5_util, kadmin.local, kinit)
#   libkrb5-dev               krb5-config and headers for pip's kerberos (pure-sasl's GSSAPI)
PKGS=(
  zookeeper libzookeeper-java zookeeper-bin libzookeeper-mt-dev
  libcurator-client-java libcurator-framework-java libcurator-recipes-java
  libguava-java libslf4j-java
  default-jdk-headless gcc libc6-dev
  netcat-openbsd python3 python3-pip unzip procps coreutils openssl libnetty-java
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# javac may come from another JDK package; only insist on default-jdk-headless if javac is absent
if command -v javac >/dev/null 2>&1; then
  tmp=()
  for p in "${missing[@]}"; do [[ $p == default-jdk-headless ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all Debian packages already installed"
fi

# Python packages (kazoo + pytest, pure-sasl for kazoo's SASL). Debian 12's system python is "externally
# managed" (PEP 668), hence the --break-system-packages fallback.
PY=${PYTHON:-python3}
if "$PY" -c 'import kazoo, pytest, puresasl, prometheus_client, kerberos' 2>/dev/null; then
  echo "kazoo, pytest, pure-sasl, prometheus-client and kerberos already importable by $PY"
else
  if ! "$PY" -m pip install -q -r "$HERE/kazoo/requirements.txt" 2>/dev/null; then
    "$PY" -m pip install -q --break-system-packages -r "$HERE/kazoo/requirements.txt"
  fi
fi

# sanity check
for f in /usr/share/java/zookeeper.jar /usr/share/java/curator-recipes.jar /usr/include/zookeeper/zookeeper.h \
         /usr/share/zookeeper/bin/zkCli.sh; do
  [[ -e $f ]] || { echo "ERROR: $f still missing after install" >&2; exit 1; }
done
command -v javac >/dev/null || { echo "ERROR: javac missing" >&2; exit 1; }
command -v nc >/dev/null || { echo "ERROR: nc missing" >&2; exit 1; }
"$PY" -c 'import kazoo, pytest, puresasl, prometheus_client, kerberos; print("kazoo", kazoo.__version__, "pytest", pytest.__version__)'
echo "compat-test dependencies OK"
