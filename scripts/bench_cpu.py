#!/usr/bin/env python3
"""CPU benchmark of linearpatch (issues "Foundation" and "score and prune").

  scripts/bench_cpu.py [--model DIR] [--text FILE] [--calib FILE...] [--threads N] [--json out.json]

Measures, on one model (default: ../shared/fixtures/models/tiny-llama2-s):
  * the machine's float32 matmul rate at the model's shapes (lp_matmul_bench);
  * eval throughput (tokens/s) and the FLOP rate it implies, against that matmul rate;
  * prune --layers 2: time per phase and peak memory, compared with
    (one dense forward over the calibration tokens + reading and writing the checkpoint)
    and with (checkpoint size + activations of one batch + fixed overhead).
Each child's peak RSS comes from getrusage(RUSAGE_CHILDREN), one child at a time.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")


def run(cmd, env=None):
    """Runs one child; returns (stdout, wall seconds)."""
    start = time.perf_counter()
    child = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if child.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{child.stderr[-2000:]}")
    return child.stdout, time.perf_counter() - start


def peak_rss_of(cmd, env=None):
    """Runs `cmd` in a fresh process via wait4 to read its own peak RSS (MiB)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        out = os.open(os.devnull, os.O_WRONLY)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execvpe(cmd[0], cmd, env or os.environ)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024.0


def flops_per_token(shape, seq_len):
    c, f, v = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"]
    q, kv = shape["heads"] * shape["head_dim"], shape["kv_heads"] * shape["head_dim"]
    per_layer = 2 * (2 * c * q + 2 * c * kv + 3 * c * f)
    attention = 2 * 2 * seq_len * q  # scores and weighted sum, full T x T as computed
    return shape["num_layers"] * (per_layer + attention) + 2 * c * v


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(SHARED, "models", "tiny-llama2-s"))
    p.add_argument("--text", default=os.path.join(SHARED, "text", "kdocs.visible.txt"))
    p.add_argument("--calib", nargs="+", default=[os.path.join(SHARED, "text", f"{t}.calib.txt") for t in ("brown", "web", "kdocs")])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--json")
    a = p.parse_args()
    lp = os.path.join(a.build, "src", "cli", "linearpatch")
    bench = os.path.join(a.build, "tests", "bench", "lp_matmul_bench")
    threads = ["--threads", str(a.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    shape = json.loads(run([lp, "inspect", "--model", a.model, "--json"])[0])
    c, f, batch_tokens = shape["hidden_size"], shape["intermediate_size"], 4096
    matmul = [json.loads(run([bench, str(batch_tokens), str(k), str(n)], env)[0])["gflops"]
              for k, n in ((c, f), (f, c), (c, c))]
    peak_matmul = max(matmul)

    eval_windows = 64
    out, _ = run([lp, "eval", "--model", a.model, "--text", a.text, "--seq-len", str(a.seq_len), "--max-windows",
                  str(eval_windows), "--json", *threads], env)
    ev = json.loads(out)
    tokens_per_s = ev["windows"] * a.seq_len / ev["seconds"]
    achieved = tokens_per_s * flops_per_token(shape, a.seq_len) / 1e9

    # One dense forward over the calibration tokens (no statistics, no output).
    with tempfile.TemporaryDirectory() as tmp:
        calib_tokens_text = os.path.join(tmp, "calib.txt")
        with open(calib_tokens_text, "w") as out_file:
            for name in a.calib:
                out_file.write(open(name, encoding="utf-8", errors="replace").read() + "\n\n")
        out, _ = run([lp, "eval", "--model", a.model, "--text", calib_tokens_text, "--seq-len", str(a.seq_len),
                      "--max-windows", str(a.calib_samples), "--json", *threads], env)
        forward_s = json.loads(out)["seconds"]

        copy_start = time.perf_counter()
        shutil.copytree(a.model, os.path.join(tmp, "copy"))
        subprocess.run(["sync"])
        read_write_s = time.perf_counter() - copy_start

        report_path = os.path.join(tmp, "report.json")
        prune_s, prune_rss = peak_rss_of([lp, "prune", "--model", a.model, "--layers", "2", "--calib", *a.calib,
                                          "--calib-samples", str(a.calib_samples), "--seq-len", str(a.seq_len),
                                          "--out", os.path.join(tmp, "pruned"), "--report", report_path, *threads], env)
        report = json.load(open(report_path))
        checkpoint_mib = sum(os.path.getsize(os.path.join(a.model, n)) for n in os.listdir(a.model)) / 2**20
        _, idle_rss = peak_rss_of([lp, "inspect", "--model", a.model], env)

    result = {
        "model": a.model, "threads": a.threads, "seq_len": a.seq_len,
        "matmul_gflops": {"[4096,C]x[C,F]": matmul[0], "[4096,F]x[F,C]": matmul[1], "[4096,C]x[C,C]": matmul[2]},
        "eval": {"tokens_per_second": tokens_per_s, "gflops": achieved, "fraction_of_peak_matmul": achieved / peak_matmul},
        "prune": {"wall_seconds": prune_s, "phases": report["timings"], "peak_rss_mib": prune_rss,
                  "dense_forward_seconds": forward_s, "read_write_seconds": read_write_s,
                  "ratio_to_forward_plus_io": prune_s / (forward_s + read_write_s),
                  "checkpoint_mib": checkpoint_mib, "process_baseline_rss_mib": idle_rss},
    }
    print(json.dumps(result, indent=1))
    if a.json:
        json.dump(result, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
