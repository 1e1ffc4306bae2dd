#!/usr/bin/env python3
"""LinearPatch the way a user would do it without linearpatch: PyTorch + HF transformers.

The baseline that `linearpatch prune` is timed against (scripts/gpu_bench.sh). It runs
the same method in one calibration pass over the unpruned model, loaded in bf16:

  1. load      AutoModelForCausalLM.from_pretrained(dir, dtype=bfloat16).to(device); the
               checkpoint is expected in the page cache (gpu_bench.sh has just written it)
  2. tokenize  --calib files joined with "\\n\\n", one BOS in front; windows of --seq-len
               tokens at random offsets (--seed). Without --calib: uniformly random token ids
               (for synthetic checkpoints, whose weights do not care what the text says)
  3. calibrate forward pre-hooks on every decoder layer and on the final norm (X^(0..L));
               per window: per-token cosine over the hidden dimension between X^(l) and
               X^(l+n), and the per-channel mean |X^(l) H| of every layer input (H the
               normalised Sylvester Hadamard matrix, one dense matmul in the model dtype,
               as the authors' code does)
  4. select    start = argmax over 1 <= l, l+n <= L-1 of the mean cosine
     patch     d_k = mean over windows of mean_t |X^(l+n)H|_k / mean_t |X^(l)H|_k,
               P = H diag(d) H^T (fp32)
  5. prune     del model.model.layers[start:start+n], renumber layer_idx, fix the config;
               P attached as model.linear_patches.<start>.weight with a "linearpatch"
               config entry, the format linearpatch itself reads
  6. write     save_pretrained(out, max_shard_size="5GB") plus the tokenizer files

Also timed, outside the pipeline total: one plain forward over the same calibration
tokens without hooks (the floor for step 3), and one distillation step of the paper's
recipe: AdamW (lr 1e-4, wd 1e-4) on the [C, C] fp32 patch in the pruned model, KL to
the dense model's top-100 logits over one 2048-token window.

Every phase is timed with torch.cuda.synchronize() around it. Prints one JSON object.
Power-of-two hidden sizes only (Sylvester Hadamard).
"""
import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import time

import torch
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--out", required=True, help="output directory (replaced if it exists)")
    p.add_argument("--layers", type=int, default=5, help="layers to remove")
    p.add_argument("--calib", nargs="*", default=[], help="calibration text files; none: random token ids")
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--distill-steps", type=int, default=3, help="timed AdamW steps (after one warm-up); 0 skips")
    p.add_argument("--distill-tokens", type=int, default=2048)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--report", help="also write the JSON here")
    return p.parse_args()


class Timer:
    """Wall-clock phases, with the device synchronised at both ends of each."""

    def __init__(self, device):
        self.device = device
        self.seconds = {}

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name):
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def hadamard(n, device):
    if n & (n - 1):
        raise SystemExit(f"hidden size {n} is not a power of two; this baseline builds only Sylvester Hadamard matrices")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return (h / n**0.5).to(device=device, dtype=torch.float32)


def calibration_windows(args, tokenizer, vocab_size):
    rng = random.Random(args.seed)
    if not args.calib:
        gen = torch.Generator().manual_seed(args.seed)
        return torch.randint(0, vocab_size, (args.samples, args.seq_len), generator=gen), "random token ids"
    text = "\n\n".join(open(path, encoding="utf-8").read() for path in args.calib)
    ids = tokenizer(text, add_special_tokens=True, return_tensors="pt").input_ids[0]
    if ids.numel() < args.seq_len + 1:
        raise SystemExit(f"{ids.numel()} calibration tokens, fewer than one window of {args.seq_len}")
    offsets = [rng.randrange(0, ids.numel() - args.seq_len + 1) for _ in range(args.samples)]
    return torch.stack([ids[o : o + args.seq_len] for o in offsets]), f"{ids.numel()} tokens of {len(args.calib)} files"


