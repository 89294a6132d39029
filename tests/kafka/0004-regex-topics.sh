#!/usr/bin/env bash
# --topics '^REGEX': topics that match are read, including topics created
# while sluice runs and MirrorMaker 2's renamed copies; topics that do not
# match are never read. The retail events of four tables are renamed onto
# these topics (2 partitions each):
#
#   site_00.public.inventory       central's inventory     exists at start  matches
#   site_02.public.inventory       store_02's inventory    created later    matches
#   store_01.retail.public.orders  store_01's orders       created later    matches (MM2 copy
#                                                                           of "retail.public.orders"
#                                                                           from cluster store_01)
#   store_03.public.orders         store_03's orders       exists at start  no match
#   site_03.public.customers       store_03's customers    created later    no match
#
# One sluice process subscribes with the regex before the later topics exist;
# it must take their records without a restart (same process), commit every
# offset of the matching topics and none of the others, and the output topics
# must equal a file-mode run over the matching records only, record for
# record, each key in order. Then SIGTERM: exit 0.
#
# librdkafka finds new topics for a regex subscription when it refreshes its
# metadata (topic.metadata.refresh.interval.ms); sluice makes that 10 s for a
# regex subscription (librdkafka's default is 5 minutes), and the test runs
# with sluice's default: the new topics must be read within WAIT seconds.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kt_init 0004-regex

PARTS=2
GROUP=sluice-regex
RX='^(site_[0-9]+\.public\.inventory|store_[0-9]+\.[a-z0-9_]+\.public\.orders)$'
WAIT=${KT_REGEX_WAIT:-60} # > sluice's 10 s metadata refresh + a rebalance
W=$KT_WORK

kt_broker_start || kt_finish

# every retail event as a (topic, key, value) record, then renamed
if ! kt_plan 1 "$W/plan0" "$KT_ROOT/examples/retail/events" >/dev/null; then
  kt_check plan 0 "kt.py plan failed"
  kt_finish
fi
python3 - "$W/plan0/file-input.jsonl" "$W" <<'EOF' || {
import json, sys
# source topic -> (new name, group): early/late = matching, other-* = not
RENAME = {
    "central.public.inventory": ("site_00.public.inventory", "early"),
    "store_02.public.inventory": ("site_02.public.inventory", "late"),
    "store_01.public.orders": ("store_01.retail.public.orders", "late"),
    "store_03.public.orders": ("store_03.public.orders", "other-early"),
    "store_03.public.customers": ("site_03.public.customers", "other-late"),
}
out = {g: open("%s/%s.jsonl" % (sys.argv[2], g), "w") for _, g in RENAME.values()}
n = dict.fromkeys(out, 0)
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r["topic"] in RENAME:
        topic, g = RENAME[r["topic"]]
        out[g].write(json.dumps({"topic": topic, "key": r["key"], "value": r["value"]},
                                separators=(",", ":"), ensure_ascii=False) + "\n")
        n[g] += 1
for g in out:
    out[g].close()
    if n[g] == 0:
        sys.exit("no records for " + g)
EOF
  kt_check plan 0 "renaming the retail topics failed"
  kt_finish
}
for g in early late other-early other-late; do
  kt_plan $PARTS "$W/$g" "$W/$g.jsonl" >/dev/null || { kt_check plan 0 "kt.py plan $g failed"; kt_finish; }
done
kt_check plan 1 "$(for g in early late other-early other-late; do
  printf '%s: %s %s records; ' "$g" "$(paste -sd' ' "$W/$g/topics.txt")" "$(wc -l <"$W/$g/file-input.jsonl")"
done)"
mapfile -t MATCH < <(cat "$W/early/topics.txt" "$W/late/topics.txt")
mapfile -t EARLY <"$W/early/topics.txt"
mapfile -t LATE <"$W/late/topics.txt"
mapfile -t OTHER_EARLY <"$W/other-early/topics.txt"
mapfile -t OTHER_LATE <"$W/other-late/topics.txt"
mapfile -t OTHER < <(cat "$W/other-early/topics.txt" "$W/other-late/topics.txt")

# the regex itself, as a user would check it before starting sluice
bad=""
for t in "${MATCH[@]}"; do grep -Eq "$RX" <<<"$t" || bad+=" $t (should match)"; done
for t in "${OTHER[@]}"; do grep -Eq "$RX" <<<"$t" && bad+=" $t (should not match)"; done
kt_check regex "$([ -z "$bad" ] && echo 1 || echo 0)" "$RX${bad:+ wrong:$bad}"

