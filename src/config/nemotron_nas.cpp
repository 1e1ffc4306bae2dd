#include "linearpatch/config/nemotron_nas.h"

#include <nlohmann/json.hpp>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

// The ffn_mult whose rounded intermediate size is `intermediate`, if any.
std::optional<double> ffn_mult_for(int64_t intermediate, int64_t hidden) {
  const double mult = 3.0 * static_cast<double>(intermediate) / (2.0 * static_cast<double>(hidden));
  if (nemotron_intermediate_size(mult, hidden) != intermediate) return std::nullopt;
  return mult;
}

}  // namespace

int64_t nemotron_intermediate_size(double ffn_mult, int64_t hidden_size) {
  const auto size = static_cast<int64_t>(2 * ffn_mult * static_cast<double>(hidden_size) / 3);
  return size % 256 == 0 ? size : size + 256 - size % 256;
}

void check_nemotron_writable(const LlamaConfig& config) {
  const std::string why = "a Nemotron-NAS checkpoint cannot express this " + config.model_type + " model: ";
  if (config.family == ModelFamily::kQwen3) throw UsageError(why + "its q/k norms have no place in a DeciLM block");
  if (config.family == ModelFamily::kQwen2 || (config.qkv_bias && !config.o_bias))
    throw UsageError(why + "q/k/v biases without an o_proj bias have no place in a DeciLM block");
  if (config.narrowest_window() > 0)
    throw UsageError(why + "DeciLM blocks have no sliding attention window (this model's is " +
                     std::to_string(config.narrowest_window()) + " tokens)");
  if (config.head_dim * config.num_attention_heads != config.hidden_size)
    throw UsageError(why + "llama.cpp's DeciLM reader takes the head size as hidden / heads, not head_dim " +
                     std::to_string(config.head_dim));
  if (!ffn_mult_for(config.intermediate_size, config.hidden_size))
    throw UsageError(why + "no ffn_mult gives intermediate size " + std::to_string(config.intermediate_size) +
                     " (readers round 2 * ffn_mult * hidden / 3 up to a multiple of 256)");
}

std::string nemotron_config_json(std::string_view pruned_config_json, const LlamaConfig& config,
                                 const std::vector<LayerSpec>& layer_specs) {
  check_nemotron_writable(config);
  auto json = nlohmann::ordered_json::parse(pruned_config_json);
  json["architectures"] = {kNemotronClass};
  json["model_type"] = kNemotronModelType;
  json["auto_map"] = {{"AutoConfig", "configuration_decilm.DeciLMConfig"},
                      {"AutoModelForCausalLM", "modeling_decilm.DeciLMForCausalLM"}};
  json.erase("sliding_window");
  const double ffn_mult = *ffn_mult_for(config.intermediate_size, config.hidden_size);
  const int64_t group = config.num_attention_heads / config.num_key_value_heads;
  auto blocks = nlohmann::ordered_json::array();
  for (size_t l = 0; l < static_cast<size_t>(config.num_hidden_layers); ++l) {
    const LayerSpec spec = layer_specs.empty() ? LayerSpec{} : layer_specs.at(l);
    nlohmann::ordered_json attention = {{"no_op", !spec.attention}, {"replace_with_linear", false}};
    attention["n_heads_in_group"] = spec.attention ? nlohmann::ordered_json(group) : nlohmann::ordered_json(nullptr);
    nlohmann::ordered_json ffn = {{"no_op", !spec.mlp}, {"replace_with_linear", false}};
    ffn["ffn_mult"] = spec.mlp ? nlohmann::ordered_json(ffn_mult) : nlohmann::ordered_json(nullptr);
    blocks.push_back({{"attention", attention}, {"ffn", ffn}});
  }
  json["block_configs"] = blocks;
  if (json.contains("linearpatch")) json["linearpatch"].erase("layers");  // block_configs says it
  return json.dump(2) + "\n";
}

}  // namespace lp
