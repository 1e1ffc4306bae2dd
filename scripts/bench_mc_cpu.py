#!/usr/bin/env python3
"""CPU benchmark of zero-shot multiple-choice scoring (issue "Zero-shot accuracy").

  scripts/bench_mc_cpu.py [--model DIR] [--tasks DIR] [--text FILE] [--threads N] [--json out.json]

On one model (default: ../shared/fixtures/models/demo-llama3-d) measures
  * `eval --task` on every fixture task (../shared/fixtures/mc/tasks, 150 rows each):
    rows/s, tokens read per second, and the padding the batches carry;
  * `eval --text` on the same model (64 windows of 512 tokens): perplexity tokens/s,
so the two throughputs can be compared (both are forward passes; scoring reads
shorter sequences and sends only the continuation positions through the head).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")


def run(cmd, env):
    child = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if child.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{child.stderr[-2000:]}")
    return json.loads(child.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(SHARED, "models", "demo-llama3-d"))
    p.add_argument("--tasks", default=os.path.join(SHARED, "mc", "tasks"))
    p.add_argument("--text", default=os.path.join(SHARED, "text", "brown.visible.txt"))
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json")
    a = p.parse_args()
    lp = os.path.join(a.build, "src", "cli", "linearpatch")
    threads = ["--threads", str(a.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    names = sorted(f[:-len(".jsonl")] for f in os.listdir(a.tasks) if f.endswith(".jsonl"))
    task_args = [arg for name in names for arg in ("--task", f"{name}={os.path.join(a.tasks, name + '.jsonl')}")]
    mc = run([lp, "-q", "eval", "--model", a.model, *task_args, "--json", *threads], env)
    ppl = run([lp, "-q", "eval", "--model", a.model, "--text", a.text, "--seq-len", "512", "--max-windows", "64",
               "--json", *threads], env)

    tasks = {}
    for name, t in mc["tasks"].items():
        tasks[name] = {"rows": t["rows"], "rows_per_second": t["rows_per_second"],
                       "tokens_per_second": t["tokens"] / t["seconds"],
                       "padding_overhead": t["padded_tokens"] / t["tokens"] - 1}
    seconds = sum(t["seconds"] for t in mc["tasks"].values())
    tokens = sum(t["tokens"] for t in mc["tasks"].values())
    rows = sum(t["rows"] for t in mc["tasks"].values())
    result = {
        "model": a.model, "threads": a.threads, "tasks": tasks,
        "all_tasks": {"rows": rows, "rows_per_second": rows / seconds, "tokens_per_second": tokens / seconds},
        "perplexity": {"tokens_per_second": ppl["tokens_per_second"], "seq_len": 512, "windows": ppl["windows"]},
    }
    print(json.dumps(result, indent=1))
    if a.json:
        json.dump(result, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
