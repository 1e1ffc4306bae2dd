#!/usr/bin/env python3
"""An independent Nemotron-NAS (DeciLM) forward pass in plain PyTorch, for
checking what `linearpatch prune --unit ... --emit vanilla` writes (issue 20).

Reads config.json (block_configs: no_op blocks have no attention / MLP and
no RMSNorm in front of it; key/value heads num_attention_heads /
n_heads_in_group; intermediate size int(2 * ffn_mult * hidden / 3) rounded
up to a multiple of 256, as vLLM's nemotron_nas.py and llama.cpp's DeciModel
compute it; head size hidden / heads) and the safetensors files by hand, and
computes the perplexity of windows of --seq-len tokens from the start of
--text, each scored on its T - 1 predictions, in float32. The token ids come
from `linearpatch tokenize` (the tokenizer is not what is checked). With
--compare, `linearpatch eval` scores the same windows and the script exits
1 when the two perplexities differ by more than --tolerance (relative).

Also reads linearpatch's exact form of a sublayer-pruned LLaMA or Mistral
checkpoint (`--emit exact`): the "linearpatch" entry's "layers" say which
sublayers each layer has, and each of its "patches" W is applied as h @ W to
the stream entering its layer (the final norm's input for the layer count),
as modeling_linearpatch.py does in transformers.

Needs only torch (1.13 works) and numpy: /usr/bin/python3 on the build host.
"""
import argparse
import json
import math
import pathlib
import struct
import subprocess
import sys
import tempfile

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def read_safetensors(directory):
    tensors = {}
    for path in sorted(pathlib.Path(directory).glob("*.safetensors")):
        data = path.read_bytes()
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
        base = 8 + length
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            raw = bytearray(data[base + start:base + end])
            tensor = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.empty(0)
            tensors[name] = tensor.reshape(info["shape"]).float()
    return tensors


def intermediate_size(ffn_mult, hidden):
    size = int(2 * ffn_mult * hidden / 3)
    return size if size % 256 == 0 else size + 256 - size % 256


def rope_frequencies(config, head_dim):
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "linear":
        inv = inv / rope["factor"]
    elif kind == "llama3":
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - low) / (high - low)
        scaled = torch.where(wavelen > old / low, inv / factor, inv)
        middle = (wavelen <= old / low) & (wavelen >= old / high)
        inv = torch.where(middle, (1 - smooth) * inv / factor + smooth * inv, scaled)
    elif kind != "default":
        sys.exit(f"rope type {kind} is not implemented here")
    return inv.float()


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def exact_form_blocks(config):
    """block_configs for linearpatch's exact form (no ffn_mult: the MLP size is the checkpoint's)."""
    group = config["num_attention_heads"] // config.get("num_key_value_heads", config["num_attention_heads"])
    layers = config["linearpatch"].get("layers") or [{}] * config["num_hidden_layers"]
    return [{"attention": {"no_op": not spec.get("attention", True), "n_heads_in_group": group},
             "ffn": {"no_op": not spec.get("mlp", True), "ffn_mult": None}} for spec in layers]


