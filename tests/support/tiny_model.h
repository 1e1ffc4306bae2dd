// Tiny random LLaMA models built inside tests: a config, weights drawn from
// a seeded generator, and (optionally) a checkpoint directory written with
// the project's own safetensors writer so tests exercise the real loader.
#pragma once

#include <filesystem>

#include "linearpatch/config/llama_config.h"
#include "linearpatch/model/llama.h"

namespace lp::test {

// hidden 48 (= 16·3, a non-power-of-two Hadamard size), 4 heads / 2 KV heads,
// head_dim 12, ffn 96, 6 layers, vocab 64, with the family's defining
// features (Qwen2: q/k/v biases; Qwen3: q/k norms), full attention.
LlamaConfig tiny_config(ModelFamily family = ModelFamily::kLlama);

// N(0, std) weights; norms around 1 so layers are not trivial.
TensorMap random_weights(const LlamaConfig& config, uint64_t seed, double std = 0.08);

// config.json text for `config` (transformers 5.x style, the family's own
// fields: layer_types and use_sliding_window for Qwen, sliding_window).
std::string config_json(const LlamaConfig& config);

// [B, T] token ids drawn uniformly from [0, vocab) with a seeded generator.
at::Tensor random_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed);

// Writes config.json + model.safetensors (bf16 unless `dtype` says otherwise).
void write_checkpoint(const std::filesystem::path& dir, const LlamaConfig& config, const TensorMap& weights,
                      at::ScalarType dtype = at::kBFloat16);

}  // namespace lp::test
