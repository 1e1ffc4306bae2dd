#!/usr/bin/env bash
# Runs the whole test suite (builds first if needed), then the torch-free
# half (every parser of user files and the fuzz corpora) again under
# AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh, ~2 min
# on 2 cores; LP_SKIP_SANITIZERS=1 skips it). Extra arguments go to ctest,
# e.g. scripts/test.sh -R torch.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LP_BUILD_DIR:-$root/build}"
[ -f "$build/build.ninja" ] || "$root/scripts/build.sh"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" -j "$(nproc)" --output-on-failure "$@"
if [ "${LP_SKIP_SANITIZERS:-0}" != 1 ]; then
  LP_SANITIZE_SCOPE=base "$root/scripts/sanitize.sh"
fi
