// config.json of the LLaMA family (model_type llama, mistral, qwen2, qwen3),
// as written by transformers 4.x (`rope_theta`, `rope_scaling`,
// `torch_dtype`) and 5.x (`rope_parameters`, `dtype`). Required fields missing or values we cannot honour are refused
// with an InputError naming the field; nothing is silently defaulted except
// what transformers itself defaults. When both forms are present,
// rope_parameters wins, as in transformers 5.
//
// Pruned checkpoints carry their patches in a "linearpatch" entry:
//   {"format_version": 1,
//    "patches": [{"layer": k, "tensor": "model.linear_patches.k.weight"}, ...],
//    ...provenance fields, not read here}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lp {

struct RopeScaling {
  enum class Type { kDefault, kLinear, kLlama3 };
  Type type = Type::kDefault;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// A residual-stream patch stored in a pruned checkpoint: the stream entering
// decoder layer `layer` (new numbering; == num_hidden_layers means the input
// of the final norm) is multiplied on the right by the [hidden, hidden]
// matrix `tensor`: h <- h @ P.
struct ResidualPatch {
  int64_t layer = 0;
  std::string tensor;
};

// The decoder families whose forward pass we run. They share LLaMA's
// layer (RMSNorm, RoPE, GQA attention, SwiGLU MLP) and differ in:
//   mistral  explicit head_dim, a sliding attention window on every layer;
//   qwen2    bias on the q, k and v projections (none on o_proj), sliding
//            windows on layers from max_window_layers (or per layer_types);
//   qwen3    per-head RMSNorm of q and k before RoPE, head_dim default 128,
//            optional bias on all four attention projections, windows as qwen2.
enum class ModelFamily { kLlama, kMistral, kQwen2, kQwen3 };

// Which residual branches a decoder layer has. Dense checkpoints have both
// everywhere; a sublayer-pruned one lacks some (and every tensor of it).
struct LayerSpec {
  bool attention = true;
  bool mlp = true;
  bool operator==(const LayerSpec& o) const { return attention == o.attention && mlp == o.mlp; }
};

std::string model_type_name(ModelFamily family);     // "llama", "mistral", "qwen2", "qwen3"
std::string causal_lm_class_name(ModelFamily family);  // "LlamaForCausalLM", ...
std::string supported_model_types();                  // "llama, mistral, qwen2, qwen3"
std::optional<ModelFamily> family_from_model_type(std::string_view model_type);

struct LlamaConfig {
  ModelFamily family = ModelFamily::kLlama;
  std::string model_type;  // model_type_name(family)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // bias on q_proj, k_proj, v_proj
  bool o_bias = false;    // bias on o_proj
  bool qk_norm = false;   // self_attn.q_norm / k_norm weights [head_dim]
  bool mlp_bias = false;
  // Per decoder layer: how many key positions a query sees (itself and the
  // window - 1 before it, as transformers' sliding_window_overlay); 0 means
  // full causal attention. num_hidden_layers entries when parsed; a config
  // built in code may leave it empty for full attention everywhere.
  std::vector<int64_t> attention_windows;
  // Per decoder layer, which sublayers it has; empty means every layer has
  // both (all dense checkpoints). Read from the "linearpatch" entry's
  // "layers" list.
  std::vector<LayerSpec> layer_specs;
  std::string dtype;  // "bfloat16", "float16", "float32" or empty when absent
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::vector<ResidualPatch> patches;  // from the "linearpatch" entry, empty for dense models

  // Parameter count as the tensors of a checkpoint with this config hold them.
  int64_t parameter_count() const;
  // The smallest attention window of any layer, 0 when every layer attends
  // to the whole causal prefix. Sequences of at most this many tokens never
  // reach past a window, so reports can say the windows changed nothing.
  int64_t narrowest_window() const;
  LayerSpec layer_spec(int64_t layer) const;
  // True when some layer lacks a sublayer.
  bool has_partial_layers() const;
};

LlamaConfig parse_llama_config(std::string_view json_text, const std::string& source);

}  // namespace lp
