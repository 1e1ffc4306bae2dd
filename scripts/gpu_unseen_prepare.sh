#!/usr/bin/env bash
# Prepares, on the Debian machine, the folder scripts/gpu_unseen_model.sh reads
# on the GPU machine (listed in .git/info/exclude, so it travels only when
# carried; with .gpu-deps and the tree it must stay under 64 MiB):
#   WORK/tok/NAME.calib.ids.json  the calibration texts tokenized by the demo model's tokenizer
#   WORK/text/*.txt               the six fixture texts
#   WORK/nas/                     two checkpoints of demo-llama3-d's 3 sublayer units
#                                 (Nemotron-NAS vanilla, no repair; exact with stream patches) and
#                                 expected.json, linearpatch's perplexity of each
#
#   scripts/gpu_unseen_prepare.sh BINARY [WORK]      (WORK defaults to .gpu-work)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lp="$(realpath "$1")"
work="${2:-.gpu-work}"
shared="${LP_SHARED_DIR:-$root/../shared}/fixtures"
demo="$root/data/models/demo-llama3-d"
cd "$root"
mkdir -p "$work/tok" "$work/text" "$work/nas"
exclude="$(git rev-parse --git-path info/exclude)"
case "$work" in
  /*) ;;  # outside the tree: nothing to ignore
  *) grep -qxF "/$work/" "$exclude" 2>/dev/null || echo "/$work/" >> "$exclude" ;;
esac
cp "$shared"/text/*.txt "$work/text/"
for name in brown web kdocs; do
  python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1], encoding="utf-8").read()))' \
    "$work/text/$name.calib.txt" | "$lp" tokenize -m "$demo" --jsonl - > "$work/tok/$name.calib.ids.json"
done
entries=()
for form in "vanilla:none" "exact:linearpatch"; do
  emit="${form%%:*}"
  dir="$work/nas/demo-sublayer3-$emit"
  "$lp" -q prune -m "$demo" --unit sublayer --metric iterative --patch "${form#*:}" --layers 3 \
    --calib data/text/brown.calib.txt data/text/web.calib.txt --calib-samples 32 --seq-len 512 \
    --emit "$emit" --out "$dir" --force
  ppl="$("$lp" -q eval -m "$dir" --text data/eval/brown.visible.txt --seq-len 512 --max-windows 64 --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')"
  entries+=("{\"model\": \"$dir\", \"kind\": \"$emit\", \"text\": \"data/eval/brown.visible.txt\", \"seq_len\": 512, \"max_windows\": 64, \"ppl\": $ppl}")
done
(IFS=,; echo "[${entries[*]}]") | python3 -m json.tool > "$work/nas/expected.json"
du -sh "$work"
