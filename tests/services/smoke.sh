#!/usr/bin/env bash
# Smoke test of the Kafka services: two KRaft clusters (A = a site, B = the
# hub) on 127.0.0.1, MirrorMaker 2 between them in both directions, kcat
# traffic, the librdkafka probe (idempotent and transactional producer,
# read_committed consumer group), a kill -9 and restart of a broker, and a
# clean stop of everything. One line per check; ends with "N passed, N failed";
# exits non-zero when a check failed. Leaves nothing running.
#
#   tests/services/smoke.sh            (SMOKE_KEEP=1 keeps data and logs of the
#                                       run under .cache/kafka/{run,mirror})
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K="$ROOT/scripts/services/kafka.sh"
M="$ROOT/scripts/services/mirrormaker.sh"
A_NAME=smoke-a
B_NAME=smoke-b
MM_NAME=smoke-mm
N=1000
N_BACK=100
N_AFTER=200
WAIT=90 # seconds for mirrored data to show up

passed=0
failed=0
t0=$SECONDS
step_t=$SECONDS

check() {
  local name=$1 ok=$2 detail=$3
  local dt=$((SECONDS - step_t))
  step_t=$SECONDS
  if [ "$ok" = 1 ]; then
    passed=$((passed + 1))
    printf 'ok   %-22s %s (%ds)\n' "$name" "$detail" "$dt"
  else
    failed=$((failed + 1))
    printf 'FAIL %-22s %s (%ds)\n' "$name" "$detail" "$dt"
  fi
}

