#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a pruned model: installs the
# dependencies, builds, then runs the main job on the embedded demo model
# (data/models/demo-llama3-d, calibration text data/text): remove 2 of its
# 10 layers with a LinearPatch, and check the result against the dense model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LP_BUILD_DIR:-$root/build}"

"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"

lp="$build/src/cli/linearpatch"
out="$root/out/demo-pruned"
"$lp" inspect --model demo
"$lp" prune --model demo --layers 2 --calib-samples 64 --seq-len 512 --out "$out" --force \
  --report "$root/out/demo-pruned.report.json"
"$lp" eval --model "$out" --baseline demo --text "$root/data/eval/brown.visible.txt" \
  --seq-len 512 --max-windows 32 --max-ppl-ratio 1.5
echo "setup: pruned demo model written to $out"
