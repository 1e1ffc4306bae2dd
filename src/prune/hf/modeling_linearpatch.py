# Written by linearpatch next to a pruned checkpoint so that HuggingFace
# transformers (4.51+ and 5.x) can load it exactly:
#     AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
# The checkpoint is a model of the LLaMA family (LLaMA, Mistral, Qwen2,
# Qwen3) with some decoder layers removed plus one matrix per gap, stored as
# model.linear_patches.<k>.weight (float32, [hidden, hidden]) and applied to
# the residual stream entering decoder layer k (k == num_hidden_layers: the
# input of the final norm) as
#     h = h @ W
# The "linearpatch" entry of config.json lists the patches; config.json's
# auto_map names the class below that subclasses the family's own.
import torch
from torch import nn
from transformers import LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM


class LinearPatch(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(hidden_size, dtype=torch.float32))

    def forward(self, hidden_states):
        return (hidden_states.float() @ self.weight.float()).to(hidden_states.dtype)


def _patch_input(patch):
    def hook(module, args, kwargs):
        if args:
            return (patch(args[0]),) + tuple(args[1:]), kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = patch(kwargs["hidden_states"])
        return args, kwargs

    return hook


class _LinearPatchMixin:
    # The patch is computed and stored in float32; bf16 would round it.
    _keep_in_fp32_modules = ["linear_patches"]

    def _add_linear_patches(self, config):
        entry = getattr(config, "linearpatch", None) or {}
        layers = sorted(int(p["layer"]) for p in entry.get("patches", []))
        self.model.linear_patches = nn.ModuleDict({str(k): LinearPatch(config.hidden_size) for k in layers})
        for k in layers:
            target = self.model.layers[k] if k < config.num_hidden_layers else self.model.norm
            target.register_forward_pre_hook(_patch_input(self.model.linear_patches[str(k)]), with_kwargs=True)


class LinearPatchLlamaForCausalLM(_LinearPatchMixin, LlamaForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        self._add_linear_patches(config)


class LinearPatchMistralForCausalLM(_LinearPatchMixin, MistralForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        self._add_linear_patches(config)


class LinearPatchQwen2ForCausalLM(_LinearPatchMixin, Qwen2ForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        self._add_linear_patches(config)


class LinearPatchQwen3ForCausalLM(_LinearPatchMixin, Qwen3ForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        self._add_linear_patches(config)
