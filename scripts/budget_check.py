#!/usr/bin/env python3
"""Checks `prune`'s depth budget against fixed-depth runs, in one run:

  curve   a budgeted run to depth N whose limit never binds reports the same
          removed layers and held-out figures (within 0.5 %) as `--layers k`
          runs with the same options, for every k on its curve;
  cost    the budgeted run to depth N against a fixed `--layers N` run
          (total wall time; each run twice, the faster kept);
  unseen  (--eval-text) a budgeted prune whose written model is then
          evaluated against the dense one on text the budget never saw.

Exits 1 when a check fails. Standard library only.

  scripts/budget_check.py --model data/models/demo-llama3-d --metric iterative --depth 3
  scripts/budget_check.py --model ../shared/fixtures/models/qwen3-q --calib T.txt \\
      --max-ppl-ratio 1.3 --eval-text V.txt
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, expect=0):
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != expect:
        sys.exit(f"exit {result.returncode} (expected {expect}): {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return json.loads(result.stdout) if result.stdout.strip() else None


def total_seconds(report):
    return report["timings"]["total"]


def close(a, b, tolerance=0.005):
    return abs(a - b) <= tolerance * abs(b)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "linearpatch"))
    p.add_argument("--model", default=os.path.join(ROOT, "data", "models", "demo-llama3-d"))
    p.add_argument("--calib", nargs="+", default=[os.path.join(ROOT, "data", "text", "brown.calib.txt")])
    p.add_argument("--metric", default="iterative")
    p.add_argument("--patch", default="linearpatch")
    p.add_argument("--depth", type=int, default=3, help="N: the budgeted run's deepest depth")
    p.add_argument("--calib-samples", default="16")
    p.add_argument("--held-out-samples", default="4")
    p.add_argument("--seq-len", default="128")
    p.add_argument("--max-ppl-ratio", type=float, help="unseen check: the budget")
    p.add_argument("--eval-text", nargs="+", help="unseen check: text the written model is evaluated on")
    p.add_argument("--no-cost", action="store_true", help="skip the cost comparison")
    a = p.parse_args()
    common = [a.binary, "-q", "prune", "--model", a.model, "--calib", *a.calib, "--calib-samples", a.calib_samples,
              "--held-out-samples", a.held_out_samples, "--seq-len", a.seq_len, "--metric", a.metric,
              "--patch", a.patch, "--no-fsync", "--json"]
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        out = lambda name: ["--out", os.path.join(tmp, name), "--force"]
        if a.eval_text:
            limit = a.max_ppl_ratio or 1.25
            budgeted = run(common + ["--max-ppl-ratio", str(limit)] + out("unseen"))
            b = budgeted["budget"]
            held = budgeted["held_out"]["ppl_ratio"]
            ev = run([a.binary, "-q", "eval", "--model", os.path.join(tmp, "unseen"), "--baseline", a.model,
                      "--seq-len", a.seq_len, "--max-windows", "32", "--json", "--text", *a.eval_text])
            print(f"unseen: {os.path.basename(os.path.normpath(a.model))}, {a.metric}, max ppl ratio {limit}: "
                  f"{b['chosen_layers']} of {budgeted['num_layers']} layers removed {budgeted['removed']} "
                  f"(bound by {b['bound_by']}, {len(budgeted['curve'])} depths tried); "
                  f"held-out ratio {held:.4f}; on {', '.join(os.path.basename(t) for t in a.eval_text)}: "
                  f"ratio {ev['ppl_ratio']:.4f}, KL {ev['mean_kl']:.4f}")
            for point in budgeted["curve"]:
                print(f"  depth {point['layers']}: removed {point['removed']}, held-out ratio "
                      f"{point['held_out_ppl_ratio']:.4f}, KL {point['held_out_kl']:.5f}")
            return 0

        budget = common + ["--layers", str(a.depth), "--max-kl", "1e9"]
        curve_run = run(budget + out("budget"))
        assert curve_run["budget"]["chosen_layers"] == a.depth, curve_run["budget"]
        print(f"curve: {a.metric} to depth {a.depth} on {os.path.basename(os.path.normpath(a.model))}, "
              f"{a.calib_samples} windows of {a.seq_len} tokens, {a.held_out_samples} held out")
        for point in curve_run["curve"]:
            k = point["layers"]
            fixed = run(common + ["--layers", str(k)] + out(f"fixed{k}"))
            same = fixed["removed"] == point["removed"]
            ratio_ok = close(point["held_out_ppl_ratio"], fixed["held_out"]["ppl_ratio"])
            kl_ok = close(point["held_out_kl"], fixed["held_out"]["kl"])
            failed |= not (same and ratio_ok and kl_ok)
            print(f"  depth {k}: removed {point['removed']} vs fixed {fixed['removed']}; ppl ratio "
                  f"{point['held_out_ppl_ratio']:.6f} vs {fixed['held_out']['ppl_ratio']:.6f}; KL "
                  f"{point['held_out_kl']:.6f} vs {fixed['held_out']['kl']:.6f}: "
                  f"{'ok' if same and ratio_ok and kl_ok else 'DIFFERENT'}")
        if not a.no_cost:
            fixed_n = common + ["--layers", str(a.depth)]
            times = {"fixed": [], "budget": []}
            for _ in range(2):
                times["fixed"].append(total_seconds(run(fixed_n + out("cost_fixed"))))
                times["budget"].append(total_seconds(run(budget + out("cost_budget"))))
            ratio = min(times["budget"]) / min(times["fixed"])
            failed |= ratio > 1.2
            print(f"cost: fixed --layers {a.depth} {min(times['fixed']):.2f} s, budgeted to depth {a.depth} "
                  f"{min(times['budget']):.2f} s (best of 2 each): {ratio:.3f}x {'ok' if ratio <= 1.2 else 'OVER 1.2x'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
