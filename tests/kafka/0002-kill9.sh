#!/usr/bin/env bash
# kill -9 in the middle of the stream: 200,000 benchmark events
# (examples/retail/generate.py --bench) go to Kafka; sluice consumes them in
# Kafka mode with a sqlite store and is killed with SIGKILL 4 to 6 times at
# random moments, restarted each time, and finally left to finish: once the
# group has committed every input offset it gets SIGTERM and must exit 0.
# The moments are random points of the stream, not of the clock, so that
# every kill lands while input remains however fast sluice runs: each run is
# killed 0-200 ms after its output topics have grown by a random 0-12,000
# records since it started (outputs of changes redone after the previous
# kill count too, so some kills land in that replay). The retail input gives
# ~1.6 output records per change, so six runs' 72,000 outputs at most stand
# for ~45,000 changes, plus what ~0.3 s of processing adds per run (the
# polls and the delay): the kills end well before the 200,000th change.
# Every record a file-mode run over the same input writes must be in Kafka at
# least once, nothing else may be there, each key's records must contain the
# file run's sequence in order, and the duplicates must stay under the bound
# the delivery design promises:
#   kills x (batches in flight: 4 per worker) x workers x batch x 3
# (at most 3 destinations per change in retail.rules), i.e. the changes whose
# outputs reached the broker but whose positions had not reached the store
# when the process died; changes whose positions were stored are dropped on
# replay by the shared store.
#
# KT_KILL_EVENTS (200000), KT_SEED (random) make a run repeatable.
#
# The events are on one topic per table (kt.public.*, 3 partitions, kt.py plan
# --by-table), so each row's changes from every site are in one partition in
# file order: with a store, outputs depend on the order in which a row's
# changes from different sites arrive (docs/conflicts.md), and the file-mode
# run is the reference only for that order.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0002-kill9

EVENTS=${KT_KILL_EVENTS:-200000}
PARTS=3
GROUP=sluice-kill9
THREADS=2
BATCH=256
SEED=${KT_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$((SEED % 32768))
W=$KT_WORK

kt_setup_bench "$EVENTS" $PARTS $THREADS
# subscribe by pattern: every "<site>." prefix of the input topics
RX="^($(sed -n 's/^\([^.]*\)\..*/\1/p' "$PLAN/topics.txt" | sort -u | paste -sd'|'))\\."
if grep -qv '\.' "$PLAN/topics.txt"; then
  kt_check topics-pattern 0 "an input topic has no '.': $RX would miss it"
fi

kt_require_kafka_mode

ARGS=(--topics "$RX" --store "sqlite:$W/kafka.db" --threads $THREADS --batch $BATCH)

KILLS=$((4 + RANDOM % 3))
OUT_RX='^sluice\.'
t_start=$SECONDS
detail=""
mid=0
for k in $(seq 1 $KILLS); do
  start=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" records "$OUT_RX" 2>/dev/null) || start=0
  grow=$(((RANDOM * 32768 + RANDOM) % 12001))
  kt_sluice_kafka_start "$W/run$k.log" "$GROUP" "${ARGS[@]}"
  pid=$KT_LAST_PID
  # a restarted member gets partitions once the killed one's session expired
  if ! python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 1 40 >/dev/null 2>&1; then
    detail+=" #$k: no assignment within 40 s;"
  fi
  if ! python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-records --pid="$pid" "$OUT_RX" \
    $((start + grow)) 120 >/dev/null 2>&1; then
    detail+=" #$k: outputs did not grow by $grow within 120 s;"
  fi
  ms=$((RANDOM % 200))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if ! kt_alive "$pid"; then
    wait "$pid"
    detail+=" #$k: exited (status $?) before the kill;"
    kt_tail "$W/run$k.log"
    continue
  fi
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  c=$(kt_committed_total "$GROUP" "${TOPICS[@]}")
  [ "$c" != "?" ] && [ "$c" -lt "$N" ] && mid=$((mid + 1))
  detail+=" #$k at +$grow outputs + ${ms}ms: $c committed;"
done
kt_check kill-9 "$([ $mid -eq $KILLS ] && echo 1 || echo 0)" \
  "$KILLS kills (seed $SEED), $mid while input remained:${detail%;}"

kt_sluice_kafka_start "$W/final.log" "$GROUP" "${ARGS[@]}" --stats "$W/final.stats"
pid=$KT_LAST_PID
done_ok=0
done_msg=$(kt_wait_committed "$pid" "$GROUP" 600 "${TOPICS[@]}") && done_ok=1
kt_sigterm "$pid" 60
rc=$?
[ $rc -eq 0 ] || kt_tail "$W/final.log"
kt_check final-run "$([ $done_ok = 1 ] && [ $rc -eq 0 ] && echo 1 || echo 0)" \
  "$done_msg; exit status $rc after SIGTERM; last run read $(kt_stat_sum read "$W/final.stats"), wrote $(
    kt_stat_sum written "$W/final.stats"), dropped $(kt_stat_sum duplicates "$W/final.stats") as duplicates; $((SECONDS - t_start)) s since the first start"

if out=$(kt_offsets_committed "$GROUP" "${TOPICS[@]}"); then
  kt_check offsets-committed 1 "$out"
else
  kt_check offsets-committed 0 "$out"
fi

kt_check_outputs $((KILLS * 4 * THREADS * BATCH * 3))
kt_finish
