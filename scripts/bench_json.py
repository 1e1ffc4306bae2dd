#!/usr/bin/env python3
"""Turns the reports of one scripts/gpu_bench.sh run into h200.json, the
machine-readable record of the run (docs/benchmarks/h200.json keeps the
latest), and bench_reports.json, every tool's own report.

  scripts/bench_json.py REPORTS_DIR --out h200.json [--raw bench_reports.json]
      [--commit SHA] [--device DEV] [--job TEXT] [--budget SIZE] [--failed STEP ...] [--note TEXT]

REPORTS_DIR holds what gpu_bench.sh wrote: synth.json, disk.json (dd
conv=fdatasync), linearpatch.json (fsync), linearpatch_nofsync.json,
linearpatch_budget.json (--no-fsync --max-gpu-memory), python.json
(scripts/python_baseline.py), distill.json, iterative.json (--metric
iterative, 8 layers), eval.json (perplexity and multiple-choice
throughput); any may be missing, and what it would give is
then null. Wall times are process wall times (start-up included); the
Python baseline's leaves out the phases it times beside its pipeline (plain
forward, distillation steps), python_process_wall_s keeps them.
"""
import argparse
import datetime
import json
import os

DISTILL_TOKENS = 5000 * 2048
PYTHON_EXTRA_PHASES = ("plain_forward", "teacher_top_k", "distill_warmup", "distill_step")


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def get(report, *keys):
    for key in keys:
        if not isinstance(report, dict) or key not in report:
            return None
        report = report[key]
    return report


def ratio(a, b):
    return a / b if a is not None and b else None


def total(*values):
    return None if any(v is None for v in values) else sum(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports")
    parser.add_argument("--out", required=True)
    parser.add_argument("--raw")
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--job", default="")
    parser.add_argument("--budget", default="")
    parser.add_argument("--failed", nargs="*", default=[])
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()

    names = ("synth", "disk", "linearpatch", "linearpatch_nofsync", "linearpatch_budget", "python", "distill", "iterative",
             "eval")
    r = {name: load(args.reports, name) for name in names}
    ours, nofsync, budget, python = r["linearpatch"], r["linearpatch_nofsync"], r["linearpatch_budget"], r["python"]

    distill_tps = get(r["distill"], "distill", "tokens_per_second")
    disk_rate = get(r["disk"], "durable_mb_per_s")
    written = get(ours, "bytes") or get(nofsync, "bytes")
    # What the job cannot go below: reading the checkpoint (our load), one
    # plain bf16 forward over the calibration tokens (transformers, no
    # hooks), and writing the output at the disk's durable rate.
    floor = {
        "read_s": get(nofsync, "timings", "load"),
        "forward_s": get(python, "timings", "plain_forward"),
        "durable_write_s": written / 1e6 / disk_rate if written and disk_rate else None,
    }
    floor["total_s"] = total(*floor.values())
    task = next(iter((get(r["eval"], "tasks") or {}).values()), None)
    # The baseline's process also times what is not part of its pipeline
    # (a plain forward, the distillation steps); its wall time leaves them out.
    python_wall = get(python, "process_wall_seconds")
    if python_wall is not None:
        python_wall -= sum(get(python, "timings", k) or 0 for k in PYTHON_EXTRA_PHASES)

    record = {
        "commit": args.commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "gpu": get(python, "device"),
        "torch": get(python, "torch"),
        "transformers": get(python, "transformers"),
        "job": args.job,
        "checkpoint": {k: get(r["synth"], k) for k in ("shape", "parameters", "bytes", "seconds")},
        "prune_wall_s": get(ours, "process_wall_seconds"),
        "prune_wall_s_no_fsync": get(nofsync, "process_wall_seconds"),
        "prune_wall_s_budget": get(budget, "process_wall_seconds"),
        "budget": args.budget or None,
        "python_wall_s": python_wall,
        "python_process_wall_s": get(python, "process_wall_seconds"),
        "python_phases_s": get(python, "timings", "total"),
        "calibration_s": get(ours, "timings", "calibration"),
        "python_calibration_s": get(python, "timings", "calibration"),
        "python_plain_forward_s": get(python, "timings", "plain_forward"),
        "distill_tokens_per_second": distill_tps,
        "distill_minutes_5000x2048": DISTILL_TOKENS / distill_tps / 60 if distill_tps else None,
        "distill_seconds": get(r["distill"], "distill", "seconds"),
        "iterative_wall_s": get(r["iterative"], "process_wall_seconds"),
        "iterative": {"layers": get(r["iterative"], "n"), "removed": get(r["iterative"], "removed"),
                      "timings": get(r["iterative"], "timings")} if r["iterative"] else None,
        "streaming_slowdown": ratio(get(budget, "process_wall_seconds"), get(nofsync, "process_wall_seconds")),
        "write": {
            "bytes": written,
            "copy_s": get(ours, "timings", "write_copy"),
            "sync_s": get(ours, "timings", "write_sync"),
            "total_s": get(ours, "timings", "write"),
            "durable_mb_per_s": get(ours, "write", "mb_per_s"),
            "no_fsync_mb_per_s": get(nofsync, "write", "mb_per_s"),
            "disk_durable_mb_per_s": disk_rate,
            "filesystem": get(r["disk"], "filesystem"),
        },
        "floor": floor,
        "prune_over_floor": ratio(get(ours, "process_wall_seconds"), floor["total_s"]),
        "perplexity_tokens_per_second": get(r["eval"], "tokens_per_second"),
        "mc": {k: get(task, k) for k in ("file", "rows", "rows_per_second", "tokens", "padded_tokens", "seconds")}
        if task else None,
        "phases": {name: get(r[name], "timings")
                   for name in ("linearpatch", "linearpatch_nofsync", "linearpatch_budget", "python") if r[name]},
        "block": {name: [get(r[name], "start"), get(r[name], "end")]
                  for name in ("linearpatch", "linearpatch_nofsync", "linearpatch_budget", "python") if r[name]},
        "peak_gpu_mib": {name: get(r[name], "peak_gpu_mib")
                         for name in ("linearpatch", "linearpatch_nofsync", "linearpatch_budget", "python") if r[name]},
        "peak_rss_mib": {name: get(r[name], "peak_rss_mib")
                         for name in ("linearpatch", "linearpatch_nofsync", "linearpatch_budget", "python") if r[name]},
        "failed": args.failed,
        "notes": args.note,
    }
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({name: report for name, report in r.items() if report is not None}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
