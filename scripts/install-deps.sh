#!/usr/bin/env bash
# Install every Debian package sluice's build and tests need. Idempotent and
# quiet: packages already present are not touched. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config flex bison python3
  clang llvm libclang-rt-14-dev clang-format
  libjansson-dev liblua5.4-dev libsqlite3-dev liblz4-dev libcmocka-dev sqlite3
  librdkafka-dev kcat
  openjdk-17-jdk-headless maven
  libmongoc-dev libbson-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
