// Token windows for calibration, distillation and evaluation: text files
// (io::read_corpus_file) joined with blank lines, tokenized once with the
// tokenizer's prefix (BOS or nothing) in front, and cut into windows of T tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lp {

class Tokenizer;
struct LlamaConfig;

// Throws UsageError when windows of `seq_len` tokens are longer than the
// model's max_position_embeddings: positions past it were never trained
// (RoPE extrapolates), so every number measured on them would mislead.
void require_window_fits(int64_t seq_len, const LlamaConfig& config, const std::string& model);

// All files joined with "\n\n", tokenized once, with what the tokenizer
// puts in front of a text (Tokenizer::prefix_ids: BOS for LLaMA and
// Mistral, nothing for Qwen). Throws InputError if the text is empty.
std::vector<int32_t> tokenize_corpus(const Tokenizer& tokenizer,
                                     const std::vector<std::filesystem::path>& files);

// Non-overlapping windows from the start (the perplexity protocol):
// [min(max_windows, N / T), T] int64. max_windows <= 0 means all.
at::Tensor sequential_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t max_windows);

// `count` windows at uniformly random offsets in [0, N - T], reproducible
// for a given seed: [count, T] int64.
at::Tensor random_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t count, uint64_t seed);

// Windows to fit on and windows to judge the fit by. Without held-out
// windows the fit windows come from the whole text; with them, fit windows
// come from its first 90 % and held-out windows from the last 10 % (seed
// + 1), so a score on them is measured on text no statistic has seen.
// Throws InputError when the last 10 % cannot hold one window.
struct SplitWindows {
  at::Tensor fit;       // [fit_count, T]
  at::Tensor held_out;  // [held_out_count, T], undefined when none are asked for
};
SplitWindows split_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t fit_count,
                           int64_t held_out_count, uint64_t seed);

}  // namespace lp
