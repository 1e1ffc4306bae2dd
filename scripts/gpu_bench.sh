#!/usr/bin/env bash
# The GPU benchmark on a LLaMA-3-8B-shaped synthetic checkpoint, every number
# measured in the same run (docs/gpu.md):
#   1. builds linearpatch against PyTorch's CUDA libtorch (scripts/build_cuda.sh), unless --bin
#   2. writes the synthetic checkpoint (16 GB bf16) to local disk, and measures the disk's
#      durable write rate: one shard copied with dd conv=fdatasync
#   3. linearpatch prune --device cuda: 5 layers, 128 x 2048 calibration tokens; with fsync
#      (the default), with --no-fsync, and with --no-fsync --max-gpu-memory SIZE
#   4. scripts/python_baseline.py, the same job in PyTorch + transformers (skipped when
#      python3 lacks torch or transformers)
#   5. distillation throughput: prune --distill on --distill-samples windows of 2048 tokens,
#      then the whole prune with --metric iterative and --iterative-layers layers (default 8)
#   6. eval: perplexity tokens/s (64 windows) and multiple-choice rows/s on --mc-task
#   7. h200.json (scripts/bench_json.py) and its Markdown table (scripts/bench_table.py)
# Results in $OUT: bench.log (everything printed), h200.json, bench_reports.json (every
# tool's own report), and build.log when it builds.
#
#   scripts/gpu_bench.sh [--max-gpu-memory SIZE] [--layers N] [--samples N] [--seq-len N]
#                        [--synth "ARGS"] [--device DEV] [--bin PATH] [--build-args "ARGS"]
#                        [--skip-python] [--work DIR] [--distill-samples N] [--mc-task FILE]
#                        [--commit SHA] [--iterative-layers N]
#
# --synth replaces "--shape llama3-8b"; --distill-samples 0, --iterative-layers 0 and --mc-task ""
# skip steps 5, 5 (iterative) and 6; --mc-task defaults to .device-fixtures/hellaswag-1000.jsonl when it exists
# (scripts/device_fixtures.sh). --commit (or $LP_COMMIT) is recorded in h200.json; the
# device machine's copy of the tree has no .git. Extra `linearpatch prune` arguments go in
# $LP_PRUNE_ARGS. With $LP_DEADLINE (epoch seconds), a step that would not finish in time
# is skipped and every tool is stopped at the deadline (scripts/gpu_run_all.sh sets it).
#
# A CPU dry run of the whole flow (here, without torch/transformers for Python):
#   OUT=/tmp/bench scripts/gpu_bench.sh --device cpu --bin build/src/cli/linearpatch --max-gpu-memory 2MB \
#     --synth "--layers 8 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --vocab 1024" \
#     --layers 2 --samples 4 --seq-len 128 --distill-samples 8 --mc-task /tmp/hs60.jsonl
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/out/gpu-bench}"
work="/tmp/lp-bench"
layers=5
samples=128
seq_len=2048
synth_args="--shape llama3-8b"
device=cuda
bin=""
build_args=""
run_python=1
distill_samples=64
iterative_layers=8
mc_task="$root/.device-fixtures/hellaswag-1000.jsonl"
commit="${LP_COMMIT:-}"
deadline="${LP_DEADLINE:-}"
# GPU memory budget for the streaming run: linearpatch's --max-gpu-memory (e.g. 8GB);
# empty runs no streaming variant.
max_gpu_memory="${LP_MAX_GPU_MEMORY:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --max-gpu-memory) max_gpu_memory="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --samples) samples="$2"; shift 2 ;;
    --seq-len) seq_len="$2"; shift 2 ;;
    --synth) synth_args="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --build-args) build_args="$2"; shift 2 ;;
    --skip-python) run_python=0; shift ;;
    --work) work="$2"; shift 2 ;;
    --distill-samples) distill_samples="$2"; shift 2 ;;
    --mc-task) mc_task="$2"; shift 2 ;;
    --commit) commit="$2"; shift 2 ;;
    --iterative-layers) iterative_layers="$2"; shift 2 ;;
    *) echo "gpu_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$commit" ] || commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"

