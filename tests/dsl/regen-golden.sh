#!/bin/sh
# Regenerate tests/dsl/golden/*.explain and *.err from the current compiler.
#
#   tests/dsl/regen-golden.sh [BUILD_DIR]     (default: build)
#
# Builds test_dsl, then runs it from the repository root with
# SLUICE_REGEN_GOLDEN=1, which writes NAME.explain (when NAME.rules compiles)
# and NAME.err (when it produces diagnostics) instead of comparing. Review
# `git diff tests/dsl/golden` before committing.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
[ -f "$build/build.ninja" ] || [ -f "$build/Makefile" ] || cmake -S "$root" -B "$build" -G Ninja
cmake --build "$build" --target test_dsl
cd "$root"
SLUICE_REGEN_GOLDEN=1 "$build/tests/dsl/test_dsl" >/dev/null
git -C "$root" status --short tests/dsl/golden 2>/dev/null || true
