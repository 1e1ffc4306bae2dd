#!/usr/bin/env bash
# Where the forward's time goes on the GPU: linearpatch (LINEARPATCH_PROFILE)
# and transformers (torch.profiler) on the same checkpoint, 2 batches of 8 x 2048
# tokens each after a warm-up, kernel time summed by name and kind
# (scripts/trace_summary.py).
#   scripts/gpu_profile.sh BINARY MODEL OUT_FILE
set -uo pipefail
lp="$1"; model="$2"; out="$3"
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
  echo "=== linearpatch eval, 24 windows of 2048 (batches of 8; the first also waits for uploads)"
  LINEARPATCH_PROFILE="$tmp/lp.json" "$lp" eval --model "$model" --device cuda --text "$root"/data/text/brown.calib.txt \
    --seq-len 2048 --max-windows 24 --batch-size 8 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: d[k] for k in ("tokens", "seconds", "tokens_per_second") if k in d})'
  [ -f "$tmp/lp.json" ] && python3 "$root/scripts/trace_summary.py" "$tmp/lp.json" --top 30
  echo "=== linearpatch prune calibration, 32 windows of 2048 (statistics included), --no-fsync"
  LINEARPATCH_PROFILE="$tmp/cal.json" "$lp" -q prune --model "$model" --device cuda --layers 5 \
    --calib "$root"/data/text/*.txt --calib-samples 32 --seq-len 2048 --no-fsync --out "$tmp/pruned" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["timings"])'
  rm -rf "$tmp/pruned"
  [ -f "$tmp/cal.json" ] && python3 "$root/scripts/trace_summary.py" "$tmp/cal.json" --top 20
  echo "=== transformers forward, 2 x 8 x 2048 after a warm-up"
  python3 "$root/scripts/profile_hf_forward.py" "$model" --trace "$tmp/hf.json" &&
    python3 "$root/scripts/trace_summary.py" "$tmp/hf.json" --top 30
} > "$out" 2>&1
tail -5 "$out"
