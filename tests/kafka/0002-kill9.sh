#!/usr/bin/env bash
# kill -9 in the middle of the stream: 100,000 benchmark events
# (examples/retail/generate.py --bench) go to Kafka; sluice consumes them in
# Kafka mode with a sqlite store and is killed with SIGKILL 4 to 6 times at
# random moments (each time once it owns the partitions, after 0.3-2.5 s),
# restarted each time, and finally left to finish: once the group has
# committed every input offset it gets SIGTERM and must exit 0.
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
# KT_KILL_EVENTS (100000), KT_SEED (random) make a run repeatable.
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

EVENTS=${KT_KILL_EVENTS:-100000}
PARTS=3
GROUP=sluice-kill9
THREADS=2
BATCH=256
SEED=${KT_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$((SEED % 32768))
W=$KT_WORK

kt_broker_start || kt_finish

if ! IN=$(kt_bench "$EVENTS"); then
  kt_check input 0 "generate.py failed"
  kt_finish
fi
if PLAN=$(kt_plan_cached $PARTS "$IN" --by-table kt); then
  kt_check plan 1 "$(cat "$PLAN/summary.txt")"
else
  kt_check plan 0 "kt.py plan failed"
  kt_finish
fi
mapfile -t TOPICS <"$PLAN/topics.txt"
N=$(wc -l <"$PLAN/file-input.jsonl")
# subscribe by pattern: every "<site>." prefix of the input topics
RX="^($(sed -n 's/^\([^.]*\)\..*/\1/p' "$PLAN/topics.txt" | sort -u | paste -sd'|'))\\."
if grep -qv '\.' "$PLAN/topics.txt"; then
  kt_check topics-pattern 0 "an input topic has no '.': $RX would miss it"
fi

out=""
if kt_create_topics $PARTS "${TOPICS[@]}" && kt_produce "$PLAN" && out=$(kt_produced_ok "$PLAN"); then
  kt_check produce 1 "$out in ${#TOPICS[@]} topics"
else
  kt_check produce 0 "${out:-creating topics or kcat failed}"
  kt_finish
fi

mkdir -p "$W/a"
if kt_sluice_file "$W/a/out" "$W/a/store.db" "$PLAN/file-input.jsonl" --threads $THREADS; then
  kt_check file-mode 1 "written $(kt_stat_sum written "$W/a/out.stats") in $(
    kt_stat_sum seconds "$W/a/out.stats") s"
else
  kt_tail "$W/a/out.log"
  kt_check file-mode 0 "sluice run --input failed"
  kt_finish
fi

if ! kt_kafka_mode_ok; then
  kt_check kafka-mode 0 "sluice does not run in Kafka mode yet ($KT_PROBE_DETAIL)"
  kt_finish
fi

ARGS=(--topics "$RX" --store "sqlite:$W/kafka.db" --threads $THREADS --batch $BATCH)

KILLS=$((4 + RANDOM % 3))
t_start=$SECONDS
detail=""
mid=0
for k in $(seq 1 $KILLS); do
  kt_sluice_kafka_start "$W/run$k.log" "$GROUP" "${ARGS[@]}"
  pid=$KT_LAST_PID
  # a restarted member gets partitions once the killed one's session expired
  if ! python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 1 40 >/dev/null 2>&1; then
    detail+=" #$k: no assignment within 40 s;"
  fi
  ms=$((300 + RANDOM % 2200))
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
  detail+=" #$k after ${ms}ms: $c committed;"
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

if kt_consume "$W/got.jsonl" '^sluice\.' 1; then
  kt_check consume 1 "$(wc -l <"$W/got.jsonl") records"
else
  kt_check consume 0 "kcat failed"
fi

BOUND=$((KILLS * 4 * THREADS * BATCH * 3))
kt_check_lines < <(python3 "$KT_PY" compare --expected "$W/a/out" --got "$W/got.jsonl" \
  --mode at-least-once --bound $BOUND --report "$W/compare.txt")
[ ! -s "$W/compare.txt" ] || { echo "--- differences ($W/compare.txt):" >&2; head -n 20 "$W/compare.txt" >&2; }
kt_finish
