#!/usr/bin/env bash
# Everything measured on the GPU machine, as one device run of at most ~9 minutes.
#
# Prepare on the Debian machine (both folders are in .git/info/exclude, so they
# travel only when carried; device_fixtures.sh prints the transfer size, < 64 MiB):
#   scripts/fetch_gpu_deps.sh                                # .gpu-deps, 9 MiB
#   scripts/device_fixtures.sh build/src/cli/linearpatch     # .device-fixtures, 24 MiB
# Run (the device tool), with the commit written into the command: the device's copy
# of the tree has no .git (here: git rev-parse HEAD):
#   run(command="LP_COMMIT=<40-hex commit> bash scripts/gpu_run_all.sh",
#       carry=[".gpu-deps", ".device-fixtures"], kind="nvidia-h200", timeout_s=600)
#
# Steps, in order; a failing step does not stop the next ones, a step that would
# run past the deadline ($LP_RUN_SECONDS after the start, default 540) is skipped,
# and so is one named in $LP_SKIP (build, fixture, 8B, transformers):
#   a. CUDA build: scripts/build_cuda.sh                                  -> build.log
#      and meanwhile scripts/gpu_op_probe.py (fused products, RMSNorm, top-K) -> run.log
#   b. GPU vs CPU agreement on the demo model and the models in .device-fixtures
#      (scripts/gpu_fixture_check.sh; float32 identical, bfloat16 within 0.1 %), which
#      also keeps each model's float32 exact and vanilla checkpoints for step e
#                                                                         -> fixtures.json
#   c, d, f. scripts/gpu_bench.sh on the 8B-shaped synthetic checkpoint: prune with fsync,
#      without, the Python baseline, prune under --max-gpu-memory $GPU_BUDGET (default
#      8GB), distillation throughput, then perplexity tokens/s and multiple-choice rows/s
#      on .device-fixtures/hellaswag-1000.jsonl (f runs there, on the same checkpoint)
#                                                         -> bench.log, h200.json, bench_reports.json
#   e. transformers loads the checkpoints of step b and agrees on their perplexity
#      (scripts/hf_compat_check.py), plus any expected.json in $HF_CHECK made here by
#      scripts/hf_compat_expected.sh (its checkpoints carried as well)
#   g. profile: kernel time of linearpatch's forward and transformers' on the 8B checkpoint
#      (scripts/gpu_profile.sh)                                            -> profile.txt
# run.log has every step's output and time; table.md is h200.json as docs/benchmarks.md's
# table (scripts/bench_table.py). At most these 8 files come back from $OUT.
#
#   scripts/gpu_run_all.sh [--device DEV] [--bin PATH] [--fixtures DIR] [--fixture-dtypes "..."]
#                          [--bench-args "ARGS"]
# The fixture check gets at most $LP_FIXTURE_SECONDS (default 200). A CPU dry run of
# the plumbing (no GPU; the Python steps skip themselves without torch), with a
# fixture folder holding one model, minutes on 2 cores:
#   OUT=/tmp/run-all GPU_BUDGET=2MB LP_RUN_SECONDS=1200 LP_FIXTURE_SECONDS=900 \
#   scripts/gpu_run_all.sh --device cpu --bin build/src/cli/linearpatch --fixtures /tmp/fx-small \
#     --fixture-dtypes float32 --bench-args '--synth "--layers 8 --hidden 256 --intermediate 512
#     --heads 4 --kv-heads 2 --vocab 1024" --layers 2 --samples 4 --seq-len 128 --distill-samples 8'
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:?set OUT to the folder for the results}"
mkdir -p "$out"
start="$(date +%s)"
deadline=$((start + ${LP_RUN_SECONDS:-540}))
device=cuda
lp=""
fixtures="$root/.device-fixtures"
fixture_dtypes="float32 bfloat16"
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --bin) lp="$2"; shift 2 ;;
    --fixtures) fixtures="$2"; shift 2 ;;
    --fixture-dtypes) fixture_dtypes="$2"; shift 2 ;;
    --bench-args) eval "bench_args=($2)"; shift 2 ;;
    *) echo "gpu_run_all: unknown argument $1" >&2; exit 2 ;;
  esac
