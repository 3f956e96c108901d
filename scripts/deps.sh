#!/usr/bin/env bash
# Installs what building and testing zkrs needs, idempotently (Debian 12, as root or via sudo).
set -euo pipefail
need=()
# libkrb5-dev: MIT's GSSAPI library and headers (SASL GSSAPI for clients, src/kerberos.rs).
for pkg in libclang-dev clang netcat-openbsd libkrb5-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
