# shellcheck shell=bash
# Shared harness of sluice's Kafka tests (tests/kafka/NNNN-*.sh): one real
# Kafka broker per test (scripts/services/kafka.sh, a unique node name, stopped
# and wiped by a trap even on failure), topics, producing sluice input lines
# with kcat, running sluice in file and Kafka mode, consuming and comparing.
#
# A test sources this file, calls kt_init NAME, reports with kt_check and ends
# with kt_finish. Check lines: "ok   NAME detail (Ns)" / "FAIL NAME detail (Ns)",
# and "KNOWN NAME detail [engine bug: ...] (Ns)" for a check that failed the
# way a known, reported engine bug makes it fail (kt_known; KT_STRICT=1 makes
# those failures too).
#
# Environment: SLUICE_BINARY (default build/sluice), KT_KEEP=1 keeps the
# broker's data and the work directory (.cache/kafka-tests/NAME) for a look
# after the run, KT_STRICT=1 counts KNOWN lines as failures.

KT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KT_DIR="$KT_ROOT/tests/kafka"
KT_K="$KT_ROOT/scripts/services/kafka.sh"
KT_PY="$KT_DIR/kt.py"
KT_PROTO="$KT_DIR/kproto.py"
KT_RULES="$KT_ROOT/examples/retail/retail.rules"
SLUICE="${SLUICE_BINARY:-$KT_ROOT/build/sluice}"

kt_passed=0
kt_failed=0
kt_known_n=0

# Engine bugs that make checks fail today: none. When one is found, name it
# here (KT_BUG_NAME="file/function: what goes wrong"), report it, and let the
# check that sees exactly that failure call kt_known instead of kt_check;
# when the bug is fixed, delete the variable (the tests that still use it
# then fail on the unbound variable until their kt_known calls go too).
KT_PIDS=()      # sluice processes this test started
KT_NAME=""      # the broker node
KT_BOOTSTRAP=""

kt_init() {
  KT_TEST=$1
  KT_NAME="kt-$1-$$"
  KT_WORK="$KT_ROOT/.cache/kafka-tests/$1"
  KT_T0=$SECONDS
  KT_STEP=$SECONDS
  rm -rf "$KT_WORK"
  mkdir -p "$KT_WORK"
  # nodes of earlier runs of this test that died without their trap
  local d
  for d in "$KT_ROOT/.cache/kafka/run/kt-$1-"*; do
    [ -d "$d" ] || continue
    "$KT_K" stop "${d##*/}" >/dev/null 2>&1 || true
    "$KT_K" clean "${d##*/}" >/dev/null 2>&1 || true
  done
  trap kt_cleanup EXIT
  trap 'exit 130' INT TERM
  command -v kcat >/dev/null || { kt_check prerequisites 0 "kcat not found"; kt_finish; }
  [ -x "$SLUICE" ] || { kt_check prerequisites 0 "no sluice binary at $SLUICE"; kt_finish; }
}

kt_cleanup() {
  local pid live=()
  # only our sluice children that still run (a pid may have been reused)
  for pid in "${KT_PIDS[@]}"; do
    kt_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q sluice &&
      live+=("$pid")
  done
  for pid in "${live[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${live[@]}"; do
    kt_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -n "$KT_NAME" ]; then
    "$KT_K" stop "$KT_NAME" >/dev/null 2>&1 || true
    [ "${KT_KEEP:-0}" = 1 ] || "$KT_K" clean "$KT_NAME" >/dev/null 2>&1 || true
  fi
  [ "${KT_KEEP:-0}" = 1 ] || rm -rf "$KT_WORK"
}

kt_check() {
  local name=$1 ok=$2 detail=$3 dt=$((SECONDS - KT_STEP))
  KT_STEP=$SECONDS
  if [ "$ok" = 1 ]; then
    kt_passed=$((kt_passed + 1))
    printf 'ok   %-28s %s (%ds)\n' "$name" "$detail" "$dt"
  else
    kt_failed=$((kt_failed + 1))
    printf 'FAIL %-28s %s (%ds)\n' "$name" "$detail" "$dt"
  fi
}

