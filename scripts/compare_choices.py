#!/usr/bin/env python3
"""Compares layer choices and repairs on the fixture models: for each model
and block size, prune with each (metric, repair) variant and evaluate the
written checkpoint on every visible text (64 windows of 512 tokens, the
reference protocol). Prints a Markdown table with perplexities, the removed
layers, the repair kinds kept and the prune wall time.

  scripts/compare_choices.py [--binary build/src/cli/linearpatch]
                             [--runs tiny-llama2-s:5 demo-llama3-d:3 ...]
                             [--variants cosine/linearpatch iterative/auto ...]
                             [--json results.json] [--device cuda --dtype float32]
  scripts/compare_choices.py --model DIR --layers N [N ...] --calib FILE ... --texts FILE ...

Default runs: every n of every reference file, variants cosine/linearpatch
and iterative/auto; --all-variants adds none, mlp-lstsq, auto (cosine),
patched-kl, bi and iterative/linearpatch. --quality compares the steps of
issue 18 on iterative/auto: today's (candidates scored with LinearPatch,
dense least-squares fits), + kept-repair scoring, + sequential refit,
+ swap search, + distillation (small settings, --distill-samples).
--calib-samples and --eval-windows shrink the protocol (say so next to the
numbers). --model runs one model that is not a fixture (its calibration and
evaluation files named), with a dense row first. --device and --dtype go to
every prune and eval (the GPU machine: --device cuda --dtype float32, so the
numbers compare with the CPU's). Standard library only.
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

# Issue 18's steps, each on top of the previous: name -> (metric/patch, flags).
QUALITY_VARIANTS = {
    "today": ("iterative/auto", ["--score-repair", "linearpatch", "--refit", "dense"]),
    "+kept-scoring": ("iterative/auto", ["--refit", "dense"]),
    "+sequential-refit": ("iterative/auto", ["--refit", "sequential"]),
    "+swap-search": ("iterative/auto", ["--refit", "sequential", "--search", "swap"]),
}


def variant_command(args, variant):
    """(metric, patch, extra flags) of a variant name."""
    if variant in QUALITY_VARIANTS:
        spec, flags = QUALITY_VARIANTS[variant]
    elif variant.endswith("+distill"):
        metric, patch, base = variant_command(args, variant[:-len("+distill")])
        return metric, patch, base + ["--distill", "--distill-samples", str(args.distill_samples), "--val-samples",
                                      "4"]
    else:
        spec, flags = variant, []
    metric, patch = spec.split("/")
    return metric, patch, list(flags)


def device_flags(args):
    return (["--device", args.device] if args.device else []) + (["--dtype", args.dtype] if args.dtype else [])


def prune(args, model, calib, n, variant, out):
    metric, patch, flags = variant_command(args, variant)
    cmd = [args.binary, "-q", "prune", "--model", model, "--layers", str(n), "--calib", *calib, "--calib-samples",
           str(args.calib_samples), "--seq-len", "512", "--seed", str(args.seed), "--metric", metric, "--patch",
           patch, "--json", "--out", out, *flags, *device_flags(args)]
    start = time.time()
    report = run(cmd)
    return report, time.time() - start


def save(args, rows):
    """After every row, so a run stopped at a deadline keeps what it measured."""
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


def cells(ppl):
    return " | ".join(f"{ppl.get(t + '.visible', float('nan')):.2f}" for t in ["brown", "web", "kdocs"])


def reference_runs(args):
    """(name, model dir, n, calibration files, evaluation files, dense perplexities) of the reference files."""
    fixtures = os.path.join(args.shared, "fixtures")
    pairs = []
    if args.runs:
        pairs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs]
    else:
        for name in CALIB:
            ref = json.load(open(os.path.join(fixtures, "reference", f"{name}.json")))
            pairs += [(name, r["n"]) for r in ref["runs"]]
    runs = []
    for name, n in pairs:
        ref = json.load(open(os.path.join(fixtures, "reference", f"{name}.json")))
        texts = [os.path.join(fixtures, "text", f"{t}.txt") for t in ref["dense"]]
        calib = [os.path.join(fixtures, "text", f"{t}.calib.txt") for t in CALIB[name]]
        runs.append((name, os.path.join(fixtures, "models", name), n, calib, texts, ref["dense"]))
    return runs


def model_runs(args):
    if not (args.layers and args.calib and args.texts):
        raise SystemExit("--model needs --layers, --calib and --texts")
    name = os.path.basename(os.path.normpath(args.model))
    return [(name, args.model, n, args.calib, args.texts, None) for n in args.layers]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "src", "cli", "linearpatch"))
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    parser.add_argument("--runs", nargs="+", help="model:n pairs (default: every n of every reference)")
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--all-variants", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--quality", action="store_true", help="issue 18's variants (see above)")
    parser.add_argument("--distill", default="", help="with --quality: also this variant + distillation")
    parser.add_argument("--distill-samples", type=int, default=128)
    parser.add_argument("--calib-samples", type=int, default=128)
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--device", default="")
    parser.add_argument("--dtype", default="")
    parser.add_argument("--model", help="a model directory that is not a fixture (with --layers, --calib, --texts)")
    parser.add_argument("--layers", nargs="+", type=int, default=[])
    parser.add_argument("--calib", nargs="+", default=[])
    parser.add_argument("--texts", nargs="+", default=[])
    args = parser.parse_args()
    variants = args.variants or (ALL_VARIANTS if args.all_variants else BASE_VARIANTS)
    if args.quality and not args.variants:
        variants = list(QUALITY_VARIANTS) + ([args.distill + "+distill"] if args.distill else [])
    runs = model_runs(args) if args.model else reference_runs(args)
    rows = []
    print("| model | n | metric / repair | removed | repairs | " + " | ".join(["brown", "web", "kdocs"]) +
          " | prune s | selection + repair s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    if args.model:
        dense = evaluate(args.binary, args.model, args.texts, args.eval_windows, device_flags(args))
        print(f"| {os.path.basename(args.model)} | 0 | dense | [] | - | {cells(dense)} | - | - |", flush=True)
        rows.append({"model": os.path.basename(args.model), "n": 0, "variant": "dense", "ppl": dense})
        save(args, rows)
    for name, model, n, calib, texts, dense in runs:
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                report, seconds = prune(args, model, calib, n, variant, os.path.join(tmp, "out"))
                ppl = evaluate(args.binary, os.path.join(tmp, "out"), texts, args.eval_windows, device_flags(args))
            repairs = ",".join(g["repair"] + ("(refit)" if g.get("refit", {}).get("kept") == "sequential" else "")
                               for g in report["gaps"])
            row = {"model": name, "n": n, "variant": variant, "removed": report["removed"], "repairs": repairs,
                   "ppl": ppl, "seconds": seconds, "dense": dense, "timings": report.get("timings"),
                   "search": report.get("search"), "refit": [g.get("refit") for g in report["gaps"]],
                   "distill": report.get("distill")}
            rows.append(row)
            save(args, rows)
            phases = dict(report.get("timings") or {})
            chosen = phases.get("selection", 0) + phases.get("repair", 0)
            print(f"| {name} | {n} | {variant} | {report['removed']} | {repairs} | {cells(ppl)} | {seconds:.1f} | "
                  f"{chosen:.1f} |", flush=True)


if __name__ == "__main__":
    main()
