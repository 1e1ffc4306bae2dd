#!/usr/bin/env bash
# GPU vs CPU agreement on the fixture models. For each model: prune 2 layers
# (brown + web calibration, 128 x 512, seed 0) on DEVICE in each dtype, then
# one `eval --baseline` of the pruned against the dense model on
# data/eval/brown.visible.txt (64 x 512).
# Models: the demo model (data/models, it travels with the repository) and
# every folder under FIXTURE_DIR/models (scripts/device_fixtures.sh copies
# them there: ../shared does not reach the device machine).
# When FIXTURE_DIR/expected_cpu.json exists (the same run in float32 on the
# CPU, made by device_fixtures.sh), each result is compared with it: float32
# must give the same block and agree to 1e-5 (relative), bfloat16 the same
# block within 0.1 %; exits 1 when one does not.
#
#   scripts/gpu_fixture_check.sh BINARY [DEVICE] [FIXTURE_DIR] [--dtypes "float32 bfloat16"]
#                                [--save RESULTS.json] [--hf-dir DIR]
#
# --save writes every result (and the comparison) as JSON. --hf-dir also
# writes each model's float32 exact and vanilla (--emit vanilla) checkpoints
# under DIR with DIR/expected.json, linearpatch's perplexity of each, for
# scripts/hf_compat_check.py. With --hf-dir the float32 runs read a sharded
# copy of each model (scripts/reshard_checkpoint.py), so these checkpoints
# are the per-layer-shard outputs written while calibrating; the CPU numbers
# they are compared with come from the single file, which must not matter.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lp="$1"
shift
device=cuda
fixtures=""
[ $# -gt 0 ] && [ "${1#--}" = "$1" ] && { device="$1"; shift; }
[ $# -gt 0 ] && [ "${1#--}" = "$1" ] && { fixtures="$1"; shift; }
dtypes="float32 bfloat16"
save=""
hf_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dtypes) dtypes="$2"; shift 2 ;;
    --save) save="$2"; shift 2 ;;
    --hf-dir) hf_dir="$2"; shift 2 ;;
    *) echo "gpu_fixture_check: unknown argument $1" >&2; exit 2 ;;
  esac
done

