#include "linearpatch/eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "linearpatch/core/progress.h"
#include "linearpatch/model/head_metrics.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

// Final-norm inputs at the positions that predict a next token, [B, T-1, C].
at::Tensor predicting_states(const LlamaModel& model, const at::Tensor& ids) {
  auto hidden = model.run_layers(model.embed(ids), 0, model.num_layers());
  return hidden.narrow(1, 0, ids.size(1) - 1);
}

at::Tensor next_tokens(const at::Tensor& ids) { return ids.narrow(1, 1, ids.size(1) - 1); }

PerplexityResult summarize(double nll_sum, int64_t tokens, int64_t windows, double seconds) {
  PerplexityResult r;
  r.tokens = tokens;
  r.windows = windows;
  r.mean_nll = tokens ? nll_sum / static_cast<double>(tokens) : 0;
  r.ppl = std::exp(r.mean_nll);
  r.seconds = seconds;
  return r;
}

}  // namespace

PerplexityResult perplexity(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  const int64_t N = windows.size(0), T = windows.size(1);
  Progress progress("perplexity", N, "windows");
  double nll = 0;
  for (int64_t w0 = 0; w0 < N; w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    nll += nll_sum(model, predicting_states(model, ids), next_tokens(ids));
    progress.advance(ids.size(0));
  }
  return summarize(nll, N * (T - 1), N, progress.finish());
}

BaselineComparison compare_with_baseline(const LlamaModel& model, const LlamaModel& baseline,
                                         const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  const int64_t N = windows.size(0), T = windows.size(1);
  Progress progress("perplexity vs baseline", N, "windows");
  double nll = 0, base_nll = 0, kl = 0, seconds_model = 0, seconds_base = 0;
  for (int64_t w0 = 0; w0 < N; w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    Stopwatch base_clock;
    const auto base_states = predicting_states(baseline, ids);
    seconds_base += base_clock.seconds();
    Stopwatch model_clock;
    const auto states = predicting_states(model, ids);
    seconds_model += model_clock.seconds();
    const auto cmp = compare_heads(baseline, base_states, model, states, next_tokens(ids));
    base_nll += cmp.nll_p;
    nll += cmp.nll_q;
    kl += cmp.kl_sum;
    progress.advance(ids.size(0));
  }
  progress.finish();
  BaselineComparison result;
  const int64_t tokens = N * (T - 1);
  result.model = summarize(nll, tokens, N, seconds_model);
  result.baseline = summarize(base_nll, tokens, N, seconds_base);
  result.ppl_ratio = result.model.ppl / result.baseline.ppl;
  result.mean_kl = kl / static_cast<double>(tokens);
  return result;
}

}  // namespace lp
