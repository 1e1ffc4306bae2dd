// The result of choosing layers: what goes, what stays, and where the gaps
// (maximal runs of removed layers) are, each of which gets its own patch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "linearpatch/prune/block_selection.h"

namespace lp {

struct Gap {
  int64_t start = 0;         // first removed layer (original numbering)
  int64_t end = 0;           // one past the last removed layer
  int64_t new_position = 0;  // index, after pruning, of the layer that now receives X^(start)
};

struct PrunePlan {
  int64_t original_layers = 0;
  std::vector<int64_t> removed;  // ascending
  std::vector<int64_t> kept;     // ascending
  std::vector<Gap> gaps;
};

// Throws UsageError when a layer is out of range or repeated, or nothing is kept.
PrunePlan make_prune_plan(int64_t num_layers, std::vector<int64_t> removed);
PrunePlan make_prune_plan(int64_t num_layers, const Block& block);

// "[23, 28) = layers 23, 24, 25, 26, 27"
std::string describe_gap(const Gap& gap);
std::string describe_layers(const std::vector<int64_t>& layers);

}  // namespace lp
