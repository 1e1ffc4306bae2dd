#include "linearpatch/select/patched_kl.h"

#include "linearpatch/core/progress.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/repair.h"

namespace lp {

std::vector<Block> rank_by_patched_kl(const LlamaModel& dense, HeldOutKl& held_out, const MagnitudeStats* stats,
                                      const Rotation& rotation, int64_t n, bool allow_edges) {
  const auto range = candidate_starts(dense.num_layers(), n, allow_edges);
  held_out.cache_base(dense);
  Progress progress("patched-kl scoring", range.last_start - range.first_start + 1, "blocks");
  std::vector<Block> scored;
  for (int64_t start = range.first_start; start <= range.last_start; ++start) {
    const LayerRange gap{start, start + n};
    std::vector<int64_t> removed;
    for (int64_t l = gap.start; l < gap.end; ++l) removed.push_back(l);
    const auto repair = stats ? linearpatch_repair(gap, *stats, rotation) : unrepaired(gap);
    // Layers before the gap are the dense ones: the cached stream at
    // `start` is exactly what the pruned model sees there.
    const double kl = held_out.mean_kl(dense.without_layers(removed, layer_patches({repair})), start);
    scored.push_back({start, start + n, kl});
    progress.advance();
  }
  progress.finish();
  return rank_scored_blocks(scored, /*higher_better=*/false);
}

}  // namespace lp
