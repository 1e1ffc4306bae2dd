#!/usr/bin/env python3
"""Checks linearpatch against the independent PyTorch reference results in
../shared/fixtures/reference/*.json (protocol in ../shared/README.md):
dense perplexity (within 0.5 %), the chosen block (the reference's, or in its
top three with a cosine gap under 0.002), LinearPatch perplexity (within
1.5 %), plain removal (within 1 %), and the written checkpoint's parameter
count (original - n layers + hidden^2).

  scripts/check_reference.py [--binary build/src/cli/linearpatch] [--models tiny-llama2-s demo-llama3-d]
                             [--layers 2 3] [--distill] [--json results.json]

Prints a Markdown table and exits non-zero when a check fails. Standard
library only: it drives the CLI like a user would.
"""
import argparse
import json
import os
import sys
import tempfile

from fixture_runs import CALIB, ROOT, evaluate, run





def within(ours, ref, tolerance):
    return abs(ours / ref - 1) <= tolerance


def check_model(args, name, rows):
    shared = os.path.join(args.shared, "fixtures")
    ref = json.load(open(os.path.join(shared, "reference", f"{name}.json")))
    model = os.path.join(shared, "models", name)
    texts = [os.path.join(shared, "text", f"{t}.txt") for t in ref["dense"]]
    calib = [os.path.join(shared, "text", f"{t}.calib.txt") for t in CALIB[name]]
    ok = True
    dense = evaluate(args.binary, model, texts)
    for text, ppl in dense.items():
        good = within(ppl, ref["dense"][text], 0.005)
        ok &= good
        rows.append((name, "dense", "-", text, ppl, ref["dense"][text], "0.5 %", good))

    hidden = ref["hidden"]
    shape = run([args.binary, "inspect", "--model", model, "--json"])
    # Everything outside the decoder layers: embeddings (and head), final norm.
    outside = shape["vocab_size"] * hidden * (1 if shape["tie_word_embeddings"] else 2) + hidden
    layer_params = (shape["parameters"] - outside) // shape["num_layers"]
    for run_ref in ref["runs"]:
        n = run_ref["n"]
        if args.layers and n not in args.layers:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            patched_dir, plain_dir = os.path.join(tmp, "patched"), os.path.join(tmp, "plain")
            cmd = [args.binary, "prune", "--model", model, "--layers", str(n), "--calib", *calib,
                   "--calib-samples", "128", "--seq-len", "512", "--seed", str(args.seed), "--json"]
            if args.distill:
                # The reference's recipe: batches of 8 windows (our default is 1).
                cmd += ["--distill", "--distill-samples", "1024", "--distill-batch-size", "8"]
            report = run(cmd + ["--out", patched_dir])
            start = report["start"]
            cos_all = {int(k): v for k, v in run_ref["cos_all"].items()}
            top3 = sorted(cos_all, key=lambda s: -cos_all[s])[:3]
            choice_ok = start == run_ref["start"] or (start in top3 and cos_all[run_ref["start"]] - cos_all[start] < 0.002)
            ok &= choice_ok
            rows.append((name, f"n={n} block", f"[{start}, {start + n})", "start", start, run_ref["start"],
                         "ref or top-3, gap < 0.002", choice_ok))
            params = report["parameters"]
            count_ok = params["after"] == params["before"] - n * layer_params + hidden * hidden
            rows.append((name, f"n={n} params", "", "after", params["after"], params["before"], "-n layers + C^2",
                         count_ok))
            ok &= count_ok
            if str(start) not in run_ref["blocks"]:
                rows.append((name, f"n={n}", "", "no reference perplexity for this block", 0, 0, "", False))
                ok = False
                continue
            block_ref = run_ref["blocks"][str(start)]
            key, tolerance = ("linearpatch_distill", 0.03) if args.distill else ("linearpatch", 0.015)
            expected = run_ref[key] if args.distill else block_ref[key]
            for text, ppl in evaluate(args.binary, patched_dir, texts).items():
                good = within(ppl, expected[text], tolerance) or (args.distill and ppl < expected[text])
                ok &= good
                rows.append((name, f"n={n} {key}", f"[{start}, {start + n})", text, ppl, expected[text],
                             f"{tolerance * 100:.1f} %", good))
            if args.distill:
                continue
            run([args.binary, "prune", "--model", model, "--layers", str(n), "--start", str(start), "--patch", "none",
                 "--json", "--out", plain_dir])
            for text, ppl in evaluate(args.binary, plain_dir, texts).items():
                good = within(ppl, block_ref["pruned"][text], 0.01)
                ok &= good
                rows.append((name, f"n={n} pruned", f"[{start}, {start + n})", text, ppl, block_ref["pruned"][text],
                             "1 %", good))
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "src", "cli", "linearpatch"))
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    parser.add_argument("--models", nargs="+", default=list(CALIB))
    parser.add_argument("--layers", nargs="+", type=int, default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", action="store_true", help="check linearpatch_distill instead")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    ok = all([check_model(args, name, rows) for name in args.models])
    print("| model | run | block | text | ours | reference | tolerance | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.4f} | {r[5]:.4f} | {r[6]} | {'yes' if r[7] else 'NO'} |"
              if isinstance(r[4], float) else
              f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} | {'yes' if r[7] else 'NO'} |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