done
budget="${GPU_BUDGET-8GB}"
[ "$device" = cuda ] || budget="${GPU_BUDGET:-}"  # a CPU dry run streams only when asked
log="$out/run.log"
work="/tmp/lp-run-all"
rm -rf "$work"
mkdir -p "$work"
failed=()

# step NAME SECONDS_NEEDED COMMAND...: runs COMMAND into run.log, stopped at the deadline;
# skipped when the first word of NAME is in $LP_SKIP (e.g. LP_SKIP="fixture transformers").
step() {
  local name="$1" need="$2" left t0 rc
  shift 2
  left=$((deadline - $(date +%s)))
  echo "=== $name ($(date +%T), $left s left)" >> "$log"
  if [[ " ${LP_SKIP:-} " == *" ${name%% *} "* ]]; then
    echo "skipped: LP_SKIP" >> "$log"
    return
  fi
  if [ "$left" -lt "$need" ]; then
    echo "skipped: needs about $need s" >> "$log"
    failed+=("$name (no time)")
    return
  fi
  t0="$(date +%s)"
  timeout --kill-after=10 "$left" "$@" >> "$log" 2>&1
  rc=$?
  echo "--- $name: exit status $rc after $(($(date +%s) - t0)) s" >> "$log"
  [ "$rc" = 0 ] || failed+=("$name")
}

# The operator probe (GPU, ~15 s) runs while the build (CPU) does; its table goes into run.log.
probe_pid=""
if [ "$device" = cuda ] && python3 -c 'import torch' 2> /dev/null; then
  timeout 90 python3 scripts/gpu_op_probe.py > "$work/probe.txt" 2>&1 &
  probe_pid=$!
fi
if [ -z "$lp" ]; then
  step build 120 bash -c 'scripts/build_cuda.sh > "$1/build.log" 2>&1; rc=$?; tail -n 3 "$1/build.log"; exit $rc' _ "$out"
  lp="$root/build-cuda/src/cli/linearpatch"
fi
[ -z "$lp" ] || lp="$(realpath "$lp")"
if [ -n "$probe_pid" ]; then
  wait "$probe_pid"
  { echo "=== op probe (scripts/gpu_op_probe.py, during the build)"; cat "$work/probe.txt"; } >> "$log"
fi
[ -d "$fixtures" ] || echo "no $fixtures: the fixture check covers the demo model only" >> "$log"
step "fixture check" 60 timeout "${LP_FIXTURE_SECONDS:-200}" scripts/gpu_fixture_check.sh "$lp" "$device" "$fixtures" \
  --dtypes "$fixture_dtypes" --save "$out/fixtures.json" --hf-dir "$work/hf"
# The 8B benchmark leaves a minute for the transformers check after it.
step "8B benchmark" 200 env LP_DEADLINE=$((deadline - 60)) OUT="$work/bench" scripts/gpu_bench.sh \
  --bin "$lp" --device "$device" --work "$work/lp-bench" ${budget:+--max-gpu-memory "$budget"} \
  --commit "${LP_COMMIT:-unknown}" --mc-task "$fixtures/hellaswag-1000.jsonl" "${bench_args[@]}"
# Kernel time of our forward against transformers' on the same checkpoint.
[ -d "$work/lp-bench/model" ] && [ "$device" = cuda ] &&
  step "profile" 90 scripts/gpu_profile.sh "$lp" "$work/lp-bench/model" "$out/profile.txt"
for name in bench.log h200.json bench_reports.json; do
  [ -f "$work/bench/$name" ] && cp "$work/bench/$name" "$out/"
done
[ -f "$out/h200.json" ] && python3 scripts/bench_table.py "$out/h200.json" > "$out/table.md"
if python3 -c 'import torch, transformers' 2> /dev/null; then
  for expected in "$work/hf/expected.json" ${HF_CHECK:-}; do
    [ -f "$expected" ] && step "transformers check: $expected" 20 python3 scripts/hf_compat_check.py --expected "$expected"
  done
else
  echo "=== transformers check: skipped, python3 has no torch/transformers" >> "$log"
fi
rm -rf "$work"

echo "=== done in $(($(date +%s) - start)) s; failed: ${failed[*]:-nothing}" >> "$log"
grep -E "^(===|---)" "$log"
[ -f "$out/table.md" ] && cat "$out/table.md"
[ ${#failed[@]} -eq 0 ]
