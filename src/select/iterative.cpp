#include "linearpatch/select/iterative.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "linearpatch/core/layer_range.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/repair.h"
#include "linearpatch/select/block_selection.h"

namespace lp {
namespace {

// The dense model without `removed` (ascending), each gap repaired.
LlamaModel repaired(const LlamaModel& dense, const std::vector<int64_t>& removed, const MagnitudeStats* stats,
                    const Rotation& rotation) {
  std::vector<Repair> repairs;
  if (stats)
    for (const auto& gap : layer_runs(removed)) repairs.push_back(linearpatch_repair(gap, *stats, rotation));
  return dense.without_layers(removed, layer_patches(repairs));
}

std::vector<int64_t> with_layer(std::vector<int64_t> removed, int64_t layer) {
  removed.insert(std::upper_bound(removed.begin(), removed.end(), layer), layer);
  return removed;
}

}  // namespace

IterativeResult select_iteratively(const LlamaModel& dense, HeldOutKl& held_out, const MagnitudeStats* stats,
                                   const Rotation& rotation, int64_t n, bool allow_edges) {
  const int64_t L = dense.num_layers();
  candidate_starts(L, n, allow_edges);  // validates n
  const auto eligible = eligible_layers(L, allow_edges);
  IterativeResult result;
  const int64_t E = static_cast<int64_t>(eligible.size());
  Progress progress("iterative selection", n * E - n * (n - 1) / 2, "candidates");
  for (int64_t step = 0; step < n; ++step) {
    held_out.cache_base(repaired(dense, result.removed, stats, rotation));
    IterativeStep chosen;
    chosen.kl = std::numeric_limits<double>::infinity();
    for (const int64_t layer : eligible) {
      if (std::binary_search(result.removed.begin(), result.removed.end(), layer)) continue;
      const auto removed = with_layer(result.removed, layer);
      // The candidate equals the current model below the current position
      // of `layer`: the layers before it and the patches at lower positions.
      const auto position = layer - static_cast<int64_t>(std::lower_bound(result.removed.begin(),
                                                                           result.removed.end(), layer) -
                                                          result.removed.begin());
      const double kl = held_out.mean_kl(repaired(dense, removed, stats, rotation), position);
      chosen.candidates.emplace_back(layer, kl);
      progress.advance();
      if (kl < chosen.kl) {
        chosen.kl = kl;
        chosen.removed_layer = layer;
      }
    }
    result.removed = with_layer(result.removed, chosen.removed_layer);
    spdlog::info("iterative selection, step {}/{}: layer {} (KL {:.5f}); removed so far: {}", step + 1, n,
                 chosen.removed_layer, chosen.kl, describe_layers(result.removed));
    result.steps.push_back(std::move(chosen));
  }
  progress.finish();
  return result;
}

}  // namespace lp