text="$root/data/eval/brown.visible.txt"
calib=("$root/data/text/brown.calib.txt" "$root/data/text/web.calib.txt")
models=("$root/data/models/demo-llama3-d")
if [ -n "$fixtures" ]; then
  for dir in "$fixtures"/models/*/; do [ -f "$dir/config.json" ] && models+=("$(cd "$dir" && pwd)"); done
fi
expected="${fixtures:+$fixtures/expected_cpu.json}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -z "$hf_dir" ] || { mkdir -p "$hf_dir"; hf_dir="$(cd "$hf_dir" && pwd)"; }
save="${save:-$work/results.json}"
rm -f "$save"

prune() {  # model dtype emit out
  "$lp" -q prune -m "$1" --device "$device" --dtype "$2" --layers 2 --calib "${calib[@]}" \
    --calib-samples 128 --seq-len 512 --emit "$3" --out "$4" --force --json
}
evaluate() {  # model dtype [baseline]
  "$lp" -q eval -m "$1" --device "$device" --dtype "$2" ${3:+--baseline "$3"} --text "$text" \
    --seq-len 512 --max-windows 64 --json
}
# Adds one result to $save (rewritten each time, so a run stopped early
# keeps what it measured) and prints it with its comparison to the CPU.
record() {  # name dtype status input
  python3 - "$1" "$2" "$3" "$work/prune.json" "$work/eval.json" "$expected" "$save" "$device" "$4" <<'PY'
import json, os, sys
name, dtype, status, prune_path, eval_path, expected_path, save, device, source = sys.argv[1:]
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-3}
saved = json.load(open(save)) if os.path.exists(save) else {"device": device, "results": [], "agree": True}
if not saved["results"]:
    print(f"{'model':16} {'dtype':9} {'block':8} {'d mean':>9} {'dense ppl':>10} {'pruned ppl':>11}  against CPU float32")
row = {"model": name, "dtype": dtype, "input": source}
if int(status):
    row["error"] = f"exit status {status}"
    row["agrees"] = False
    print(f"{name:16} {dtype:9} FAILED: {row['error']}")
else:
    prune, ev = json.load(open(prune_path)), json.load(open(eval_path))
    row.update(block=[prune["start"], prune["end"]], d_mean=prune["gaps"][0]["scales"]["mean"],
               dense_ppl=ev["baseline_ppl"], pruned_ppl=ev["ppl"])
    line = (f"{name:16} {dtype:9} {'[%d, %d)' % tuple(row['block']):8} {row['d_mean']:9.5f} {row['dense_ppl']:10.4f} "
            f"{row['pruned_ppl']:11.4f}")
    cpu = None
    if expected_path and os.path.exists(expected_path):
        cpu = next((r for r in json.load(open(expected_path))["results"]
                    if r["model"] == name and r["dtype"] == "float32" and "error" not in r), None)
    if cpu:
        diffs = {k: row[k] / cpu[k] - 1 for k in ("dense_ppl", "pruned_ppl", "d_mean")}
        row["relative_to_cpu"] = diffs
        row["agrees"] = row["block"] == cpu["block"] and all(abs(d) <= TOLERANCE[dtype] for d in diffs.values())
        line += (f"  dense {diffs['dense_ppl'] * 100:+.4f} %, pruned {diffs['pruned_ppl'] * 100:+.4f} %, "
                 f"block {'same' if row['block'] == cpu['block'] else 'CPU [%d, %d)' % tuple(cpu['block'])}: "
                 f"{'ok' if row['agrees'] else 'DIFFERS'}")
    print(line)
saved["results"].append(row)
saved["agree"] = saved["agree"] and row.get("agrees", True)
json.dump(saved, open(save, "w"), indent=1)
PY
}
# The exact checkpoint's perplexity is the one just measured; the vanilla
# one needs a prune and an eval of its own.
keep_for_transformers() {  # name model
  rm -rf "$hf_dir/$1-exact" "$hf_dir/$1-vanilla"
  mv "$work/pruned" "$hf_dir/$1-exact"
  cp "$work/eval.json" "$work/exact.json"
  prune "$2" float32 vanilla "$hf_dir/$1-vanilla" > /dev/null &&
    evaluate "$hf_dir/$1-vanilla" float32 > "$work/vanilla.json" || rm -f "$work/vanilla.json"
  python3 - "$hf_dir" "$1" "$text" "$work" <<'PY'
import json, os, sys
hf_dir, name, text, work = sys.argv[1:]
path = os.path.join(hf_dir, "expected.json")
entries = json.load(open(path)) if os.path.exists(path) else []
for kind in ("exact", "vanilla"):
    if os.path.exists(os.path.join(work, kind + ".json")):
        ppl = json.load(open(os.path.join(work, kind + ".json")))["ppl"]
        model = os.path.join(hf_dir, f"{name}-{kind}")
        shards = len([f for f in os.listdir(model) if f.endswith(".safetensors")])
        entries.append({"model": model, "kind": kind, "text": text, "seq_len": 512, "max_windows": 64, "ppl": ppl,
                        "shards": shards})
json.dump(entries, open(path, "w"), indent=1)
PY
  rm -f "$work/exact.json" "$work/vanilla.json"
}

[ -z "$hf_dir" ] || rm -f "$hf_dir/expected.json"
for model in "${models[@]}"; do
  name="$(basename "$model")"
  sharded=""
  if [ -n "$hf_dir" ]; then
    sharded="$work/$name-sharded"
    python3 "$root/scripts/reshard_checkpoint.py" "$model" "$sharded" --shards 3
  fi
  for dtype in $dtypes; do
    source="$model"
    [ -n "$sharded" ] && [ "$dtype" = float32 ] && source="$sharded"
    status=0
    { prune "$source" "$dtype" exact "$work/pruned" > "$work/prune.json" &&
      evaluate "$work/pruned" "$dtype" "$model" > "$work/eval.json"; } || status=$?
    record "$name" "$dtype" "$status" "$([ "$source" = "$model" ] && echo single || echo sharded)"
    [ -n "$hf_dir" ] && [ "$dtype" = float32 ] && [ "$status" = 0 ] && keep_for_transformers "$name" "$source"
    rm -rf "$work/pruned"
  done
  [ -z "$sharded" ] || rm -rf "$sharded"
done
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["agree"] else 1)' "$save"
