#include "linearpatch/model/head_metrics.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "linearpatch/model/llama.h"

namespace lp {
namespace {

constexpr int64_t kMaxLogitBytes = int64_t{256} << 20;

int64_t rows_per_chunk(const LlamaModel& model) {
  return std::max<int64_t>(1, kMaxLogitBytes / (model.config().vocab_size * int64_t{sizeof(float)}));
}

at::Tensor rows_of(const at::Tensor& hidden) { return hidden.reshape({-1, hidden.size(-1)}); }

at::Tensor log_probs(const LlamaModel& model, const at::Tensor& hidden_rows) {
  return at::log_softmax(model.lm_head(model.final_norm(hidden_rows)), -1);
}

double target_nll(const at::Tensor& log_p, const at::Tensor& targets) {
  return -log_p.gather(1, targets.to(log_p.device(), at::kLong).unsqueeze(1)).sum().item<double>();
}

}  // namespace

double nll_sum(const LlamaModel& model, const at::Tensor& hidden, const at::Tensor& targets) {
  const auto rows = rows_of(hidden);
  const auto flat_targets = targets.reshape({-1});
  const int64_t chunk = rows_per_chunk(model);
  double nll = 0;
  for (int64_t r0 = 0; r0 < rows.size(0); r0 += chunk) {
    const int64_t n = std::min(chunk, rows.size(0) - r0);
    nll += target_nll(log_probs(model, rows.narrow(0, r0, n)), flat_targets.narrow(0, r0, n));
  }
  return nll;
}

HeadComparison compare_heads(const LlamaModel& p_model, const at::Tensor& p_hidden, const LlamaModel& q_model,
                             const at::Tensor& q_hidden, const at::Tensor& targets) {
  const auto p_rows = rows_of(p_hidden), q_rows = rows_of(q_hidden);
  const auto flat_targets = targets.defined() ? targets.reshape({-1}) : targets;
  const int64_t chunk = std::min(rows_per_chunk(p_model), rows_per_chunk(q_model));
  HeadComparison result;
  result.rows = p_rows.size(0);
  for (int64_t r0 = 0; r0 < result.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, result.rows - r0);
    const auto log_q = log_probs(q_model, q_rows.narrow(0, r0, n));
    const auto log_p = log_probs(p_model, p_rows.narrow(0, r0, n)).to(log_q.device());
    result.kl_sum += (log_p.exp() * (log_p - log_q)).sum().item<double>();
    if (flat_targets.defined()) {
      result.nll_p += target_nll(log_p, flat_targets.narrow(0, r0, n));
      result.nll_q += target_nll(log_q, flat_targets.narrow(0, r0, n));
    }
  }
  return result;
}

}  // namespace lp
