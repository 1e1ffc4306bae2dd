#include "linearpatch/calib/text_data.h"

#include <ATen/ATen.h>

#include <limits>
#include <random>

#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/text_corpus.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {
namespace {

// std::uniform_int_distribution differs between standard libraries; this
// keeps window offsets identical for a seed on every platform.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t value;
  do value = rng();
  while (value >= limit);
  return value % bound;
}

}  // namespace

void require_window_fits(int64_t seq_len, const LlamaConfig& config, const std::string& model) {
  if (config.max_position_embeddings > 0 && seq_len > config.max_position_embeddings)
    throw UsageError("windows of " + std::to_string(seq_len) + " tokens are longer than the " +
                     std::to_string(config.max_position_embeddings) + " positions " + model +
                     " supports (max_position_embeddings in its config.json)");
}

std::vector<int32_t> tokenize_corpus(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& files) {
  std::string joined;
  for (const auto& file : files) {
    auto text = io::read_corpus_file(file);
    if (text.empty()) continue;
    if (!joined.empty()) joined += "\n\n";
    joined += text;
  }
  if (joined.find_first_not_of(" \t\r\n") == std::string::npos) {
    std::string names;
    for (const auto& file : files) names += (names.empty() ? "" : ", ") + file.string();
    throw InputError("no text in " + (names.empty() ? std::string("(no files given)") : names));
  }
  // One prefix for the whole stream, as the reference protocol tokenizes:
  // what the model's tokenizer puts in front of a text (BOS for LLaMA,
  // nothing for Qwen), not config.json's bos_token_id.
  auto ids = tokenizer.encode(joined, /*add_special=*/false);
  const std::vector<int32_t> prefix = tokenizer.prefix_ids();
  ids.insert(ids.begin(), prefix.begin(), prefix.end());
  return ids;
}

at::Tensor sequential_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t max_windows) {
  if (seq_len < 2) throw UsageError("sequence length must be at least 2, got " + std::to_string(seq_len));
  int64_t count = static_cast<int64_t>(tokens.size()) / seq_len;
  if (count == 0)
    throw InputError("too little text for one window: " + std::to_string(tokens.size()) +
                     " tokens, a window needs " + std::to_string(seq_len));
  if (max_windows > 0) count = std::min(count, max_windows);
  auto all = at::from_blob(const_cast<int32_t*>(tokens.data()), {count * seq_len}, at::kInt);
  return all.to(at::kLong).view({count, seq_len});
}

at::Tensor random_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t count, uint64_t seed) {
  if (seq_len < 2) throw UsageError("sequence length must be at least 2, got " + std::to_string(seq_len));
  if (count < 1) throw UsageError("need at least one window, got " + std::to_string(count));
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < seq_len)
    throw InputError("too little text for one window: " + std::to_string(n) + " tokens, a window needs " +
                     std::to_string(seq_len));
  std::mt19937_64 rng(seed);
  auto windows = at::empty({count, seq_len}, at::kLong);
  auto* out = windows.data_ptr<int64_t>();
  for (int64_t w = 0; w < count; ++w) {
    const int64_t start = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(n - seq_len + 1)));
    for (int64_t t = 0; t < seq_len; ++t) out[w * seq_len + t] = tokens[start + t];
  }
  return windows;
}

SplitWindows split_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t fit_count,
                           int64_t held_out_count, uint64_t seed) {
  if (held_out_count <= 0) return {random_windows(tokens, seq_len, fit_count, seed), {}};
  const auto split = tokens.begin() + static_cast<std::ptrdiff_t>(tokens.size() * 9 / 10);
  const std::vector<int32_t> first(tokens.begin(), split), last(split, tokens.end());
  if (static_cast<int64_t>(last.size()) < seq_len)
    throw InputError("text too short for held-out windows: its last 10 % (" + std::to_string(last.size()) +
                     " tokens) must hold one window of " + std::to_string(seq_len) + " tokens");
  return {random_windows(first, seq_len, fit_count, seed), random_windows(last, seq_len, held_out_count, seed + 1)};
}

}  // namespace lp
