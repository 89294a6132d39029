#!/usr/bin/env bash
# SIGTERM while the broker is away. 100,000 benchmark events are in Kafka;
# sluice consumes them; once the group has committed a first part, the broker
# is stopped (kafka.sh stop) and sluice gets SIGTERM. docs/kafka.md promises,
# for SIGTERM: "stop reading, finish every message taken, wait for
# acknowledgements, commit, exit 0 (while the broker is away it keeps waiting
# for it: nothing taken is abandoned)". So:
#   - with the broker down, sluice is still running DOWN seconds after the
#     SIGTERM (waiting, not abandoning its outputs), and
#   - once the broker is back it exits 0 within EXIT_WAIT seconds, its summary
#     says "stopped early", and the group's committed offsets cover exactly
#     what it read (everything taken was finished and committed);
#   - a new sluice in the same group then takes the rest; every record of a
#     file-mode run over the whole input is in Kafka at least once, nothing
#     else, duplicates under one disruption's bound
#     (4 batches in flight per worker x workers x batch x 3 destinations),
#     each key in order.
#
# sluice runs here with session.timeout.ms=120000, longer than the outage
# (about 30 s), so its group membership outlives it. With a session timeout
# shorter than the outage the group evicts the member and the final commit
# is refused at first: 0007-sigterm-after-eviction.sh tests that case.
#
# KT_SIGTERM_EVENTS (100000) sets the input size.
#
# The events are on one topic per table (kt.public.*, 3 partitions, kt.py plan
# --by-table), so each row's changes from every site are in one partition in
# file order: with a store, outputs depend on the order in which a row's
# changes from different sites arrive (docs/conflicts.md), and the file-mode
# run is the reference only for that order.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0005-sigterm

EVENTS=${KT_SIGTERM_EVENTS:-100000}
PARTS=3
GROUP=sluice-sigterm
THREADS=2
BATCH=256
DOWN=10      # seconds the broker stays away after the SIGTERM
EXIT_WAIT=90 # seconds for sluice to exit once the broker is back
W=$KT_WORK

kt_setup_bench "$EVENTS" $PARTS $THREADS

ARGS=(--topics "$TLIST" --store "sqlite:$W/kafka.db" --threads "$THREADS" --batch "$BATCH"
  --set kafka.session.timeout.ms=120000)
# shellcheck disable=SC2034 # read by kt_sluice_kafka_start
KT_QUIET=() # keep sluice's summary in the log: it tells whether it was stopped
kt_sluice_kafka_start "$W/run1.log" "$GROUP" "${ARGS[@]}" --stats "$W/run1.stats"
pid=$KT_LAST_PID
kt_stop_broker_midstream "$pid"
t_stop=$KT_T_STOP

if ! kt_alive "$pid"; then
  wait "$pid"
  rc=$?
  kt_tail "$W/run1.log" 8
  kt_check sigterm-while-down 0 "sluice had already exited (status $rc) before the SIGTERM"
  kt_finish
fi
lines_before=$(wc -l <"$W/run1.log")
kill -TERM "$pid"
t_term=$SECONDS
gone=0
while [ $((SECONDS - t_term)) -lt $DOWN ]; do
  kt_alive "$pid" || { gone=1; break; }
  sleep 0.2
done
# what sluice itself (not librdkafka's %N|... log lines) said meanwhile
said=$(tail -n +"$((lines_before + 1))" "$W/run1.log" | grep -v '^%' | grep -v '^\s*$' | head -n 3 |
  cut -c1-160 | tr '\n' ' ')
if [ $gone = 0 ]; then
  kt_check waits-while-down 1 "still running ${DOWN} s after SIGTERM with the broker away (own messages meanwhile: ${said:-none})"
else
  wait "$pid"
  rc=$?
  kt_tail "$W/run1.log" 8
  kt_check waits-while-down 0 "exited with status $rc $((SECONDS - t_term)) s after SIGTERM while the broker was away; docs/kafka.md says it keeps waiting (said: ${said:-nothing})"
fi

B_BEFORE=$KT_BOOTSTRAP
t_start=$SECONDS
if out=$("$KT_K" start "$KT_NAME" 2>&1) && [ "$(sed -n 's/^bootstrap=//p' <<<"$out")" = "$B_BEFORE" ]; then
  kt_check broker-restart 1 "same bootstrap after $((SECONDS - t_start)) s; down $((SECONDS - t_stop)) s in all"
else
  echo "$out" >&2
  kt_check broker-restart 0 "kafka.sh start $KT_NAME failed or moved"
  kt_finish
fi

if [ $gone = 0 ]; then
  t_back=$SECONDS
  kt_wait_exit "$pid" $EXIT_WAIT
  rc=$?
  took=$((SECONDS - t_back))
  summary=$(grep -m1 '^sluice: .* events from ' "$W/run1.log")
  stopped=$(kt_stat_sum stopped "$W/run1.stats")
  [ $rc -eq 0 ] || kt_tail "$W/run1.log" 8
  detail="exit status $rc ${took} s after the broker was back ($((SECONDS - t_term)) s after SIGTERM); stats stopped=$stopped; summary: \"$(
    sed -E 's/ from .* in / from ... in /' <<<"${summary:-no summary line}")\""
  kt_check exit-after-broker-back "$([ $rc -eq 0 ] && [ "$stopped" = 1 ] &&
    grep -q 'stopped early' <<<"$summary" && echo 1 || echo 0)" "$detail"
fi

read1=$(kt_stat_sum read "$W/run1.stats")
c1=$(kt_committed_total "$GROUP" "${TOPICS[@]}")
kt_check committed-what-it-read "$([ "$c1" = "$read1" ] && [ "$read1" -gt 0 ] && [ "$read1" -lt "$N" ] &&
  echo 1 || echo 0)" "the stopped run read $read1 of $N records; the group has $c1 committed"

# a new process takes the rest
kt_sluice_kafka_start "$W/run2.log" "$GROUP" "${ARGS[@]}" --stats "$W/run2.stats"
pid=$KT_LAST_PID
kt_resume_and_finish "$pid" "$W/run2"
