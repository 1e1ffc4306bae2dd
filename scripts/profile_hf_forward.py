#!/usr/bin/env python3
"""Profiles transformers' bf16 forward of a checkpoint on the GPU with
torch.profiler, for comparing its kernels with linearpatch's
(LINEARPATCH_PROFILE): random token windows, a warm-up batch, then
--batches profiled batches; writes a Chrome trace and prints the wall time
per batch.

  python3 scripts/profile_hf_forward.py MODEL --trace hf.json [--batch 8] [--seq-len 2048] [--batches 2]
"""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--trace", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=2)
    args = parser.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.to("cuda").eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batches = [torch.randint(vocab, (args.batch, args.seq_len), generator=generator).cuda()
               for _ in range(args.batches + 1)]
    with torch.no_grad():
        model(batches[0])  # warm-up: kernels chosen, memory allocated
        torch.cuda.synchronize()
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=activities) as profile:
            start = time.time()
            for ids in batches[1:]:
                model(ids)
            torch.cuda.synchronize()
            seconds = time.time() - start
    profile.export_chrome_trace(args.trace)
    tokens = args.batches * args.batch * args.seq_len
    print(f"transformers forward: {seconds / args.batches:.3f} s per batch of {args.batch} x {args.seq_len} "
          f"({tokens / seconds:.0f} tokens/s, profiled)")


if __name__ == "__main__":
    main()