# kt_known NAME DETAIL BUG: NAME failed, and it failed the way the known,
# reported engine bug BUG makes it fail: counted apart, not as a failure
# (a failure with KT_STRICT=1).
kt_known() {
  if [ "${KT_STRICT:-0}" = 1 ]; then
    kt_check "$1" 0 "$2 [engine bug: $3]"
    return
  fi
  local dt=$((SECONDS - KT_STEP))
  KT_STEP=$SECONDS
  kt_known_n=$((kt_known_n + 1))
  printf 'KNOWN %-27s %s [engine bug: %s] (%ds)\n' "$1" "$2" "$3" "$dt"
}

# "ok|FAIL<TAB>name<TAB>detail" lines (kt.py compare) -> kt_check;
# "known<TAB>name<TAB>detail<TAB>bug" -> kt_known
kt_check_lines() {
  local st name detail bug
  while IFS=$'\t' read -r st name detail bug; do
    if [ "$st" = known ]; then
      kt_known "$name" "$detail" "$bug"
    else
      kt_check "$name" "$([ "$st" = ok ] && echo 1 || echo 0)" "$detail"
    fi
  done
}

kt_finish() {
  echo "$KT_TEST: $kt_passed passed, $kt_failed failed, $kt_known_n known engine bugs in $((SECONDS - KT_T0))s"
  [ "$kt_failed" -eq 0 ] && [ "$kt_passed" -gt 0 ]
  exit $?
}

kt_tail() {
  echo "--- last lines of $1" >&2
  tail -n "${2:-20}" "$1" >&2
}

# ---------------------------------------------------------------- processes

kt_alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# wait up to $2 seconds for pid $1 to be gone
kt_wait_gone() {
  local deadline=$((SECONDS + $2))
  while kt_alive "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# kt_wait_exit PID SECONDS: the exit status of our child PID; 124 when it was
# still running after SECONDS (it is then stopped with SIGTERM, then SIGKILL).
kt_wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kt_alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      kill -TERM "$pid" 2>/dev/null
      kt_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      return 124
    fi
    sleep 0.2
  done
  wait "$pid"
}

# ---------------------------------------------------------------- broker

kt_broker_start() {
  local out
  if out=$("$KT_K" start "$KT_NAME" 2>&1) && KT_BOOTSTRAP=$(sed -n 's/^bootstrap=//p' <<<"$out") &&
    [ -n "$KT_BOOTSTRAP" ]; then
    kt_check broker 1 "$KT_NAME at $KT_BOOTSTRAP"
    return 0
  fi
  echo "$out" >&2
  kt_check broker 0 "kafka.sh start $KT_NAME failed"
  return 1
}

kt_create_topics() {
  local n=$1
  shift
  python3 "$KT_PROTO" "$KT_BOOTSTRAP" create-topics "$n" "$@"
}

# ---------------------------------------------------------------- data

# kt_plan PARTITIONS DIR INPUT...: what to produce (see kt.py plan)
kt_plan() {
  local n=$1 dir=$2
  shift 2
  python3 "$KT_PY" plan --partitions "$n" --out "$dir" "$@"
}

# kt_plan_cached PARTITIONS FILE [PLAN OPTIONS...]: like kt_plan, into a
# directory under .cache/kafka-tests/inputs that is kept while FILE, kt.py,
# PARTITIONS and the options stay the same (planning 100,000 lines takes
# about 10 s); prints the directory.
kt_plan_cached() {
  local n=$1 f=$2 key dir
  shift 2
  key=$(cat "$KT_PY" - <<<"$n $* $(stat -c '%n %s %Y' "$f")" | sha1sum | cut -c1-12)
  dir="$KT_ROOT/.cache/kafka-tests/inputs/plan-$key"
  if [ ! -s "$dir/produce.tsv" ]; then
    rm -rf "$dir" "$dir.tmp"
    kt_plan "$n" "$dir.tmp" "$@" "$f" >/dev/null && mv "$dir.tmp" "$dir" || return 1
    # the tsv names the partition files: point them at the final directory
    sed -i "s#$dir.tmp/#$dir/#" "$dir/produce.tsv"
  fi
  echo "$dir"
}

