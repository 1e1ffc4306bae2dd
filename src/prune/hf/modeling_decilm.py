# Written by linearpatch next to a Nemotron-NAS (DeciLM) checkpoint whose
# decoder layers lack some attention or MLP sublayers, so that transformers
# loads it with trust_remote_code:
#     AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
# A LLaMA decoder in which a block with attention.no_op (ffn.no_op) has no
# attention (MLP) and no RMSNorm in front of it: the residual stream passes
# through. Every other block is LLaMA's, with the key/value heads
# num_attention_heads / n_heads_in_group and the intermediate size that
# ffn_mult gives (2 * ffn_mult * hidden / 3 rounded up to a multiple of 256),
# the same for every block here.
import torch
from torch import nn
from transformers import LlamaForCausalLM

from .configuration_decilm import DeciLMConfig


class _NoAttention(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states), None


class _NoMlp(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states)


class DeciLMForCausalLM(LlamaForCausalLM):
    config_class = DeciLMConfig

    def __init__(self, config):
        super().__init__(config)
        for layer, block in zip(self.model.layers, config.block_configs):
            if block.attention.no_op:
                layer.self_attn = _NoAttention()
                layer.input_layernorm = nn.Identity()
            if block.ffn.no_op:
                layer.mlp = _NoMlp()
                layer.post_attention_layernorm = nn.Identity()
