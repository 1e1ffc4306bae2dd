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
//
// Or LinearPatch stream patches, one per run of removed sublayers: an
// extra [C, C] tensor on the residual stream, held by exact checkpoints
// only (a Nemotron-NAS block has nowhere to put it).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/patch/repair.h"

namespace lp {
class LlamaModel;
class Rotation;

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

// One LinearPatch per run of removed sublayers (site_runs), on the stream
// entering the run's patched_layer() (gap [l, l) of that layer):
// P = H·diag(d)·Hᵀ, d_k = mean over windows of
// mean_t |(X_end H)_tk| / mean_t |(X_begin H)_tk|, X_b the dense stream at
// boundary b, H `rotation`. A run of whole layers gets the whole-layer
// LinearPatch of that block.
std::vector<Repair> fit_stream_patches(const LlamaModel& dense, const std::vector<Site>& removed,
                                       const at::Tensor& windows, int64_t batch_size, const Rotation& rotation);

}  // namespace lp
