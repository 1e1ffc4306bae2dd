#!/usr/bin/env bash
# scripts/compare_choices.py on the GPU machine, the fixture pairs split over
# parallel processes (the fixture models are too small to fill the GPU alone),
# float32 so the numbers compare with the CPU's (docs/gpu.md).
#
# Prepare here: FX/fixtures/{models,reference,text} as in ../shared (FX in
# .git/info/exclude, so it travels only when carried; data/models holds the demo
# model already, a relative link to it travels as a link).
# Run (the device tool):
#   run(command="bash scripts/gpu_compare_fixtures.sh .gpu-fx 3 -- --runs ... --variants ...",
#       carry=[".gpu-deps", ".gpu-fx"], timeout_s=600)
# Builds with scripts/build_cuda.sh unless build-cuda/ has a binary (a warm machine);
# each of the PARALLEL processes takes every PARALLEL-th pair of --runs and stops at
# $LP_RUN_SECONDS (default 560) after the start; results in $OUT/compare-K.json (a row
# saved as soon as it is measured), the merged table in $OUT/compare.md.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:?set OUT to the folder for the results}"
fx="$1"
parallel="$2"
shift 3  # FX PARALLEL --
args=("$@")
lp="$root/build-cuda/src/cli/linearpatch"
deadline=$(($(date +%s) + ${LP_RUN_SECONDS:-560}))
tmp=/tmp/lp-compare
mkdir -p "$tmp"
if [ ! -x "$lp" ]; then
  scripts/build_cuda.sh > "$out/build.log" 2>&1 || { tail -n 20 "$out/build.log"; exit 1; }
fi
runs=()
rest=()
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --runs ]; then
    for ((i = i + 1; i < ${#args[@]}; i++)); do
      [[ "${args[i]}" == --* ]] && { i=$((i - 1)); break; }
      runs+=("${args[i]}")
    done
  else
    rest+=("${args[i]}")
  fi
done
pids=()
for ((k = 0; k < parallel; k++)); do
  mine=()
  for ((j = k; j < ${#runs[@]}; j += parallel)); do mine+=("${runs[j]}"); done
  [ ${#mine[@]} -gt 0 ] || continue
  timeout $((deadline - $(date +%s))) python3 scripts/compare_choices.py --binary "$lp" --shared "$fx" \
    --device "${LP_DEVICE:-cuda}" --dtype float32 --runs "${mine[@]}" "${rest[@]}" --json "$out/compare-$k.json" \
    > "$tmp/compare-$k.md" 2> "$tmp/compare-$k.err" &
  pids+=($!)
done
wait "${pids[@]}"
head -n 2 "$tmp/compare-0.md" > "$out/compare.md"
for ((k = 0; k < parallel; k++)); do tail -n +3 "$tmp/compare-$k.md" >> "$out/compare.md" 2> /dev/null; done
tail -n 5 "$tmp"/compare-*.err > "$out/errors.log"
cat "$out/compare.md" "$out/errors.log"
