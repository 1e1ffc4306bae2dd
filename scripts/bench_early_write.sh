#!/usr/bin/env bash
# Prune wall time with the layers copied during calibration (a sharded
# source's default: one output file per layer) against the packed layout
# (--max-shard-size), on one synthetic sharded checkpoint, alternating the
# two RUNS times. Prints one line per run: wall, calibration, write phase and
# the bytes copied early. docs/benchmarks.md records a run.
#
#   scripts/bench_early_write.sh [--bin PATH] [--work DIR] [--runs N] [--device DEV]
#                                [--synth "ARGS"] [--prune "ARGS"]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/src/cli/linearpatch"
work="/tmp/lp-early-write"
runs=2
device=cpu
synth="--layers 12 --hidden 2048 --intermediate 5632 --heads 16 --kv-heads 4 --vocab 32000 --max-shard-size 300MB"
prune="--layers 3 --calib-samples 8 --seq-len 256"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --synth) synth="$2"; shift 2 ;;
    --prune) prune="$2"; shift 2 ;;
    *) echo "bench_early_write: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
if [ ! -f "$work/model/.synth-args" ] || [ "$(cat "$work/model/.synth-args")" != "$synth" ]; then
  rm -rf "$work/model"
  # shellcheck disable=SC2086  # synth holds several arguments
  "$bin" --log-level warn synth $synth --out "$work/model" >/dev/null
  echo "$synth" >"$work/model/.synth-args"
fi
cat "$work/model"/*.safetensors >/dev/null  # page cache warm for both layouts
for ((run = 1; run <= runs; run++)); do
  for mode in packed early; do
    extra=()
    [ "$mode" = packed ] && extra=(--max-shard-size 100GB)
    rm -rf "$work/out"
    start="$(date +%s%N)"
    # shellcheck disable=SC2086  # prune holds several arguments
    "$bin" --log-level warn prune -m "$work/model" --device "$device" $prune --calib "$root"/data/text/*.calib.txt \
      --out "$work/out" "${extra[@]}" --json >"$work/$mode.json"
    wall_ns=$(($(date +%s%N) - start))
    python3 - "$work/$mode.json" "$mode" "$wall_ns" <<'PY'
import json, sys
report, mode, wall = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]) / 1e9
t = report["timings"]
print(f"{mode:6s} wall {wall:6.2f} s  calibration {t['calibration']:6.2f} s  write {t['write']:5.2f} s  "
      f"files {len(report['files']):3d}  copied early {report['bytes_written_early'] / 1e6:7.1f} of {report['bytes'] / 1e6:7.1f} MB")
PY
  done
done
rm -rf "$work/out"
