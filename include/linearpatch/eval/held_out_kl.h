// KL(reference || candidate) of next-token distributions on a few held-out
// windows: how choices of layers and repairs are judged by what they do to
// the model. The reference's final hidden states are computed once; a base
// model's stream before every layer can be cached, so a candidate that
// equals the base below layer k runs only layers k.. (n x L candidates then
// cost about n·L/2 full forwards over the held-out windows, not n·L).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp {

// A candidate against the reference on every predicting position of the
// held-out windows (T - 1 per window, as `eval --baseline` scores them).
struct HeldOutQuality {
  double mean_kl = 0;  // KL(reference || candidate) per token, nats
  double ppl = 0, reference_ppl = 0;
  double ppl_ratio() const { return ppl / reference_ppl; }
};

class HeldOutKl {
 public:
  // windows [N, T] int64, run `batch_size` at a time.
  HeldOutKl(const LlamaModel& reference, const at::Tensor& windows, int64_t batch_size);

  // Keeps `base`'s stream entering each of its layers 0..up_to (before any
  // patch there; up_to < 0: every layer and the final norm) for every batch.
  // Candidates that differ from `base` only from layer up_to on then skip
  // the layers below it.
  void cache_base(const LlamaModel& base, int64_t up_to = -1);
  // Mean per-token KL of `candidate`, run from the cached stream at
  // `first_changed_layer` (a layer number of both base and candidate, below
  // which they agree: layers and every patch at a lower position). Without
  // a cached base, or with first_changed_layer 0, the whole model runs.
  double mean_kl(const LlamaModel& candidate, int64_t first_changed_layer = 0) const;

  // Perplexities and KL of the whole candidate (one forward; the
  // reference's states are the cached ones).
  HeldOutQuality quality(const LlamaModel& candidate) const;

  // mean_kl and quality from one forward, run as mean_kl runs.
  struct Scores {
    double mean_kl = 0;
    HeldOutQuality quality;
  };
  Scores scores(const LlamaModel& candidate, int64_t first_changed_layer = 0) const;

  int64_t windows() const { return windows_.size(0); }

 private:
  // Batch b's input of the candidate's final norm, from the cache where allowed.
  at::Tensor final_hidden(const LlamaModel& candidate, size_t b, int64_t first_changed_layer) const;

  const LlamaModel& reference_;
  at::Tensor windows_;
  int64_t batch_size_;
  std::vector<at::Tensor> reference_final_;           // per batch: input of the final norm
  std::vector<std::vector<at::Tensor>> base_inputs_;  // per batch, per layer
};

}  // namespace lp
