// How many layers: the depth budget of `prune` (PruneJob::budget). Each
// depth the search visits is selected by the job's metric, repaired as the
// job asks, and judged on the held-out windows (and the task rows for a
// retained-performance budget); the deepest depth meeting every budget is
// kept with its repairs, and every visited depth becomes a curve point.
//
// Iterative selection is nested (the layers of depth k + 1 contain those of
// depth k), so the greedy runs once, a depth judged after each step, and
// stops at the first depth a quality budget fails. Every other metric
// chooses each depth on its own; the search is a binary one, which assumes
// quality worsens with depth: the outcome says whether the visited depths
// agreed.
// Private to the pipeline module.
#pragma once

#include <cstdint>
#include <vector>

#include "linearpatch/eval/evaluation.h"
#include "pipeline/stages.h"

namespace lp {

struct DepthSearchInputs {
  const LlamaModel& dense;
  const Calibrated& calibrated;
  const Rotation* rotation = nullptr;
  HeldOutKl& held_out;
  const TaskBaseline* tasks = nullptr;  // with eval tasks: scored at every depth
  // Parameters of the dense checkpoint and of each of its layers.
  int64_t parameters = 0;
  std::vector<int64_t> layer_parameters;
  // How iterative candidates are scored, as in a run without a budget.
  RepairKind scoring_repair = RepairKind::kLinearPatch;
  at::Tensor fit_windows;
};

struct DepthSearchResult {
  Selection selection;    // of the chosen depth
  RepairOutcome repairs;  // of the chosen depth, fitted during the search
  std::vector<CurvePoint> curve;
  BudgetOutcome outcome;
};

// What the calibration pass must collect for a budgeted job: every depth
// up to the deepest allowed may be visited.
SelectionNeeds depth_search_needs(const PruneJob& job, const SelectionNeeds& at_deepest, int64_t num_layers);

// Throws GateFailed, naming the best value reached, when no depth meets
// every budget.
DepthSearchResult search_depth(const PruneJob& job, const DepthSearchInputs& inputs);

// Every depth 1..deepest by `metric` (its greedy run once for iterative),
// each repaired and measured as the search measures them.
std::vector<CurvePoint> metric_curve(const PruneJob& job, Metric metric, const DepthSearchInputs& inputs,
                                     int64_t deepest);

HeldOutFigures held_out_figures(const HeldOutQuality& quality, int64_t windows);

}  // namespace lp
