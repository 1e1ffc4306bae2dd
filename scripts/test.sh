#!/usr/bin/env bash
# Runs the whole test suite (builds first if needed). Extra arguments go to
# ctest, e.g. scripts/test.sh -R torch --output-on-failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LP_BUILD_DIR:-$root/build}"
[ -f "$build/build.ninja" ] || "$root/scripts/build.sh"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" -j "$(nproc)" --output-on-failure "$@"
