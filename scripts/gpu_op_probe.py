#!/usr/bin/env python3
"""Times, on the GPU machine, the few PyTorch-level choices behind
linearpatch's decoder forward and distillation step at the LLaMA-3-8B shape
(bf16, one batch of 8 x 2048 tokens), so that a change to the C++ forward is
chosen from measurements rather than guessed; the same kernels are what
libtorch runs. About 15 s of device time. Prints one line per variant
(median of CUDA-event timings) and which fused operators this PyTorch has.

  python3 scripts/gpu_op_probe.py [--tokens 16384]
"""
import argparse
import statistics

import torch


def timed(fn, repeat=20, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=8 * 2048)
    args = parser.parse_args()
    dev, bf = "cuda", torch.bfloat16
    C, F, q_dim, kv_dim, V, N = 4096, 14336, 4096, 1024, 128256, args.tokens
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {N} tokens")
    for op in ("rms_norm", "_fused_rms_norm", "_fused_rms_norm_backward"):
        print(f"aten::{op}: {'yes' if hasattr(torch.ops.aten, op) else 'no'}")
    x = torch.randn(N, C, device=dev, dtype=bf)
    wq, wk, wv = (torch.randn(d, C, device=dev, dtype=bf) * 0.02 for d in (q_dim, kv_dim, kv_dim))
    wqkv = torch.cat([wq, wk, wv])
    wg, wu = (torch.randn(F, C, device=dev, dtype=bf) * 0.02 for _ in range(2))
    wgu = torch.cat([wg, wu])
    lin = torch.nn.functional.linear
    rows = []
    rows.append(("q, k, v: 3 products", timed(lambda: (lin(x, wq), lin(x, wk), lin(x, wv)))))
    rows.append(("q, k, v: 1 fused product", timed(lambda: lin(x, wqkv))))
    rows.append(("gate, up: 2 products + silu*mul",
                 timed(lambda: torch.nn.functional.silu(lin(x, wg)) * lin(x, wu))))
    rows.append(("gate, up: 1 fused product + silu*mul on halves",
                 timed(lambda: (lambda gu: torch.nn.functional.silu(gu[:, :F]) * gu[:, F:])(lin(x, wgu)))))
    w = torch.randn(C, device=dev, dtype=bf)

    def rms_manual():
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(bf)

    rows.append(("RMSNorm as transformers (8 kernels)", timed(rms_manual)))
    if hasattr(torch.nn.functional, "rms_norm"):
        rows.append(("RMSNorm torch.nn.functional.rms_norm", timed(lambda: torch.nn.functional.rms_norm(x, (C,), w, 1e-5))))
    head = torch.randn(V, C, device=dev, dtype=bf) * 0.02
    h = torch.randn(2048, C, device=dev, dtype=bf)
    rows.append(("head 2048 tokens, float32 logits + top-100", timed(lambda: torch.topk(lin(h, head).float(), 100, -1))))
    rows.append(("head 2048 tokens, bf16 logits + top-100", timed(lambda: torch.topk(lin(h, head), 100, -1))))
    a, b = x.clone(), x.clone()
    rows.append(("residual add (one elementwise kernel, reference)", timed(lambda: a + b)))
    for name, ms in rows:
        print(f"{name:52} {ms:8.3f} ms")


if __name__ == "__main__":
    main()
