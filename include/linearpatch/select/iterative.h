// Iterative removal (`--metric iterative`, after SLEB): n greedy steps, each
// removing the one layer whose removal, with its gap repaired, moves the
// model least from the dense one, measured as KL(dense || candidate) on
// held-out windows. Earlier removals stay; a layer next to an earlier gap
// extends it (one repair per gap, refitted for the wider gap), so the
// result may be non-contiguous.
//
// Candidates are scored with the repair the run keeps: plain removal, a
// LinearPatch from the calibration statistics of every gap size up to n,
// or an mlp-lstsq map fitted on the stream of the current model (every
// earlier gap cut and repaired) against the dense stream after the gap,
// on `fit_windows` (patch/refit.h).
//
// Cost: each step caches the current model's stream before every layer on
// the held-out windows (one forward), then a candidate at layer k runs only
// layers k..L: about L/2 forwards of the held-out windows per step, n·L/2
// in all, plus n caching forwards. mlp-lstsq scoring adds per step one pass
// of the dense and of the current model over the fit windows (both up to
// the last candidate gap) and one layer per candidate, and holds 2·E float64
// [C, C] sums for the E candidates of a step.
//
// Search past greedy (kSwap): from the greedy set, try replacing one removed
// layer by one kept eligible layer (nearest first), each trial repaired
// from scratch (least squares refitted on `fit_windows` for the whole set)
// and judged by the full held-out KL; a trial that lowers it is accepted and
// the trials start over, until none helps or `budget` trials are spent.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "linearpatch/patch/repair.h"

namespace lp {

class HeldOutKl;
class LlamaModel;
class MagnitudeStats;
class Rotation;

struct IterativeResult;

// Called after each greedy step with the result so far; false stops the
// greedy there (the steps are nested, so a depth budget can stop before n).
using IterativeStepHook = std::function<bool(const IterativeResult&)>;

enum class SearchKind { kGreedy, kSwap };
std::string search_kind_name(SearchKind kind);  // "greedy", "swap"
std::optional<SearchKind> search_kind_from_name(const std::string& name);

struct IterativeOptions {
  int64_t n = 0;
  bool allow_edges = false;
  // How candidates' gaps are repaired while they are scored.
  RepairKind repair = RepairKind::kLinearPatch;
  const MagnitudeStats* stats = nullptr;  // kLinearPatch: every gap size 1..n
  const Rotation* rotation = nullptr;     // kLinearPatch
  at::Tensor fit_windows;                 // kMlpLstsq: [N, T] int64
  int64_t batch_size = 1;
  SearchKind search = SearchKind::kGreedy;
  int64_t budget = 0;  // kSwap: most sets tried; 0: n·E (about the greedy's candidate count)
  IterativeStepHook after_step;  // kSwap runs only when the greedy reached n
};

struct IterativeStep {
  int64_t removed_layer = 0;  // original numbering
  double kl = 0;              // of the model after this step
  std::vector<std::pair<int64_t, double>> candidates;  // (layer, KL) for every layer tried
};

struct SearchMove {
  int64_t restored = 0, removed = 0;  // the removed layer put back, the kept layer removed instead
  double kl = 0;                      // held-out KL of the set after the move
};

struct SearchOutcome {
  std::string kind;                    // "swap"
  std::vector<int64_t> greedy;         // the greedy set
  double greedy_kl = 0;                // its held-out KL, repaired as the trials are
  std::vector<SearchMove> accepted;    // in order
  double final_kl = 0;
  int64_t trials = 0, budget = 0;
};

struct IterativeResult {
  std::vector<int64_t> removed;  // ascending: the final set
  // One per gap of `removed`: the repairs its score was measured with.
  std::vector<Repair> scored_repairs;
  std::vector<IterativeStep> steps;  // the greedy's nested steps
  std::optional<SearchOutcome> search;
};

IterativeResult select_iteratively(const LlamaModel& dense, HeldOutKl& held_out, const IterativeOptions& options);

}  // namespace lp