# (a) file mode over the matching records only
cat "$W/early/file-input.jsonl" "$W/late/file-input.jsonl" >"$W/expected-input.jsonl"
mkdir -p "$W/a"
if kt_sluice_file "$W/a/out" "$W/a/store.db" "$W/expected-input.jsonl" --threads 2; then
  kt_check file-mode 1 "written $(kt_stat_sum written "$W/a/out.stats") from $(
    wc -l <"$W/expected-input.jsonl") records"
else
  kt_tail "$W/a/out.log"
  kt_check file-mode 0 "sluice run --input failed"
  kt_finish
fi

# (b) the topics that exist at start, with their records
out=""
if kt_create_topics $PARTS "${EARLY[@]}" "${OTHER_EARLY[@]}" &&
  kt_produce "$W/early" && kt_produce "$W/other-early" && out=$(kt_produced_ok "$W/early"); then
  kt_check produce-existing 1 "$out (${EARLY[*]}), and $(
    wc -l <"$W/other-early/file-input.jsonl") on ${OTHER_EARLY[*]}"
else
  kt_check produce-existing 0 "${out:-creating topics or kcat failed}"
  kt_finish
fi

kt_sluice_kafka_start "$W/run.log" "$GROUP" --topics "$RX" --store "sqlite:$W/kafka.db" \
  --threads 2 --stats "$W/run.stats"
pid=$KT_LAST_PID
if members=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 1 60 2>&1); then
  kt_check subscribed 1 "$members"
else
  kt_tail "$W/run.log"
  kt_check subscribed 0 "$members"
  kt_finish
fi
if out=$(kt_wait_committed "$pid" "$GROUP" 120 "${EARLY[@]}"); then
  kt_check existing-topic 1 "$out"
else
  kt_tail "$W/run.log"
  kt_check existing-topic 0 "$out"
fi

# (c) new topics while it runs: two that match, one that does not
t_new=$SECONDS
out=""
if kt_create_topics $PARTS "${LATE[@]}" "${OTHER_LATE[@]}" &&
  kt_produce "$W/late" && kt_produce "$W/other-late" && out=$(kt_produced_ok "$W/late"); then
  kt_check produce-new-topics 1 "$out (${LATE[*]}), and $(
    wc -l <"$W/other-late/file-input.jsonl") on ${OTHER_LATE[*]}"
else
  kt_check produce-new-topics 0 "${out:-creating topics or kcat failed}"
fi
if out=$(kt_wait_committed "$pid" "$GROUP" "$WAIT" "${LATE[@]}"); then
  kt_check new-topics-read 1 "$out, $((SECONDS - t_new)) s after the topics were created; same process (pid $pid)"
else
  kt_tail "$W/run.log"
  kt_check new-topics-read 0 "$out"
fi

kt_sigterm "$pid" 60
rc=$?
[ $rc -eq 0 ] || kt_tail "$W/run.log"
kt_check sigterm "$([ $rc -eq 0 ] && echo 1 || echo 0)" "exit status $rc; read $(
  kt_stat_sum read "$W/run.stats"), written $(kt_stat_sum written "$W/run.stats")"

if out=$(kt_offsets_committed "$GROUP" "${MATCH[@]}"); then
  kt_check offsets-committed 1 "$out"
else
  kt_check offsets-committed 0 "$out"
fi
# the group never read the topics that do not match: no committed offset
com=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" committed "$GROUP" "${OTHER[@]}" 2>&1)
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(any(o >= 0 for p in d.values() for o in p.values()))' "$com" 2>/dev/null; then
  kt_check not-matching-untouched 1 "no offsets committed on ${OTHER[*]}"
else
  kt_check not-matching-untouched 0 "committed on topics outside the regex: $com"
fi

if kt_consume "$W/got.jsonl" '^sluice\.' 1; then
  kt_check consume 1 "$(wc -l <"$W/got.jsonl") records from $(python3 "$KT_PROTO" \
    "$KT_BOOTSTRAP" topics '^sluice\.' | wc -l) output topics"
else
  kt_check consume 0 "kcat failed, or read fewer records than Kafka holds (see stderr)"
fi

kt_check_lines < <(python3 "$KT_PY" compare --expected "$W/a/out" --got "$W/got.jsonl" \
  --mode exact --report "$W/compare.txt")
[ ! -s "$W/compare.txt" ] || { echo "--- differences ($W/compare.txt):" >&2; head -n 20 "$W/compare.txt" >&2; }
kt_finish