def hidden_of(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def calibrate(model, windows, n, H, batch_size, device):
    """Mean per-token cosine of X^(l), X^(l+n) for every l, and per-window mean |X^(l) H|."""
    layers = model.model.layers
    L = len(layers)
    inputs = [None] * (L + 1)

    def keep(index):
        def hook(module, args, kwargs):
            inputs[index] = hidden_of(args, kwargs).detach()

        return hook

    handles = [layer.register_forward_pre_hook(keep(i), with_kwargs=True) for i, layer in enumerate(layers)]
    handles.append(model.model.norm.register_forward_pre_hook(keep(L), with_kwargs=True))
    cos_sum = torch.zeros(L + 1 - n, dtype=torch.float64, device=device)
    channel_means = []  # per window: [L + 1, C] fp32
    H_model = H.to(model.dtype)
    try:
        with torch.no_grad():
            for batch in windows.split(batch_size):
                model.model(input_ids=batch.to(device), use_cache=False)
                for l in range(L + 1 - n):
                    cos = F.cosine_similarity(inputs[l].float(), inputs[l + n].float(), dim=-1)  # [B, T]
                    cos_sum[l] += cos.mean(dim=1).sum().double()
                stats = torch.stack([(x @ H_model).abs().float().mean(dim=1) for x in inputs], dim=1)  # [B, L+1, C]
                channel_means.extend(stats.unbind(0))
    finally:
        for h in handles:
            h.remove()
    return (cos_sum / windows.shape[0]).cpu(), torch.stack(channel_means)  # [L+1-n], [W, L+1, C]


def plain_forward(model, windows, batch_size, device):
    with torch.no_grad():
        for batch in windows.split(batch_size):
            model.model(input_ids=batch.to(device), use_cache=False)


def teacher_top_k(model, ids, k):
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.float()
    values, indices = logits.topk(k, dim=-1)
    return torch.softmax(values, dim=-1), indices


def distill_step_seconds(model, start, P0, ids, teacher_prob, teacher_idx, steps, timer):
    """Seconds per AdamW step on the patch alone, as in the paper's distillation."""
    P = torch.nn.Parameter(P0.clone())

    def apply_patch(module, args, kwargs):
        x = hidden_of(args, kwargs)
        y = (x.float() @ P).to(x.dtype)
        if args:
            return (y,) + tuple(args[1:]), kwargs
        kwargs["hidden_states"] = y
        return args, kwargs

    handle = model.model.layers[start].register_forward_pre_hook(apply_patch, with_kwargs=True)
    optimizer = torch.optim.AdamW([P], lr=1e-4, weight_decay=1e-4)
    T = ids.shape[1]
    try:
        for step in range(steps + 1):
            with timer.phase("distill_step" if step else "distill_warmup"):
                logits = model(input_ids=ids, use_cache=False).logits.float()
                student = torch.log_softmax(logits.gather(-1, teacher_idx), dim=-1)
                loss = F.kl_div(student, teacher_prob, reduction="batchmean") / T
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    finally:
        handle.remove()
    return timer.seconds["distill_step"] / steps, float(loss)


def main():
    args = parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import transformers

    device = torch.device(args.device)
    timer = Timer(device)
    n = args.layers

    with timer.phase("load"):
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).to(device)
        model.eval()
        model.requires_grad_(False)
    L = len(model.model.layers)
    C = model.config.hidden_size
    if not 1 <= n <= L - 2:
        raise SystemExit(f"cannot remove {n} of {L} layers keeping the first and the last")

    with timer.phase("tokenize"):
        tokenizer = AutoTokenizer.from_pretrained(args.model) if args.calib else None
        windows, source = calibration_windows(args, tokenizer, model.config.vocab_size)

    distill_ids = windows[:1, : args.distill_tokens].to(device)
    if args.distill_steps:
        with timer.phase("teacher_top_k"):
            teacher_prob, teacher_idx = teacher_top_k(model, distill_ids, args.top_k)

    H = hadamard(C, device)
    with timer.phase("calibration"):
        cosine, channel_means = calibrate(model, windows, n, H, args.batch_size, device)
    with timer.phase("plain_forward"):
        plain_forward(model, windows, args.batch_size, device)

    with timer.phase("select_patch"):
        candidates = list(range(1, L - n))  # l >= 1 and l + n <= L - 1
        start = max(candidates, key=lambda l: float(cosine[l]))
        d = (channel_means[:, start + n] / channel_means[:, start]).mean(dim=0)
        P = (H * d) @ H.T  # H diag(d) H^T

    with timer.phase("prune"):
        del model.model.layers[start : start + n]
        for index, layer in enumerate(model.model.layers):
            layer.self_attn.layer_idx = index
        model.config.num_hidden_layers = L - n
        if isinstance(getattr(model.config, "layer_types", None), list):
            del model.config.layer_types[start : start + n]
        patch = torch.nn.Linear(C, C, bias=False, device=device, dtype=torch.float32)
        patch.weight.data.copy_(P)  # symmetric, so x @ P == patch(x)
        model.model.linear_patches = torch.nn.ModuleDict({str(start): patch})
        model.config.linearpatch = {  # docs/checkpoint-format.md
            "format_version": 1,
            "original_num_hidden_layers": L,
            "removed_layers": list(range(start, start + n)),
            "patches": [{"layer": start, "tensor": f"model.linear_patches.{start}.weight",
                         "replaces_layers": [start, start + n]}],
            "tool": "scripts/python_baseline.py",
        }

    with timer.phase("write"):
        shutil.rmtree(args.out, ignore_errors=True)
        model.save_pretrained(args.out, max_shard_size="5GB")
        for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
            if os.path.exists(os.path.join(args.model, name)):
                shutil.copy(os.path.join(args.model, name), args.out)

    pipeline = ("load", "tokenize", "calibration", "select_patch", "prune", "write")
    timings = dict(timer.seconds)
    timings["total"] = sum(timer.seconds[k] for k in pipeline)

    report = {
        "tool": "python_baseline",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": args.model,
        "output": args.out,
        "layers": L,
        "n": n,
        "start": start,
        "end": start + n,
        "cosine": float(cosine[start]),
        "d_mean": float(d.mean()),
        "calibration": {"windows": windows.shape[0], "seq_len": windows.shape[1], "batch_size": args.batch_size,
                        "source": source},
        "timings": timings,
    }
    if args.distill_steps:
        seconds, loss = distill_step_seconds(model, start, P, distill_ids, teacher_prob, teacher_idx,
                                             args.distill_steps, timer)
        report["distill"] = {"seconds_per_step": seconds, "tokens": distill_ids.shape[1], "top_k": args.top_k,
                             "loss": loss, "warmup_seconds": timer.seconds["distill_warmup"]}
    if device.type == "cuda":
        report["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(report, indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
