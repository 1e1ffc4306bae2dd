// Nemotron-NAS (DeciLM, model_type "nemotron-nas"): NVIDIA's config.json
// form for decoders whose layers differ, read by vLLM (nemotron_nas.py) and
// llama.cpp (DeciModel). Per layer a block config:
//   {"attention": {"no_op", "replace_with_linear", "n_heads_in_group"},
//    "ffn": {"no_op", "replace_with_linear", "ffn_mult"}}
// with num_key_value_heads = num_attention_heads / n_heads_in_group and the
// intermediate size int(2 * ffn_mult * hidden / 3) rounded up to a multiple
// of 256. We write LLaMA-layer models with some sublayers removed in it and
// read those whose blocks are all LLaMA layers of one shape or no_op.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "linearpatch/config/llama_config.h"

namespace lp {

constexpr const char* kNemotronModelType = "nemotron-nas";
constexpr const char* kNemotronClass = "DeciLMForCausalLM";

// The readers' intermediate size for `ffn_mult`.
int64_t nemotron_intermediate_size(double ffn_mult, int64_t hidden_size);

// Throws UsageError (one line, naming the reason) when a model of `config`
// with sublayers removed cannot be written as Nemotron-NAS so that the
// readers rebuild exactly its layers.
void check_nemotron_writable(const LlamaConfig& config);

// The config.json of such a checkpoint, from the pruned model's LLaMA-form
// config.json text and its per-layer sublayer specs.
std::string nemotron_config_json(std::string_view pruned_config_json, const LlamaConfig& config,
                                 const std::vector<LayerSpec>& layer_specs);

}  // namespace lp
