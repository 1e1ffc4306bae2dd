#!/usr/bin/env bash
# Issue 18's "model you do not have" and issue 20's transformers check, as one
# device run (docs/gpu.md): a 24-layer LLaMA-style model is trained from
# scratch on the GPU (scripts/train_llama.py, a shape no fixture has, untied
# head, its own seed), then pruned by 4 layers with each quality step of
# scripts/compare_choices.py, and by attention units into a Nemotron-NAS
# checkpoint that transformers and scripts/nemotron_reference.py score.
#
# Prepare here: scripts/gpu_unseen_prepare.sh build/src/cli/linearpatch  (-> .gpu-work: the
# calibration texts tokenized, the six fixture texts, and WORK/nas/expected.json with the
# checkpoints scripts/hf_compat_check.py loads).
# Run (the device tool):
#   run(command="bash scripts/gpu_unseen_model.sh", carry=[".gpu-deps", ".gpu-work"], timeout_s=600)
# Results in $OUT: run.log (every step), build.log, train.log, unseen.json (compare_choices
# rows), hf.log. Each step stops at the deadline ($LP_RUN_SECONDS after the start, default 560).
# LP_DEPTHS (default "4") and LP_VARIANTS choose the comparison; LP_SKIP_CHECKS=1 leaves out
# the transformers and Nemotron-NAS checks.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:?set OUT to the folder for the results}"
work="${LP_WORK:-.gpu-work}"
deadline=$(($(date +%s) + ${LP_RUN_SECONDS:-560}))
log="$out/run.log"
model=/tmp/unseen24
lp="$root/build-cuda/src/cli/linearpatch"
texts=("$work"/text/{brown,web,kdocs}.visible.txt)
calib=("$work"/text/{brown,web,kdocs}.calib.txt)

left() { echo $((deadline - $(date +%s))); }
step() {  # step NAME COMMAND...: into run.log, stopped at the deadline
  local name="$1" t0
  shift
  echo "=== $name ($(date +%T), $(left) s left)" >> "$log"
  t0=$(date +%s)
  timeout --kill-after=5 "$(left)" "$@" >> "$log" 2>&1
  echo "--- $name: exit status $? after $(($(date +%s) - t0)) s" >> "$log"
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$log" 2>&1
scripts/build_cuda.sh > "$out/build.log" 2>&1 &
build_pid=$!
if [ -f "$work/nas/expected.json" ] && [ -z "${LP_SKIP_CHECKS:-}" ]; then
  step "transformers: Nemotron-NAS and exact sublayer checkpoints" \
    python3 scripts/hf_compat_check.py --expected "$work/nas/expected.json" --tolerance 0.001 --generate 16
fi
step "train the 24-layer model" python3 scripts/train_llama.py --tokenizer data/models/demo-llama3-d \
  --train "$work"/tok/{brown,web,kdocs}.calib.ids.json --out "$model" --layers 24 --hidden 384 \
  --intermediate 1024 --heads 6 --kv-heads 2 --tokens 8e6 --seed 7
cp "$model/training.json" "$out/" 2> /dev/null
wait "$build_pid"
echo "=== build: exit status $? ($(tail -n 1 "$out/build.log"))" >> "$log"
[ -x "$lp" ] || { echo "no binary" >> "$log"; exit 1; }

# Attention units into Nemotron-NAS: our eval, an independent forward and transformers agree.
nas=/tmp/unseen24-attn6
rm -rf "$nas"  # a warm machine keeps /tmp: never check an earlier run's output
if [ -z "${LP_SKIP_CHECKS:-}" ]; then
  step "prune 6 attention units (vanilla)" "$lp" -q prune -m "$model" --unit attention --metric iterative \
    --layers 6 --calib "${calib[@]}" --calib-samples 128 --seq-len 512 --device cuda --dtype float32 \
    --emit vanilla --out "$nas" --report "$out/nas-report.json"
fi
if [ -d "$nas" ]; then
  step "independent Nemotron-NAS forward" python3 scripts/nemotron_reference.py --model "$nas" \
    --text "${texts[0]}" --binary "$lp" --seq-len 512 --max-windows 8 --compare
  ppl=$("$lp" -q eval -m "$nas" --text "${texts[0]}" --seq-len 512 --max-windows 64 --device cuda --dtype float32 \
    --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
  echo "[{\"model\": \"$nas\", \"kind\": \"vanilla\", \"text\": \"${texts[0]}\", \"seq_len\": 512, \"max_windows\": 64, \"ppl\": $ppl}]" \
    > /tmp/nas-expected.json
  step "transformers: the 24-layer model's Nemotron-NAS output" \
    python3 scripts/hf_compat_check.py --expected /tmp/nas-expected.json --tolerance 0.001 --generate 16
fi

read -r -a depths <<< "${LP_DEPTHS:-4}"
read -r -a variants <<< "${LP_VARIANTS:-cosine/linearpatch today +sequential-refit +sequential-refit+distill +swap-search}"
step "compare choices, n=${depths[*]}" python3 scripts/compare_choices.py --binary "$lp" --model "$model" \
  --layers "${depths[@]}" --calib "${calib[@]}" --texts "${texts[@]}" --device cuda --dtype float32 \
  --distill-samples 1024 --variants "${variants[@]}" --json "$out/unseen.json"
echo "=== done ($(left) s left)" >> "$log"
cat "$log"
