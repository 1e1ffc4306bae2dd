// What `score` and `prune` found and did, as typed results. One place turns
// each into JSON (for machines, --json / --report) and into a short human
// summary, and a score into an SVG heatmap.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "linearpatch/core/layer_range.h"
#include "linearpatch/eval/evaluation.h"
#include "linearpatch/select/selection.h"

namespace lp {

using Report = nlohmann::ordered_json;

// Phase name -> seconds, in the order the phases ran.
using Timings = std::vector<std::pair<std::string, double>>;

struct CalibrationSummary {
  std::vector<std::string> files;
  int64_t samples = 0, held_out_samples = 0, seq_len = 0, corpus_tokens = 0;
  uint64_t seed = 0;
  std::string text_prefix;     // what the tokenizer puts in front: "BOS <s> (id 1)" or "none"
  std::string attention_note;  // sliding windows against the window length, when the model has any
};

struct DevicePlacement {
  std::string device;
  LayerRange layers;
  bool embeddings = false, head = false;
  std::optional<double> peak_mib;  // GPUs
};

struct MemoryUse {
  double peak_rss_mib = 0;
  std::optional<double> peak_gpu_mib;  // the sum over the model's GPUs
  bool streamed_layers = false;
  std::vector<DevicePlacement> placement;  // one entry per device holding layers
};

// One gap and how it was repaired.
struct GapReport {
  LayerRange range;
  int64_t new_position = 0;   // index of the layer after the gap in the pruned model
  std::string repair;         // repair_kind_name of the kept repair
  std::string description;    // Repair::description()
  std::optional<std::array<double, 4>> scales;  // linearpatch: mean, min, max, std of d
  std::vector<std::pair<std::string, double>> candidates;  // auto: held-out KL of every kind tried
  bool search_fit_kept = false;  // auto: the map the iterative selection scored this gap with was kept
  // Sequential refit of a least-squares repair (every gap after the first):
  // held-out KL of the whole model with this gap's dense fit and with its
  // refit (the earlier gaps as kept, the later ones as fitted so far);
  // absent without held-out windows.
  struct Refit {
    double kl_dense_fit = 0, kl_refit = 0;
    bool kept = false;
  };
  std::optional<Refit> refit;
};

struct DistillReport {
  int64_t samples = 0, val_samples = 0, seq_len = 0, top_k = 0, epochs = 0, batch_size = 0, grad_accum = 0,
          steps = 0;
  double lr = 0, min_lr = 0, weight_decay = 0;
  uint64_t seed = 0;
  double val_kl_before = 0, val_kl_after = 0, first_step_kl = 0, last_step_kl = 0, tokens_per_second = 0;
  bool targets_on_disk = false, prefix_cached = false;
  int64_t data_parallel_ranks = 1;  // replicas whose gradients were summed each step
  double seconds_total = 0, seconds_teacher = 0, seconds_prefix = 0, seconds_student = 0, seconds_validation = 0,
         seconds_gradient_sum = 0;
};

struct FoldQuality {
  std::string kind;  // "exact patch", "scalar", "least-squares"
  double mean_kl = 0, ppl = 0;
};

struct FoldReport {
  int64_t held_out_windows = 0;
  FoldQuality exact;
  std::vector<FoldQuality> folds;
  std::string chosen;
};

// The repaired model (before distillation or folding) against the dense
// one on the held-out calibration windows.
struct HeldOutFigures {
  double ppl_ratio = 0, kl = 0, ppl = 0, dense_ppl = 0;
  int64_t windows = 0;
};

// One depth a budget search evaluated.
struct CurvePoint {
  int64_t layers = 0;
  std::vector<int64_t> removed;
  int64_t parameters = 0;  // of the checkpoint this depth would write
  HeldOutFigures held_out;
  std::optional<TaskComparison> tasks;  // with eval tasks
};

struct BudgetOutcome {
  int64_t chosen_layers = 0;
  // max_ppl_ratio, max_kl, min_retained (failed one layer deeper),
  // target_params (reached, nothing asked to go deeper) or layers (the
  // deepest depth allowed met every budget).
  std::string bound_by;
  std::vector<std::pair<std::string, double>> limits;  // the budgets given, target_params absolute
  std::string search;  // how depths were visited
  bool monotone = true;  // every limited quality worsened (or held) with every visited depth
};

struct PruneResult {
  std::string model, output;
  int64_t layers = 0, n = 0;
  std::string metric;  // "forced" when the block was given, not chosen
  std::string unit = "layer";  // what n counts: layer, attention, mlp, sublayer
  std::vector<std::string> sublayer_repairs;  // sublayer units: Repair::description() of each folded repair
  std::string recipe;
  std::vector<std::string> recipe_overrides;
  Selection selection;
  std::vector<GapReport> gaps;
  std::string repair;    // what was asked: none, linearpatch, mlp-lstsq, auto
  std::string rotation;  // the basis of LinearPatch scales
  std::optional<DistillReport> distill;
  std::string emit;  // exact, vanilla
  std::optional<FoldReport> fold;
  std::optional<TaskComparison> tasks;  // --eval-task: the written model against the dense one
  std::optional<HeldOutFigures> held_out;  // whenever held-out windows were drawn
  std::vector<CurvePoint> curve;           // with a budget: every depth evaluated, shallowest first
  std::vector<std::pair<std::string, std::vector<CurvePoint>>> compared_curves;  // by metric name
  std::optional<BudgetOutcome> budget;
  int64_t parameters_before = 0, parameters_after = 0;
  std::vector<std::string> files;
  uint64_t bytes = 0;
  uint64_t bytes_written_early = 0;  // of `bytes`, copied while the earlier stages ran
  bool synced = true;  // fsynced before the rename, i.e. not --no-fsync
  std::optional<CalibrationSummary> calibration;
  Timings timings;
  MemoryUse memory;
};

struct ScoreResult {
  std::string model, metric;
  int64_t layers = 0;
  std::optional<int64_t> n;
  // What was ranked: blocks of whole layers ("layer"), or attention, mlp or
  // sublayer units, whose ranking is in the removed_sites, site_cosine
  // (every eligible site, most similar first) or site_steps (iterative,
  // in the order of removal) of `sites`.
  std::string unit = "layer";
  Selection sites;
  std::map<std::string, std::vector<Block>> rankings;   // with n: by metric name
  std::map<int64_t, std::vector<Block>> blocks_by_n;    // without n: every size, by the metric
  std::map<std::string, std::map<int64_t, Block>> best_by_n;  // without n: each size's best block per metric
  std::vector<double> influence;
  std::vector<int64_t> bi_layers;
  std::vector<std::vector<std::optional<double>>> cosine;  // [L + 1][L + 1], null where not measured
  CalibrationSummary calibration;
  Timings timings;
  MemoryUse memory;
};

Report to_json(const PruneResult& result);
Report to_json(const ScoreResult& result);
std::string summarize(const PruneResult& result);
std::string summarize(const ScoreResult& result);
// The pruning curve as a chart (standalone SVG 1.1): quality against the
// share of parameters removed, one line per series, chosen depths ringed,
// limits dashed.
enum class CurveQuality { kPplRatio, kKl, kRetained };
struct CurveSeries {
  std::string label;  // "iterative + linearpatch"
  std::vector<CurvePoint> points;
  std::optional<int64_t> chosen_layers;
};
struct CurveLimit {
  std::string label;
  double value = 0;
};
struct CurvePlot {
  std::string title;
  int64_t parameters = 0;  // of the dense model
  CurveQuality quality = CurveQuality::kPplRatio;
  std::vector<CurveSeries> series;
  std::vector<CurveLimit> limits;           // on the quality axis
  std::optional<double> size_limit_percent;  // parameters the size target removes, %
};
// A budgeted prune's curve, plotted in the quality its budget limits.
CurvePlot curve_plot(const PruneResult& result);
std::string curve_svg(const CurvePlot& plot);

// The cosine matrix as a heatmap with the best block of each ranking marked
// and every candidate's score beside it (standalone SVG 1.1).
std::string score_svg(const ScoreResult& result);

}  // namespace lp
