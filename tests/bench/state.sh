#!/bin/sh
# state.sh - what the consolidated view costs: the same input through
# `sluice run --store none` (no state) and `--store sqlite:...` (state, echo
# and conflict checks), and with --mongo URI also `--store mongodb://...`.
#
#   tests/bench/state.sh [--rows N] [--updates N] [--threads N] [--runs N] [--mongo mongodb://HOST:PORT]
#
# Defaults: 1,000,000 distinct rows inserted + 200,000 updates, the cores,
# best of 1 run. Prints a Markdown table (docs/performance.md) with events/s,
# the ratio to the stateless run, and store requests per event. Builds
# sluice (Release) into build-bench/. Not part of the test suite.
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

while [ $# -gt 0 ]; do
    case "$1" in
    --rows) rows=$2; shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --mongo) mongo=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
trap 'rm -rf "$work"' EXIT

# best events/s over $runs runs of one store; prints "events_per_s requests"
measure() {
    best=0
    reqs=0
    i=0
    while [ $i -lt "$runs" ]; do
        rm -rf "$work/out" "$work"/st.db*
        uri=$1
        # a fresh database per MongoDB run
        [ "${uri#mongodb}" = "$uri" ] || uri="${uri%/}/sluice_bench_$$_$i"
        "$build/sluice" run --quiet --threads "$threads" --input "$input" --output "$work/out" \
            --store "$uri" --stats "$work/stats.json" "$here/state.rules"
        eps=$(python3 -c "import json,sys; s=json.load(open('$work/stats.json')); print(int(s['read']/s['seconds']), s.get('store_round_trips',0))")
        set -- "$1" $eps
        if [ "$2" -gt "$best" ]; then best=$2; reqs=$3; fi
        set -- "$1"
        i=$((i + 1))
    done
    echo "$best $reqs"
}

none=$(measure none)
sq=$(measure "sqlite:$work/st.db")
nb=${none% *}
sb=${sq% *}
echo "| store | events | events/s | vs no state | store requests per event |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| none | $events | $nb | 1.00x | - |"
python3 -c "print('| sqlite | $events | $sb | %.2fx | - |' % ($sb / $nb))"
if [ -n "$mongo" ]; then
    mg=$(measure "$mongo")
    mb=${mg% *}
    mr=${mg#* }
    python3 -c "print('| mongodb | $events | $mb | %.2fx | %.3f |' % ($mb / $nb, $mr / $events))"
fi
