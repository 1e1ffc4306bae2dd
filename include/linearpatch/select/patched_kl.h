// Patch-aware block choice (`--metric patched-kl`): every candidate block
// of n layers is removed and repaired with its LinearPatch, and scored by
// the mean per-token KL(dense || pruned) of next-token distributions on
// held-out windows. The dense stream before every layer is cached once, so
// a candidate only runs the layers after its gap.
#pragma once

#include <cstdint>
#include <vector>

#include "linearpatch/select/block_selection.h"

namespace lp {

class HeldOutKl;
class LlamaModel;
class MagnitudeStats;
class Rotation;

// Ranks every candidate block, lowest KL first. `stats` must track gap n;
// null scores plain removal.
std::vector<Block> rank_by_patched_kl(const LlamaModel& dense, HeldOutKl& held_out, const MagnitudeStats* stats,
                                      const Rotation& rotation, int64_t n, bool allow_edges);

}  // namespace lp
