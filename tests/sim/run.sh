#!/usr/bin/env bash
# Runs the site simulator against both metadata stores: SQLite (a new file,
# the simulator's default) and a MongoDB-wire test server started with
# scripts/services/mongo.sh on a free loopback port and stopped (and its data
# deleted) on exit. Both runs happen even when the first fails; the exit
# status is 1 when either had a failing history.
#
#   tests/sim/run.sh [SIM_BINARY]
#
# SIM_BINARY defaults to $SLUICE_BUILD_DIR/tests/sim/sim (SLUICE_BUILD_DIR
# defaults to <repo>/build). Environment:
#   SIM_SQLITE_SEEDS  histories against SQLite  (default 2000: seeds 1..2000;
#                     0 skips them, as scripts/test.sh does: ctest ran them)
#   SIM_MONGO_SEEDS   histories against MongoDB (default 300; each history
#                     makes a few hundred round trips to a server that does
#                     about 1,000 a second)
#   SIM_ARGS          more arguments for both runs (e.g. "--keep-going")
# The first run fetches the server's jars with mvn (see docs/services-mongo.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MONGO="$ROOT/scripts/services/mongo.sh"
BIN="${1:-${SLUICE_BUILD_DIR:-$ROOT/build}/tests/sim/sim}"
NSQL="${SIM_SQLITE_SEEDS:-2000}"
NMONGO="${SIM_MONGO_SEEDS:-300}"
read -r -a EXTRA <<<"${SIM_ARGS:-}"
NAME="sim-$$"

[ -x "$BIN" ] || {
  echo "run.sh: no simulator at $BIN (build the sim target, or pass its path)" >&2
  exit 2
}

# shellcheck disable=SC2317  # called through the trap
cleanup() {
  "$MONGO" stop "$NAME" >/dev/null 2>&1 || true
  "$MONGO" clean "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
rc=0

if [ "$NSQL" -gt 0 ]; then
  echo "== sim against SQLite: seeds 1..$NSQL"
  "$BIN" --seeds "1..$NSQL" "${EXTRA[@]}" || rc=1
fi

out=$("$MONGO" start "$NAME")
uri=${out#uri=}
[[ "$uri" =~ ^mongodb://127\.0\.0\.1:[0-9]+/$ ]] || {
  echo "run.sh: unexpected answer from mongo.sh start: '$out'" >&2
  exit 1
}
echo "== sim against MongoDB at ${uri}sim: seeds 1..$NMONGO"
"$BIN" --seeds "1..$NMONGO" --store "${uri}sim" "${EXTRA[@]}" || rc=1
exit $rc
