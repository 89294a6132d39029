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

# wanted NAME [PREFIX...]: no prefix, or NAME starts with one of them
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

for test in "$DIR"/[0-9][0-9][0-9][0-9]-*.sh; do
  name=${test##*/}
  wanted "$name" "$@" || continue
  echo "== $name"
  out=$(mktemp)
  bash "$test" | tee "$out"
  rc=${PIPESTATUS[0]}
  tally "$name" "$out" "$rc"
  rm -f "$out"
done

if [ "$known" -gt 0 ]; then
  echo "known engine bugs seen ($known checks; KT_STRICT=1 makes them failures):"
  sed 's/^/  /' "$known_list"
fi
rm -f "$known_list"
echo "kafka tests: $((SECONDS - t0))s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