# kt_produce PLANDIR [HALF]: send the plan's records with kcat, one process
# per partition (so each partition gets its records in input order), four
# at a time; idempotent producer, so a retry cannot reorder or repeat.
# HALF=1 or 2 sends only the first or second half of every partition
# (kt_plan_offsets tells where each half starts).
kt_produce() {
  local dir=$1 half=${2:-0}
  awk -F'\t' -v half="$half" 'BEGIN { OFS = "\t" } {
      n = $4; h = int(n / 2)
      if (half == 1) { from = 1; cnt = h }
      else if (half == 2) { from = h + 1; cnt = n - h }
      else { from = 1; cnt = n }
      if (cnt > 0) print $1, $2, $3, from, cnt
    }' "$dir/produce.tsv" >"$KT_WORK/produce.$half.todo"
  # shellcheck disable=SC2016
  xargs -P 4 -n 1 -d '\n' sh -c '
      IFS=$(printf "\t") read -r t p f from cnt <<EOF
$2
EOF
      tail -n +"$from" "$f" | head -n "$cnt" |
        kcat -P -b "$0" -t "$t" -p "$p" -K "$(printf "\037")" -Z -q \
          -X enable.idempotence=true -X message.timeout.ms=60000 2>>"$1" ||
        { echo "kcat failed for $t [$p] (see $1)" >&2; exit 255; }
    ' "$KT_BOOTSTRAP" "$KT_WORK/kcat.log" <"$KT_WORK/produce.$half.todo"
}

# kt_produced_ok PLANDIR [HALF]: end offsets equal what the plan sent
# (topics are fresh, so offsets start at 0). Prints a summary.
kt_produced_ok() {
  local dir=$1 half=${2:-0}
  python3 "$KT_PROTO" "$KT_BOOTSTRAP" end-offsets $(cat "$dir/topics.txt") >"$KT_WORK/ends.json" ||
    return 1
  python3 - "$dir/produce.tsv" "$KT_WORK/ends.json" "$half" <<'EOF'
import json, sys
ends = json.load(open(sys.argv[2]))
half = int(sys.argv[3])
bad, total = [], 0
for line in open(sys.argv[1]):
    t, p, _f, n = line.rstrip("\n").split("\t")
    n = int(n)
    want = n // 2 if half == 1 else n
    total += want
    got = ends.get(t, {}).get(p)
    if got != want:
        bad.append("%s[%s] %s of %d" % (t, p, got, want))
print("%d records in %d partitions%s" % (total, sum(len(v) for v in ends.values()),
      "; wrong: " + ", ".join(bad[:5]) if bad else ""))
sys.exit(1 if bad else 0)
EOF
}

