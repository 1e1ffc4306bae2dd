// Folding repairs into standard weights, for runtimes that cannot apply an
// extra matrix on the residual stream (`prune --emit vanilla`).
//
// A map on a layer's MLP output (mlp-lstsq) folds exactly:
// down_proj' = Tᵀ·down_proj (and bias' = bias·T). A map P on the stream
// entering a layer cannot in general (every later layer reads the stream
// through RMSNorm, which does not commute with a non-orthogonal map), so
// two approximations are offered and measured against the exact patch:
//
//  * scalar: the stream entering a gap is multiplied by α = trace(P)/C.
//    This part folds exactly: RMSNorm ignores a common scale, so scaling
//    the embeddings and every o_proj/down_proj before the gap by α scales
//    the whole stream there by α and changes nothing else. Tied embeddings
//    are untied (the head keeps the original values).
//  * least-squares: the down_proj of the last layer kept before the gap is
//    refit so that layer's output approximates its dense output times P
//    over calibration tokens (ridge regression in float64). A gap at layer
//    0 is folded exactly into the embeddings (E·P).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "linearpatch/model/llama.h"
#include "linearpatch/patch/repair.h"

namespace lp {

enum class FoldKind { kScalar, kLeastSquares };
std::string fold_kind_name(FoldKind kind);  // "scalar", "least-squares"

struct Fold {
  std::string kind;    // "exact" (MLP-output maps only), "scalar" or "least-squares"
  TensorMap replaced;  // original layer numbering -> new float32 values
  bool untie_embeddings = false;
};

// The exact fold of every repair applied on a sublayer's output (an MLP
// output into that down_proj, an attention output into that o_proj);
// stream repairs are left alone.
Fold fold_mlp_repairs(const LlamaModel& dense, const std::vector<Repair>& repairs);

// Folds the stream repairs of `repairs` (the others are ignored) on top of
// `start` (e.g. the exact fold of the MLP repairs), whose replaced values
// it builds on. `windows` [N, T] are the calibration windows the
// least-squares fit runs on.
Fold fold_stream_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed,
                         const std::vector<Repair>& repairs, FoldKind kind, const at::Tensor& windows,
                         int64_t batch_size, Fold start = {});

// The pruned model with the fold applied and no patches.
LlamaModel apply_fold(const LlamaModel& dense, const std::vector<int64_t>& removed, const Fold& fold);

}  // namespace lp
