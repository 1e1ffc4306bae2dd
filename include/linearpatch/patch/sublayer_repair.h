// Repairs of removed attention sublayers that fold exactly into a plain
// checkpoint: for a removed attention of layer k, a [C, C] map T on the MLP
// output m of layer k - 1, fitted by ridge least squares on calibration
// tokens so that m·T ≈ m + a, a the attention output of layer k the model
// no longer adds. T folds into layer k - 1's down_proj (down_proj' =
// Tᵀ·down_proj, as mlp-lstsq repairs do; patch/fold.h). Fitted on the dense
// model's stream. A removed attention of layer 0, or of a layer whose
// predecessor lost its MLP, stays unrepaired.
//
// Likewise for a removed MLP of layer k whose attention stays: T on the
// attention output a of layer k, so that a·T ≈ a + m (m the MLP output the
// model no longer adds), folded into layer k's o_proj (o_proj' =
// Tᵀ·o_proj). Every repair changes a different weight: an attention repair
// needs the MLP before it kept, an MLP repair the attention beside it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/patch/repair.h"

namespace lp {
class LlamaModel;

// One Repair per repaired site (on_mlp_output, gap [k, k): the MLP output
// of layer k - 1), for layer_patches() and fold_mlp_repairs().
std::vector<Repair> fit_attention_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                          const at::Tensor& windows, int64_t batch_size);
// One Repair per repaired MLP site (on_attention_output, gap [k, k): the
// attention output of layer k).
std::vector<Repair> fit_mlp_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                    const at::Tensor& windows, int64_t batch_size);
// Both kinds from one pass over `windows`, attention repairs first.
std::vector<Repair> fit_sublayer_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                         const at::Tensor& windows, int64_t batch_size);

}  // namespace lp