class Nemotron:
    def __init__(self, directory):
        self.config = json.loads((pathlib.Path(directory) / "config.json").read_text())
        c = self.config
        exact = "linearpatch" in c and c["model_type"] in ("llama", "mistral")
        assert c["model_type"] == "nemotron-nas" or exact, "neither Nemotron-NAS nor the exact form of a LLaMA"
        self.blocks = exact_form_blocks(c) if exact else c["block_configs"]
        self.patches = {int(p["layer"]): p["tensor"] for p in c.get("linearpatch", {}).get("patches", [])} if exact else {}
        self.w = read_safetensors(directory)
        self.hidden, self.heads = c["hidden_size"], c["num_attention_heads"]
        self.head_dim = self.hidden // self.heads
        assert not exact or c.get("head_dim", self.head_dim) == self.head_dim, "head_dim other than hidden / heads"
        self.eps = c["rms_norm_eps"]
        self.inv_freq = rope_frequencies(c, self.head_dim)

    def attention(self, prefix, x, block, cos, sin):
        T = x.shape[0]
        kv_heads = self.heads // block["n_heads_in_group"]
        q = (x @ self.w[prefix + "q_proj.weight"].T).view(T, self.heads, self.head_dim).transpose(0, 1)
        k = (x @ self.w[prefix + "k_proj.weight"].T).view(T, kv_heads, self.head_dim).transpose(0, 1)
        v = (x @ self.w[prefix + "v_proj.weight"].T).view(T, kv_heads, self.head_dim).transpose(0, 1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        group = self.heads // kv_heads
        k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(0, 1).reshape(T, self.heads * self.head_dim)
        return out @ self.w[prefix + "o_proj.weight"].T

    def mlp(self, prefix, x, block):
        gate = x @ self.w[prefix + "gate_proj.weight"].T
        if block["ffn_mult"] is not None:
            size = intermediate_size(block["ffn_mult"], self.hidden)
            assert gate.shape[-1] == size, prefix + " size differs from ffn_mult"
        up = x @ self.w[prefix + "up_proj.weight"].T
        return (torch.nn.functional.silu(gate) * up) @ self.w[prefix + "down_proj.weight"].T

    def logits(self, ids):
        T = len(ids)
        angles = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        h = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        for l, block in enumerate(self.blocks):
            p = f"model.layers.{l}."
            if l in self.patches:
                h = h @ self.w[self.patches[l]]
            if not block["attention"]["no_op"]:
                h = h + self.attention(p + "self_attn.", rms_norm(h, self.w[p + "input_layernorm.weight"], self.eps),
                                       block["attention"], cos, sin)
            if not block["ffn"]["no_op"]:
                h = h + self.mlp(p + "mlp.", rms_norm(h, self.w[p + "post_attention_layernorm.weight"], self.eps),
                                 block["ffn"])
        if len(self.blocks) in self.patches:
            h = h @ self.w[self.patches[len(self.blocks)]]
        head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        return rms_norm(h, self.w["model.norm.weight"], self.eps) @ head.T


def token_ids(binary, model, text):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
        f.write(json.dumps(pathlib.Path(text).read_text()) + "\n")
        f.flush()
        out = subprocess.run([binary, "tokenize", "--model", model, "--jsonl", f.name, "--add-special"],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--binary", default="build/src/cli/linearpatch")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--max-windows", type=int, default=8)
    p.add_argument("--compare", action="store_true", help="also run linearpatch eval and compare")
    p.add_argument("--tolerance", type=float, default=1e-3)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    ids = token_ids(a.binary, a.model, a.text)
    windows = min(len(ids) // a.seq_len, a.max_windows)
    model = Nemotron(a.model)
    nll, count = 0.0, 0
    for w in range(windows):
        window = ids[w * a.seq_len:(w + 1) * a.seq_len]
        logp = model.logits(window).log_softmax(-1)
        nll -= logp[torch.arange(a.seq_len - 1), torch.tensor(window[1:])].double().sum().item()
        count += a.seq_len - 1
    result = {"model": a.model, "windows": windows, "tokens": count, "ppl": math.exp(nll / count)}
    if a.compare:
        out = subprocess.run([a.binary, "eval", "--model", a.model, "--text", a.text, "--seq-len", str(a.seq_len),
                              "--max-windows", str(a.max_windows), "--dtype", "float32", "--json"],
                             check=True, capture_output=True, text=True).stdout
        result["linearpatch_ppl"] = json.loads(out)["ppl"]
        result["relative_difference"] = abs(result["linearpatch_ppl"] / result["ppl"] - 1)
    print(json.dumps(result))
    if a.compare and result["relative_difference"] > a.tolerance:
        sys.exit(1)


if __name__ == "__main__":
    main()
