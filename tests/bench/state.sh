#!/bin/sh
# state.sh - what the consolidated view costs: the same input through
# `sluice run --store none` (no state) and `--store sqlite:...` (state, echo
# and conflict checks), and with --mongo URI also `--store mongodb://...`.
#
#   tests/bench/state.sh [--rows N] [--updates N] [--threads N] [--runs N] [--out DIR]
#                        [--mongo mongodb://HOST:PORT]
#
# Two workloads from one generated input (tests/bench/state_gen.py):
#   distinct  the first N events: N distinct rows, each inserted once (the
#             consolidated-view issue's "1,000,000 distinct rows");
#   mixed     the same followed by the updates of random earlier rows from
#             random sites (most of them conflicts, recorded in the store).
# Defaults: 1,000,000 rows + 200,000 updates, the cores, best of 1 run
# (with --runs N the stores' runs alternate and the best of each counts).
# Prints a Markdown table (docs/performance.md) with events/s, the ratio to
# the stateless run of the same workload, CPU seconds (user + system) and
# peak RSS, and store requests per event. Builds sluice (Release) into
# build-bench/. Not part of the test suite.
#
# The outputs (about 1.4 GB for the default distinct workload) go to a new
# directory under --out DIR, by default /dev/shm (memory) when it exists:
# with a store, every checkpoint makes the outputs durable (fdatasync) and
# the run's time includes writing them all to disk, while the stateless
# run leaves them in the page cache; on a disk the comparison then measures
# the disk's write bandwidth rather than state and conflict checks. The
# store's database is always on disk (next to this script's other files,
# in a temporary directory under $TMPDIR or /tmp). See docs/performance.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
data="$here/data"
rows=1000000
updates=200000
threads=$(nproc 2>/dev/null || echo 2)
runs=1
mongo=""
outdir=/dev/shm
[ -d "$outdir" ] && [ -w "$outdir" ] || outdir=${TMPDIR:-/tmp}

while [ $# -gt 0 ]; do
    case "$1" in
    --rows) rows=$2; shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --mongo) mongo=$2; shift 2 ;;
    --out) outdir=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "state.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$build" "$data"
log="$build/bench-build.log"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >>"$log" 2>&1
ninja -C "$build" sluice >>"$log" 2>&1 || { echo "state.sh: build failed, see $log" >&2; exit 1; }

input="$data/state-$rows-$updates.jsonl"
if [ ! -s "$input" ] || [ "$here/state_gen.py" -nt "$input" ]; then
    python3 "$here/state_gen.py" "$rows" "$updates" >"$input.tmp"
    mv "$input.tmp" "$input"
fi
events=$(wc -l <"$input")
work=$(mktemp -d)
out=$(mktemp -d "$outdir/sluice-state-out.XXXXXX")
trap 'rm -rf "$work" "$out"' EXIT
head -n "$rows" "$input" >"$work/distinct.jsonl"

# One run of one store ($1) on one input ($2) of a workload ($3), run number
# $4; prints "events_per_s requests cpu_s rss_mb".
run_one() {
    rm -rf "$out/out" "$work"/st.db*
    sync # the previous run's dirty pages are not this run's work
    uri=$1
    # a fresh database per MongoDB run
    [ "${uri#mongodb}" = "$uri" ] || uri="${uri%/}/sluice_bench_$$_$3_$4"
    /usr/bin/time -f "%U %S %M" -o "$work/time" "$build/sluice" run --quiet \
        --threads "$threads" --input "$2" --output "$out/out" \
        --store "$uri" --stats "$work/stats.json" "$here/state.rules"
    python3 -c "
import json
s = json.load(open('$work/stats.json'))
u, y, m = open('$work/time').read().split()[-3:]
print(int(s['read'] / s['seconds']), s.get('store_round_trips', 0), '%.1f' % (float(u) + float(y)), int(m) // 1024)"
}

# The best of two results ("eps reqs cpu rss"), by events/s.
better() {
    if [ -z "$1" ] || [ "${2%% *}" -gt "${1%% *}" ]; then echo "$2"; else echo "$1"; fi
}

row() { # workload events store "eps reqs cpu rss" baseline_eps
    set -- "$1" "$2" "$3" $4 "$5"
    python3 -c "
eps, base = $4, $8
reqs = '%.3f' % ($5 / $2) if '$3'.startswith('mongodb') else '-'
print('| $1 | $3 | {:,} | {:,} | {:.2f}x | $6 | $7 | {} |'.format($2, eps, eps / base, reqs))"
}

echo "| workload | store | events | events/s | vs no state | CPU s | peak RSS (MiB) | store requests per event |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
# The stores' runs alternate (none, sqlite[, mongodb], none, ...) so that
# load from elsewhere on the machine falls on all of them alike; the best
# run of each counts.
for wl in distinct mixed; do
    if [ $wl = distinct ]; then in="$work/distinct.jsonl"; n=$rows; else in=$input; n=$events; fi
    none="" sq="" mg=""
    i=0
    while [ $i -lt "$runs" ]; do
        none=$(better "$none" "$(run_one none "$in" $wl $i)")
        sq=$(better "$sq" "$(run_one "sqlite:$work/st.db" "$in" $wl $i)")
        [ -z "$mongo" ] || mg=$(better "$mg" "$(run_one "$mongo" "$in" $wl $i)")
        i=$((i + 1))
    done
    nb=${none%% *}
    row $wl "$n" none "$none" "$nb"
    row $wl "$n" sqlite "$sq" "$nb"
    [ -z "$mongo" ] || row $wl "$n" mongodb "$mg" "$nb"
done
echo
echo "Outputs under $outdir ($(df -P "$outdir" | awk 'NR == 2 { print $1 }')); load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg) after, on $(nproc) cores."
