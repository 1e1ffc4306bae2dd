// Iterative removal (`--metric iterative`, after SLEB): n greedy steps, each
// removing the one layer whose removal, with its gap repaired, moves the
// model least from the dense one, measured as KL(dense || candidate) on
// held-out windows. Earlier removals stay; a layer next to an earlier gap
// extends it (one repair per gap, refitted for the wider gap), so the
// result may be non-contiguous.
//
// Cost: each step caches the current model's stream before every layer on
// the held-out windows (one forward), then a candidate at layer k runs only
// layers k..L: about L/2 forwards of the held-out windows per step, n·L/2
// in all, plus n caching forwards. Repairs during the search are
// LinearPatches from the calibration statistics of every gap size up to n
// (the one calibration pass provides them); the final repair of each gap
// is chosen afterwards.
#pragma once

#include <cstdint>
#include <vector>

namespace lp {

class HeldOutKl;
class LlamaModel;
class MagnitudeStats;
class Rotation;

struct IterativeStep {
  int64_t removed_layer = 0;  // original numbering
  double kl = 0;              // of the model after this step
  std::vector<std::pair<int64_t, double>> candidates;  // (layer, KL) for every layer tried
};

struct IterativeResult {
  std::vector<int64_t> removed;  // ascending
  std::vector<IterativeStep> steps;
};

// `stats` must track every gap size 1..n (null: candidates are scored as
// plain removals).
IterativeResult select_iteratively(const LlamaModel& dense, HeldOutKl& held_out, const MagnitudeStats* stats,
                                   const Rotation& rotation, int64_t n, bool allow_edges);

}  // namespace lp