finish() {
  echo "smoke: $((SECONDS - t0))s in all"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

cleanup() {
  "$M" stop "$MM_NAME" >/dev/null 2>&1 || true
  "$K" stop "$A_NAME" >/dev/null 2>&1 || true
  "$K" stop "$B_NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# messages on TOPIC at BOOTSTRAP, one line each (partition:key:value), grouped
# by partition with each partition's records in log order (stable sort)
dump() {
  kcat -C -b "$1" -t "$2" -e -q -f '%p:%k:%s\n' 2>/dev/null | sort -s -t: -k1,1n
}

count() {
  kcat -C -b "$1" -t "$2" -e -q -f '%o\n' 2>/dev/null | wc -l
}

# wait until TOPIC at BOOTSTRAP holds at least WANT messages; print the count
wait_count() {
  local bs=$1 topic=$2 want=$3 deadline=$((SECONDS + WAIT)) n=0
  while :; do
    n=$(count "$bs" "$topic")
    if [ "$n" -ge "$want" ] || [ $SECONDS -ge $deadline ]; then
      echo "$n"
      return
    fi
    sleep 1
  done
}

topics_of() {
  kcat -L -b "$1" 2>/dev/null | sed -n 's/^ *topic "\([^"]*\)".*/\1/p' | sort
}

log_tail() {
  echo "--- last lines of $1" >&2
  tail -n 30 "$1" >&2
}

# ---------------------------------------------------------------- setup

command -v kcat >/dev/null || { check prerequisites 0 "kcat not found"; finish; }
if "$K" fetch; then check fetch 1 "jars in .cache/kafka/libs"; else
  check fetch 0 "kafka.sh fetch failed"
  finish
fi
if PROBE=$("$ROOT/tests/services/build-probe.sh"); then check build-probe 1 "$PROBE"; else
  check build-probe 0 "cc failed"
  finish
fi

# leftovers of an earlier run: stop and wipe
cleanup
"$K" clean "$A_NAME" && "$K" clean "$B_NAME" && rm -rf "$ROOT/.cache/kafka/mirror/$MM_NAME"

# both brokers start in parallel
tmp=$(mktemp -d)
"$K" start "$A_NAME" >"$tmp/a" 2>&1 &
pa=$!
"$K" start "$B_NAME" >"$tmp/b" 2>&1 &
pb=$!
wait $pa
ra=$?
wait $pb
rb=$?
A=$(sed -n 's/^bootstrap=//p' "$tmp/a")
B=$(sed -n 's/^bootstrap=//p' "$tmp/b")
if [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ -n "$A" ] && [ -n "$B" ] && [ "$A" != "$B" ]; then
  check start-clusters 1 "A=$A B=$B"
else
  cat "$tmp/a" "$tmp/b" >&2
  check start-clusters 0 "exit $ra/$rb"
  rm -rf "$tmp"
  finish
fi

# the same topic name on both sides, as every site has the same tables
(
  "$K" topic "$A_NAME" create orders 3 &&
    "$K" topic "$A_NAME" create probe-in 3 &&
    "$K" topic "$A_NAME" create probe-out 3
) >"$tmp/ta" 2>&1 &
pa=$!
"$K" topic "$B_NAME" create orders 2 >"$tmp/tb" 2>&1
rb=$?
wait $pa
ra=$?
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
  check create-topics 1 "orders on A and B, probe-in/out on A"
else
  cat "$tmp/ta" "$tmp/tb" >&2
  check create-topics 0 "exit $ra/$rb"
fi
rm -rf "$tmp"

# .*orders also matches the mirrored A.orders / B.orders: only MirrorMaker's
# cycle detection (source alias prefix) keeps them from going round again.
if "$M" start "$MM_NAME" --clusters "A=$A,B=$B" --flows 'A->B:.*orders,B->A:.*orders'; then
  check start-mirrormaker 1 "A->B and B->A, topics .*orders"
else
  check start-mirrormaker 0 "mirrormaker.sh start failed"
  finish
fi

# ---------------------------------------------------------------- mirroring

seq 1 $N | sed 's/.*/k&:site-a-&/' | kcat -P -b "$A" -t orders -K: 2>/dev/null
n=$(count "$A" orders)
check produce-a "$([ "$n" -eq $N ] && echo 1 || echo 0)" "$n of $N messages on A orders"

n=$(wait_count "$B" A.orders $N)
if [ "$n" -eq $N ] && [ "$(dump "$A" orders)" = "$(dump "$B" A.orders)" ]; then
  check mirror-a-to-b 1 "$n messages on B A.orders, same partitions, keys, values, order"
else
  check mirror-a-to-b 0 "$n of $N messages on B A.orders (or contents differ)"
  log_tail "$ROOT/.cache/kafka/mirror/$MM_NAME/mirrormaker.log"
fi

seq 1 $N_BACK | sed 's/.*/k&:hub-&/' | kcat -P -b "$B" -t orders -K: 2>/dev/null
n=$(wait_count "$A" B.orders $N_BACK)
check mirror-b-to-a "$([ "$n" -eq $N_BACK ] && echo 1 || echo 0)" \
  "$n of $N_BACK messages on A B.orders"

# by now MirrorMaker refreshed its topic lists several times (every 5 s)
sleep 6
ta=$(topics_of "$A" | grep orders | tr '\n' ' ')
tb=$(topics_of "$B" | grep orders | tr '\n' ' ')
if [ "$ta" = "B.orders orders " ] && [ "$tb" = "A.orders orders " ]; then
  check no-cycle 1 "A has: $ta; B has: $tb"
else
  check no-cycle 0 "A has: $ta; B has: $tb"
fi

# ---------------------------------------------------------------- librdkafka

if out=$("$PROBE" "$A" probe-in probe-out 1000 2>"$ROOT/.cache/kafka/probe.stderr"); then
  check rdkafka-probe 1 "$(grep -c '^ok ' <<<"$out") checks: idempotent, transactional, read_committed"
else
  echo "$out" >&2
  check rdkafka-probe 0 "see above and .cache/kafka/probe.stderr"
fi

# ---------------------------------------------------------------- crash of the hub broker

# kill -9 B while MirrorMaker runs, produce on A meanwhile, restart B on the
# same port: MirrorMaker must carry on from its committed offsets.
"$K" kill "$B_NAME"
st=$("$K" status "$B_NAME")
check kill-b "$([ "$st" = "$B_NAME stopped" ] && echo 1 || echo 0)" "$st"

seq $((N + 1)) $((N + N_AFTER)) | sed 's/.*/k&:site-a-&/' | kcat -P -b "$A" -t orders -K: 2>/dev/null
if B2=$("$K" start "$B_NAME" | sed -n 's/^bootstrap=//p') && [ "$B2" = "$B" ]; then
  check restart-b 1 "same bootstrap $B2"
else
  check restart-b 0 "bootstrap '$B2', was $B"
fi

n=$(wait_count "$B" A.orders $((N + N_AFTER)))
uniq=$(dump "$B" A.orders | sort -u | wc -l)
if [ "$uniq" -eq $((N + N_AFTER)) ] &&
  [ "$(dump "$A" orders | sort -u)" = "$(dump "$B" A.orders | sort -u)" ]; then
  # MirrorMaker is at-least-once: a restart may copy a few messages twice
  check mirror-after-restart 1 "$uniq distinct of $((N + N_AFTER)) on B A.orders ($((n - uniq)) duplicates)"
else
  check mirror-after-restart 0 "$uniq distinct of $((N + N_AFTER)) on B A.orders"
  log_tail "$ROOT/.cache/kafka/mirror/$MM_NAME/mirrormaker.log"
fi

# ---------------------------------------------------------------- stop

"$M" stop "$MM_NAME"
"$K" stop "$A_NAME"
"$K" stop "$B_NAME"
left=""
"$M" status "$MM_NAME" >/dev/null && left+=" $MM_NAME"
"$K" status "$A_NAME" >/dev/null && left+=" $A_NAME"
"$K" status "$B_NAME" >/dev/null && left+=" $B_NAME"
if [ -z "$left" ]; then check stop-all 1 "nothing left running"; else
  check stop-all 0 "still running:$left"
fi
if [ "${SMOKE_KEEP:-0}" != 1 ]; then
  "$K" clean "$A_NAME"
  "$K" clean "$B_NAME"
  rm -rf "$ROOT/.cache/kafka/mirror/$MM_NAME"
fi
finish
