#!/usr/bin/env bash
# sluice against a real Kafka broker: fetches the Kafka jars once
# (scripts/services/kafka.sh fetch), then runs tests/kafka/NNNN-*.sh in order,
# each with its own broker. Prints one line per check ("ok   NAME detail (Ns)",
# "FAIL NAME detail (Ns)", or "KNOWN NAME detail [engine bug: ...] (Ns)" for a
# failure caused by a known, reported engine bug), then "N passed, N failed";
# exits non-zero when a check failed. Leaves nothing running.
#
#   tests/kafka/run.sh              every test
#   tests/kafka/run.sh 0001 0003    the tests whose names start so
#
# A test marked "# kt: background" runs beside the others (see below);
# KT_SERIAL=1 runs them all one after the other.
#
# Needs java, mvn (first fetch only), kcat, python3 and a built sluice
# (SLUICE_BINARY, default build/sluice). KT_KEEP=1 keeps each test's broker
# data and work directory (.cache/kafka-tests/NAME); KT_STRICT=1 counts the
# KNOWN lines as failures.
set -uo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DIR/../.." && pwd)"
t0=$SECONDS
passed=0
failed=0
known=0

t=$SECONDS
if "$ROOT/scripts/services/kafka.sh" fetch; then
  printf 'ok   %-28s %s (%ds)\n' fetch "Kafka jars in .cache/kafka/libs" $((SECONDS - t))
  passed=$((passed + 1))
else
  printf 'FAIL %-28s %s (%ds)\n' fetch "kafka.sh fetch failed" $((SECONDS - t))
  echo "0 passed, 1 failed"
  exit 1
fi

known_list=$(mktemp)

wanted() {
  local a
  [ $# -gt 1 ] || return 0
  for a in "${@:2}"; do
    case $1 in "$a"*) return 0 ;; esac
  done
  return 1
}

# tally NAME OUT RC: add a finished test's check lines to the totals
tally() {
  local name=$1 out=$2 rc=$3 p f k
  p=$(grep -c '^ok ' "$out")
  f=$(grep -c '^FAIL ' "$out")
  k=$(grep -c '^KNOWN ' "$out")
  grep '^KNOWN ' "$out" | sed "s/^KNOWN /$name: /" >>"$known_list"
  # a test that died without saying why still counts as a failure
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    printf 'FAIL %-28s %s\n' "$name" "exited with status $rc"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  known=$((known + k))
}

# A test marked "# kt: background" spends most of its time waiting on the
# broker (0004: librdkafka's 5-minute metadata refresh), so it starts first
# and runs beside the others, with its own broker; its lines (stdout and
# stderr) are printed when it has ended. KT_SERIAL=1 runs every test in turn.
bg_names=()
bg_outs=()
bg_pids=()
tests=()
for test in "$DIR"/[0-9][0-9][0-9][0-9]-*.sh; do
  name=${test##*/}
  wanted "$name" "$@" || continue
  if [ "${KT_SERIAL:-0}" != 1 ] && grep -q '^# kt: background' "$test"; then
    out=$(mktemp)
    bash "$test" >"$out" 2>&1 &
    bg_pids+=($!)
    bg_names+=("$name")
    bg_outs+=("$out")
    echo "== $name: started in the background (its lines come at the end)"
  else
    tests+=("$test")
  fi
done

for test in "${tests[@]}"; do
  name=${test##*/}
  echo "== $name"
  out=$(mktemp)
  bash "$test" | tee "$out"
  rc=${PIPESTATUS[0]}
  tally "$name" "$out" "$rc"
  rm -f "$out"
done

for i in "${!bg_pids[@]}"; do
  wait "${bg_pids[$i]}"
  rc=$?
  echo "== ${bg_names[$i]} (ran in the background)"
  cat "${bg_outs[$i]}"
  tally "${bg_names[$i]}" "${bg_outs[$i]}" "$rc"
  rm -f "${bg_outs[$i]}"
done

if [ "$known" -gt 0 ]; then
  echo "known engine bugs seen ($known checks; KT_STRICT=1 makes them failures):"
  sed 's/^/  /' "$known_list"
fi
rm -f "$known_list"
echo "kafka tests: $((SECONDS - t0))s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
