#include "support/tiny_model.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <functional>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/io/safetensors.h"
#include "model/tensor_bridge.h"

namespace lp::test {

LlamaConfig tiny_config(ModelFamily family) {
  LlamaConfig c;
  c.family = family;
  c.model_type = model_type_name(family);
  c.qkv_bias = family == ModelFamily::kQwen2;
  c.qk_norm = family == ModelFamily::kQwen3;
  c.vocab_size = 64;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = 6;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 12;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.dtype = "bfloat16";
  c.attention_windows.assign(static_cast<size_t>(c.num_hidden_layers), 0);
  return c;
}

TensorMap random_weights(const LlamaConfig& c, uint64_t seed, double std) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto draw = [&](TensorRole role, const std::vector<int64_t>& shape) {
    switch (role) {
      case TensorRole::kEmbedding: return at::randn(shape, gen, at::kFloat);
      case TensorRole::kSublayerNorm:
      case TensorRole::kHeadNorm:
      case TensorRole::kFinalNorm: return 1.0 + at::randn(shape, gen, at::kFloat) * 0.1;
      case TensorRole::kProjection:
      case TensorRole::kBias: break;
    }
    return at::randn(shape, gen, at::kFloat) * std;
  };
  TensorMap w;
  for (const auto& spec : global_tensor_specs(c)) w[spec.name] = draw(spec.role, spec.shape);
  // Per layer: the sublayer norms, the projections, then the rest (biases,
  // q/k norms), so that a seed gives the weights it always gave.
  const auto is_norm = [](TensorRole r) { return r == TensorRole::kSublayerNorm; };
  const auto is_projection = [](TensorRole r) { return r == TensorRole::kProjection; };
  const auto is_other = [&](TensorRole r) { return !is_norm(r) && !is_projection(r); };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto specs = layer_tensor_specs(c, l);
    for (const auto& pass : {std::function<bool(TensorRole)>(is_norm), std::function<bool(TensorRole)>(is_projection),
                             std::function<bool(TensorRole)>(is_other)})
      for (const auto& spec : specs)
        if (pass(spec.role)) w[layer_tensor_name(l, spec.suffix)] = draw(spec.role, spec.shape);
  }
  return w;
}

// Each family's way of saying which layers attend through a window.
void add_window_fields(nlohmann::ordered_json& j, const LlamaConfig& c) {
  const int64_t window = c.narrowest_window();
  if (c.family == ModelFamily::kMistral) {
    j["sliding_window"] = window > 0 ? nlohmann::ordered_json(window) : nlohmann::ordered_json(nullptr);
  } else if (c.family == ModelFamily::kQwen2 || c.family == ModelFamily::kQwen3) {
    j["use_sliding_window"] = window > 0;
    j["sliding_window"] = window > 0 ? nlohmann::ordered_json(window) : nlohmann::ordered_json(nullptr);
    j["max_window_layers"] = c.num_hidden_layers;
    auto types = nlohmann::ordered_json::array();
    for (const int64_t w : c.attention_windows) types.push_back(w > 0 ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
  }
}

std::string config_json(const LlamaConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {causal_lm_class_name(c.family)};
  j["model_type"] = model_type_name(c.family);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.family == ModelFamily::kLlama || c.family == ModelFamily::kQwen3) j["attention_bias"] = c.o_bias;
  if (c.family == ModelFamily::kLlama) j["mlp_bias"] = c.mlp_bias;
  add_window_fields(j, c);
  j["hidden_act"] = "silu";
  j["dtype"] = c.dtype;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  return j.dump(2);
}

void write_checkpoint(const std::filesystem::path& dir, const LlamaConfig& config, const TensorMap& weights,
                      at::ScalarType dtype) {
  std::filesystem::create_directories(dir);
  write_text_file(dir / "config.json", config_json(config));
  std::vector<at::Tensor> storage;
  std::vector<io::OutputTensor> tensors;
  for (const auto& [name, tensor] : weights) {
    storage.push_back(tensor.to(dtype).contiguous());
    tensors.push_back(output_tensor(name, storage.back()));
  }
  io::write_safetensors(dir / "model.safetensors", tensors);
}

at::Tensor random_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {B, T}, gen, at::kLong);
}

}  // namespace lp::test
