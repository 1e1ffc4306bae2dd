#!/usr/bin/env python3
"""Sums the GPU kernel time of a Chrome trace (LINEARPATCH_PROFILE=FILE, or a
torch.profiler export) by kernel name and prints the top entries with their
share, plus totals for GEMMs, attention and the rest.

  scripts/trace_summary.py TRACE.json [--top 25]
"""
import argparse
import collections
import json


def category(name):
    lowered = name.lower()
    if "gemm" in lowered or "cutlass" in lowered or "nvjet" in lowered or "sm90_xmma" in lowered:
        return "matmul"
    if "flash" in lowered or "fmha" in lowered or "attention" in lowered or "sdpa" in lowered:
        return "attention"
    if "memcpy" in lowered or "memset" in lowered:
        return "copy"
    return "elementwise/other"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    events = json.load(open(args.trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    by_name, by_category, count = collections.Counter(), collections.Counter(), collections.Counter()
    intervals = []
    for e in events:
        if e.get("ph") != "X" or e.get("cat") not in ("kernel", "gpu_memcpy", "gpu_memset"):
            continue
        if e.get("cat") == "kernel":
            intervals.append((e["ts"], e["ts"] + e.get("dur", 0)))
        by_name[e["name"]] += e.get("dur", 0)
        by_category[category(e["name"])] += e.get("dur", 0)
        count[e["name"]] += 1
    total = sum(by_name.values()) or 1
    print(f"GPU time {total / 1e6:.3f} s in {sum(count.values())} kernels/copies")
    if intervals:
        # How much of the span from the first kernel to the last had a kernel running.
        intervals.sort()
        busy, end = 0.0, intervals[0][0]
        for a, b in intervals:
            if b > end:
                busy += b - max(a, end)
                end = b
        span = end - intervals[0][0]
        print(f"kernels busy {busy / 1e6:.3f} s of a {span / 1e6:.3f} s span ({100 * busy / max(span, 1):.1f} %)")
    for name, us in by_category.most_common():
        print(f"  {name:20} {us / 1e6:8.3f} s  {100 * us / total:5.1f} %")
    for name, us in by_name.most_common(args.top):
        print(f"{us / 1e6:8.3f} s {100 * us / total:5.1f} % x{count[name]:<6} {name[:110]}")


if __name__ == "__main__":
    main()
