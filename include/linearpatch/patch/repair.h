// Repairs of a removed block [s, e): a linear map that makes the stream the
// next kept layer reads look like the one the dense model gave it.
//
//   none         plain removal (the baseline);
//   linearpatch  P = H·diag(d)·Hᵀ on the stream entering layer e (the
//                paper's patch, training-free, from magnitude statistics);
//   mlp-lstsq    T on the MLP output of layer s - 1, fitted by least
//                squares (ReplaceMe), so that layer's output reproduces the
//                dense stream after the block. It folds exactly into that
//                layer's down_proj: no extra tensor, a plain checkpoint. A
//                gap at layer 0 has no MLP before it and gets a
//                least-squares map on the stream instead.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/core/layer_range.h"
#include "linearpatch/model/llama.h"

namespace lp {

class MagnitudeStats;
class Rotation;

enum class RepairKind { kNone, kLinearPatch, kMlpLstsq };
std::string repair_kind_name(RepairKind kind);  // "none", "linearpatch", "mlp-lstsq"

struct Repair {
  LayerRange gap;
  RepairKind kind = RepairKind::kNone;
  // [C, C] float32 on the CPU, x <- x @ matrix; undefined for kNone.
  at::Tensor matrix;
  // Where the matrix applies: the MLP output of layer gap.start - 1, the
  // attention output of layer gap.start (the repair of that layer's removed
  // MLP), or (neither) the stream entering layer gap.end.
  bool on_mlp_output = false;
  bool on_attention_output = false;
  // A map on the stream: an extra tensor in exact checkpoints, folded only
  // approximately into plain ones (the others fold exactly).
  bool on_stream() const { return kind != RepairKind::kNone && !on_mlp_output && !on_attention_output; }

  std::string description() const;  // "mlp-lstsq: on the MLP output of layer 3, folded into its down_proj"
};

// Plain removal of `gap`.
Repair unrepaired(const LayerRange& gap);

// Every repair's matrix where it applies (original layer numbering).
LayerPatches layer_patches(const std::vector<Repair>& repairs);

Repair linearpatch_repair(const LayerRange& gap, const MagnitudeStats& stats, const Rotation& rotation);

// Which least-squares fit an mlp-lstsq repair of `gap` needs.
LeastSquaresStats::Source mlp_lstsq_source(const LayerRange& gap);
// The mlp-lstsq repair from the normal equations of its fit (the source
// mlp_lstsq_source named): ridge regression in float64.
Repair mlp_lstsq_repair(const LayerRange& gap, const NormalEquations& equations);

// argmin_M ||X M - Y||² + λ||M||² from A = XᵀX, B = XᵀY, with λ a small
// multiple of A's mean diagonal so rank-poor activations stay solvable.
at::Tensor solve_ridge(const NormalEquations& equations);

}  // namespace lp
