#!/usr/bin/env bash
# The GPU benchmark, in one device run of at most 10 minutes (carry .gpu-deps,
# made here by scripts/fetch_gpu_deps.sh):
#   1. builds linearpatch against PyTorch's CUDA libtorch (scripts/build_cuda.sh)
#   2. writes a LLaMA-3-8B-shaped synthetic checkpoint (16 GB bf16) to local disk
#   3. linearpatch prune --device cuda: 5 layers, 128 x 2048 calibration tokens
#      (and again under a GPU memory budget with --max-gpu-memory)
#   4. scripts/python_baseline.py, the same job in PyTorch + transformers
#   5. prints both side by side
# Results go to $OUT (at most 8 files come back): bench.log (everything), build.log,
# synth.json, linearpatch.json, linearpatch_budget.json, python.json, summary.json.
# docs/gpu.md says how to run it and where its numbers are recorded.
#
#   scripts/gpu_bench.sh [--max-gpu-memory SIZE] [--layers N] [--samples N] [--seq-len N]
#                        [--synth "ARGS"] [--device DEV] [--bin PATH] [--build-args "ARGS"]
#                        [--skip-python] [--work DIR]
#
# --synth replaces "--shape llama3-8b" (e.g. "--shape llama3-8b --layers 8" for a
# quick run); --bin skips the build; --build-args go to build_cuda.sh. Extra
# arguments for `linearpatch prune` can be given in $LP_PRUNE_ARGS.
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
# GPU memory budget for the variant run: the value of linearpatch's
# --max-gpu-memory (e.g. 24GB); empty runs no variant.
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
    *) echo "gpu_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$out" "$work"
rm -rf "$work/model" "$work/lp-out" "$work/py-out"  # a warm machine may hold an earlier run's
step() { echo; echo "=== gpu_bench: $* ($(date +%T))"; }
die() { echo "gpu_bench: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
seconds_since() { python3 -c "print(($(now_ms) - $1) / 1000)"; }
model="$work/model"
calib=("$root"/data/text/*.txt)
export PYTHONUNBUFFERED=1

bench() {
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' ||
  echo "python3 has no torch/transformers"
echo "cores $(nproc), $(free -g | awk '/Mem:/ {print $2}') GiB memory"
df -h "$work" | tail -n 1
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
"$bin" synth $synth_args --out "$model" --json >"$out/synth.json" || die "synth failed"
cat "$out/synth.json"
need_gib=$(( $(python3 -c "import json; print(json.load(open('$out/synth.json'))['bytes'])") * 2 / 1000000000 + 2 ))
[ "$free_gib" -ge "$need_gib" ] || die "$work has ${free_gib} GiB free; the checkpoint and one pruned copy need ${need_gib}"

warm_cache() { cat "$model"/*.safetensors >/dev/null; }

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

run_linearpatch() {  # report name, then extra prune arguments
  local name="$1" t0
  shift
  step "linearpatch prune ($name) $*"
  warm_cache
  rm -rf "$work/lp-out"
  t0="$(now_ms)"
  # shellcheck disable=SC2086  # LP_PRUNE_ARGS holds several arguments
  if "$bin" prune -m "$model" --device "$device" --layers "$layers" --calib-samples "$samples" --seq-len "$seq_len" \
    --calib "${calib[@]}" --out "$work/lp-out" --report "$out/$name.json" "$@" ${LP_PRUNE_ARGS:-}; then
    add_wall_time "$out/$name.json" "$t0"
  else
    failed+=("$name")
  fi
  rm -rf "$work/lp-out"
}

run_linearpatch linearpatch
# Without fsync, as the Python baseline writes (save_pretrained does not sync).
run_linearpatch linearpatch_nofsync --no-fsync
if [ -n "$max_gpu_memory" ]; then
  run_linearpatch linearpatch_budget --no-fsync --max-gpu-memory "$max_gpu_memory"
fi

if [ "$run_python" = 1 ]; then
  step "python baseline"
  warm_cache
  t0="$(now_ms)"
  if python3 "$root/scripts/python_baseline.py" --model "$model" --out "$work/py-out" --device "$device" \
    --layers "$layers" --samples "$samples" --seq-len "$seq_len" --calib "${calib[@]}" \
    --report "$out/python.json" >/dev/null; then
    add_wall_time "$out/python.json" "$t0"
  else
    failed+=(python)
  fi
  rm -rf "$work/py-out"
fi

step "summary"
python3 - "$out" <<'EOF'
import json, os, sys

out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None

columns = [(name, r) for name, r in (("linearpatch", load("linearpatch")),
                                     ("lp no-fsync", load("linearpatch_nofsync")),
                                     ("lp budget", load("linearpatch_budget")),
                                     ("python", load("python"))) if r]
def timing(r, *keys):
    t = r.get("timings", {})
    values = [t[k] for k in keys if k in t]
    return sum(values) if values else None
rows = [
    ("load", lambda r: timing(r, "load")),
    ("tokenize", lambda r: timing(r, "tokenize")),
    ("calibration", lambda r: timing(r, "calibration")),
    ("plain forward", lambda r: timing(r, "plain_forward")),
    ("select + patch", lambda r: timing(r, "selection", "patch", "select_patch", "prune")),
    ("write", lambda r: timing(r, "write")),
    ("total (report)", lambda r: timing(r, "total")),
    ("process wall", lambda r: r.get("process_wall_seconds")),
    ("distill s/step", lambda r: (r.get("distill") or {}).get("seconds_per_step")),
    ("peak GPU MiB", lambda r: r.get("peak_gpu_mib")),
    ("peak RSS MiB", lambda r: r.get("peak_rss_mib")),
    ("block", lambda r: f"[{r.get('start')}, {r.get('end')})"),
]
synth = load("synth") or {}
print(f"checkpoint: {synth.get('shape')} {synth.get('parameters', 0) / 1e9:.2f} B parameters, "
      f"{synth.get('bytes', 0) / 1e9:.1f} GB, written in {synth.get('seconds', 0):.1f} s")
print(f"{'phase (s)':<16}" + "".join(f"{name:>14}" for name, _ in columns))
summary = {"synth": synth}
for label, get in rows:
    cells = []
    for name, r in columns:
        value = get(r)
        summary.setdefault(name, {})[label] = value
        cells.append(f"{value:>14.2f}" if isinstance(value, (int, float)) else f"{value if value else '-':>14}")
    print(f"{label:<16}" + "".join(cells))
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
EOF
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]} (see above)"
}

# A pipeline rather than exec + tee: the script returns only once the log is complete.
bench 2>&1 | tee "$out/bench.log"
