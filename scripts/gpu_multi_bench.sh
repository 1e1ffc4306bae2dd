#!/usr/bin/env bash
# Multi-GPU benchmarks of issue 14, for the device kinds nvidia-h200-x2 and
# nvidia-h200-x4 (docs/gpu.md, "Several GPUs"). Run on nvidia-h200-x2
# (docs/benchmarks.md); the 4-GPU steps have not run yet.
#
#   1. builds linearpatch against PyTorch's CUDA libtorch (scripts/build_cuda.sh), unless --bin
#   2. refuses to run unless NVLink multicast is off as the machines set it (NCCL_NVLS_ENABLE=0,
#      TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1); it never sets them itself
#   3. 70B shape (synth --shape llama3-70b: 80 layers, 141 GB bf16), prune --layers 8 with
#      --calib-samples 128 --seq-len 2048 --no-fsync:
#        prune70_1: one GPU, --max-gpu-memory 110GB (streams: what one H200 can do),
#        prune70_2: --device cuda:0,1 (resident across 2 GPUs),
#        prune70_4: --device cuda:0,1,2,3 (resident across 4; only with 4 GPUs)
#   4. 8B shape (synth --shape llama3-8b) distillation scaling: prune --distill with the same
#      windows and steps on 1, 2 and 4 GPUs (distill8_1, distill8_2, distill8_4), data-parallel
#      (one replica per GPU, gradients summed with NCCL); efficiency = t1 / (n * tn)
#   5. h200-multi.json in $OUT: every run's report, wall time and placement, the scaling and
#      its efficiency; copy it to docs/benchmarks/h200-multi.json
#
#   scripts/gpu_multi_bench.sh [--steps LIST] [--bin PATH] [--build-args "ARGS"] [--work DIR]
#                              [--model-dir DIR] [--grow-shm SIZE] [--layers N] [--samples N]
#                              [--distill-samples N] [--distill-batch N] [--commit SHA]
#
# --steps picks among prune70_1,prune70_2,prune70_4,distill8_1,distill8_2,distill8_4 (default:
# all that the GPU count allows). One device command may run 10 minutes, so a full run takes
# several calls on one warm machine: reports accumulate in --work (default /tmp/lp-multi) and
# each call rewrites h200-multi.json from all of them; a checkpoint already synthesised there
# is reused. For example, on nvidia-h200-x4 (.gpu-deps carried, as for gpu_bench.sh):
#   run(command="bash scripts/gpu_multi_bench.sh --steps prune70_2", carry=[".gpu-deps"], kind="nvidia-h200-x4")
#   run(command="bash scripts/gpu_multi_bench.sh --bin build-cuda/src/cli/linearpatch --steps prune70_4")
#   run(command="bash scripts/gpu_multi_bench.sh --bin build-cuda/src/cli/linearpatch --steps distill8_1,distill8_2,distill8_4")
#   run(command="bash scripts/gpu_multi_bench.sh --bin build-cuda/src/cli/linearpatch --steps prune70_1")
#
# Disk: the 70B checkpoint (131 GiB) goes to --model-dir, by default /dev/shm when it has room
# (memory is read fastest and leaves the disk to the pruned output, 119 GiB), else --work.
# On nvidia-h200-x2 (256 GiB memory, 128 GiB disk) neither holds it as the machine starts;
# --grow-shm 180G remounts /dev/shm larger first (the output then needs the disk's room).
# Measured there: the build 1.5 min, synthesising the 70B checkpoint 5.6 min, prune70_2 2.5 min,
# each distill8 step about 1 min: build + prune70_2 (with --model-dir) fit one 10-minute call.
#
# A CPU dry run of the flow with tiny shapes (several "cpu" entries stand for GPUs):
#   OUT=/tmp/mb LP_MULTI_DEVICES=cpu scripts/gpu_multi_bench.sh --bin build/src/cli/linearpatch \
#     --synth70 "--layers 8 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --vocab 1024" \
#     --synth8 "--layers 6 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --vocab 1024" \
#     --samples 4 --seq-len 128 --distill-samples 16 --distill-batch 8
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/out/gpu-multi-bench}"
work="/tmp/lp-multi"
model_dir=""
grow_shm=""
bin=""
build_args=""
steps=""
layers=8
samples=128
seq_len=2048
distill_samples=512
distill_batch=32
synth70="--shape llama3-70b"
synth8="--shape llama3-8b"
commit="${LP_COMMIT:-}"
# "cpu" for the dry run: device lists become cpu,cpu,... (no NCCL, no multicast check).
kind="${LP_MULTI_DEVICES:-cuda}"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --build-args) build_args="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --model-dir) model_dir="$2"; shift 2 ;;
    --grow-shm) grow_shm="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --samples) samples="$2"; shift 2 ;;
    --seq-len) seq_len="$2"; shift 2 ;;
    --distill-samples) distill_samples="$2"; shift 2 ;;
    --distill-batch) distill_batch="$2"; shift 2 ;;
    --synth70) synth70="$2"; shift 2 ;;
    --synth8) synth8="$2"; shift 2 ;;
    --commit) commit="$2"; shift 2 ;;
    *) echo "gpu_multi_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$commit" ] || commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"

