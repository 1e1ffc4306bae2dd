#!/usr/bin/env python3
"""Compares layer choices and repairs on the fixture models: for each model
and block size, prune with each (metric, repair) variant and evaluate the
written checkpoint on every visible text (64 windows of 512 tokens, the
reference protocol). Prints a Markdown table with perplexities, the removed
layers, the repair kinds kept and the prune wall time.

  scripts/compare_choices.py [--binary build/src/cli/linearpatch]
                             [--runs tiny-llama2-s:5 demo-llama3-d:3 ...]
                             [--variants cosine/linearpatch iterative/auto ...]
                             [--json results.json]

Default runs: every n of every reference file, variants cosine/linearpatch
and iterative/auto; --all-variants adds none, mlp-lstsq, auto (cosine),
patched-kl, bi and iterative/linearpatch. Standard library only.
"""
import argparse
import json
import os
import tempfile
import time

from fixture_runs import CALIB, ROOT, evaluate, run

BASE_VARIANTS = ["cosine/linearpatch", "iterative/auto"]
ALL_VARIANTS = ["cosine/none", "cosine/linearpatch", "cosine/mlp-lstsq", "cosine/auto", "patched-kl/linearpatch",
                "bi/linearpatch", "iterative/linearpatch", "iterative/auto"]




def prune(args, model, calib, n, variant, out):
    metric, patch = variant.split("/")
    cmd = [args.binary, "-q", "prune", "--model", model, "--layers", str(n), "--calib", *calib, "--calib-samples",
           "128", "--seq-len", "512", "--seed", str(args.seed), "--metric", metric, "--patch", patch, "--json",
           "--out", out]
    start = time.time()
    report = run(cmd)
    return report, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "src", "cli", "linearpatch"))
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    parser.add_argument("--runs", nargs="+", help="model:n pairs (default: every n of every reference)")
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--all-variants", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    fixtures = os.path.join(args.shared, "fixtures")
    variants = args.variants or (ALL_VARIANTS if args.all_variants else BASE_VARIANTS)
    runs = []
    if args.runs:
        runs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs]
    else:
        for name in CALIB:
            ref = json.load(open(os.path.join(fixtures, "reference", f"{name}.json")))
            runs += [(name, r["n"]) for r in ref["runs"]]
    rows = []
    print("| model | n | metric / repair | removed | repairs | " + " | ".join(["brown", "web", "kdocs"]) +
          " | prune s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for name, n in runs:
        model = os.path.join(fixtures, "models", name)
        ref = json.load(open(os.path.join(fixtures, "reference", f"{name}.json")))
        texts = [os.path.join(fixtures, "text", f"{t}.txt") for t in ref["dense"]]
        calib = [os.path.join(fixtures, "text", f"{t}.calib.txt") for t in CALIB[name]]
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                report, seconds = prune(args, model, calib, n, variant, os.path.join(tmp, "out"))
                ppl = evaluate(args.binary, os.path.join(tmp, "out"), texts)
            repairs = ",".join(g["repair"] for g in report["gaps"])
            row = {"model": name, "n": n, "variant": variant, "removed": report["removed"], "repairs": repairs,
                   "ppl": ppl, "seconds": seconds, "dense": ref["dense"]}
            rows.append(row)
            cells = " | ".join(f"{ppl.get(t + '.visible', float('nan')):.2f}" for t in ["brown", "web", "kdocs"])
            print(f"| {name} | {n} | {variant} | {report['removed']} | {repairs} | {cells} | {seconds:.1f} |",
                  flush=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
