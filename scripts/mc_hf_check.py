#!/usr/bin/env python3
"""Checks `linearpatch eval --task ... --scores FILE` against lm-evaluation-harness v0.4's
rules run with HF transformers (float32, one request at a time, no padding).

  scripts/mc_hf_check.py --model DIR --scores FILE --task NAME=FILE [--task ...] [--device cpu|cuda]

The prompts, the encoding (_encode_pair, the empty-context prefix token, left
truncation) and acc / acc_norm below are lm-eval's own code, transcribed; the
model is transformers' AutoModelForCausalLM. Prints, per task, the largest
|log-likelihood difference| and whether acc and acc_norm agree; exits 1 when a
difference exceeds --tolerance (default 5e-3) or an accuracy differs.
Needs torch and transformers (the GPU machine has both).
"""
import argparse
import json
import re
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def hellaswag_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def requests_of(name, doc):
    """(pairs of (context, continuation), choices for acc_norm, gold, has acc_norm)."""
    if name == "winogrande":
        idx = doc["sentence"].index("_")
        target = doc["sentence"][idx + 1:].strip()
        contexts = [doc["sentence"][:idx] + o for o in (doc["option1"], doc["option2"])]
        return [(c, " " + target) for c in contexts], contexts, {"1": 0, "2": 1}[doc["answer"]], False
    if name == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        context = hellaswag_preprocess(doc["activity_label"] + ": " + ctx)
        choices, gold, norm = [hellaswag_preprocess(e) for e in doc["endings"]], int(doc["label"]), True
    elif name == "piqa":
        context, choices, gold, norm = f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"]), True
    elif name in ("arc_easy", "arc_challenge"):
        context = f"Question: {doc['question']}\nAnswer:"
        choices, gold, norm = doc["choices"]["text"], doc["choices"]["label"].index(doc["answerKey"]), True
    elif name == "boolq":
        context = f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"
        choices, gold, norm = ["no", "yes"], int(doc["label"]), False
    elif name == "mc":
        context, choices, gold, norm = doc["context"], doc["choices"], int(doc["gold"]), True
    else:
        sys.exit(f"unknown task {name}")
    return [(context, " " + c) for c in choices], choices, gold, norm


class Scorer:
    def __init__(self, model_dir, device):
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
        self.device = device
        self.max_length = self.model.config.max_position_embeddings
        self.prefix = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False)

    def encode_pair(self, context, continuation):
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        context_enc = self.encode(context)
        return context_enc, whole[len(context_enc):]

    @torch.no_grad()
    def loglikelihood(self, context, continuation):
        if context == "":
            cont = self.encode(continuation)
            ctx, cont = ([self.prefix], cont) if self.prefix != cont[0] else (cont[:1], cont[1:])
        else:
            ctx, cont = self.encode_pair(context, continuation)
        inp = (ctx + cont)[-(self.max_length + 1):][:-1]
        logits = self.model(torch.tensor([inp], device=self.device)).logits[0].float()
        logits = torch.log_softmax(logits, dim=-1)[len(inp) - len(cont):len(inp)]
        return float(logits.gather(1, torch.tensor(cont, device=self.device)[:, None]).sum())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--scores", required=True)
    p.add_argument("--task", action="append", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tolerance", type=float, default=5e-3)
    a = p.parse_args()
    scorer = Scorer(a.model, a.device)
    ours = {}
    for line in open(a.scores):
        row = json.loads(line)
        ours[(row["task"], row["row"])] = row["lls"]
    ok = True
    for spec in a.task:
        name, path = spec.split("=", 1)
        max_diff, acc, acc_ours, norm, norm_ours, has_norm = 0.0, [], [], [], [], True
        for index, line in enumerate(open(path)):
            if not line.strip():
                continue
            pairs, choices, gold, has_norm = requests_of(name, json.loads(line))
            lls = np.array([scorer.loglikelihood(c, x) for c, x in pairs])
            mine = np.array(ours[(name, index)])
            max_diff = max(max_diff, float(np.abs(lls - mine).max()))
            lengths = np.array([float(len(c)) for c in choices])
            acc.append(np.argmax(lls) == gold)
            acc_ours.append(np.argmax(mine) == gold)
            norm.append(np.argmax(lls / lengths) == gold)
            norm_ours.append(np.argmax(mine / lengths) == gold)
        same = np.mean(acc) == np.mean(acc_ours) and (not has_norm or np.mean(norm) == np.mean(norm_ours))
        ok = ok and same and max_diff <= a.tolerance
        print(f"{name}: {len(acc)} rows, max |ll diff| {max_diff:.2e}, acc {np.mean(acc):.4f} vs {np.mean(acc_ours):.4f}"
              + (f", acc_norm {np.mean(norm):.4f} vs {np.mean(norm_ours):.4f}" if has_norm else ""))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
