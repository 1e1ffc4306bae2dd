# Sublayer-pruned checkpoints (appended to the module above only for them):
# the "linearpatch" entry's "layers" lists per decoder layer
# {"attention": bool, "mlp": bool}; a removed sublayer (and the RMSNorm in
# front of it) has no tensors and adds nothing to the residual stream.
class _NoAttention(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states), None


class _NoMlp(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states)


_add_patches_only = _LinearPatchMixin._add_linear_patches


def _add_linear_patches_without_sublayers(self, config):
    entry = getattr(config, "linearpatch", None) or {}
    for layer, spec in zip(self.model.layers, entry.get("layers", [])):
        if not spec.get("attention", True):
            layer.self_attn = _NoAttention()
            layer.input_layernorm = nn.Identity()
        if not spec.get("mlp", True):
            layer.mlp = _NoMlp()
            layer.post_attention_layernorm = nn.Identity()
    _add_patches_only(self, config)


_LinearPatchMixin._add_linear_patches = _add_linear_patches_without_sublayers
