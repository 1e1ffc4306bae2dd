#include "linearpatch/eval/held_out_kl.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "linearpatch/core/error.h"
#include "linearpatch/model/head_metrics.h"

namespace lp {

HeldOutKl::HeldOutKl(const LlamaModel& reference, const at::Tensor& windows, int64_t batch_size)
    : reference_(reference), windows_(windows), batch_size_(batch_size) {
  if (!windows.defined() || windows.size(0) == 0) throw Error("internal: no held-out windows to score on");
  c10::InferenceMode guard;
  for (int64_t w0 = 0; w0 < windows.size(0); w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, windows.size(0) - w0));
    reference_final_.push_back(reference.run_layers(reference.embed(ids), 0, reference.num_layers()));
  }
}

void HeldOutKl::cache_base(const LlamaModel& base, int64_t up_to) {
  c10::InferenceMode guard;
  const int64_t last = up_to < 0 ? base.num_layers() : std::min(up_to, base.num_layers());
  base_inputs_.clear();
  for (int64_t w0 = 0; w0 < windows_.size(0); w0 += batch_size_) {
    const auto ids = windows_.narrow(0, w0, std::min(batch_size_, windows_.size(0) - w0));
    std::vector<at::Tensor> inputs{base.embed(ids)};
    // run_layers(h, l, l + 1) patches the input of l, then runs l: what
    // comes out is the stream entering l + 1 before its own patch.
    for (int64_t l = 0; l < last; ++l) inputs.push_back(base.run_layers(inputs.back(), l, l + 1));
    base_inputs_.push_back(std::move(inputs));
  }
}

at::Tensor HeldOutKl::final_hidden(const LlamaModel& candidate, size_t b, int64_t first_changed_layer) const {
  const bool from_cache = first_changed_layer > 0 && !base_inputs_.empty();
  if (from_cache) return candidate.run_layers(base_inputs_[b].at(static_cast<size_t>(first_changed_layer)),
                                              first_changed_layer, candidate.num_layers());
  const int64_t w0 = static_cast<int64_t>(b) * batch_size_;
  const auto ids = windows_.narrow(0, w0, std::min(batch_size_, windows_.size(0) - w0));
  return candidate.run_layers(candidate.embed(ids), 0, candidate.num_layers());
}

double HeldOutKl::mean_kl(const LlamaModel& candidate, int64_t first_changed_layer) const {
  c10::InferenceMode guard;
  double kl = 0;
  int64_t tokens = 0;
  for (size_t b = 0; b < reference_final_.size(); ++b) {
    const auto hidden = final_hidden(candidate, b, first_changed_layer);
    kl += compare_heads(reference_, reference_final_[b], candidate, hidden).kl_sum;
    tokens += hidden.size(0) * hidden.size(1);
  }
  return kl / static_cast<double>(tokens);
}

HeldOutQuality HeldOutKl::quality(const LlamaModel& candidate) const { return scores(candidate).quality; }

HeldOutKl::Scores HeldOutKl::scores(const LlamaModel& candidate, int64_t first_changed_layer) const {
  c10::InferenceMode guard;
  const int64_t T = windows_.size(1);
  double kl = 0, last_kl = 0, nll = 0, reference_nll = 0;
  int64_t tokens = 0;
  for (size_t b = 0; b < reference_final_.size(); ++b) {
    const int64_t w0 = static_cast<int64_t>(b) * batch_size_;
    const auto ids = windows_.narrow(0, w0, std::min(batch_size_, windows_.size(0) - w0));
    const auto hidden = final_hidden(candidate, b, first_changed_layer);
    // Positions 0..T-2 predict a token of the window; the last one only
    // counts for the KL.
    const auto cmp = compare_heads(reference_, reference_final_[b].narrow(1, 0, T - 1), candidate,
                                   hidden.narrow(1, 0, T - 1), ids.narrow(1, 1, T - 1));
    kl += cmp.kl_sum;
    nll += cmp.nll_q;
    reference_nll += cmp.nll_p;
    last_kl += compare_heads(reference_, reference_final_[b].narrow(1, T - 1, 1), candidate,
                             hidden.narrow(1, T - 1, 1)).kl_sum;
    tokens += ids.size(0) * (T - 1);
  }
  const double n = static_cast<double>(tokens);
  const double all = static_cast<double>(tokens + windows_.size(0));
  return {(kl + last_kl) / all, {kl / n, std::exp(nll / n), std::exp(reference_nll / n)}};
}

}  // namespace lp
