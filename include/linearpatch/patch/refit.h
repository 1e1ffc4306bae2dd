// Least-squares repairs fitted on the stream of a model that already lacks
// other layers. A repair fitted on the dense stream (patch/repair.h) maps
// what the dense model gives the layer before a gap; once earlier gaps are
// cut and repaired, that layer sees a different stream. Fitting on the
// stream the pruned model really produces, against the dense stream after
// the gap as the target, corrects what the earlier gaps left behind too
// (sequential fitting, as GPTQ/SparseGPT-style one-shot methods do).
//
// For a gap [s, e) with s >= 1 the source is the raw MLP output m of layer
// s - 1 of the pruned model and h_mid its stream after attention:
//   A = Σ mᵀm,  B = Σ mᵀ(X_dense^(e) - h_mid),
// so that h_mid + m·T ≈ X_dense^(e). A gap at layer 0 maps the stream:
//   A = Σ xᵀx,  B = Σ xᵀX_dense^(e)  with x the embeddings.
// With nothing removed these are the dense fit's equations.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/calib/stream_stash.h"
#include "linearpatch/core/layer_range.h"
#include "linearpatch/model/llama.h"

namespace lp {

// Normal equations (float64, on the CPU) of the mlp-lstsq fit of each of
// `gaps` (dense numbering) for the model `dense` without `removed` (ascending),
// repaired by `patches`. Every gap must contain the removed layers it
// touches and keep layer s - 1 and layer e (or e == L). Cost per batch of
// `windows`: the dense model up to the last gap's end, the pruned one up to
// the last layer read, plus one layer per gap. With `dense_streams` (kept
// by a dense pass over the same windows in the same batches) the dense
// model runs only from the kept position nearest below each point it is
// read at.
std::vector<NormalEquations> stream_fit_equations(const LlamaModel& dense, const std::vector<int64_t>& removed,
                                                  const LayerPatches& patches, const std::vector<LayerRange>& gaps,
                                                  const at::Tensor& windows, int64_t batch_size,
                                                  const StreamStash* dense_streams = nullptr);

}  // namespace lp
