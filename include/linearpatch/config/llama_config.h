// config.json of the LLaMA family, as written by transformers 4.x
// (`rope_theta`, `rope_scaling`, `torch_dtype`) and 5.x (`rope_parameters`,
// `dtype`). Required fields missing or values we cannot honour are refused
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

struct LlamaConfig {
  std::string model_type;  // "llama" (also accepted: "mistral" without sliding window)
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
  bool attention_bias = false;
  bool mlp_bias = false;
  std::string dtype;  // "bfloat16", "float16", "float32" or empty when absent
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::vector<ResidualPatch> patches;  // from the "linearpatch" entry, empty for dense models

  // Parameter count as the tensors of a checkpoint with this config hold them.
  int64_t parameter_count() const;
};

LlamaConfig parse_llama_config(std::string_view json_text, const std::string& source);

}  // namespace lp
