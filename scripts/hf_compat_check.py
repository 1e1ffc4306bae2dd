#!/usr/bin/env python3
"""Checks that checkpoints written by linearpatch load in HuggingFace
transformers and give the perplexity linearpatch gives (issue "Checkpoints
that load everywhere"). Runs where transformers is installed (the GPU
machine; transformers 5.17 there).

  python3 scripts/hf_compat_check.py --expected expected.json [--device cuda] [--tolerance 0.005] [--generate N]

expected.json: [{"model": DIR, "kind": "exact"|"vanilla", "text": FILE, "seq_len": 512,
                 "max_windows": 64, "ppl": <linearpatch eval --json "ppl">, "shards": N}, ...]
("shards", the checkpoint's weight-file count, is only printed: more than one
means transformers read it through model.safetensors.index.json.)
(scripts/hf_compat_expected.sh writes it with the linearpatch binary.)

For each checkpoint: AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)
in float32, no missing or unexpected tensors, and the family's own class:
for "vanilla" the plain one (LlamaForCausalLM, MistralForCausalLM,
Qwen2ForCausalLM, Qwen3ForCausalLM), for "exact" its LinearPatch subclass;
then perplexity with linearpatch's protocol (the text tokenized once by the
checkpoint's own tokenizer, with its BOS in front when it has one — Qwen's
has none — non-overlapping windows, loss on every position but each
window's first).
Prints one line per checkpoint and exits non-zero when one differs by more
than the tolerance.
"""
import argparse
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def perplexity(model, tokenizer, text, seq_len, max_windows, device):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    windows = min(len(ids) // seq_len, max_windows) if max_windows > 0 else len(ids) // seq_len
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            chunk = torch.tensor([ids[w * seq_len:(w + 1) * seq_len]], device=device)
            logits = model(chunk).logits.float()
            log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
            nll -= log_probs.gather(1, chunk[0, 1:, None]).sum().item()
            count += seq_len - 1
    return math.exp(nll / count), count


# nemotron-nas: `prune --unit ... --emit vanilla` (issue 20), loaded through its
# configuration_decilm.py / modeling_decilm.py.
PLAIN_CLASS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
               "qwen3": "Qwen3ForCausalLM", "nemotron-nas": "DeciLMForCausalLM"}


def cached_generation_problems(model, tokenizer, text, steps, device):
    """Greedy generate() with the KV cache must pick the tokens a cache-free loop picks: a layer without
    attention has no cache entry, and a cache indexed by layer number would then hold the wrong keys."""
    ids = tokenizer(text[:2000], add_special_tokens=False, return_tensors="pt")["input_ids"][:, :64].to(device)
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=steps, do_sample=False, use_cache=True,
                                pad_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:].tolist()
        plain = ids
        for _ in range(steps):
            plain = torch.cat((plain, model(plain, use_cache=False).logits[:, -1:].argmax(-1)), dim=1)
    plain = plain[0, ids.shape[1]:].tolist()
    print(f"  generate({steps}) with cache: {cached}; without: {plain}")
    return [] if cached == plain else [f"cached generation differs from cache-free greedy: {cached} vs {plain}"]


def check(entry, device, tolerance, generate=0):
    model, info = AutoModelForCausalLM.from_pretrained(entry["model"], trust_remote_code=True, dtype=torch.float32,
                                                       output_loading_info=True)
    model.to(device).eval()
    problems = [f"{key}: {info[key]}" for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(key)]
    architecture = type(model).__name__
    model_type = json.load(open(os.path.join(entry["model"], "config.json")))["model_type"]
    plain = PLAIN_CLASS[model_type]
    patched = json.load(open(os.path.join(entry["model"], "config.json"))).get("auto_map") is not None
    expected = "LinearPatch" + plain if entry["kind"] == "exact" and patched else plain
    if architecture != expected:
        problems.append(f"{entry['kind']} checkpoint loads as {architecture}, expected {expected}")
    tokenizer = AutoTokenizer.from_pretrained(entry["model"])
    text = open(entry["text"], encoding="utf-8").read()
    ppl, tokens = perplexity(model, tokenizer, text, entry["seq_len"], entry["max_windows"], device)
    relative = ppl / entry["ppl"] - 1
    if abs(relative) > tolerance:
        problems.append(f"perplexity differs by {relative * 100:+.3f} %")
    if generate:
        problems += cached_generation_problems(model, tokenizer, text, generate, device)
    print(f"{entry['model']:40} {entry['kind']:8} {architecture:28} transformers ppl {ppl:10.4f}  linearpatch "
          f"{entry['ppl']:10.4f}  ({relative * 100:+.3f} %, {tokens} tokens, {entry.get('shards', '?')} weight files)  {'ok' if not problems else 'FAIL: ' + '; '.join(problems)}")
    return not problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--generate", type=int, default=0, help="also compare N greedy tokens with and without the KV cache")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}")
    results = [check(entry, args.device, args.tolerance, args.generate) for entry in json.load(open(args.expected))]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
