"""What scripts/check_reference.py and scripts/compare_choices.py share: the
fixture models' calibration texts and running the CLI for its JSON.
Standard library only."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The calibration texts each model was trained on (its training.json "sources").
CALIB = {"tiny-llama2-s": ["brown", "web", "kdocs"], "demo-llama3-d": ["brown", "web"],
         "mistral-m": ["brown", "web", "kdocs"], "qwen2-q": ["brown", "web", "kdocs"],
         "qwen3-q": ["brown", "web", "kdocs"]}


def run(cmd):
    """Runs a linearpatch command and returns its JSON; exits with its error otherwise."""
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def evaluate(binary, model_dir, texts, windows=64, extra=()):
    """Perplexity per text (name without .txt) under the reference protocol: 64 windows of 512 tokens."""
    out = run([binary, "-q", "eval", "--model", model_dir, "--seq-len", "512", "--max-windows", str(windows), "--json",
               "--text", *texts, *extra])
    return {os.path.basename(t["text"]).replace(".txt", ""): t["ppl"] for t in out["texts"]}
