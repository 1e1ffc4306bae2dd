#!/usr/bin/env python3
"""Prints the Markdown table of docs/benchmarks.md from an h200.json written by
scripts/gpu_bench.sh (scripts/bench_json.py): the phases of linearpatch (with
fsync, without, under a GPU memory budget) and of the Python baseline side by
side, then the run's headline numbers against the issue's targets.

  scripts/bench_table.py docs/benchmarks/h200.json
"""
import argparse
import json


def fmt(value, digits=2):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}".replace(",", " ")
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def phase(timings, *keys):
    values = [timings[k] for k in keys if timings and k in timings]
    return sum(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("h200_json")
    args = parser.parse_args()
    with open(args.h200_json) as f:
        h = json.load(f)

    columns = [("linearpatch", "linearpatch"), ("linearpatch_nofsync", "linearpatch `--no-fsync`"),
               ("linearpatch_budget", f"linearpatch `--no-fsync --max-gpu-memory {h.get('budget')}`"),
               ("python", "Python + transformers")]
    columns = [(key, title) for key, title in columns if key in h["phases"]]
    wall = {"linearpatch": h["prune_wall_s"], "linearpatch_nofsync": h["prune_wall_s_no_fsync"],
            "linearpatch_budget": h["prune_wall_s_budget"], "python": h["python_wall_s"]}
    write = h["write"]
    rate = {"linearpatch": write["durable_mb_per_s"], "linearpatch_nofsync": write["no_fsync_mb_per_s"]}
    rows = [
        ("load", lambda k, t: phase(t, "load")),
        ("tokenize", lambda k, t: phase(t, "tokenize")),
        ("calibration (forward + statistics)", lambda k, t: phase(t, "calibration")),
        ("one plain bf16 forward, no statistics", lambda k, t: phase(t, "plain_forward")),
        ("selection + patch", lambda k, t: phase(t, "selection", "repair", "emit", "select_patch", "prune")),
        ("write", lambda k, t: phase(t, "write")),
        ("&nbsp;&nbsp;copy", lambda k, t: phase(t, "write_copy")),
        ("&nbsp;&nbsp;waiting for the disk (fsync)", lambda k, t: phase(t, "write_sync")),
        ("total of phases", lambda k, t: phase(t, "total")),
        ("process wall time (Python: without the phases it times beside its pipeline)", lambda k, t: wall[k]),
        ("write rate (MB/s)", lambda k, t: rate.get(k)),
        ("peak GPU memory (MiB)", lambda k, t: h["peak_gpu_mib"].get(k)),
        ("peak RSS (MiB)", lambda k, t: h["peak_rss_mib"].get(k)),
        ("block chosen", lambda k, t: "[{}, {})".format(*h["block"][k]) if h["block"].get(k) else None),
    ]
    print(f"Commit {h['commit'][:12]}, {h['date']}; {h.get('gpu') or h['device']}; job: {h['job']}.")
    print()
    if columns:
        print("| phase (s) | " + " | ".join(title for _, title in columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for label, get in rows:
            cells = [get(key, h["phases"][key]) for key, _ in columns]
            if any(c is not None for c in cells):
                digits = 0 if "MiB" in label or "MB/s" in label else 2
                print(f"| {label} | " + " | ".join(fmt(c, digits) for c in cells) + " |")
        print()

    floor = h["floor"]
    mc = h.get("mc") or {}

    def n(value, digits=2):
        return fmt(value, digits) if value is not None else "n/a"

    # (the number a line is about, the line): lines whose number is missing are left out.
    lines = [
        (h["prune_wall_s"], f"prune wall, default (fsync): **{n(h['prune_wall_s'])} s** (target ≤ 20)"),
        (h["prune_wall_s_no_fsync"], f"prune wall, `--no-fsync`: **{n(h['prune_wall_s_no_fsync'])} s** (target ≤ 13)"),
        (h["python_wall_s"], f"Python + transformers wall: **{n(h['python_wall_s'])} s** "
                             f"({n(h['python_phases_s'])} s of phases; {n(h['python_process_wall_s'])} s with the "
                             f"plain forward and distillation steps it also times)"),
        (write["copy_s"], f"write: copy {n(write['copy_s'])} s + waiting for the disk {n(write['sync_s'])} s for "
                          f"{n((write['bytes'] or 0) / 1e9)} GB: **{n(write['durable_mb_per_s'], 0)} MB/s durable**; "
                          f"the disk alone (dd conv=fdatasync): {n(write['disk_durable_mb_per_s'], 0)} MB/s "
                          f"({write['filesystem'] or '?'})"),
        (floor["total_s"], f"floor, read + plain forward + durable write: {n(floor['read_s'])} + {n(floor['forward_s'])} + "
                           f"{n(floor['durable_write_s'])} = **{n(floor['total_s'])} s**; prune (fsync) / floor = "
                           f"**{n(h['prune_over_floor'])}**"),
        (h["calibration_s"], f"calibration: ours {n(h['calibration_s'])} s, transformers with hooks "
                             f"{n(h['python_calibration_s'])} s, its plain forward {n(h['python_plain_forward_s'])} s"),
        (h["streaming_slowdown"], f"streaming slowdown (budget wall / resident wall, both `--no-fsync`): "
                                  f"**{n(h['streaming_slowdown'])}×**"),
        (h["distill_tokens_per_second"], f"distillation: {n(h['distill_tokens_per_second'], 0)} tokens/s → 5 000 × 2 048 "
                                         f"tokens in **{n(h['distill_minutes_5000x2048'], 1)} min**"),
        (h.get("iterative_wall_s"), f"`--metric iterative`, {n((h.get('iterative') or {}).get('layers'), 0)} layers: "
                                    f"**{n(h.get('iterative_wall_s'))} s** (target ≤ 60)"),
        (h["perplexity_tokens_per_second"], f"perplexity: **{n(h['perplexity_tokens_per_second'], 0)} tokens/s**"),
        (mc.get("rows_per_second"), f"multiple choice: **{n(mc.get('rows_per_second'), 1)} rows/s** "
                                    f"({n(mc.get('rows'))} hellaswag-style rows, {n(mc.get('tokens'))} tokens)"),
    ]
    for value, line in lines:
        if value is not None:
            print(f"* {line}")
    for note in h.get("notes") or []:
        print(f"* note: {note}")
    if h.get("failed"):
        print(f"* failed or skipped: {', '.join(h['failed'])}")


if __name__ == "__main__":
    main()
