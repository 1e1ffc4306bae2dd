// Folding patches into standard LLaMA weights (`prune --emit vanilla`), for
// runtimes that cannot apply an extra matrix on the residual stream. An
// arbitrary P cannot be folded exactly (every later layer reads the stream
// through RMSNorm, which does not commute with a non-orthogonal map), so
// two approximations are offered and measured against the exact patch:
//
//  * scalar: the stream entering a gap is multiplied by α = trace(P)/C.
//    This part folds exactly: RMSNorm ignores a common scale, so scaling
//    the embeddings and every o_proj/down_proj before the gap by α scales
//    the whole stream there by α and changes nothing else. Tied embeddings
//    are untied (the head keeps the original values).
//  * least-squares: the down_proj of the last layer before the gap is refit
//    so that layer's output approximates its dense output times P over
//    calibration tokens (ridge regression in float64). A gap at layer 0 is
//    folded exactly into the embeddings (E·P).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

#include "linearpatch/model/llama.h"
#include "linearpatch/prune/prune_plan.h"

namespace lp {

struct Fold {
  std::string kind;   // "scalar" or "least-squares"
  TensorMap replaced;  // original layer numbering -> new float32 values
  bool untie_embeddings = false;
};

// `patches`: new layer position (a gap of `plan`) -> [C, C].
Fold fold_scalar(const LlamaModel& dense, const PrunePlan& plan, const std::map<int64_t, at::Tensor>& patches);
Fold fold_least_squares(const LlamaModel& dense, const PrunePlan& plan, const std::map<int64_t, at::Tensor>& patches,
                        const at::Tensor& windows, int64_t batch_size);

// The pruned model with the fold applied and no patches.
LlamaModel apply_fold(const LlamaModel& dense, const PrunePlan& plan, const Fold& fold);

}  // namespace lp
