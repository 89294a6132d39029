#!/usr/bin/env bash
# End to end through a real broker: the retail events (examples/retail/events)
# go to Kafka topics of 3 partitions each, one topic per table (kt.public.*,
# kt.py plan --by-table: every change of a row, from any site, in one
# partition in file order, so that the consolidated view sees each row's
# changes in the order the file-mode run does; transaction markers and
# unparsable lines keep their own topics); sluice runs (a) in file mode over
# the same records (wrapper lines, in each partition's order) into a
# directory, and (b) in Kafka mode: two processes in one consumer group
# sharing one sqlite store, both with --idle-exit. Every output topic in
# Kafka must hold exactly the records of (a) (key, value and sluice.origin,
# as multisets per topic), each key's records in (a)'s order, with the
# headers consumers rely on, and the group must have committed every input
# offset.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0001-e2e

PARTS=3
GROUP=sluice-e2e
IDLE=${KT_E2E_IDLE:-15} # --idle-exit: longer than joining the group + producing
W=$KT_WORK

kt_broker_start || kt_finish

if out=$(kt_plan $PARTS "$W/plan" --by-table kt "$KT_ROOT/examples/retail/events"); then
  kt_check plan 1 "$out"
else
  kt_check plan 0 "kt.py plan failed"
  kt_finish
fi
mapfile -t TOPICS <"$W/plan/topics.txt"

if kt_create_topics $PARTS "${TOPICS[@]}"; then
  kt_check create-topics 1 "${#TOPICS[@]} input topics, $PARTS partitions each"
else
  kt_check create-topics 0 "kproto.py create-topics failed"
  kt_finish
fi

# (a) file mode over exactly the records that go to Kafka
mkdir -p "$W/a"
if kt_sluice_file "$W/a/out" "$W/a/store.db" "$W/plan/file-input.jsonl" --threads 2; then
  kt_check file-mode 1 "written $(kt_stat_sum written "$W/a/out.stats"), dead letters $(
    kt_stat_sum dead_letters "$W/a/out.stats"), duplicates $(kt_stat_sum duplicates "$W/a/out.stats")"
else
  kt_tail "$W/a/out.log"
  kt_check file-mode 0 "sluice run --input failed"
fi

if ! kt_kafka_mode_ok; then
  kt_check kafka-mode 0 "sluice does not run in Kafka mode yet ($KT_PROBE_DETAIL)"
  kt_finish
fi
kt_check kafka-mode 1 "sluice run --set kafka.bootstrap.servers=... --idle-exit works"

# Producer settings as docs/kafka.md promises: a consumer property (the
# group.id and session.timeout.ms every test sets) is not given to the
# producer, so librdkafka logs no CONFWARN; more than one produce request in
# flight is used but warned about. Kafka output, an empty topic: nothing is
# produced, the producer only starts.
kt_sluice_kafka_start "$W/inflight.log" kt-probe --topics kt-probe --idle-exit 2 --store none \
  --set kafka.max.in.flight.requests.per.connection=5
kt_wait_exit "$KT_LAST_PID" 60
rc=$?
warned=$(grep -c 'warning: kafka.max.in.flight.requests.per.connection=5' "$W/inflight.log")
confwarn=$(grep -c 'CONFWARN' "$W/inflight.log")
kt_check producer-settings "$([ $rc -eq 0 ] && [ "$warned" -eq 1 ] && [ "$confwarn" -eq 0 ] &&
  echo 1 || echo 0)" "exit $rc; in-flight warning said $warned time(s); $confwarn CONFWARN lines"

# (b) two processes in one group, one store. Both join before any record
# exists, so no rebalance moves partitions while records are in flight, and
# the exact comparison below is fair (at least once would allow repeats).
TLIST=$(IFS=,; echo "${TOPICS[*]}")
# the shared store exists before both start (see kt_store_init)
kt_store_init "$W/kafka.db" || { kt_tail "$W/store-init.log"; kt_check store-init 0 "sluice could not create $W/kafka.db"; }
pids=()
for i in 1 2; do
  kt_sluice_kafka_start "$W/b$i.log" "$GROUP" --topics "$TLIST" --store "sqlite:$W/kafka.db" \
    --threads 2 --idle-exit "$IDLE" --stats "$W/b$i.stats"
  pids+=("$KT_LAST_PID")
done
if members=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 2 60 2>&1); then
  kt_check group 1 "both processes own partitions: $members"
else
  kt_check group 0 "$members"
fi

out=""
if kt_produce "$W/plan" && out=$(kt_produced_ok "$W/plan"); then
  kt_check produce 1 "$out"
else
  kt_check produce 0 "${out:-kcat failed}"
fi

rcs=""
for i in 1 2; do
  kt_wait_exit "${pids[$((i - 1))]}" 180
  rc=$?
  rcs+=" $rc"
  [ $rc -eq 0 ] || kt_tail "$W/b$i.log"
done
read_n=$(kt_stat_sum read "$W/b1.stats" "$W/b2.stats")
confwarn=$(cat "$W/b1.log" "$W/b2.log" | grep -c 'CONFWARN')
kt_check no-confwarn "$([ "$confwarn" -eq 0 ] && echo 1 || echo 0)" \
  "$confwarn CONFWARN lines from librdkafka in the two processes' logs"
N=$(wc -l <"$W/plan/file-input.jsonl")
kt_check kafka-run "$([ "$rcs" = " 0 0" ] && [ "$read_n" -ge "$N" ] && echo 1 || echo 0)" \
  "exit status$rcs; read $read_n of $N (b1 $(kt_stat_sum read "$W/b1.stats"), b2 $(
    kt_stat_sum read "$W/b2.stats")), written $(kt_stat_sum written "$W/b1.stats" "$W/b2.stats")"

if out=$(kt_offsets_committed "$GROUP" "${TOPICS[@]}"); then
  kt_check offsets-committed 1 "$out"
else
  kt_check offsets-committed 0 "$out"
fi

if kt_consume "$W/got.jsonl" '^sluice\.' 1; then
  kt_check consume 1 "$(wc -l <"$W/got.jsonl") records from $(python3 "$KT_PROTO" \
    "$KT_BOOTSTRAP" topics '^sluice\.' | wc -l) output topics"
else
  kt_check consume 0 "kcat failed, or read fewer records than Kafka holds (see stderr)"
fi
# what sluice counted as written is what Kafka holds, topic by topic: tells a
# record sluice lost on the way apart from one it never decided to write
if out=$(kt_written_held "$W/got.jsonl.ends" "$W/b1.stats" "$W/b2.stats"); then
  kt_check written-held 1 "$out"
else
  kt_check written-held 0 "$out"
fi

kt_check_lines < <(python3 "$KT_PY" compare --expected "$W/a/out" --got "$W/got.jsonl" \
  --mode exact --report "$W/compare.txt")
[ ! -s "$W/compare.txt" ] || { echo "--- differences ($W/compare.txt):" >&2; head -n 20 "$W/compare.txt" >&2; }
kt_finish
