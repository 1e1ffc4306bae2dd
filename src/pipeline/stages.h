// The stages of `prune` (and `score`), each with typed inputs and outputs:
//   calibrate -> select -> repair -> [distill] -> emit (fold) -> write.
// Private to the pipeline module.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/stream_stash.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/patch/fold.h"
#include "linearpatch/patch/repair.h"
#include "linearpatch/patch/rotation.h"
#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/pipeline/results.h"
#include "linearpatch/prune/checkpoint_writer.h"

namespace lp {

class Tokenizer;

// Wall time of each phase, in order.
class PhaseClock {
 public:
  template <typename Fn>
  auto time(const std::string& phase, Fn&& fn) {
    Stopwatch watch;
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      add(phase, watch.seconds());
    } else {
      auto result = fn();
      add(phase, watch.seconds());
      return result;
    }
  }
  void add(const std::string& phase, double seconds) { timings_.emplace_back(phase, seconds); }
  const Timings& timings() const { return timings_; }

 private:
  Timings timings_;
};

struct Calibrated {
  at::Tensor fit_windows, held_out_windows;  // held-out undefined unless asked for
  CalibrationSummary summary;
  std::unique_ptr<SimilarityStats> similarity;
  std::unique_ptr<MagnitudeStats> magnitude;  // null without LinearPatch statistics
  // The dense stream at a few positions, for least-squares fits to resume
  // from; null unless asked for.
  std::unique_ptr<StreamStash> checkpoints;
};

// The calibration text tokenized and cut into windows: prepared before the
// model is loaded, so text too short for the windows fails before any
// weight is read.
struct CalibrationText {
  at::Tensor fit_windows, held_out_windows;  // held-out undefined unless asked for
  int64_t corpus_tokens = 0;
  std::string prefix;  // what the tokenizer puts in front of the text
};
CalibrationText prepare_calibration_text(const Tokenizer& tokenizer, const CalibrationOptions& options, bool held_out,
                                         PhaseClock& clock);

// Runs the windows through `model` once, collecting what `needs` asks for;
// magnitude statistics only with a rotation. With `checkpoints`, keeps the
// stream at as many evenly spaced positions as the memory of the held-out
// cache allows (see stash_positions), for least-squares repairs.
Calibrated calibrate(const LlamaModel& model, CalibrationText text, const CalibrationOptions& options,
                     const SelectionNeeds& needs, const Rotation* rotation, PhaseClock& clock,
                     bool checkpoints = false);

// How many positions of the fit windows' stream a stash may keep: half as
// many window-positions as the held-out cache of an iterative step holds
// ((L + 1) positions of every held-out window), so that the checkpoints and
// a refit's stash together cost at most what that cache does.
int64_t stash_positions(int64_t num_layers, int64_t held_out_windows, int64_t fit_windows);

// The rotation LinearPatch scales are estimated in (warns when the hidden
// size has no Hadamard construction).
Rotation make_rotation(const LlamaModel& model, RotationKind kind, uint64_t seed);

struct RepairOutcome {
  std::vector<Repair> repairs;  // one per gap, in gap order
  std::vector<GapReport> reports;
  // The held-out figures of the repaired model, where choosing the repairs
  // already measured them (kAuto, or a sequential refit of several gaps).
  std::optional<HeldOutQuality> quality;
};

// One repair per gap of `removed`, as `kind` asks; kAuto judges the kinds on
// `held_out`. With kSequential, the least-squares repair of every gap after
// the first is refitted on the stream of the model with the earlier gaps cut
// and repaired, and kept where the held-out KL (if any) does not rise.
// `calibration` may be null for kNone only. Judging replaces the base whose
// stream `held_out` keeps. kAuto also tries, per gap, the least-squares map
// in `scored` (the selection's, Selection::scored_repairs) for that gap.
RepairOutcome repair_gaps(const LlamaModel& dense, const std::vector<int64_t>& removed, RepairChoice kind,
                          RefitChoice refit, const Calibrated* calibration, const Rotation* rotation,
                          HeldOutKl* held_out, int64_t batch_size, const std::vector<Repair>& scored = {});

// Training windows from the first 90 % of the distillation text, validation
// windows from the last 10 %.
std::pair<at::Tensor, at::Tensor> distillation_windows(const Tokenizer& tokenizer, const DistillJob& job,
                                                       const CalibrationOptions& calibration);
// Trains every repair matrix; returns the report and updates `repairs`.
DistillReport distill_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed,
                              std::vector<Repair>& repairs, const Tokenizer& tokenizer, const DistillJob& job,
                              const CalibrationOptions& calibration);

struct Emitted {
  CheckpointEdits edits;
  std::optional<FoldReport> fold;
};

// What the checkpoint stores for `repairs`: MLP-output maps folded exactly,
// stream patches as tensors (exact) or folded (vanilla, judged on held-out
// windows of `calibration`, which may be null when nothing is folded).
Emitted emit_repairs(const LlamaModel& dense, const PrunePlan& plan, const std::vector<Repair>& repairs,
                     const EmitOptions& emit, const Calibrated* calibration, int64_t batch_size);

MemoryUse memory_use(const LlamaModel& model);

}  // namespace lp
