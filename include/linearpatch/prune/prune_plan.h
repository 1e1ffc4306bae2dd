// The surgery plan: what goes, what stays, and where the gaps (maximal runs
// of removed layers) are, each with its position in the pruned model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/layer_range.h"

namespace lp {

struct Gap {
  LayerRange range;          // removed layers, original numbering
  int64_t new_position = 0;  // index, after pruning, of the layer that follows the gap
};

struct PrunePlan {
  int64_t original_layers = 0;
  std::vector<int64_t> removed;  // ascending
  std::vector<int64_t> kept;     // ascending
  std::vector<Gap> gaps;
  // Sublayers removed from kept layers (original numbering, ascending); a
  // layer that loses both is in `removed` instead.
  std::vector<Site> removed_sublayers;
};

// Throws UsageError when a layer or site is out of range or repeated, or
// nothing is kept. Sites naming both sublayers of a layer remove the layer.
PrunePlan make_prune_plan(int64_t num_layers, std::vector<int64_t> removed, std::vector<Site> removed_sites = {});

// True when `plan` removes `sublayer` of kept layer `layer`.
bool removes_sublayer(const PrunePlan& plan, int64_t layer, Sublayer sublayer);

// The new number of original layer `layer` (kept), or of position L (the
// final norm's input) when layer == original_layers.
int64_t new_layer_index(const PrunePlan& plan, int64_t layer);

// Every removed site, both sublayers of each removed layer included
// (sorted): what LlamaModel::without_sites takes to build the pruned model.
std::vector<Site> removed_sites(const PrunePlan& plan);

// The runs of removed sublayers, whole layers included (site_runs): a
// stream patch of the pruned model repairs one of them. Without sublayers
// removed, one run per gap.
std::vector<SiteRun> removed_runs(const PrunePlan& plan);

}  // namespace lp