mkdir -p "$out" "$work"
out="$(cd "$out" && pwd)"
reports="$work/reports"
rm -rf "$work/model" "$work/lp-out" "$work/py-out" "$reports"  # a warm machine may hold an earlier run's
mkdir -p "$reports"
step() { echo; echo "=== gpu_bench: $* ($(date +%T))"; }
die() { echo "gpu_bench: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
seconds_since() { python3 -c "print(($(now_ms) - $1) / 1000)"; }
model="$work/model"
calib=("$root"/data/text/*.txt)
export PYTHONUNBUFFERED=1

# Whether a step needing `1` seconds still fits before the deadline.
fits() {
  [ -z "$deadline" ] && return 0
  local left=$((deadline - $(date +%s)))
  [ "$left" -ge "$1" ] && return 0
  echo "skipped: $left s left before the deadline, the step needs about $1"
  return 1
}
# Runs a command, stopped at the deadline.
bounded() {
  if [ -z "$deadline" ]; then "$@"; return; fi
  local left=$((deadline - $(date +%s)))
  timeout --kill-after=10 "$((left > 1 ? left : 1))" "$@"
}

add_wall_time() {  # report, start in ms
  python3 - "$1" "$(seconds_since "$2")" <<'EOF'
import json, sys
path, wall = sys.argv[1], float(sys.argv[2])
report = json.load(open(path))
report["process_wall_seconds"] = wall
json.dump(report, open(path, "w"), indent=2)
EOF
}

# A tool that fails is reported at the end; the others still run, so one
# device run brings back every number it can.
failed=()
python_note=""

bench() {
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
if python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'; then
  :
else
  echo "python3 has no torch/transformers: no Python baseline"
  run_python=0
  python_note="skipped: python3 has no torch/transformers"
fi
echo "cores $(nproc), $(free -g | awk '/Mem:/ {print $2}') GiB memory"
df -hT "$work" | tail -n 1
free_gib="$(df -BG --output=avail "$work" | tail -n 1 | tr -dc 0-9)"

if [ -z "$bin" ]; then
  step "build"
  t0="$(now_ms)"
  # shellcheck disable=SC2086  # build_args holds several arguments
  "$root/scripts/build_cuda.sh" $build_args 2>&1 | tee "$out/build.log" || die "build failed: see build.log"
  bin="$(tail -n 1 "$out/build.log")"
  echo "build: $(seconds_since "$t0") s"
fi
[ -x "$bin" ] || die "no linearpatch binary at '$bin'"

step "synthetic checkpoint: $synth_args"
# shellcheck disable=SC2086  # synth_args holds several arguments
"$bin" synth $synth_args --out "$model" --json >"$reports/synth.json" || die "synth failed"
cat "$reports/synth.json"
need_gib=$(( $(python3 -c "import json; print(json.load(open('$reports/synth.json'))['bytes'])") * 2 / 1000000000 + 2 ))
[ "$free_gib" -ge "$need_gib" ] || die "$work has ${free_gib} GiB free; the checkpoint and one pruned copy need ${need_gib}"

step "disk: durable write rate"
# Up to 2 GiB of the largest shard, read from the page cache (synth has just
# written it) and written with one fdatasync at the end: what the disk
# sustains for a durable output, the floor of prune's write phase.
shard="$(ls -S "$model"/*.safetensors | head -n 1)"
t0="$(now_ms)"
if dd if="$shard" of="$work/dd-test" bs=64M count=32 conv=fdatasync status=none; then
  python3 - "$reports/disk.json" "$(stat -c %s "$work/dd-test")" "$(seconds_since "$t0")" "$(df -T "$work" | tail -n 1 | awk '{print $2}')" <<'EOF'
import json, sys
path, size, seconds, fs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
report = {"bytes": size, "seconds": seconds, "durable_mb_per_s": size / 1e6 / seconds, "filesystem": fs}
json.dump(report, open(path, "w"), indent=2)
print(f"dd conv=fdatasync: {size / 1e6:.0f} MB in {seconds:.2f} s = {report['durable_mb_per_s']:.0f} MB/s ({fs})")
EOF
else
  failed+=(disk)
fi
rm -f "$work/dd-test"

warm_cache() { cat "$model"/*.safetensors >/dev/null; }

run_linearpatch() {  # report name, seconds needed, then extra prune arguments
  local name="$1" need="$2" t0
  shift 2
  step "linearpatch prune ($name) $*"
  fits "$need" || { failed+=("$name (no time)"); return; }
  warm_cache
  rm -rf "$work/lp-out"
  t0="$(now_ms)"
  # shellcheck disable=SC2086  # LP_PRUNE_ARGS holds several arguments
  if bounded "$bin" prune -m "$model" --device "$device" --layers "$layers" --calib-samples "$samples" \
    --seq-len "$seq_len" --calib "${calib[@]}" --out "$work/lp-out" --report "$reports/$name.json" "$@" \
    ${LP_PRUNE_ARGS:-}; then
    add_wall_time "$reports/$name.json" "$t0"
  else
    failed+=("$name")
  fi
  rm -rf "$work/lp-out"
}

run_linearpatch linearpatch 40
# Without fsync, as the Python baseline writes (save_pretrained does not sync).
run_linearpatch linearpatch_nofsync 30 --no-fsync
if [ -n "$max_gpu_memory" ]; then
  run_linearpatch linearpatch_budget 100 --no-fsync --max-gpu-memory "$max_gpu_memory"
fi

step "python baseline"
if [ "$run_python" = 1 ] && fits 80; then
  warm_cache
  t0="$(now_ms)"
  if bounded python3 "$root/scripts/python_baseline.py" --model "$model" --out "$work/py-out" --device "$device" \
    --layers "$layers" --samples "$samples" --seq-len "$seq_len" --calib "${calib[@]}" \
    --report "$reports/python.json" >/dev/null; then
    add_wall_time "$reports/python.json" "$t0"
  else
    failed+=(python)
  fi
  rm -rf "$work/py-out"
else
  echo "${python_note:-skipped}"
fi

step "distillation: $distill_samples windows of $seq_len tokens"
if [ "$distill_samples" -gt 0 ] && fits 60; then
  # Few calibration windows: only the distillation's own throughput is measured.
  bounded "$bin" prune -m "$model" --device "$device" --layers "$layers" --calib "${calib[@]}" --calib-samples 32 \
    --seq-len "$seq_len" --distill --distill-samples "$distill_samples" --val-samples 4 --no-fsync \
    --out "$work/lp-out" --force --report "$reports/distill.json" > /dev/null || failed+=(distill)
  rm -rf "$work/lp-out"
fi

step "prune --metric iterative, $iterative_layers layers"
if [ "$iterative_layers" -gt 0 ] && fits 90; then
  warm_cache
  t0="$(now_ms)"
  # The whole prune, default settings otherwise (fsync too), as a user runs it.
  if bounded "$bin" prune -m "$model" --device "$device" --layers "$iterative_layers" --metric iterative \
    --calib-samples "$samples" --seq-len "$seq_len" --calib "${calib[@]}" --out "$work/lp-out" --force \
    --report "$reports/iterative.json" > /dev/null; then
    add_wall_time "$reports/iterative.json" "$t0"
  else
    failed+=(iterative)
  fi
  rm -rf "$work/lp-out"
fi

step "eval: perplexity and multiple-choice throughput (${mc_task:-no task})"
if [ -n "$mc_task" ] && [ -f "$mc_task" ] && fits 40; then
  bounded "$bin" eval -m "$model" --device "$device" --text "$root/data/eval/brown.visible.txt" --seq-len "$seq_len" \
    --max-windows 64 --task "hellaswag=$mc_task" --json > "$reports/eval.json" || failed+=(eval)
elif [ -n "$mc_task" ] && [ ! -f "$mc_task" ]; then
  echo "no $mc_task (scripts/device_fixtures.sh makes it)"
fi

step "summary"
python3 "$root/scripts/bench_json.py" "$reports" --out "$out/h200.json" --raw "$out/bench_reports.json" \
  --commit "$commit" --device "$device" --job "$synth_args; --layers $layers --calib-samples $samples --seq-len $seq_len" \
  --budget "$max_gpu_memory" --failed "${failed[@]}" ${python_note:+--note "python: $python_note"}
python3 "$root/scripts/bench_table.py" "$out/h200.json"
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]} (see above)"
}

# A pipeline rather than exec + tee: the script returns only once the log is complete.
bench 2>&1 | tee "$out/bench.log"
