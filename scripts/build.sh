#!/usr/bin/env bash
# Configure and build one flavour of sluice into its own directory.
#   scripts/build.sh [release|debug|asan|tsan|fuzz]   (default release)
# Prints the build directory on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release) dir=build;       args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  debug)   dir=build-debug; args=(-DCMAKE_BUILD_TYPE=Debug) ;;
  asan)    dir=build-asan;  args=(-DCMAKE_BUILD_TYPE=Debug -DSLUICE_ASAN=ON) ;;
  tsan)    dir=build-tsan;  args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TSAN=ON) ;;
  fuzz)    dir=build-fuzz;  args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON
                                  -DCMAKE_C_COMPILER=clang) ;;
  *) echo "usage: $0 [release|debug|asan|tsan|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
ninja -C "$dir" >/dev/null || { ninja -C "$dir" >&2; exit 1; }
echo "$dir"
