#include "linearpatch/patch/repair.h"

#include <ATen/ATen.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/core/error.h"
#include "linearpatch/patch/linear_patch.h"

namespace lp {
namespace {

// Relative to the mean of diag(XᵀX): enough to make a rank-poor system
// solvable, small enough not to bias a well-posed fit.
constexpr double kRidge = 1e-4;

}  // namespace

std::string repair_kind_name(RepairKind kind) {
  switch (kind) {
    case RepairKind::kNone: return "none";
    case RepairKind::kLinearPatch: return "linearpatch";
    case RepairKind::kMlpLstsq: return "mlp-lstsq";
  }
  return "?";
}

std::string Repair::description() const {
  if (kind == RepairKind::kNone) return "none: plain removal";
  if (on_mlp_output)
    return repair_kind_name(kind) + ": on the MLP output of layer " + std::to_string(gap.start - 1) +
           ", folded into its down_proj";
  if (on_attention_output)
    return repair_kind_name(kind) + ": on the attention output of layer " + std::to_string(gap.start) +
           ", folded into its o_proj";
  return repair_kind_name(kind) + ": on the stream entering layer " + std::to_string(gap.end) +
         (kind == RepairKind::kMlpLstsq ? " (least squares; no MLP before a gap at layer 0)" : "");
}

Repair unrepaired(const LayerRange& gap) {
  Repair repair;
  repair.gap = gap;
  return repair;
}

LayerPatches layer_patches(const std::vector<Repair>& repairs) {
  LayerPatches patches;
  for (const auto& repair : repairs) {
    if (repair.kind == RepairKind::kNone) continue;
    if (repair.on_mlp_output) patches.mlp_output[repair.gap.start - 1] = repair.matrix;
    else if (repair.on_attention_output) patches.attention_output[repair.gap.start] = repair.matrix;
    else patches.stream_input[repair.gap.end] = repair.matrix;
  }
  return patches;
}

Repair linearpatch_repair(const LayerRange& gap, const MagnitudeStats& stats, const Rotation& rotation) {
  return {gap, RepairKind::kLinearPatch, patch_matrix(rotation, patch_scales(stats, gap.start, gap.end)), false};
}

LeastSquaresStats::Source mlp_lstsq_source(const LayerRange& gap) {
  return gap.start >= 1 ? LeastSquaresStats::Source::kMlpOutput : LeastSquaresStats::Source::kStream;
}

Repair mlp_lstsq_repair(const LayerRange& gap, const NormalEquations& equations) {
  const bool on_mlp = mlp_lstsq_source(gap) == LeastSquaresStats::Source::kMlpOutput;
  return {gap, RepairKind::kMlpLstsq, solve_ridge(equations).to(at::kFloat).contiguous(), on_mlp};
}

at::Tensor solve_ridge(const NormalEquations& equations) {
  const auto& a = equations.lhs;
  if (!a.defined() || a.size(0) != a.size(1) || equations.rhs.size(0) != a.size(0))
    throw Error("internal: malformed normal equations");
  const double ridge = kRidge * at::diagonal(a).mean().item<double>();
  return at::linalg_solve(a + ridge * at::eye(a.size(0), a.options()), equations.rhs);
}

}  // namespace lp
