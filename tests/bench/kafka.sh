#!/usr/bin/env bash
# kafka.sh - Kafka-to-Kafka throughput: sluice with the retail rules next to a
# plain librdkafka consume->produce passthrough, on one local broker.
#
#   tests/bench/kafka.sh [--events N] [--partitions P] [--out-partitions Q]
#                        [--runs N] [--idle S] [--threads N] [--name NODE]
#                        [--rules FILE] [--build DIR] [--set KEY=VALUE]...
#
# 1. builds sluice (Release, no tests) and tests/bench/kafka_passthrough.c into
#    DIR (default build-bench/; logs: DIR/kafka-bench.log);
# 2. generates the input with examples/retail/generate.py --bench --events N
#    (default 200,000; cached in tests/bench/data/, shared with run.sh) and
#    splits it into one key<TAB>value file per topic <site>.public.<table> /
#    <site>.transaction (cached in tests/bench/data/kafka-N/);
# 3. starts a Kafka node NODE (default bench-kafka-PID) with
#    scripts/services/kafka.sh, creates every input topic with P partitions
#    (default 6) and loads the messages with kcat (keyed);
# 4. writes sluice's outputs for that input with a file-mode run, for the
#    replay (kafka_passthrough -r: it consumes the input as the passthrough
#    does but produces those records, to topics replay.<sluice's topic>, so
#    the broker does all that sluice's run makes it do and the program none
#    of sluice's processing);
# 5. runs the passthrough, `sluice run --store none` and the replay in turn,
#    --runs times each (default 3), each with a new consumer group, and keeps
#    the best time to the last output message (see docs/performance.md);
# 6. prints one Markdown table; stops and deletes the node on exit.
#
# --out-partitions Q (default P): partitions of each of sluice's (and the
# replay's) output topics; the passthrough's one output topic keeps P.
#
# --set KEY=VALUE (repeatable) is passed to both programs: `--set` to sluice,
# as a librdkafka property to the passthrough when KEY starts with "kafka."
# (so that both keep the same client settings).
#
# Quiet apart from the table and a note with the load average.
# Not part of the test suite (it takes minutes).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
data="$here/data"
events=200000
parts=6
outparts=""
runs=3
idle=5
threads=""
sets=()
name="bench-kafka-$$"
rules="$root/examples/retail/retail.rules"
regex='^(central|store_0[1-3])\..*'

while [ $# -gt 0 ]; do
    case "$1" in
    --events) events=$2; shift 2 ;;
    --partitions) parts=$2; shift 2 ;;
    --out-partitions) outparts=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --rules) rules=$2; shift 2 ;;
    --build) build=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --set) sets+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kafka.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

outparts=${outparts:-$parts}
command -v kcat >/dev/null || { echo "kafka.sh: kcat is not installed" >&2; exit 1; }
mkdir -p "$build" "$data"
log="$build/kafka-bench.log"
: >"$log"
work=$(mktemp -d "$build/kafka-bench.XXXXXX")
services="$root/scripts/services/kafka.sh"
started=""
child=""

cleanup() {
    # only what this script started: the program being timed, then our node
    # (GNU time does not pass SIGTERM on: stop the program under it first)
    if [ -n "$child" ]; then
        # shellcheck disable=SC2046 # a list of pids
        kill $(ps -o pid= --ppid "$child") "$child" 2>/dev/null || true
    fi
    if [ -n "$started" ]; then
        "$services" stop "$name" >>"$log" 2>&1 || true
        "$services" clean "$name" >>"$log" 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "kafka.sh: $*" >&2
    exit 1
}

# ---- build

pt="$build/kafka_passthrough"
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
    "$here/kafka_passthrough.c" -o "$pt" -lrdkafka >>"$log" 2>&1 ||
    fail "building kafka_passthrough failed, see $log"
{ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF &&
    ninja -C "$build" sluice; } >>"$log" 2>&1 || fail "sluice did not build, see $log"
sluice="$build/sluice"
thr=()
[ -n "$threads" ] && thr=(--threads "$threads")

# ---- input: one file of key<TAB>value lines per topic

gen="$root/examples/retail/generate.py"
jsonl="$data/bench-$events.jsonl"
if [ ! -s "$jsonl" ] || [ "$gen" -nt "$jsonl" ]; then
    python3 "$gen" --bench --quiet --events "$events" --single "$jsonl.tmp"
    mv "$jsonl.tmp" "$jsonl"
fi
kv="$data/kafka-$events"
if [ ! -f "$kv/.done" ] || [ "$jsonl" -nt "$kv/.done" ]; then
    rm -rf "$kv"
    mkdir -p "$kv"
    PYTHONDONTWRITEBYTECODE=1 python3 - "$root/examples/retail" "$jsonl" "$kv" <<'EOF'
