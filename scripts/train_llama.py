#!/usr/bin/env python3
"""Trains a small LLaMA-architecture model from scratch and writes it as a
HuggingFace checkpoint (config.json as transformers writes LlamaConfig,
model.safetensors in bfloat16, the tokenizer files copied). It makes the
"model you do not have" of issue 18: a depth and shape no fixture has, to
check the pruning choices on a trained model the defaults were not tuned on.

  scripts/train_llama.py --tokenizer DIR --train A.ids.json [B.ids.json ...]
                         --val NAME=X.ids.json ... --out DIR
                         [--layers 24 --hidden 384 --intermediate 1024 --heads 6
                          --kv-heads 2 --tokens 8e6 --seq 512 --batch 32 --lr 1.5e-3
                          --seed 0 --device cuda]

*.ids.json: one JSON list of token ids, as `linearpatch tokenize --jsonl`
prints for a whole file (the text as one JSON string). Training windows are
drawn at random offsets of the concatenated training ids (seeded). The
validation perplexity uses linearpatch eval's protocol (BOS in front,
non-overlapping windows of --seq tokens, every position but each window's
first scored), so `linearpatch eval` of the written checkpoint must agree.

The forward is plain PyTorch (RMSNorm, rotate-half RoPE, grouped-query
attention, SwiGLU), written against transformers' LlamaForCausalLM; torch
1.13 (CPU) and 2.x (CUDA, bfloat16 autocast) both run it.
"""
import argparse
import json
import math
import pathlib
import shutil
import struct
import time

import torch
import torch.nn.functional as F


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.head_dim = a.hidden // a.heads
        p = torch.nn.Parameter
        self.embed = p(torch.empty(a.vocab, a.hidden))
        self.layers = torch.nn.ModuleList()
        kv = a.kv_heads * self.head_dim
        for _ in range(a.layers):
            layer = torch.nn.ParameterDict({
                "input_layernorm": p(torch.ones(a.hidden)),
                "q_proj": p(torch.empty(a.hidden, a.hidden)), "k_proj": p(torch.empty(kv, a.hidden)),
                "v_proj": p(torch.empty(kv, a.hidden)), "o_proj": p(torch.empty(a.hidden, a.hidden)),
                "post_attention_layernorm": p(torch.ones(a.hidden)),
                "gate_proj": p(torch.empty(a.intermediate, a.hidden)),
                "up_proj": p(torch.empty(a.intermediate, a.hidden)),
                "down_proj": p(torch.empty(a.hidden, a.intermediate))})
            self.layers.append(layer)
        self.norm = p(torch.ones(a.hidden))
        self.lm_head = p(torch.empty(a.vocab, a.hidden))
        for name, w in self.named_parameters():
            if w.dim() == 2:
                torch.nn.init.normal_(w, std=0.02)  # transformers' initializer_range
        inv = 1.0 / (a.rope_theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim))
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def rms(self, x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.a.eps)).to(x.dtype)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def attention(self, L, x, cos, sin):
        B, T, _ = x.shape
        heads, kvh, d = self.a.heads, self.a.kv_heads, self.head_dim
        q = (x @ L["q_proj"].T).view(B, T, heads, d).transpose(1, 2)
        k = (x @ L["k_proj"].T).view(B, T, kvh, d).transpose(1, 2)
        v = (x @ L["v_proj"].T).view(B, T, kvh, d).transpose(1, 2)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        k, v = k.repeat_interleave(heads // kvh, 1), v.repeat_interleave(heads // kvh, 1)
        if hasattr(F, "scaled_dot_product_attention"):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            out = s.softmax(-1) @ v
        return out.transpose(1, 2).reshape(B, T, heads * d) @ L["o_proj"].T

    def forward(self, ids):
        T = ids.shape[1]
        angles = torch.arange(T, device=ids.device, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        h = self.embed[ids]
        for L in self.layers:
            h = h + self.attention(L, self.rms(h, L["input_layernorm"]), cos, sin)
            x = self.rms(h, L["post_attention_layernorm"])
            h = h + (F.silu(x @ L["gate_proj"].T) * (x @ L["up_proj"].T)) @ L["down_proj"].T
        return self.rms(h, self.norm) @ self.lm_head.T


ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP = {"gate_proj", "up_proj", "down_proj"}


def hf_tensors(model):
    """The parameters under transformers' LlamaForCausalLM names."""
    out = {"model.embed_tokens.weight": model.embed}
    for i, L in enumerate(model.layers):
        for name, w in L.items():
            owner = "self_attn." if name in ATTENTION else "mlp." if name in MLP else ""
            out[f"model.layers.{i}.{owner}{name}.weight"] = w
    out["model.norm.weight"] = model.norm
    out["lm_head.weight"] = model.lm_head
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def special_ids(tokenizer_dir):
    """BOS and EOS ids from the config.json beside the tokenizer (None where there is none)."""
    path = tokenizer_dir / "config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    return config.get("bos_token_id"), config.get("eos_token_id")


def write_checkpoint(model, a, tokenizer_dir, out, log):
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "model.safetensors", hf_tensors(model))
    bos, eos = special_ids(tokenizer_dir)
    config = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": bos, "eos_token_id": eos,
        "dtype": "bfloat16", "head_dim": a.hidden // a.heads, "hidden_act": "silu", "hidden_size": a.hidden,
        "initializer_range": 0.02, "intermediate_size": a.intermediate, "max_position_embeddings": 4096,
        "mlp_bias": False, "model_type": "llama", "num_attention_heads": a.heads, "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads, "pretraining_tp": 1, "rms_norm_eps": a.eps,
        "rope_parameters": {"rope_theta": a.rope_theta, "rope_type": "default"}, "tie_word_embeddings": False,
        "use_cache": True, "vocab_size": a.vocab}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, out / name)
    (out / "training.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "log": log},
                                                  indent=1) + "\n")


