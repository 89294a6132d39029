#!/usr/bin/env bash
# The broker goes away in the middle of the stream: the first half of every
# partition of 100,000 benchmark events is in Kafka when sluice starts; about
# a second after sluice owns its partitions the broker is stopped
# (kafka.sh stop), stays down 10 s, and is started again (same name: same
# port, same data). sluice must still be running (librdkafka retries), take
# the second half, produced after the restart, and commit every input offset;
# then it gets SIGTERM and must exit 0. Every record of a
# file-mode run over the whole input must then be in Kafka at least once,
# nothing else, and the duplicates must stay under one disruption's bound:
#   4 batches in flight per worker x workers x batch x 3 destinations.
#
# KT_RESTART_EVENTS (100000) sets the input size.
#
# The events are on one topic per table (kt.public.*, 3 partitions, kt.py plan
# --by-table), so each row's changes from every site are in one partition in
# file order: with a store, outputs depend on the order in which a row's
# changes from different sites arrive (docs/conflicts.md), and the file-mode
# run is the reference only for that order.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0003-restart

EVENTS=${KT_RESTART_EVENTS:-100000}
PARTS=3
GROUP=sluice-restart
THREADS=2
BATCH=256
DOWN=10
W=$KT_WORK

kt_setup_bench "$EVENTS" $PARTS $THREADS 1
kt_require_kafka_mode

kt_sluice_kafka_start "$W/run.log" "$GROUP" --topics "$TLIST" --store "sqlite:$W/kafka.db" \
  --threads $THREADS --batch $BATCH --stats "$W/run.stats"
pid=$KT_LAST_PID
python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 1 40 >/dev/null 2>&1
sleep 1

c=$(kt_committed_total "$GROUP" "${TOPICS[@]}")
t_stop=$SECONDS
if "$KT_K" stop "$KT_NAME" >/dev/null 2>&1 && ! "$KT_K" status "$KT_NAME" >/dev/null 2>&1; then
  kt_check broker-stop 1 "stopped in $((SECONDS - t_stop)) s; $c records committed by then"
else
  kt_check broker-stop 0 "kafka.sh stop $KT_NAME failed"
fi
sleep $DOWN
if kt_alive "$pid"; then
  kt_check alive-while-down 1 "sluice still running after ${DOWN} s without a broker"
else
  wait "$pid"
  early_rc=$?
  kt_check alive-while-down 0 "sluice exited with status $early_rc while the broker was down"
  kt_tail "$W/run.log" 8
fi

B_BEFORE=$KT_BOOTSTRAP
t_start=$SECONDS
if out=$("$KT_K" start "$KT_NAME" 2>&1) && [ "$(sed -n 's/^bootstrap=//p' <<<"$out")" = "$B_BEFORE" ]; then
  kt_check broker-restart 1 "same bootstrap $B_BEFORE after $((SECONDS - t_start)) s; down $((SECONDS - t_stop)) s in all"
else
  echo "$out" >&2
  kt_check broker-restart 0 "kafka.sh start $KT_NAME failed or moved"
  kt_finish
fi

out=""
if kt_produce "$PLAN" 2 && out=$(kt_produced_ok "$PLAN" 2); then
  kt_check produce-second-half 1 "$out"
else
  kt_check produce-second-half 0 "${out:-kcat failed}"
fi

if [ -n "${early_rc:-}" ]; then
  kt_check run 0 "exited with status $early_rc while the broker was down"
else
  done_ok=0
  done_msg=$(kt_wait_committed "$pid" "$GROUP" 600 "${TOPICS[@]}") && done_ok=1
  kt_sigterm "$pid" 60
  rc=$?
  [ $rc -eq 0 ] || kt_tail "$W/run.log" 8
  kt_check run "$([ $done_ok = 1 ] && [ $rc -eq 0 ] && echo 1 || echo 0)" \
    "$done_msg; exit status $rc after SIGTERM; read $(kt_stat_sum read "$W/run.stats"), written $(
      kt_stat_sum written "$W/run.stats"), duplicates dropped $(kt_stat_sum duplicates "$W/run.stats")"
fi

if out=$(kt_offsets_committed "$GROUP" "${TOPICS[@]}"); then
  kt_check offsets-committed 1 "$out"
else
  kt_check offsets-committed 0 "$out"
fi

kt_check_outputs $((4 * THREADS * BATCH * 3))
kt_finish
