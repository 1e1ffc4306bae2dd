#!/usr/bin/env python3
"""Makes a multiple-choice task file of N rows out of a smaller one, for
throughput measurements (scripts/gpu_bench.sh scores it on the synthetic 8B
checkpoint, whose byte-level tokenizer takes any text).

  scripts/mc_rows.py IN.jsonl OUT.jsonl [--rows 1000] [--seed 0]

Rows are drawn in rounds, each round a fresh permutation of the input, and
a hellaswag row's endings are rotated by the round (the label follows), so
that repeated rows still differ. Other row formats are repeated as they are.
"""
import argparse
import json
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with open(args.input, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise SystemExit(f"{args.input}: no rows")
    rng = random.Random(args.seed)
    out = []
    round_index = 0
    while len(out) < args.rows:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in order[: args.rows - len(out)]:
            row = dict(rows[i])
            if "endings" in row and "label" in row:
                k = round_index % len(row["endings"])
                row["endings"] = row["endings"][k:] + row["endings"][:k]
                row["label"] = str((int(row["label"]) - k) % len(row["endings"]))
            out.append(row)
        round_index += 1
    with open(args.output, "w", encoding="utf-8") as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{args.output}: {len(out)} rows from {len(rows)}")


if __name__ == "__main__":
    main()
