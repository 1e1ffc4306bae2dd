// Perplexity and agreement with a baseline model on token windows.
// Protocol: every window is scored on all positions but its first
// (T - 1 predictions per window); windows come from sequential_windows().
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lp {

class LlamaModel;

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;  // nats per scored token
  int64_t tokens = 0;   // scored tokens
  int64_t windows = 0;
  double seconds = 0;
};

struct BaselineComparison {
  PerplexityResult model, baseline;
  double ppl_ratio = 0;  // model ppl / baseline ppl
  double mean_kl = 0;    // mean over scored tokens of KL(baseline || model), nats
};

// windows [N, T] int64; batch_size windows go through the model at once.
PerplexityResult perplexity(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size);

// Both models on the same windows in one pass.
BaselineComparison compare_with_baseline(const LlamaModel& model, const LlamaModel& baseline,
                                         const at::Tensor& windows, int64_t batch_size);

}  // namespace lp
