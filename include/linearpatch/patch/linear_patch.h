// The LinearPatch of a removed block [start, end) (paper §3.2-3.4):
//   d_k = mean over windows of  mean_t |(X^(end) H)_tk| / mean_t |(X^(start) H)_tk|
//   P   = H · diag(d) · Hᵀ       applied as x <- x · P
// on the residual stream entering the first layer kept after the gap.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lp {

class MagnitudeStats;
class Rotation;

struct ScaleSummary {
  double mean = 0, min = 0, max = 0, std = 0;
};

// d [C] float64 for the block, from statistics collected with `rotation`.
at::Tensor patch_scales(const MagnitudeStats& stats, int64_t start, int64_t end);

// P = H diag(d) Hᵀ, computed in float64, returned as float32 [C, C] on the CPU.
at::Tensor patch_matrix(const Rotation& rotation, const at::Tensor& scales);

ScaleSummary summarize_scales(const at::Tensor& scales);

}  // namespace lp
