// The residual stream entering a few chosen positions, kept per batch while
// a pass runs over calibration windows, so that a later pass over the same
// windows in the same batches can start there instead of recomputing the
// layers below: the least-squares fits of the repairs resume from the
// calibration pass's checkpoints, and sequential refits read the dense
// stream at their gap's end from the fit's pass.
// Memory: one [B, T, C] tensor per batch and position, in the stream's
// dtype, where the forward produced it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp {

class StreamStash : public ForwardObserver {
 public:
  // `fallback` (may be null) answers for positions this stash does not keep.
  explicit StreamStash(std::vector<int64_t> positions, const StreamStash* fallback = nullptr);
  void begin_batch(int64_t batch) override { batch_ = batch; }
  void on_layer_input(int64_t position, const at::Tensor& hidden) override;

  // The highest kept position at or below `position`; -1 if none.
  int64_t nearest_at_or_below(int64_t position) const;
  // The stream entering a kept `position` for the `batch`-th batch.
  const at::Tensor& at(int64_t batch, int64_t position) const;

  // `count` positions spread evenly over 1..num_layers - 1.
  static std::vector<int64_t> evenly_spaced(int64_t num_layers, int64_t count);

 private:
  std::vector<int64_t> positions_;
  const StreamStash* fallback_;
  std::map<std::pair<int64_t, int64_t>, at::Tensor> kept_;  // (batch, position)
  int64_t batch_ = 0;
};

}  // namespace lp
