#!/usr/bin/env python3
"""CPU distillation throughput on the two fixture models (issue "Distill the
patch"): tokens per second and the share of time spent in the teacher, the
frozen prefix (layers before the gap) and the student's forward + backward.

  scripts/bench_distill_cpu.py [--threads N] [--samples 64] [--json out.json]

Each model is pruned as in the reference protocol (demo: 3 layers, tiny: 5)
and distilled on --samples windows of 512 tokens (batch 8, top-100).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
MODELS = {"demo-llama3-d": (3, ["brown", "web"]), "tiny-llama2-s": (5, ["brown", "web", "kdocs"])}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "src", "cli", "linearpatch"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--json")
    a = p.parse_args()
    rows = {}
    for name, (layers, calib) in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            report_path = os.path.join(tmp, "report.json")
            cmd = [a.binary, "-q", "prune", "-m", os.path.join(FIXTURES, "models", name), "--layers", str(layers),
                   "--calib", *[os.path.join(FIXTURES, "text", f"{t}.calib.txt") for t in calib],
                   "--calib-samples", "16", "--seq-len", "512", "--distill", "--distill-samples", str(a.samples),
                   "--val-samples", "4", "--threads", str(a.threads), "--no-fsync",
                   "--out", os.path.join(tmp, "out"), "--report", report_path]
            result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if result.returncode != 0:
                sys.exit(f"failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")
            d = json.load(open(report_path))["distill"]
        s = d["seconds"]
        parts = {k: s[k] / s["total"] for k in ("teacher", "frozen_prefix", "student_forward_backward")}
        rows[name] = {"layers_removed": layers, "windows": a.samples, "tokens_per_second": d["tokens_per_second"],
                      "seconds": s, "share": parts, "val_kl": [d["val_kl_before"], d["val_kl_after"]]}
        print(f"{name}: {d['tokens_per_second']:.0f} tokens/s; teacher {parts['teacher']:.0%}, "
              f"frozen prefix {parts['frozen_prefix']:.0%}, student fwd+bwd {parts['student_forward_backward']:.0%} "
              f"of {s['total']:.1f} s; val KL {d['val_kl_before']:.4f} -> {d['val_kl_after']:.4f}")
    if a.json:
        json.dump({"threads": a.threads, "models": rows}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
