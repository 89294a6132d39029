#!/usr/bin/env bash
# Smoke test of the MongoDB-wire test server (scripts/services/mongo.sh) with
# libmongoc 1.23, the client sluice's metadata store uses:
#   fetch, start, probe (write), kill -9, start on the same data, probe (verify),
#   kill -9 during a stream of inserts, start, probe (filled), stop, start,
#   probe (verify), stop.
# One line per check ("ok ...", "FAIL ...", "info ..."); exits non-zero when a check
# failed. Leaves nothing running. The server's data is removed at the end.
#
#   tests/services/mongo-smoke.sh
#   SANITIZE=1 tests/services/mongo-smoke.sh    probe built with ASan + UBSan
#
# Environment: SLUICE_CACHE_DIR (as mongo.sh), CC (default cc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${SLUICE_CACHE_DIR:-$ROOT/.cache}"
MONGO="$ROOT/scripts/services/mongo.sh"
NAME="smoke-$$"
PROBE="$CACHE/mongo/bin/mongo_probe"
CC="${CC:-cc}"
failed=0
passed=0
t0=$SECONDS

ok() {
  echo "ok $*"
  passed=$((passed + 1))
}

fail() {
  echo "FAIL $*"
  failed=$((failed + 1))
}

# shellcheck disable=SC2317  # called through the trap
cleanup() {
  "$MONGO" stop "$NAME" >/dev/null 2>&1 || true
  "$MONGO" clean "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Runs the probe; its lines are the checks. Counts them and keeps the exit status.
probe() {
  local out rc=0
  out=$("$PROBE" "$@" 2>"$CACHE/mongo/probe-$2.err") || rc=$?
  echo "$out" | grep -vE '^[a-z]+: [0-9]+ failed$' || true
  passed=$((passed + $(echo "$out" | grep -c '^ok ' || true)))
  failed=$((failed + $(echo "$out" | grep -c '^FAIL ' || true)))
  if [ $rc -ne 0 ] && ! echo "$out" | grep -q '^FAIL '; then
    fail "probe-$2-exit: exit status $rc"
    sed 's/^/  /' "$CACHE/mongo/probe-$2.err"
  fi
}

# ---------------------------------------------------------------- build

t=$SECONDS
if "$MONGO" fetch; then
  ok "fetch ($((SECONDS - t))s)"
else
  fail "fetch"
  exit 1
fi

pkg-config --exists libmongoc-1.0 || {
  fail "libmongoc-1.0 not found (install libmongoc-dev libbson-dev)"
  exit 1
}
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g
  -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes)
[ "${SANITIZE:-0}" = 1 ] && flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer)
mkdir -p "$(dirname "$PROBE")"
# shellcheck disable=SC2046
if "$CC" "${flags[@]}" -o "$PROBE" "$ROOT/tests/services/mongo_probe.c" \
  $(pkg-config --cflags --libs libmongoc-1.0) -pthread; then
  ok "build-probe"
else
  fail "build-probe"
  exit 1
fi

# ---------------------------------------------------------------- run

t_run=$SECONDS
"$MONGO" clean "$NAME" >/dev/null 2>&1 || true
t=$SECONDS
if out=$("$MONGO" start "$NAME") && [[ "$out" =~ ^uri=mongodb://127\.0\.0\.1:[0-9]+/$ ]]; then
  uri=${out#uri=}
  ok "start ($((SECONDS - t))s) $uri"
else
  fail "start: '${out:-}'"
  exit 1
fi

again=$("$MONGO" start "$NAME") || true
[ "$again" = "$out" ] && ok "start-again-finds-running" || fail "start-again-finds-running: '$again'"
"$MONGO" status "$NAME" | grep -q " running pid=[0-9]* uri=$uri\$" && ok "status-running" ||
  fail "status-running"

probe "$uri" write

# kill -9 right after the writes: acknowledged writes must be in the data file.
"$MONGO" kill "$NAME" && ok "kill-9" || fail "kill-9"
if ! "$MONGO" status "$NAME" >/dev/null; then ok "status-after-kill"; else fail "status-after-kill"; fi
t=$SECONDS
out2=$("$MONGO" start "$NAME") || true
[ "$out2" = "$out" ] && ok "restart-after-kill-same-uri ($((SECONDS - t))s)" ||
  fail "restart-after-kill-same-uri: '$out2'"
probe "$uri" verify

# kill -9 in the middle of a stream of inserts: every acknowledged one survives.
acked_file="$CACHE/mongo/fill-$NAME.out"
"$PROBE" "$uri" fill >"$acked_file" 2>/dev/null &
fill_pid=$!
sleep 1.5
"$MONGO" kill "$NAME" && ok "kill-9-during-inserts" || fail "kill-9-during-inserts"
wait "$fill_pid" || true
acked=$(($(wc -l <"$acked_file")))
rm -f "$acked_file"
out_fill=$("$MONGO" start "$NAME") || true
[ "$out_fill" = "$out" ] && ok "restart-after-kill-during-inserts" ||
  fail "restart-after-kill-during-inserts: '$out_fill'"
if [ "$acked" -gt 0 ]; then
  echo "info kill-9-during-inserts: $acked inserts acknowledged before the kill"
  probe "$uri" filled "$acked"
else
  fail "kill-9-during-inserts: no insert was acknowledged in 1.5 s"
fi

"$MONGO" stop "$NAME" && ok "stop" || fail "stop"
out3=$("$MONGO" start "$NAME") || true
[ "$out3" = "$out" ] && ok "restart-after-stop-same-uri" || fail "restart-after-stop-same-uri: '$out3'"
probe "$uri" verify

"$MONGO" stop "$NAME" && ok "stop" || fail "stop"
if "$MONGO" ping "$NAME" 2>/dev/null; then fail "stopped-does-not-answer"; else ok "stopped-does-not-answer"; fi

echo "mongo-smoke: start to stop took $((SECONDS - t_run))s, all $((SECONDS - t0))s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
