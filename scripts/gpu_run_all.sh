#!/usr/bin/env bash
# Everything measured on the GPU machine in one device run (<= 10 minutes):
#   1. CUDA build (scripts/build_cuda.sh)
#   2. GPU vs CPU agreement on the demo model (scripts/gpu_fixture_check.sh)
#   3. the 8B-shape prune benchmark against the Python baseline (scripts/gpu_bench.sh),
#      with fsync, without, and under a GPU memory budget when $GPU_BUDGET is set (e.g. 8GB)
#   4. distillation throughput on the same 8B-shape checkpoint ($DISTILL_SAMPLES windows
#      of 2048 tokens; the report's tokens_per_second extrapolates to 5000 x 2048)
#   5. transformers loading and perplexity of exact and vanilla checkpoints written
#      here beforehand by scripts/hf_compat_expected.sh ($HF_CHECK: expected.json files)
# Output ($OUT, at most 8 files): build.log, bench.log, reports.json (every JSON
# report), extra.log (fixture check, distillation log, transformers check).
#   run(command="GPU_BUDGET=8GB HF_CHECK=.hf-check-demo/expected.json bash scripts/gpu_run_all.sh",
#       carry=[".gpu-deps", ".hf-check-demo"])
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:?}"
log="$out/extra.log"
scripts/build_cuda.sh > "$out/build.log" 2>&1 || { tail -60 "$out/build.log"; exit 1; }
lp="$root/build-cuda/src/cli/linearpatch"
{ echo "=== fixture check (GPU)"; time scripts/gpu_fixture_check.sh "$lp" cuda; } >> "$log" 2>&1
scripts/gpu_bench.sh --bin "$lp" ${GPU_BUDGET:+--max-gpu-memory "$GPU_BUDGET"} --work /tmp/lp-bench > /dev/null 2>&1
{
  echo "=== distillation, 8B shape, ${DISTILL_SAMPLES:=96} windows of 2048 tokens"
  "$lp" prune -m /tmp/lp-bench/model --device cuda --layers 5 --calib data/text/*.txt --calib-samples 32 \
    --seq-len 2048 --distill --distill-samples "$DISTILL_SAMPLES" --val-samples 4 --no-fsync \
    --out /tmp/lp-distill --force --report "$out/distill.json"
  rm -rf /tmp/lp-distill
} >> "$log" 2>&1
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
merged = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    merged[os.path.basename(path)[:-5]] = json.load(open(path))
    os.remove(path)
json.dump(merged, open(os.path.join(out, "reports.json"), "w"), indent=1)
d = merged.get("distill", {}).get("distill", {})
if d:
    print(f"distill: {d['tokens_per_second']:.0f} tokens/s -> 5000 x 2048 in {5000 * 2048 / d['tokens_per_second'] / 60:.1f} min; "
          f"val KL {d['val_kl_before']:.4f} -> {d['val_kl_after']:.4f}; seconds {d['seconds']}")
PY
for expected in ${HF_CHECK:-}; do
  { echo "=== transformers check: $expected"; python3 scripts/hf_compat_check.py --expected "$expected"; } >> "$log" 2>&1
done
tail -20 "$out/bench.log"
grep -v "^\[" "$log" | tail -40
