// What `score` and `prune` are asked to do, as typed options. The CLI turns
// flags into these (enums, not strings); validate() checks them against the
// model once, before any work, so a bad request never costs a calibration
// pass or leaves a partial output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "linearpatch/distill/distill.h"
#include "linearpatch/eval/tasks.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/rotation.h"
#include "linearpatch/select/selection.h"

namespace lp {

struct CalibrationOptions {
  std::vector<std::filesystem::path> files;
  int64_t samples = 128;  // windows the statistics and fits are measured on
  int64_t seq_len = 2048;
  uint64_t seed = 0;
  int64_t batch_size = 1;
  // Windows from the last 10 % of the text that candidate choices (block,
  // repair kind, fold) are judged on, when anything needs judging.
  int64_t held_out_samples = 8;
};

// none, linearpatch, mlp-lstsq (patch/repair.h), or auto: per gap, every
// kind fitted and the one with the lowest held-out KL kept.
enum class RepairChoice { kNone, kLinearPatch, kMlpLstsq, kAuto };
std::string repair_choice_name(RepairChoice choice);
std::optional<RepairChoice> repair_choice_from_name(const std::string& name);

// How several gaps' least-squares repairs are fitted: each on the dense
// stream, or gap by gap in model order, each on the stream of the model with
// every earlier gap already cut and repaired (patch/refit.h).
enum class RefitChoice { kDense, kSequential };
std::optional<RefitChoice> refit_choice_from_name(const std::string& name);  // "dense", "sequential"

struct RepairOptions {
  RepairChoice kind = RepairChoice::kLinearPatch;
  RotationKind rotation = RotationKind::kAuto;  // basis of the LinearPatch scales
  RefitChoice refit = RefitChoice::kSequential;
};

struct DistillJob {
  std::vector<std::filesystem::path> files;  // empty: the calibration files
  int64_t samples = 5000;                    // training windows of the calibration length
  int64_t val_samples = 16;                  // held-out windows from the last 10 % of the text
  DistillOptions options;
};

// What the checkpoint holds: exact (stream patches as extra tensors plus a
// transformers modeling file) or vanilla (the family's plain class; stream
// patches folded approximately, see patch/fold.h). MLP-output repairs fold
// exactly in both.
enum class EmitMode { kExact, kVanilla };
enum class FoldChoice { kAuto, kScalar, kLeastSquares };  // auto: the lowest held-out KL
std::optional<FoldChoice> fold_choice_from_name(const std::string& name);

struct EmitOptions {
  EmitMode mode = EmitMode::kExact;
  FoldChoice fold = FoldChoice::kAuto;
  int64_t fold_samples = 32;  // calibration windows the least-squares fold is fitted on
};

struct ScoreJob {
  std::filesystem::path model_dir;
  ModelOptions model;
  CalibrationOptions calibration;
  SelectionOptions selection;  // layers 0: every block size, by cosine and angular
  RepairOptions repair;        // how patched-kl and iterative candidates are repaired
  bool rank_patched_kl = true;  // with n given: also rank by patched-kl (held-out forwards)
};

// How deep to prune, as budgets instead of a depth: the deepest depth (up
// to selection.layers, or as deep as the model allows when that is 0) at
// which every quality budget holds and the model is no larger than the
// size target. Quality is judged on the repaired model (before any
// distillation or fold) against the dense one on the held-out calibration
// windows, and on the eval tasks for min_retained.
struct DepthBudget {
  std::optional<double> max_ppl_ratio;  // held-out perplexity / dense perplexity
  std::optional<double> max_kl;         // held-out KL(dense || pruned) per token, nats
  std::optional<double> min_retained;   // average retained task performance (a fraction)
  // At most this many parameters; values below 1 are a fraction of the
  // dense model's.
  std::optional<double> target_params;
  // Attention or sublayer units only: at most this fraction of the
  // attention sublayers' KV cache kept (layers keeping their attention
  // over all layers).
  std::optional<double> target_kv;
  bool judges_quality() const { return max_ppl_ratio || max_kl || min_retained; }
};

// "6.738B", "4.723M": a parameter count for people.
std::string describe_parameters(double count);

// The deepest removal `selection` allows in a model of `num_layers` layers.
int64_t deepest_removal(const SelectionOptions& selection, int64_t num_layers);

struct PruneJob {
  std::filesystem::path model_dir;
  ModelOptions model;
  CalibrationOptions calibration;
  SelectionOptions selection;
  RepairOptions repair;
  std::optional<DistillJob> distill;
  EmitOptions emit;
  std::vector<TaskSpec> eval_tasks;  // scored on the dense and the written model
  std::optional<DepthBudget> budget;  // the depth is searched; selection.layers caps it (0: no cap)
  // With a budget: these metrics' curves too, every depth up to the deepest
  // the search visited, measured the same way (for comparison; the budget
  // is judged on selection.metric only).
  std::vector<Metric> compare_metrics;
  std::filesystem::path output_dir;
  bool overwrite = false;
  uint64_t max_shard_bytes = 0;  // 0: like the source
  bool sync = true;              // fsync the output before renaming it into place
  // The named set of defaults the options came from, and the options the
  // user set over it: provenance for the report and the checkpoint.
  std::string recipe;
  std::vector<std::string> recipe_overrides;
};

// Throw UsageError naming the value at fault.
void validate(const ScoreJob& job, const LlamaConfig& config);
void validate(const PruneJob& job, const LlamaConfig& config);
// The budget's size target against the dense model's config: throws
// GateFailed when even the deepest removal leaves too many parameters
// (whole layers; units: pipeline/unit_budget.h).
void check_size_target(const PruneJob& job, const LlamaConfig& config);

}  // namespace lp