mkdir -p "$out" "$work/reports"
out="$(cd "$out" && pwd)"
reports="$work/reports"
calib=("$root"/data/text/*.txt)
step() { echo; echo "=== gpu_multi_bench: $* ($(date +%T))"; }
die() { echo "gpu_multi_bench: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
free_bytes() { df -B1 --output=avail "$1" | tail -n 1 | tr -dc 0-9; }
failed=()

# cuda:0,1,...,n-1 (or cpu,cpu,... for the dry run).
devices() {
  local list="" i
  for ((i = 0; i < $1; i++)); do
    if [ "$kind" = cpu ]; then list+="${list:+,}cpu"; else list+="${list:+,}cuda:$i"; fi
  done
  echo "$list"
}

check_machine() {
  step "machine"
  if [ "$kind" = cpu ]; then
    gpus=4
    echo "dry run on the CPU: device lists of 'cpu' entries"
    return
  fi
  nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader || die "no nvidia-smi"
  nvidia-smi topo -m || true
  gpus="$(nvidia-smi -L | wc -l)"
  [ "$gpus" -ge 2 ] || die "$gpus GPU(s): this benchmark needs a multi-GPU kind"
  # NVLink multicast can put the host's GPUs out of service: the machines turn it off,
  # and this script runs only where they did.
  [ "${NCCL_NVLS_ENABLE:-}" = 0 ] || die "NCCL_NVLS_ENABLE is '${NCCL_NVLS_ENABLE:-unset}', not 0"
  [ "${TORCH_SYMM_MEM_DISABLE_MULTICAST:-}" = 1 ] || die "TORCH_SYMM_MEM_DISABLE_MULTICAST is not 1"
  [ "${NVSHMEM_DISABLE_NVLS:-}" = 1 ] || die "NVSHMEM_DISABLE_NVLS is not 1"
  echo "cores $(nproc), $(free -g | awk '/Mem:/ {print $2}') GiB memory; multicast off"
  python3 -c 'import torch; print("torch", torch.__version__, "sees", torch.cuda.device_count(), "GPUs; NCCL", torch.cuda.nccl.version())' || true
}

build() {
  [ -z "$bin" ] || return 0
  step "build"
  # shellcheck disable=SC2086  # build_args holds several arguments
  "$root/scripts/build_cuda.sh" $build_args 2>&1 | tee "$out/build.log" || die "build failed: see build.log"
  bin="$(tail -n 1 "$out/build.log")"
  grep -q "data-parallel distillation: NCCL" "$out/build.log" ||
    echo "warning: the build found no nccl.h: distillation will not run data-parallel"
}

# Synthesises `dir` from `args` unless the same checkpoint is already there.
synth() {  # name, directory, synth arguments
  local name="$1" dir="$2" args="$3"
  if [ -f "$dir/.synth-args" ] && [ "$(cat "$dir/.synth-args")" = "$args" ]; then
    echo "reusing $dir ($args)"
    return
  fi
  step "synthetic checkpoint $name: $args"
  rm -rf "$dir"
  # shellcheck disable=SC2086  # args holds several arguments
  "$bin" synth $args --out "$dir" --json >"$reports/synth_$name.json" || die "synth $name failed"
  echo "$args" >"$dir/.synth-args"
  cat "$reports/synth_$name.json"
}

bytes_of() { python3 -c "import json; print(json.load(open('$reports/synth_$1.json'))['bytes'])"; }

# Where the 70B checkpoint lives: --model-dir, else /dev/shm when it has room, else --work.
place_model70() {
  if [ -n "$grow_shm" ]; then
    mount -o "remount,size=$grow_shm" /dev/shm || die "could not remount /dev/shm with size $grow_shm"
  fi
  if [ -n "$model_dir" ]; then echo "$model_dir"; return; fi
  # bf16 70B: 141 GB, plus 2 GB of slack.
  local need=$((143 * 1000 * 1000 * 1000))
  [ "$kind" = cpu ] && need=$((1 << 30))
  if [ -d /dev/shm ] && [ "$(free_bytes /dev/shm)" -ge "$need" ]; then echo /dev/shm/lp-model70; else echo "$work/model70"; fi
}

run_prune() {  # report name, model dir, devices, calibration windows, then extra prune arguments
  local name="$1" model="$2" device="$3" calib_samples="$4" t0 model_bytes out_need total_layers
  shift 4
  total_layers="$(python3 -c "import json; print(json.load(open('$model/config.json'))['num_hidden_layers'])")"
  step "prune $name: --device $device $*"
  model_bytes="$(du -sbL "$model" | cut -f1)"
  # The kept layers' share of the input, plus 2 GiB for embeddings, head and slack.
  out_need=$((model_bytes / total_layers * (total_layers - layers) + (2 << 30)))
  if [ "$(free_bytes "$work")" -lt "$out_need" ]; then
    echo "skipped: $work has $(free_bytes "$work") bytes free, the pruned copy needs up to $out_need"
    failed+=("$name (no room for the output)")
    return
  fi
  rm -rf "$work/out"
  # Page cache warm, as in gpu_bench.sh (a model on tmpfs is in memory already).
  [[ "$model" == /dev/shm/* ]] || cat "$model"/*.safetensors >/dev/null
  t0="$(now_ms)"
  if "$bin" prune -m "$model" --device "$device" --layers "$layers" --calib-samples "$calib_samples" \
    --seq-len "$seq_len" --calib "${calib[@]}" --no-fsync --out "$work/out" --report "$reports/$name.json" "$@" \
    >"$reports/$name.log" 2>&1; then
    python3 - "$reports/$name.json" "$(($(now_ms) - t0))" "$device" <<'EOF'
import json, sys
path, ms, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
report = json.load(open(path))
report["process_wall_seconds"] = ms / 1000
report["device_flag"] = device
json.dump(report, open(path, "w"), indent=2)
EOF
  else
    failed+=("$name")
    tail -n 20 "$reports/$name.log"
  fi
  # The lines that say where the layers went and how distillation ran.
  grep -E "placement:|stream through|data-parallel|warning|error" "$reports/$name.log" || true
  rm -rf "$work/out"
}

want() { [ -z "$steps" ] || [[ ",$steps," == *",$1,"* ]]; }

bench() {
  check_machine
  build
  [ -x "$bin" ] || die "no linearpatch binary at '$bin'"

  if want prune70_1 || want prune70_2 || { want prune70_4 && [ "$gpus" -ge 4 ]; }; then
    local model70
    model70="$(place_model70)"
    synth 70 "$model70" "$synth70"
    if want prune70_2; then run_prune prune70_2 "$model70" "$(devices 2)" "$samples"; fi
    if want prune70_4; then
      if [ "$gpus" -ge 4 ]; then run_prune prune70_4 "$model70" "$(devices 4)" "$samples"; else echo "prune70_4: only $gpus GPUs"; fi
    fi
    # One H200 cannot hold the model and its activations: it streams under a budget.
    if want prune70_1; then run_prune prune70_1 "$model70" "$(devices 1)" "$samples" --max-gpu-memory 110GB; fi
  fi

  local n
  for n in 1 2 4; do
    want "distill8_$n" || continue
    if [ "$n" -gt "$gpus" ]; then echo "distill8_$n: only $gpus GPUs"; continue; fi
    synth 8 "$work/model8" "$synth8"
    # Few calibration windows: the distillation's own time is what is compared.
    run_prune "distill8_$n" "$work/model8" "$(devices "$n")" 32 \
      --distill --distill-samples "$distill_samples" --distill-batch-size "$distill_batch" --val-samples 4
  done

  step "summary"
  python3 - "$reports" "$out/h200-multi.json" "$commit" "$gpus" "${failed[@]}" <<'EOF'
import datetime, glob, json, os, sys
reports, path, commit, gpus, failed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]

def load(name):
    p = os.path.join(reports, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None

def prune_row(name, report):
    timings = report.get("timings", {})
    return {"run": name, "device": report.get("device_flag"), "process_wall_seconds": report.get("process_wall_seconds"),
            "timings": timings, "placement": report.get("placement"), "removed": report.get("removed"),
            "memory": {k: report.get(k) for k in ("peak_rss_mib", "peak_gpu_mib", "peak_gpu_mib_per_device",
                                                  "streamed_layers")}}

record = {"what": "issue 14: 70B shape prune across GPUs, 8B distillation scaling (scripts/gpu_multi_bench.sh)",
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "commit": commit, "gpus": gpus, "synth": {k: load("synth_" + k) for k in ("70", "8")},
          "prune_70b": [], "distill_8b": [], "failed": failed}
for n in (1, 2, 4):
    report = load(f"prune70_{n}")
    if report:
        record["prune_70b"].append(dict(prune_row(f"prune70_{n}", report), gpus=n))
base = None
for n in (1, 2, 4):
    report = load(f"distill8_{n}")
    if not report or "distill" not in report:
        continue
    d = report["distill"]
    seconds = d["seconds"]["total"]
    base = seconds if n == 1 else base
    record["distill_8b"].append({"gpus": n, "ranks": d.get("data_parallel_ranks"), "seconds": d["seconds"],
                                 "tokens_per_second": d.get("tokens_per_second"), "steps": d.get("steps"),
                                 "val_kl_before": d.get("val_kl_before"), "val_kl_after": d.get("val_kl_after"),
                                 "speedup": base / seconds if base else None,
                                 "efficiency": base / (n * seconds) if base else None})
json.dump(record, open(path, "w"), indent=2)
print(json.dumps({"prune_70b": [(r["run"], r["process_wall_seconds"]) for r in record["prune_70b"]],
                  "distill_8b": [(r["gpus"], r["seconds"]["total"], r["efficiency"]) for r in record["distill_8b"]],
                  "failed": failed}, indent=1))
print(f"wrote {path}: copy it to docs/benchmarks/h200-multi.json")
EOF
  [ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]} (see above)"
}

# A pipeline rather than exec + tee: the script returns only once the log is complete.
bench 2>&1 | tee -a "$out/bench-multi.log"
