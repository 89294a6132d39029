#!/usr/bin/env bash
# Runs the metadata-store contract tests against MongoDB: starts a
# MongoDB-wire test server (scripts/services/mongo.sh, mongo-java-server) on a
# free loopback port, runs test_store with SLUICE_TEST_MONGO_URI pointing at
# it, stops the server and deletes its data. Exit status: the test binary's.
#
#   tests/store/run-mongo.sh [TEST_STORE [ARGS...]]
#
# TEST_STORE defaults to $SLUICE_BUILD_DIR/tests/store/test_store
# (SLUICE_BUILD_DIR defaults to <repo>/build). The first run fetches the
# server's jars with mvn (about 25 s; see docs/services-mongo.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MONGO="$ROOT/scripts/services/mongo.sh"
BIN="${1:-${SLUICE_BUILD_DIR:-$ROOT/build}/tests/store/test_store}"
[ $# -gt 0 ] && shift
NAME="store-test-$$"

[ -x "$BIN" ] || {
  echo "run-mongo.sh: no test binary at $BIN (build the test_store target, or pass its path)" >&2
  exit 2
}

# shellcheck disable=SC2317  # called through the trap
cleanup() {
  "$MONGO" stop "$NAME" >/dev/null 2>&1 || true
  "$MONGO" clean "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

out=$("$MONGO" start "$NAME")
uri=${out#uri=}
[[ "$uri" =~ ^mongodb://127\.0\.0\.1:[0-9]+/$ ]] || {
  echo "run-mongo.sh: unexpected answer from mongo.sh start: '$out'" >&2
  exit 1
}
echo "run-mongo.sh: MongoDB-wire server '$NAME' at $uri" >&2

cd "$ROOT"
rc=0
SLUICE_TEST_MONGO_URI="$uri" "$BIN" "$@" || rc=$?
exit $rc
