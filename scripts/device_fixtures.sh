#!/usr/bin/env bash
# Prepares the folder that carries test material to the device machine,
# which gets the working tree but not ../shared (docs/gpu.md):
#   DIR/models/<name>/      fixture models copied from ../shared/fixtures/models
#   DIR/expected_cpu.json   scripts/gpu_fixture_check.sh run here on the CPU in
#                           float32: what the GPU run is compared with
#   DIR/hellaswag-1000.jsonl  1000 rows made from the fixture hellaswag task
#                           (scripts/mc_rows.py), scored on the 8B synthetic model
# DIR is listed in .git/info/exclude, so it travels only when a run names it in
# `carry`. Ends by printing the size of one transfer (working tree + DIR +
# .gpu-deps), which must stay under 64 MiB.
#
#   scripts/device_fixtures.sh BINARY [DIR] [MODEL ...]
#
# DIR defaults to .device-fixtures; MODEL defaults to mistral-m qwen2-q qwen3-q
# (tiny-llama2-s, 50 MB, does not fit one transfer beside them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lp="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
dir="${2:-$root/.device-fixtures}"
shift $(($# > 1 ? 2 : 1))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mistral-m qwen2-q qwen3-q)
shared="${LP_SHARED_DIR:-$root/../shared}"
limit_mib=64

rm -rf "$dir"
mkdir -p "$dir/models"
for model in "${models[@]}"; do
  cp -r "$shared/fixtures/models/$model" "$dir/models/"
  chmod -R u+w "$dir/models/$model"  # ../shared is read-only; the copy need not be
done
python3 "$root/scripts/mc_rows.py" "$shared/fixtures/mc/tasks/hellaswag.jsonl" "$dir/hellaswag-1000.jsonl" --rows 1000
"$root/scripts/gpu_fixture_check.sh" "$lp" cpu "$dir" --dtypes float32 --save "$dir/expected_cpu.json.new"
mv "$dir/expected_cpu.json.new" "$dir/expected_cpu.json"

relative="$(realpath --relative-to="$root" "$dir")"
grep -qxF "/$relative/" "$root/.git/info/exclude" 2>/dev/null || echo "/$relative/" >> "$root/.git/info/exclude"

cd "$root"
tree_bytes="$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)"
carried_bytes="$(du -cb "$relative" .gpu-deps 2>/dev/null | tail -n 1 | cut -f1)"
total_mib=$(( (tree_bytes + carried_bytes) / 1048576 ))
echo "transfer: working tree $((tree_bytes / 1048576)) MiB + $relative and .gpu-deps $((carried_bytes / 1048576)) MiB = $total_mib MiB (limit $limit_mib)"
[ "$total_mib" -lt "$limit_mib" ] || { echo "device_fixtures: over the $limit_mib MiB a run carries; drop a model" >&2; exit 1; }
