// Runs calibration windows through a model so observers can collect
// activation statistics, batch by batch: memory holds one batch of
// activations whatever the number of windows.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp {

// windows [N, T] int64. Observers see the inputs of every layer and of the
// final norm (positions 0..L) and every MLP output. No logits are
// computed. With 0 <= end_layer < L only layers [0, end_layer) run and the
// observers see positions 0..end_layer.
void run_calibration(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size,
                     const std::vector<ForwardObserver*>& observers, const std::string& what,
                     int64_t end_layer = -1);

}  // namespace lp
