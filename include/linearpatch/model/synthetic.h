// Synthetic LLaMA-family checkpoints (llama, mistral, qwen2, qwen3): real-format HF directories (config.json as
// transformers 5.x writes it, safetensors shards + index, tokenizer.json)
// holding random weights, for benchmarks at sizes no fixture has.
//
// Weights follow transformers' own initialisation of LlamaForCausalLM
// (every matrix N(0, initializer_range = 0.02), every RMSNorm weight 1,
// biases 0).
// Each layer then adds an update of roughly constant size to the residual
// stream, so its norm grows like sqrt(layer) instead of exploding, and the
// cosine between layer inputs l and l+n behaves like a trained model's
// (rising with depth), which keeps block scores meaningful.
//
// The tokenizer is byte-level BPE without merges (one token per byte of
// text, LLaMA-3 pre-tokenizer): ids 0-255 are the 256 byte tokens, then
// unreachable placeholders <|unused_N|> pad the vocabulary, and the last
// min(256, V - 256) ids are special tokens, as in LLaMA-3:
// <|begin_of_text|> (BOS), <|end_of_text|> (EOS), <|reserved_special_token_K|>.
// For V = 128256 that puts BOS/EOS at 128000/128001, LLaMA-3's ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "linearpatch/config/llama_config.h"

namespace lp {

// Architectures by name ("llama3-8b", "qwen2.5-7b", "qwen3-8b", "mistral-7b", ...), with
// the published configs' sizes, RoPE settings and tying. BOS/EOS ids are the
// synthetic tokenizer's.
std::vector<std::string> synthetic_shape_names();
LlamaConfig synthetic_shape(const std::string& name);  // UsageError listing the names

// A config for the given sizes with LLaMA-3 defaults (rope_theta 5e5, no
// scaling, 8192 positions), the family's layer features (Qwen2 q/k/v
// biases, Qwen3 q/k norms; full attention) and the synthetic tokenizer's
// BOS/EOS; head_dim 0 means hidden / heads. Throws UsageError for sizes no
// such model can have.
LlamaConfig synthetic_config(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads, int64_t kv_heads,
                             int64_t vocab, bool tie_word_embeddings, ModelFamily family = ModelFamily::kLlama,
                             int64_t head_dim = 0);

// Sets the BOS/EOS ids of `config` to the synthetic tokenizer's for its vocabulary.
void set_synthetic_special_ids(LlamaConfig& config);

std::string synthetic_config_json(const LlamaConfig& config);
std::string synthetic_tokenizer_json(int64_t vocab_size);
std::string synthetic_tokenizer_config_json();

struct SyntheticSpec {
  LlamaConfig config;  // config.dtype ("bfloat16", "float16", "float32") is the storage dtype
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000;  // HF's default of save_pretrained
};

struct SyntheticSummary {
  std::vector<std::string> files;
  int64_t parameters = 0;
  uint64_t tensor_bytes = 0;
};

// Writes the checkpoint into `dir` (existing and empty). Weights are drawn
// one shard at a time on all intra-op threads while the previous shard is
// written, so memory holds at most two shards. The bytes depend only on the
// spec (seed included), not on the thread count. Throws Interrupted between
// tensors after SIGINT/SIGTERM.
SyntheticSummary write_synthetic_checkpoint(const std::filesystem::path& dir, const SyntheticSpec& spec);

}  // namespace lp
