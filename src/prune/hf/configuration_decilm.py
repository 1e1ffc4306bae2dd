# Written by linearpatch next to a Nemotron-NAS (DeciLM) checkpoint whose
# decoder layers lack some attention or MLP sublayers, for transformers'
# trust_remote_code (AutoConfig via config.json's auto_map). block_configs
# holds one entry per layer:
#     {"attention": {"no_op", "replace_with_linear", "n_heads_in_group"},
#      "ffn": {"no_op", "replace_with_linear", "ffn_mult"}}
# and readers such as vLLM read them as attributes
# (block_configs[i].attention.no_op), hence the small classes below.
from transformers import LlamaConfig


class _Entry:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def to_dict(self):
        return dict(self.__dict__)


class BlockConfig:
    def __init__(self, attention=None, ffn=None, **unused):
        self.attention = attention if isinstance(attention, _Entry) else _Entry(**(attention or {}))
        self.ffn = ffn if isinstance(ffn, _Entry) else _Entry(**(ffn or {}))

    def to_dict(self):
        return {"attention": self.attention.to_dict(), "ffn": self.ffn.to_dict()}


class DeciLMConfig(LlamaConfig):
    model_type = "nemotron-nas"

    def __init__(self, block_configs=None, **kwargs):
        self.block_configs = [b if isinstance(b, BlockConfig) else BlockConfig(**b) for b in (block_configs or [])]
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        out["block_configs"] = [b.to_dict() for b in self.block_configs]
        return out