# Bare lines are a Debezium value: topic <source.name>.<schema>.<table>, key the
# row key (the table's key columns, as the generator's KEYS); transaction
# BEGIN/END values go to <site>.transaction, the site found from the data
# events that carry the same transaction id. Wrapper lines name their own
# topic, key and value (null value = tombstone, written as an empty value and
# produced as NULL by kcat -Z). Serialised as generate.py does, so a bare
# line's value is the line itself.
import json, os, sys
sys.path.insert(0, sys.argv[1])
from generate import KEYS, dumps

src, out = sys.argv[2], sys.argv[3]
tx_site = {}
with open(src, encoding="utf-8") as f:
    for line in f:
        d = json.loads(line)
        v = d.get("value") if "topic" in d and "value" in d else d
        if isinstance(v, dict) and v.get("transaction") and "source" in v:
            tx_site[v["transaction"]["id"]] = v["source"]["name"]
files = {}
n = nbytes = 0
with open(src, encoding="utf-8") as f:
    for line in f:
        line = line.rstrip("\n")
        d = json.loads(line)
        if "topic" in d and "value" in d:
            topic, key = d["topic"], dumps(d["key"])
            value = "" if d["value"] is None else dumps(d["value"])
        elif "source" in d:
            s = d["source"]
            row = d["after"] if d["after"] is not None else d["before"]
            topic = "%s.%s.%s" % (s["name"], s["schema"], s["table"])
            key = dumps({k: row[k] for k in KEYS[s["table"]]})
            value = line
        elif d.get("status") in ("BEGIN", "END"):
            topic, key, value = tx_site[d["id"]] + ".transaction", dumps({"id": d["id"]}), line
        else:
            sys.exit("kafka.sh: cannot place line %d: %s" % (n + 1, line[:80]))
        if "\t" in key or "\n" in value:
            sys.exit("kafka.sh: line %d has a tab in its key or a newline" % (n + 1))
        if topic not in files:
            files[topic] = open(os.path.join(out, topic + ".kv"), "w", encoding="utf-8")
        files[topic].write(key + "\t" + value + "\n")
        n += 1
        nbytes += len(key.encode()) + len(value.encode())
for fh in files.values():
    fh.close()
with open(os.path.join(out, "counts"), "w") as fh:
    fh.write("%d %d\n" % (n, nbytes))
EOF
    touch "$kv/.done"
fi
read -r nmsgs nbytes <"$kv/counts"

# ---- the replay's records: sluice's outputs for this input, from file mode

"$sluice" run --quiet --store none "${thr[@]}" --input "$jsonl" --output "$work/file-out" \
    "$rules" >>"$log" 2>&1 || fail "sluice's file-mode run failed, see $log"
PYTHONDONTWRITEBYTECODE=1 python3 - "$work/file-out" "$work/replay.tsv" <<'EOF'
# One line per output record: topic (replay.<topic>), key, value (empty: null)
# and header name/value pairs, tab-separated, serialised compactly as
# sluice's Kafka sink writes them. The per-topic files are merged in a random
# (seeded) order that keeps each file's own order: sluice writes its outputs
# interleaved as its input comes, not topic after topic.
import json, os, random, sys

src, dst = sys.argv[1], sys.argv[2]
def text(v):
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
files = []
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        files.append([json.loads(line) for line in f])
rng = random.Random(42)
pos = [0] * len(files)
left = sum(len(f) for f in files)
with open(dst, "w", encoding="utf-8") as out:
    while left:
        k = rng.randrange(left)
        for i, f in enumerate(files):
            if k < len(f) - pos[i]:
                break
            k -= len(f) - pos[i]
        r = files[i][pos[i]]
        pos[i] += 1
        left -= 1
        h = r.get("headers") or {}
        fields = ["replay." + r["topic"], text(r.get("key")), text(r.get("value"))]
        for name, val in h.items():
            fields += [name, "" if val is None else val]
        if any("\t" in x or "\n" in x for x in fields):
            sys.exit("kafka.sh: an output record has a tab or newline: %s" % fields[:2])
        out.write("\t".join(fields) + "\n")
