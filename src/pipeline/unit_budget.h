// How many sublayer units: `prune --unit attention|mlp|sublayer` with a
// size target instead of a count. The targets are arithmetic on the sites
// removed (parameters from the family's tensor table, the KV cache as the
// share of layers that keep their attention), so the chosen count is the
// fewest units, in the selection's order, that meet every target:
// iterative selection stops at the first step that meets them, a cosine
// ranking is cut at the first prefix that does. No quality is judged.
// Private to the pipeline module.
#pragma once

#include <vector>

#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/pipeline/results.h"

namespace lp {

// Throws GateFailed when even the most units the job allows (its count, or
// every eligible site) cannot meet the targets: before any work.
void check_unit_targets(const PruneJob& job, const LlamaConfig& config);

struct UnitBudgetChoice {
  Selection selection;
  BudgetOutcome outcome;  // chosen_layers: the number of units
};

// Selects units until the targets are met; GateFailed when the allowed
// count runs out first.
UnitBudgetChoice choose_units_within_budget(const PruneJob& job, const SelectionInputs& inputs);

}  // namespace lp
