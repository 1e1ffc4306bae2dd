#!/usr/bin/env python3
"""Attention units vs MLP units vs whole layers, training-free (no repair),
chosen by --metric iterative, at equal parameters removed and at equal KV
cache kept (issue 20). Prints one markdown table row per run.

    scripts/compare_units.py --binary build/src/cli/linearpatch \
        --models ../shared/fixtures/models/demo-llama3-d ... --text ../shared/fixtures/text/brown.visible.txt

Per model with L layers and per-layer attention / MLP parameter counts A / M:
  layers      n whole layers (n = 2): n KV caches gone, n(A + M) parameters;
  attention   n attention units: the same KV cache kept;
  attention   round(n(A + M) / A) attention units: about the same parameters;
  mlp         round(n(A + M) / M) MLP units: about the same parameters (no KV cache freed).
"""
import argparse
import json
import pathlib
import subprocess
import tempfile


def sizes(model):
    c = json.loads((pathlib.Path(model) / "config.json").read_text())
    C, F, h = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    kv, d = c.get("num_key_value_heads", h), c.get("head_dim", C // h)
    return c["num_hidden_layers"], C * h * d * 2 + C * kv * d * 2 + C, 3 * C * F + C


def run(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--calib-samples", default="16")
    p.add_argument("--seq-len", default="256")
    p.add_argument("--eval-windows", default="16")
    a = p.parse_args()
    evaluate = lambda m: run([a.binary, "eval", "--model", m, "--text", a.text, "--seq-len", a.seq_len,
                              "--max-windows", a.eval_windows, "--json"])
    print("| model | unit | n | parameters removed | KV cache kept | ppl | prune s |")
    print("|---|---|---|---|---|---|---|")
    for model in a.models:
        L, A, M = sizes(model)
        n = a.layers
        dense = evaluate(model)
        name = pathlib.Path(model).name
        print(f"| {name} | dense | 0 | 0 | {L}/{L} | {ppl_of(dense):.2f} | |", flush=True)
        for unit, count in (("layer", n), ("attention", n), ("attention", round(n * (A + M) / A)),
                            ("mlp", round(n * (A + M) / M))):
            with tempfile.TemporaryDirectory() as tmp:
                out = pathlib.Path(tmp) / "out"
                report = run([a.binary, "prune", "--model", model, "--unit", unit, "--layers", str(count),
                              "--metric", "iterative", "--patch", "none", "--calib-samples", a.calib_samples,
                              "--seq-len", a.seq_len, "--no-fsync", "-o", str(out), "--json"])
                kv_gone = len(report["removed"]) + sum(1 for s in report.get("removed_sublayers", [])
                                                       if s["sublayer"] == "attention")
                removed = report["parameters"]["removed"]
                print(f"| {name} | {unit} | {count} | {removed} | {L - kv_gone}/{L} | {ppl_of(evaluate(str(out))):.2f} "
                      f"| {report['timings']['total']:.1f} |", flush=True)


def ppl_of(report):
    return report["texts"][0]["ppl"]


if __name__ == "__main__":
    main()
