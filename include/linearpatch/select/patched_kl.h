// Patch-aware block choice (`--metric patched-kl`): every candidate block
// is removed and patched, and scored by the mean per-token
// KL(dense || patched) of next-token distributions on a few calibration
// windows. The dense inputs of every candidate start are cached once, so a
// candidate only runs the layers after its gap.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "linearpatch/prune/block_selection.h"

namespace lp {

class LlamaModel;
class MagnitudeStats;
class Rotation;

// Ranks every candidate block of n layers, lowest KL first. `stats` must
// track gap n (without a patch, `stats` may be null: plain removal is scored).
std::vector<Block> rank_blocks_patched_kl(const LlamaModel& model, const at::Tensor& windows,
                                          const MagnitudeStats* stats, const Rotation& rotation, int64_t n,
                                          bool allow_edges, int64_t batch_size);

}  // namespace lp