def read_ids(path):
    return torch.tensor(json.loads(pathlib.Path(path).read_text()), dtype=torch.long)


@torch.no_grad()
def perplexity(model, ids, bos, seq, device, autocast):
    """linearpatch eval's protocol: BOS, then non-overlapping windows; each window's first position unscored."""
    ids = torch.cat((torch.tensor([bos]), ids)) if bos is not None else ids
    windows = ids[: len(ids) // seq * seq].view(-1, seq).to(device)
    nll, count = 0.0, 0
    for chunk in windows.split(8):
        with autocast():
            logits = model(chunk)
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        nll -= logp.gather(2, chunk[:, 1:, None]).sum().item()
        count += chunk[:, 1:].numel()
    return math.exp(nll / count)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, type=pathlib.Path)
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--val", nargs="*", default=[], help="NAME=FILE.ids.json")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    for name, default in (("layers", 24), ("hidden", 384), ("intermediate", 1024), ("heads", 6), ("kv-heads", 2),
                          ("vocab", 4096), ("seq", 512), ("batch", 32), ("seed", 0), ("warmup", 100)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--tokens", type=float, default=8e6, help="training tokens seen")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--rope-theta", type=float, default=500000.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    model = Llama(a).to(device)
    train = torch.cat([read_ids(p) for p in a.train])
    assert int(train.max()) < a.vocab, "token id beyond --vocab"
    bos, _ = special_ids(a.tokenizer)
    val = {spec.split("=")[0]: read_ids(spec.split("=")[1]) for spec in a.val}
    steps = max(1, int(a.tokens // (a.batch * a.seq)))
    decay, no_decay = [], []
    for w in model.parameters():
        (decay if w.dim() == 2 else no_decay).append(w)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))
    gen = torch.Generator().manual_seed(a.seed)
    log, start = [], time.time()
    for step in range(steps):
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        offsets = torch.randint(0, len(train) - a.seq - 1, (a.batch,), generator=gen)
        batch = torch.stack([train[o:o + a.seq + 1] for o in offsets.tolist()]).to(device)
        with autocast():
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            entry = {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    model.eval()
    final = {name: perplexity(model, ids, bos, a.seq, device, autocast) for name, ids in val.items()}
    # The checkpoint is stored in bfloat16: score what is written, in float32, as linearpatch eval does.
    with torch.no_grad():
        for w in model.parameters():
            w.copy_(w.to(torch.bfloat16).float())
    final_fp32 = {name: perplexity(model, ids, bos, a.seq, device, lambda: torch.autocast("cpu", enabled=False))
                  for name, ids in val.items()}
    log.append({"val_ppl_autocast": final, "val_ppl_float32_of_written": final_fp32,
                "seconds": round(time.time() - start, 1)})
    print(json.dumps(log[-1]), flush=True)
    write_checkpoint(model, a, a.tokenizer, a.out, log)


if __name__ == "__main__":
    main()
