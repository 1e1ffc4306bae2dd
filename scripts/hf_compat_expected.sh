#!/usr/bin/env bash
# Writes the checkpoints for the transformers compatibility check and the
# perplexities linearpatch measures on them (expected.json for
# scripts/hf_compat_check.py): for each model, an exact (patched) and a
# vanilla (folded) checkpoint, with the repair named in the spec (default
# linearpatch).
#   scripts/hf_compat_expected.sh BINARY OUT_DIR TEXT MODEL:LAYERS:CALIB[,CALIB...][:PATCH] ...
set -euo pipefail
lp="$1"; out="$2"; text="$3"; shift 3
mkdir -p "$out"
entries=()
for spec in "$@"; do
  IFS=: read -r model layers calib patch <<<"$spec"
  patch="${patch:-linearpatch}"
  name="$(basename "$model")-n$layers-$patch"
  IFS=, read -r -a calib_files <<<"$calib"
  for kind in exact vanilla; do
    dir="$out/$name-$kind"
    "$lp" -q prune -m "$model" --layers "$layers" --calib "${calib_files[@]}" --calib-samples 128 --seq-len 512 \
      --patch "$patch" --emit "$kind" --out "$dir" --force --report "$dir.report.json"
    ppl="$("$lp" -q eval -m "$dir" --text "$text" --seq-len 512 --max-windows 64 --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')"
    entries+=("{\"model\": \"$dir\", \"kind\": \"$kind\", \"text\": \"$text\", \"seq_len\": 512, \"max_windows\": 64, \"ppl\": $ppl}")
  done
done
(IFS=,; echo "[${entries[*]}]") | python3 -m json.tool > "$out/expected.json"
cat "$out/expected.json"
