#!/usr/bin/env bash
# GPU vs CPU agreement on the demo model (the fixture that travels with the
# repository): prune 2 layers with the reference protocol (brown + web
# calibration, 128 x 512, seed 0) on the given device in float32 and bfloat16,
# and evaluate each result on data/eval/brown.visible.txt (64 x 512).
# The CPU numbers to compare with are in docs/results.md.
#   scripts/gpu_fixture_check.sh BINARY [DEVICE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lp="$1"
device="${2:-cuda}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for dtype in float32 bfloat16; do
  "$lp" -q prune -m demo --device "$device" --dtype "$dtype" --layers 2 \
    --calib "$root/data/text/brown.calib.txt" "$root/data/text/web.calib.txt" \
    --calib-samples 128 --seq-len 512 --out "$work/$dtype" --json > "$work/$dtype.json"
  for model in demo "$work/$dtype"; do
    "$lp" -q eval -m "$model" --device "$device" --dtype "$dtype" --text "$root/data/eval/brown.visible.txt" \
      --seq-len 512 --max-windows 64 --json > "$work/eval.json"
    python3 - "$dtype" "$model" "$work/$dtype.json" "$work/eval.json" <<'PY'
import json, sys
dtype, model, prune, ev = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
what = "dense" if model == "demo" else f"pruned [{prune['start']}, {prune['end']}) d_mean {prune['gaps'][0]['scales']['mean']:.5f}"
print(f"{dtype:9} {what:40} brown.visible ppl {ev['ppl']:.4f}")
PY
  done
done
