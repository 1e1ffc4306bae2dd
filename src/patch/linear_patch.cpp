#include "linearpatch/patch/linear_patch.h"

#include <ATen/ATen.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/patch/rotation.h"

namespace lp {

at::Tensor patch_scales(const MagnitudeStats& stats, int64_t start, int64_t end) {
  return stats.mean_ratio(start, end);
}

at::Tensor patch_matrix(const Rotation& rotation, const at::Tensor& scales) {
  // (H diag(d)) Hᵀ through the factored product: C²·(sum of factor sizes)
  // operations instead of C³ (0.2 s instead of minutes for C = 4096).
  auto scaled = rotation.matrix(at::kDouble) * scales.to(at::kCPU, at::kDouble).unsqueeze(0);
  return rotation.apply(scaled, /*transpose=*/true).to(at::kFloat).contiguous();
}

ScaleSummary summarize_scales(const at::Tensor& scales) {
  auto d = scales.to(at::kDouble);
  return {d.mean().item<double>(), d.min().item<double>(), d.max().item<double>(),
          d.numel() > 1 ? d.std().item<double>() : 0.0};
}

}  // namespace lp