EOF
nreplay=$(wc -l <"$work/replay.tsv")
mapfile -t replay_topics < <(cut -f1 "$work/replay.tsv" | sort -u)
topics=()
for f in "$kv"/*.kv; do
    t=$(basename "$f" .kv)
    topics+=("$t")
done

# ---- broker, topics, load

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=1
bs=$("$services" start "$name" 2>>"$log" | sed -n 's/^bootstrap=//p')
[ -n "$bs" ] || fail "the Kafka node did not start, see $log"
"$pt" -b "$bs" -C "$parts" "${topics[@]}" bench.passthrough >>"$log" 2>&1 ||
    fail "creating topics failed, see $log"
"$pt" -b "$bs" -C "$outparts" "${replay_topics[@]}" >>"$log" 2>&1 ||
    fail "creating the replay's topics failed, see $log"
# creation is asynchronous on the broker: wait until the metadata lists them
for _ in $(seq 1 60); do
    have=$(kcat -L -b "$bs" 2>/dev/null | grep -c "^  topic \"" || true)
    [ "$have" -ge $((${#topics[@]} + ${#replay_topics[@]} + 1)) ] && break
    sleep 0.5
done
for t in "${topics[@]}"; do
    kcat -P -b "$bs" -t "$t" -K $'\t' -Z -X linger.ms=20 -l "$kv/$t.kv" >>"$log" 2>&1 ||
        fail "loading $t failed, see $log"
done

# Sum of the end offsets of the topics matching $1 (ERE) and the latest
# CreateTime (ms) of their last messages: "COUNT MAXTS".
out_state() {
    local t total=0 maxts=0 o ts
    for t in $(kcat -L -b "$bs" | sed -n 's/^  topic "\([^"]*\)".*/\1/p' | grep -E "$1"); do
        while read -r _ o ts; do
            total=$((total + o + 1))
            [ "$ts" -gt "$maxts" ] && maxts=$ts
        done < <(kcat -C -b "$bs" -t "$t" -o -1 -e -q -f '%p %o %T\n' 2>>"$log")
    done
    echo "$total $maxts"
}

read -r loaded _ < <(out_state '^(central|store_0[1-3])\.')
[ "$loaded" -eq "$nmsgs" ] || fail "loaded $loaded messages into Kafka, expected $nmsgs"

# ---- runs

best_pt="" best_sl="" rss_pt=0 rss_sl=0 outs_pt=0 outs_sl=0 why_sl="" cpu_pt="" cpu_sl=""
best_rp="" rss_rp=0 outs_rp=0 cpu_rp=""
bpid=$(cat "${SLUICE_CACHE_DIR:-$root/.cache}/kafka/run/$name/pid")
tck=$(getconf CLK_TCK)
# CPU seconds the broker has used so far (user + system)
broker_cpu() { awk -v t="$tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$bpid/stat"; }
sl_sets=() pt_sets=()
for kv in "${sets[@]}"; do
    sl_sets+=(--set "$kv")
    case "$kv" in kafka.*) pt_sets+=(-X "${kv#kafka.}") ;; esac
done

# run_one PROG RUN: times one run; sets secs (to the last output), rss (KiB), outs,
# cpu ("PROGRAM_CPU_S BROKER_CPU_S" of the run, the idle wait included)
run_one() {
    local prog=$1 r=$2 pattern before after t0 b0 skip rc=0
    local group="bench-$prog-$r-$$"
    case "$prog" in
    pt) pattern='^bench\.passthrough$' ;;
    rp) pattern='^replay\.' ;;
    *) pattern='^sluice\.' ;;
    esac
    read -r before _ < <(out_state "$pattern")
    b0=$(broker_cpu)
    t0=$(date +%s%3N)
    if [ "$prog" = pt ]; then
        /usr/bin/time -f '%M %U %S' -o "$work/rss" "$pt" -b "$bs" -g "$group" -t "$regex" \
            -o bench.passthrough -i "$idle" "${pt_sets[@]}" >"$work/out" 2>"$work/err" &
    elif [ "$prog" = rp ]; then
        /usr/bin/time -f '%M %U %S' -o "$work/rss" "$pt" -b "$bs" -g "$group" -t "$regex" \
            -o unused -r "$work/replay.tsv" -n "$nmsgs" -i "$idle" "${pt_sets[@]}" \
            >"$work/out" 2>"$work/err" &
    else
        /usr/bin/time -f '%M %U %S' -o "$work/rss" "$sluice" run --quiet --store none "${thr[@]}" "${sl_sets[@]}" \
            --set "kafka.bootstrap.servers=$bs" --set "kafka.group.id=$group" \
            --set "kafka.topic.partitions=$outparts" --stats "$work/stats.json" \
            --topics "$regex" --idle-exit "$idle" "$rules" >"$work/out" 2>"$work/err" &
    fi
    child=$!
    wait "$child" || rc=$?
    child=""
    cat "$work/err" >>"$log"
    if [ "$rc" -ne 0 ]; then
        secs=""
        why="exit status $rc: $(grep -v '^Command exited' "$work/err" | head -n 1)"
        return
    fi
    read -r after last < <(out_state "$pattern")
    outs=$((after - before))
    # the replay's reading of its records is not part of what it stands for
    skip=0
    [ "$prog" = rp ] && skip=$(sed -n 's/.*load_ms=\([0-9]*\).*/\1/p' "$work/out")
    secs=$(awk -v a="$last" -v b="$t0" -v l="${skip:-0}" 'BEGIN { printf "%.3f", (a - b - l) / 1000 }')
    read -r rss cpu < <(tail -n 1 "$work/rss" |
        awk -v b0="$b0" -v b1="$(broker_cpu)" '{ printf "%d %.2f %.2f\n", $1, $2 + $3, b1 - b0 }')
    why=""
    if [ "$prog" = pt ] && [ "$outs" -ne "$nmsgs" ]; then
        why="passthrough wrote $outs messages, expected $nmsgs"
    elif [ "$prog" = rp ] && [ "$outs" -ne "$nreplay" ]; then
        why="the replay wrote $outs messages, expected $nreplay"
    elif [ "$prog" = sl ]; then
        # sluice's own counters must agree with what arrived in Kafka
        why=$(python3 - "$work/stats.json" "$nmsgs" "$outs" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
n, outs = int(sys.argv[2]), int(sys.argv[3])
if s["read"] != n:
    print("sluice read %d messages, expected %d" % (s["read"], n))
elif s["written"] + s["dead_letters"] != outs or outs == 0:
    print("sluice counted %d outputs, %d arrived" % (s["written"] + s["dead_letters"], outs))
EOF
)
    fi
    [ -z "$why" ] || secs=""
}

