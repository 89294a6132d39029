#!/usr/bin/env bash
# Build tests/services/rdkafka_probe.c with cc against the system librdkafka
# (Debian's librdkafka-dev), outside the main CMake build on purpose: it checks
# the services, not sluice.
#   build-probe.sh [OUTPUT]        default .cache/kafka/bin/rdkafka_probe
#   SANITIZE=1 build-probe.sh ...  with AddressSanitizer + UBSan
# Prints the path of the binary. Rebuilds only when the source is newer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/tests/services/rdkafka_probe.c"
OUT="${1:-${SLUICE_CACHE_DIR:-$ROOT/.cache}/kafka/bin/rdkafka_probe}"
CC="${CC:-cc}"

pkg-config --exists rdkafka || {
  echo "build-probe.sh: librdkafka not found (install librdkafka-dev)" >&2
  exit 1
}
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g
  -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes)
if [ "${SANITIZE:-0}" = 1 ]; then
  # shellcheck disable=SC2054 # one -fsanitize list, not two array elements
  flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer)
fi
mkdir -p "$(dirname "$OUT")"
if [ ! -x "$OUT" ] || [ "$SRC" -nt "$OUT" ] || [ "${SANITIZE:-0}" = 1 ]; then
  # shellcheck disable=SC2046
  "$CC" "${flags[@]}" -o "$OUT" "$SRC" $(pkg-config --cflags --libs rdkafka)
fi
echo "$OUT"