# kt_consume OUT REGEX [IDLE]: every record of the topics matching REGEX, as
# JSONL (topic, partition, offset, key, value, headers), once their end
# offsets did not move for IDLE seconds (default 2; at most 120 s of waiting).
kt_consume() {
  local out=$1 rx=$2 idle=${3:-2} prev="" cur ends topics since=$SECONDS deadline=$((SECONDS + 120))
  while :; do
    topics=$(python3 "$KT_PROTO" "$KT_BOOTSTRAP" topics "$rx") || return 1
    # shellcheck disable=SC2086
    ends=$( [ -z "$topics" ] || python3 "$KT_PROTO" "$KT_BOOTSTRAP" end-offsets $topics)
    cur="$topics $ends"
    if [ "$cur" != "$prev" ]; then
      prev=$cur
      since=$SECONDS
    elif [ $((SECONDS - since)) -ge "$idle" ] || [ $SECONDS -ge $deadline ]; then
      break
    fi
    sleep 0.5
  done
  [ -n "$topics" ] || { : >"$out"; return 0; }
  printf '%s\n' "$ends" >"$out.ends"
  local tmp try
  # The topics are fresh (offsets from 0, no compaction, no transactions):
  # what was read must be every offset below each partition's end. A reader
  # that stopped short is run again, and said on stderr, so that a record
  # Kafka holds is never reported missing.
  for try in 1 2 3; do
    tmp=$(mktemp -d "$KT_WORK/consume.XXXXXX")
    # shellcheck disable=SC2016,SC2086
    printf '%s\n' $topics | xargs -P 4 -I{} sh -c \
      'kcat -C -b "$0" -t "$1" -o beginning -e -J -q >"$2/$1.json" || exit 255' \
      "$KT_BOOTSTRAP" {} "$tmp" || return 1
    cat "$tmp"/*.json 2>/dev/null | python3 "$KT_PY" norm >"$out"
    rm -rf "$tmp"
    kt_consumed_all "$out" "$out.ends" && return 0
    echo "kt_consume: read $try of 3 missed records Kafka holds (above)" >&2
  done
  return 1
}

# kt_consumed_all GOT ENDS: GOT (kt.py norm lines) holds each offset below
# the end offsets in ENDS (kproto.py end-offsets) exactly once; else says
# which partitions fall short on stderr and fails.
kt_consumed_all() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
ends = json.load(open(sys.argv[2]))
seen = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    seen.setdefault((m["topic"], str(m["partition"])), []).append(m["offset"])
bad = []
for t, parts in sorted(ends.items()):
    for p, end in sorted(parts.items()):
        got = sorted(seen.get((t, p), []))
        if got != list(range(end)):
            holes = sorted(set(range(end)) - set(got))
            bad.append("%s[%s] %d of %d read (first missing offsets %s)"
                       % (t, p, len(got), end, holes[:5]))
for b in bad:
    print("kt_consume: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# kt_written_held ENDS STATS...: sluice's per-topic output counts (the
# "topics" of each --stats file, summed) against the records Kafka holds
# (ENDS, kproto.py end-offsets, summed per topic). Prints one line; fails
# when they differ. For runs without restarts, where each output is
# produced once.
kt_written_held() {
  python3 - "$@" <<'EOF'
import json, sys
ends = json.load(open(sys.argv[1]))
said = {}
for f in sys.argv[2:]:
    for t, n in json.load(open(f)).get("topics", {}).items():
        said[t] = said.get(t, 0) + n
held = {t: sum(parts.values()) for t, parts in ends.items()}
diff = ["%s: sluice counted %d, Kafka holds %d" % (t, said.get(t, 0), held.get(t, 0))
        for t in sorted(set(said) | set(held)) if said.get(t, 0) != held.get(t, 0)]
print("%d records in %d topics%s" % (sum(held.values()), len(held),
      "; " + "; ".join(diff) if diff else ", as many as sluice counted"))
sys.exit(1 if diff else 0)
EOF
}

# ---------------------------------------------------------------- sluice

# kt_sluice_file OUTDIR STORE INPUT [ARGS...]: a file-mode run; stats in OUTDIR.stats
kt_sluice_file() {
  local out=$1 store=$2 input=$3
  shift 3
  "$SLUICE" run --input "$input" --output "$out" --store "sqlite:$store" --quiet \
    --stats "$out.stats" "$@" "$KT_RULES" 2>"$out.log"
}

# the Kafka settings every Kafka-mode run gets: a restarted or crashed
# member leaves the group within 6 s (librdkafka's default is 45 s), and
# reconnects after a broker restart are tried at least every second.
KT_KAFKA_SETTINGS=(
  --set kafka.auto.offset.reset=earliest
  --set kafka.session.timeout.ms=6000
  --set kafka.heartbeat.interval.ms=1500
  --set kafka.reconnect.backoff.max.ms=1000
)

# kt_sluice_kafka_start LOG GROUP ARGS...: a Kafka-mode run in the background;
# its pid in KT_LAST_PID (and in KT_PIDS for the trap). KT_QUIET=() before the
# call keeps sluice's end-of-run summary in LOG.
KT_QUIET=(--quiet)
kt_sluice_kafka_start() {
  local log=$1 group=$2
  shift 2
  "$SLUICE" run --set "kafka.bootstrap.servers=$KT_BOOTSTRAP" --set "kafka.group.id=$group" \
    "${KT_KAFKA_SETTINGS[@]}" "${KT_QUIET[@]}" "$@" "$KT_RULES" >"$log" 2>&1 &
  KT_LAST_PID=$!
  KT_PIDS+=("$KT_LAST_PID")
}

# kt_sigterm PID SECONDS: send SIGTERM to our sluice child PID and return its
# exit status, or 124 when it still ran SECONDS later (then it is killed).
kt_sigterm() {
  kill -TERM "$1" 2>/dev/null
  kt_wait_exit "$1" "$2"
}

# kt_wait_committed PID GROUP SECONDS TOPIC...: poll (every 0.3 s, also while
# the broker is away) until GROUP's committed offsets reach the end offsets of
# every partition of TOPIC...; prints "N of M input records committed ...".
# Fails at once when sluice PID has ended, and after SECONDS. This is how a
# test knows that sluice has finished a backlog without waiting for an
# --idle-exit period.
kt_wait_committed() {
  local pid=$1
  shift
  python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-committed --pid="$pid" "$@" 2>&1
}

# kt_committed_total GROUP TOPIC...: sum of GROUP's committed offsets over
# the partitions of TOPIC... (topics start at offset 0), "?" when the broker
# does not answer.
kt_committed_total() {
  python3 "$KT_PROTO" "$KT_BOOTSTRAP" committed "$@" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(max(o,0) for p in json.load(sys.stdin).values() for o in p.values()))' 2>/dev/null ||
    echo "?"
}

# kt_store_init DB: create the SQLite store DB (empty input, file mode), so
# that processes started together open an existing WAL database. Two sluice
# processes that opened a NEW store at the same moment could fail with
# "database is locked" (connectors/sqlite_store.c open_db, PRAGMA
# journal_mode=WAL on a fresh file; not seen since the store's rewrite); see
# docs/kafka.md "Tests".
kt_store_init() {
  local db=$1 empty="$KT_WORK/empty-input.jsonl"
  : >"$empty"
  "$SLUICE" run --input "$empty" --output "$KT_WORK/store-init.out" --store "sqlite:$db" --quiet \
    "$KT_RULES" 2>"$KT_WORK/store-init.log"
}

# Does this sluice take Kafka options? Runs it against an empty topic with
# --idle-exit 2 and --output (nothing is produced); exit 0 expected.
kt_kafka_mode_ok() {
  local log="$KT_WORK/probe.log" rc
  kt_create_topics 1 kt-probe >/dev/null || return 1
  kt_sluice_kafka_start "$log" kt-probe --topics kt-probe --idle-exit 2 --store none \
    --output "$KT_WORK/probe.out"
  kt_wait_exit "$KT_LAST_PID" 60
  rc=$?
  KT_PROBE_DETAIL="exit $rc: $(grep -v '^\s*$' "$log" | head -n 2 | cut -c1-160 | tr '\n' ' ')"
  [ $rc -eq 0 ]
}

# sum of a counter over --stats files
kt_stat_sum() {
  local key=$1
  shift
  python3 - "$key" "$@" <<'EOF'
import json, sys
t = 0
for f in sys.argv[2:]:
    try:
        t += json.load(open(f)).get(sys.argv[1], 0)
    except (OSError, ValueError):
        pass
print(t)
EOF
}

# kt_offsets_committed GROUP TOPIC...: the group's committed offsets equal
# the end offsets of every partition (everything read was committed)
kt_offsets_committed() {
  local group=$1
  shift
  python3 - "$KT_PROTO" "$KT_BOOTSTRAP" "$group" "$@" <<'EOF'
import json, subprocess, sys
proto, bs, group, topics = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
run = lambda *a: json.loads(subprocess.check_output(["python3", proto, bs] + list(a)))
ends = run("end-offsets", *topics)
com = run("committed", group, *topics)
behind, total, done = [], 0, 0
for t, parts in ends.items():
    for p, end in parts.items():
        c = com.get(t, {}).get(p, -1)
        total += end
        done += min(max(c, 0), end)
        if end > 0 and c != end:
            behind.append("%s[%s] %d of %d" % (t, p, c, end))
print("%d of %d input records committed by group %s%s" % (
    done, total, group, "; behind: " + ", ".join(behind[:4]) if behind else ""))
sys.exit(1 if behind or total == 0 else 0)
EOF
}

# a cached input file: kt_bench EVENTS -> path (examples/retail/generate.py
# --bench; regenerated when generate.py changes)
kt_bench() {
  local n=$1 dir="$KT_ROOT/.cache/kafka-tests/inputs" sum f
  mkdir -p "$dir"
  sum=$(sha1sum "$KT_ROOT/examples/retail/generate.py" | cut -c1-12)
  f="$dir/bench-$n-$sum.jsonl"
  if [ ! -s "$f" ]; then
    rm -f "$dir"/bench-"$n"-*.jsonl
    python3 "$KT_ROOT/examples/retail/generate.py" --bench --events "$n" --quiet \
      --single "$f.tmp" && mv "$f.tmp" "$f" || return 1
  fi
  echo "$f"
}

# ---------------------------------------------------------------- shared setup

# kt_stop_broker_midstream PID: once sluice (PID, consuming as $GROUP) has
# joined and its first checkpoint committed something, stop the broker; the
# check broker-stop says so (or the test ends). Sets KT_T_STOP (SECONDS at
# the stop) and KT_COMMITTED_BEFORE.
kt_stop_broker_midstream() {
  local pid=$1 c=0 deadline
  python3 "$KT_PROTO" "$KT_BOOTSTRAP" wait-group "$GROUP" 1 60 >/dev/null 2>&1
  # mid-stream: the first checkpoint (about a second in) committed something
  deadline=$((SECONDS + 60))
  while kt_alive "$pid" && [ $SECONDS -lt $deadline ]; do
    c=$(kt_committed_total "$GROUP" "${TOPICS[@]}")
    [ "$c" != "?" ] && [ "$c" -gt 0 ] && break
    sleep 0.3
  done
  KT_COMMITTED_BEFORE=$c
  KT_T_STOP=$SECONDS
  if "$KT_K" stop "$KT_NAME" >/dev/null 2>&1 && ! "$KT_K" status "$KT_NAME" >/dev/null 2>&1; then
    kt_check broker-stop 1 "stopped in $((SECONDS - KT_T_STOP)) s; $c of $N input records committed before"
  else
    kt_check broker-stop 0 "kafka.sh stop $KT_NAME failed"
    kt_finish
  fi
}

# kt_resume_and_finish PID PREFIX: the sluice PID (log PREFIX.log, stats
# PREFIX.stats) takes the rest of the input: once the group ($GROUP) has
# committed every input offset it gets SIGTERM and must exit 0 (check
# resume); then every expected output must be there (kt_check_outputs, at
# most one disruption's repeats), and the test ends.
kt_resume_and_finish() {
  local pid=$1 prefix=$2 done_ok=0 done_msg rc
  done_msg=$(kt_wait_committed "$pid" "$GROUP" 300 "${TOPICS[@]}") && done_ok=1
  kt_sigterm "$pid" 60
  rc=$?
  [ $rc -eq 0 ] || kt_tail "$prefix.log" 8
  kt_check resume "$([ $done_ok = 1 ] && [ $rc -eq 0 ] && echo 1 || echo 0)" \
    "$done_msg; exit status $rc after SIGTERM; this run read $(kt_stat_sum read "$prefix.stats"), dropped $(
      kt_stat_sum duplicates "$prefix.stats") as duplicates"
  kt_check_outputs $((4 * THREADS * BATCH * 3))
  kt_finish
}

# kt_setup_bench EVENTS PARTITIONS THREADS [HALF]: the setup of the tests
# that stream benchmark events (0002, 0003, 0005, 0007). Starts the broker,
# makes the input (kt_bench EVENTS) and its plan (one topic per table,
# kt.public.*, PARTITIONS partitions each, kt.py plan --by-table), creates
# the topics, produces every record (HALF=1: the first half of each
# partition) and checks the end offsets, then runs sluice in file mode over
# the whole input with THREADS workers as the reference ($KT_WORK/a/out).
# Checks: broker, plan, produce (produce-first-half), file-mode; calls
# kt_finish (the test ends) when one fails. Sets PLAN, TOPICS (array), TLIST
# (comma-separated) and N (input records).
#
# Why one topic per table: with a store, outputs depend on the order in
# which a row's changes from different sites arrive (docs/conflicts.md);
# there each row's changes from every site are in one partition in file
# order, the order the file-mode reference saw.
kt_setup_bench() {
  local events=$1 parts=$2 threads=$3 half=${4:-0} in out="" name=produce
  kt_broker_start || kt_finish
  if ! in=$(kt_bench "$events"); then
    kt_check input 0 "generate.py failed"
    kt_finish
  fi
  if PLAN=$(kt_plan_cached "$parts" "$in" --by-table kt); then
    kt_check plan 1 "$(cat "$PLAN/summary.txt")"
  else
    kt_check plan 0 "kt.py plan failed"
    kt_finish
  fi
  mapfile -t TOPICS <"$PLAN/topics.txt"
  # shellcheck disable=SC2034 # for the test that called
  TLIST=$(IFS=,; echo "${TOPICS[*]}")
  # shellcheck disable=SC2034
  N=$(wc -l <"$PLAN/file-input.jsonl")
  [ "$half" = 1 ] && name=produce-first-half
  if kt_create_topics "$parts" "${TOPICS[@]}" && kt_produce "$PLAN" "$half" &&
    out=$(kt_produced_ok "$PLAN" "$half"); then
    kt_check "$name" 1 "$out in ${#TOPICS[@]} topics"
  else
    kt_check "$name" 0 "${out:-creating topics or kcat failed}"
    kt_finish
  fi
  mkdir -p "$KT_WORK/a"
  if kt_sluice_file "$KT_WORK/a/out" "$KT_WORK/a/store.db" "$PLAN/file-input.jsonl" \
    --threads "$threads"; then
    kt_check file-mode 1 "written $(kt_stat_sum written "$KT_WORK/a/out.stats") in $(
      kt_stat_sum seconds "$KT_WORK/a/out.stats") s"
  else
    kt_tail "$KT_WORK/a/out.log"
    kt_check file-mode 0 "sluice run --input failed"
    kt_finish
  fi
}

# kt_require_kafka_mode: the test ends unless this sluice runs in Kafka mode
# (kt_kafka_mode_ok).
kt_require_kafka_mode() {
  if ! kt_kafka_mode_ok; then
    kt_check kafka-mode 0 "sluice does not run in Kafka mode yet ($KT_PROBE_DETAIL)"
    kt_finish
  fi
}

# kt_check_outputs BOUND: consume every sluice.* topic and compare with the
# file-mode reference ($KT_WORK/a/out): every expected record present at
# least once, nothing else, each key's records in order, at most BOUND
# duplicates. Checks: consume, then kt.py compare's checks.
kt_check_outputs() {
  local bound=$1 w=$KT_WORK
  if kt_consume "$w/got.jsonl" '^sluice\.' 1; then
    kt_check consume 1 "$(wc -l <"$w/got.jsonl") records"
  else
    kt_check consume 0 "kcat failed, or read fewer records than Kafka holds (see stderr)"
  fi
  kt_check_lines < <(python3 "$KT_PY" compare --expected "$w/a/out" --got "$w/got.jsonl" \
    --mode at-least-once --bound "$bound" --report "$w/compare.txt")
  [ ! -s "$w/compare.txt" ] || {
    echo "--- differences ($w/compare.txt):" >&2
    head -n 20 "$w/compare.txt" >&2
  }
}