better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a < b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

# keep PROG: fold the run just timed into PROG's best time (with that run's
# CPU), largest peak RSS and output count (best_PROG, cpu_PROG, rss_PROG, outs_PROG)
keep() {
    local best="best_$1" rss_max="rss_$1"
    if better "$secs" "${!best}"; then printf -v "best_$1" %s "$secs"; printf -v "cpu_$1" %s "$cpu"; fi
    [ "$rss" -gt "${!rss_max}" ] && printf -v "rss_$1" %s "$rss"
    printf -v "outs_$1" %s "$outs"
}

for r in $(seq 1 "$runs"); do
    run_one pt "$r"
    [ -n "$secs" ] || fail "passthrough run $r: $why"
    keep pt
    run_one sl "$r"
    if [ -z "$secs" ]; then
        why_sl=$why
        break
    fi
    keep sl
    run_one rp "$r"
    [ -n "$secs" ] || fail "replay run $r: $why"
    keep rp
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- table

row() { # NAME SECS RSS OUTS "PROG_CPU BROKER_CPU" RATIO
    awk -v n="$1" -v s="$2" -v k="$3" -v o="$4" -v cpu="$5" -v m="$nmsgs" -v b="$nbytes" -v x="$6" '
        # digits in groups of three (printf %\047d is not in every awk)
        function c(v,  t, u) {
            t = sprintf("%d", v); u = ""
            while (length(t) > 3) { u = "," substr(t, length(t) - 2) u; t = substr(t, 1, length(t) - 3) }
            return t u
        }
        BEGIN {
            split(cpu, u, " ")
            printf "| %s | %s | %s | %.2f | %s | %.1f | %.1f | %.2f + %.2f | %s |\n", n, c(m), c(o),
                s, c(m / s), b / s / 1e6, k / 1024, u[1], u[2], x
        }'
}

echo "| program | input messages | output messages | s to last output | events/s | MB/s" \
    "| peak RSS (MiB) | CPU s: program + broker | ratio to passthrough |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
row "passthrough (librdkafka)" "$best_pt" "$rss_pt" "$outs_pt" "$cpu_pt" ""
if [ -n "$best_sl" ] && [ -z "$why_sl" ]; then
    row "sluice --store none" "$best_sl" "$rss_sl" "$outs_sl" "$cpu_sl" "$(ratio "$best_pt" "$best_sl")"
else
    echo "| sluice --store none | $nmsgs | | | not measured | | | | |"
fi
row "replay of sluice's outputs (no processing)" "$best_rp" "$rss_rp" "$outs_rp" "$cpu_rp" \
    "$(ratio "$best_pt" "$best_rp")"
echo
echo "Note: $parts partitions per input topic and for the passthrough's output," \
    "$outparts per output topic of sluice and the replay, ${#topics[@]} input topics, best of $runs runs;" \
    "load average (1/5/15 min) $load_before before, $load_after after, on $(nproc) cores."
[ -z "$why_sl" ] || echo "Note: sluice: $why_sl"
if [ -n "$best_sl" ] && [ -z "$why_sl" ]; then
    echo "Note: sluice/replay $(ratio "$best_rp" "$best_sl"): the share of the best time this" \
        "broker and machine allow that sluice reaches."
fi
