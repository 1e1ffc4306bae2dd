// Which layers to remove: every selection metric behind one call.
//
//   cosine      the contiguous block whose input and output streams are
//               most similar (LLM-Streamline, the paper's choice);
//   angular     lowest last-token angular distance (Gromov et al.);
//   bi          the n layers of lowest block influence (ShortGPT), possibly
//               non-contiguous, one repair per gap;
//   patched-kl  the contiguous block whose removal with its LinearPatch
//               gives the lowest KL to the dense model on held-out windows;
//   iterative   greedy removal one layer at a time, by that KL (SLEB-style),
//               possibly non-contiguous.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "linearpatch/select/block_selection.h"
#include "linearpatch/select/iterative.h"
#include "linearpatch/select/sublayer_selection.h"

namespace lp {

class HeldOutKl;
class LlamaModel;
class MagnitudeStats;
class Rotation;
class SimilarityStats;

enum class Metric { kCosine, kAngular, kBlockInfluence, kPatchedKl, kIterative };
std::string metric_name(Metric metric);  // cosine, angular, bi, patched-kl, iterative
std::optional<Metric> metric_from_name(const std::string& name);

struct SelectionOptions {
  int64_t layers = 0;  // n: units to remove (whole layers unless `unit` says otherwise)
  Unit unit = Unit::kLayer;  // attention, mlp, sublayer: cosine or iterative only (sublayer_selection.h)
  Metric metric = Metric::kCosine;
  bool allow_edges = false;
  std::optional<int64_t> start;  // force the block [start, start + n)
  // iterative: the repair candidates are scored with; none: the kind the
  // run keeps.
  std::optional<RepairKind> score_repair;
  SearchKind search = SearchKind::kGreedy;  // iterative: refine the greedy set
  int64_t search_budget = 0;                // iterative swap: most sets tried (0: n·E)
};

// Throws UsageError when no block of n layers fits or a forced start is out
// of range.
void check_selection(const SelectionOptions& options, int64_t num_layers);

// What the calibration pass must collect for `options` in a model of L layers.
struct SelectionNeeds {
  std::vector<int64_t> similarity_gaps;  // position distances for SimilarityStats
  std::vector<int64_t> magnitude_gaps;   // and for the LinearPatch statistics
  bool held_out = false;                 // held-out windows for KL scoring
};
SelectionNeeds selection_needs(const SelectionOptions& options, int64_t num_layers);

// The statistics and scorer the metrics read; each may be null when the
// options do not need it (magnitude: plain removal is scored).
struct SelectionInputs {
  const LlamaModel& dense;
  const SimilarityStats* similarity = nullptr;
  const MagnitudeStats* magnitude = nullptr;
  const Rotation* rotation = nullptr;
  HeldOutKl* held_out = nullptr;
  // Iterative: the repair candidates are scored with (the kind the run
  // keeps); kLinearPatch without `magnitude` scores plain removal.
  RepairKind scoring_repair = RepairKind::kLinearPatch;
  at::Tensor fit_windows{};  // kMlpLstsq scoring: where its least squares are fitted
  int64_t batch_size = 1;
  IterativeStepHook after_step{};  // iterative: called after each greedy step
};

struct Selection {
  std::vector<int64_t> removed;   // ascending, original numbering
  std::vector<Site> removed_sites;  // sublayer units: the sites removed (sorted)
  std::vector<SiteStep> site_steps;  // sublayer units, iterative
  std::vector<std::pair<Site, double>> site_cosine;  // sublayer units, cosine: every eligible site, best first
  std::vector<Block> candidates;  // contiguous metrics: every block, best first
  std::vector<double> influence;  // bi: every layer's block influence
  std::vector<IterativeStep> steps;  // iterative: every greedy step's candidates
  std::vector<Repair> scored_repairs;  // iterative: per gap, the repair the final set was scored with
  std::optional<SearchOutcome> search;  // iterative past greedy: the moves tried and kept
};

// Throws UsageError for an impossible request (n too large, a forced start
// out of range).
Selection select_layers(const SelectionOptions& options, const SelectionInputs& inputs);

}  // namespace lp
