// Runs calibration windows through a model so observers can collect
// activation statistics, batch by batch: memory holds one batch of
// activations whatever the number of windows.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "linearpatch/calib/stream_stash.h"
#include "linearpatch/model/llama.h"

namespace lp {

// windows [N, T] int64. Observers see the inputs of every layer and of the
// final norm (positions 0..L) and every MLP output. No logits are
// computed. With 0 <= end_layer < L only layers [0, end_layer) run and the
// observers see positions 0..end_layer. With `resume` (kept by a pass over
// the same windows in the same batches) each batch starts from its stream
// at the kept position nearest at or below `first_layer_read`, and the
// observers see the positions from there on only.
void run_calibration(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size,
                     const std::vector<ForwardObserver*>& observers, const std::string& what,
                     int64_t end_layer = -1, const StreamStash* resume = nullptr, int64_t first_layer_read = 0);

}  // namespace lp
