#!/bin/sh
# run.sh - sluice throughput benchmark against two C baselines.
#
#   tests/bench/run.sh [--events N] [--small N] [--threads N] [--runs N] [--rules FILE]
#
# 1. builds sluice (Release, no tests) and the baselines into build-bench/;
# 2. generates the benchmark inputs with examples/retail/generate.py --bench
#    (N events, default 1,000,000, and a smaller one, default 100,000), cached
#    in tests/bench/data/ (git-ignored) and regenerated when generate.py changes;
# 3. runs baseline (a) passthrough, baseline (b) jansson with the same thread
#    count as sluice, `sluice run --store none` and `sluice run --store sqlite:...`,
#    each --runs times (default 3), keeping the best time;
# 4. prints one Markdown table (see docs/performance.md).
#
# Quiet apart from the table: build logs go to build-bench/bench-build.log.
# Not part of the test suite (it takes minutes).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
data="$here/data"
events=1000000
small=100000
threads=$(nproc 2>/dev/null || echo 2)
runs=3
rules="$root/examples/retail/retail.rules"

while [ $# -gt 0 ]; do
    case "$1" in
    --events) events=$2; shift 2 ;;
    --small) small=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rules) rules=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$build" "$data"
log="$build/bench-build.log"
: >"$log"

# The baselines are plain C programs, built here, outside the CMake project.
cflags="-O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror -pthread"
cc $cflags "$here/passthrough.c" -o "$build/passthrough" >>"$log" 2>&1 ||
    { echo "run.sh: building passthrough failed, see $log" >&2; exit 1; }
cc $cflags "$here/jansson_baseline.c" -o "$build/jansson_baseline" -ljansson >>"$log" 2>&1 ||
    { echo "run.sh: building jansson_baseline failed, see $log" >&2; exit 1; }

sluice="$build/sluice"
why=""
if cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF \
        >>"$log" 2>&1 && ninja -C "$build" sluice >>"$log" 2>&1; then
    : # bench.py checks that each sluice run wrote output before it trusts its time
else
    why="sluice did not build (see build-bench/bench-build.log)"
    sluice=""
fi

gen="$root/examples/retail/generate.py"
inputs=""
for n in "$small" "$events"; do
    f="$data/bench-$n.jsonl"
    if [ ! -s "$f" ] || [ "$gen" -nt "$f" ]; then
        python3 "$gen" --bench --quiet --events "$n" --single "$f.tmp"
        mv "$f.tmp" "$f"
    fi
    inputs="$inputs --input $f"
done

# shellcheck disable=SC2086 # $inputs is a list of options
exec python3 "$here/bench.py" $inputs --threads "$threads" --runs "$runs" \
    --passthrough "$build/passthrough" --jansson "$build/jansson_baseline" \
    --sluice "$sluice" --sluice-missing "$why" --rules "$rules" --workdir "$build"
