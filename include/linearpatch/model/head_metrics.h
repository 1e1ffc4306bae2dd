// Losses over the language-model head, computed in chunks of positions so a
// 128k vocabulary never costs more than a bounded slice of logits.
// `hidden` is the input of the final norm, [rows, C] or [B, T, C].
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lp {

class LlamaModel;

// Sum over rows of -log p(target).
double nll_sum(const LlamaModel& model, const at::Tensor& hidden, const at::Tensor& targets);

struct HeadComparison {
  double kl_sum = 0;  // sum over rows of KL(p || q)
  double nll_p = 0;   // sums of -log p(target), -log q(target) when targets are given
  double nll_q = 0;
  int64_t rows = 0;
};

// p = reference distribution (e.g. the dense model), q = the one compared.
HeadComparison compare_heads(const LlamaModel& p_model, const at::Tensor& p_hidden, const LlamaModel& q_model,
                             const at::Tensor& q_hidden, const at::Tensor& targets = at::Tensor());

}  // namespace lp
