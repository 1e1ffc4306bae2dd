#include "linearpatch/pipeline/jobs.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "linearpatch/calib/text_data.h"
#include "linearpatch/config/nemotron_nas.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/remedy.h"

namespace lp {
namespace {

template <typename Enum>
struct Named {
  Enum value;
  const char* name;
};

constexpr Named<RepairChoice> kRepairChoices[] = {{RepairChoice::kNone, "none"},
                                                  {RepairChoice::kLinearPatch, "linearpatch"},
                                                  {RepairChoice::kMlpLstsq, "mlp-lstsq"},
                                                  {RepairChoice::kAuto, "auto"}};
constexpr Named<FoldChoice> kFoldChoices[] = {
    {FoldChoice::kAuto, "auto"}, {FoldChoice::kScalar, "scalar"}, {FoldChoice::kLeastSquares, "least-squares"}};

template <typename Enum, size_t N>
std::optional<Enum> from_name(const Named<Enum> (&table)[N], const std::string& name) {
  for (const auto& entry : table)
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

void validate_calibration(const CalibrationOptions& c, const LlamaConfig& config, const std::string& model) {
  require_window_fits(c.seq_len, config, model);
  if (c.samples < 1) throw UsageError("at least one calibration window is needed, got " + std::to_string(c.samples));
  if (c.held_out_samples < 1)
    throw UsageError("at least one held-out window is needed, got " + std::to_string(c.held_out_samples));
}

// Sublayer units, scored or pruned: which metrics rank them and how many
// may go. `count_needed`: the selection removes a given number (iterative
// always does; a cosine ranking without one lists every eligible site).
void validate_unit_selection(const SelectionOptions& s, const LlamaConfig& config, bool count_needed) {
  const std::string unit = unit_name(s.unit) + " units";
  if (s.metric != Metric::kIterative && s.metric != Metric::kCosine)
    throw UsageError(unit + " are chosen by the iterative or cosine metric, not " + metric_name(s.metric));
  if (s.metric == Metric::kCosine && s.unit == Unit::kSublayer)
    throw UsageError("sublayer units are chosen by the iterative metric (KL per parameter removed), not cosine");
  if (s.start) throw UsageError(unit + " cannot be forced as a block");
  if (s.search != SearchKind::kGreedy) throw UsageError(unit + " are chosen greedily; the swap search is for layers");
  if (s.layers < 1 && count_needed)
    throw UsageError("the number of " + unit + " to remove must be at least 1");
  const auto eligible = eligible_sites(config, s.unit, s.allow_edges);
  if (eligible.empty() || s.layers > static_cast<int64_t>(eligible.size()))
    throw UsageError("cannot remove " + std::to_string(std::max<int64_t>(s.layers, 1)) + " " + unit + ": " +
                     std::to_string(eligible.size()) + " are eligible" +
                     (s.allow_edges ? "" : " while the first and the last layer stay whole"));
}

// Sublayer units: what this build can select, repair and write for them.
void validate_units(const PruneJob& job, const LlamaConfig& config) {
  const auto& s = job.selection;
  const std::string unit = unit_name(s.unit) + " units";
  if (job.budget) {
    const auto& b = *job.budget;
    if (b.judges_quality())
      throw UsageError(unit + " take a parameter or KV-cache target; quality limits choose a depth of whole layers");
    if (!b.target_params && !b.target_kv) throw UsageError(unit + " need a parameter or KV-cache target");
    if (b.target_params && !(*b.target_params > 0 && std::isfinite(*b.target_params)))
      throw UsageError("the parameter target must be a positive number, got " + std::to_string(*b.target_params));
    if (b.target_kv && !(*b.target_kv >= 0 && *b.target_kv < 1))
      throw UsageError("the KV-cache target is the fraction kept, at least 0 and below 1, got " +
                       std::to_string(*b.target_kv));
    if (b.target_kv && s.unit == Unit::kMlp)
      throw UsageError("a KV-cache target removes attention: mlp units keep every layer's KV cache");
    if (!job.compare_metrics.empty()) throw UsageError("curves are compared along a depth budget of whole layers");
  }
  if (job.repair.kind == RepairChoice::kAuto)
    throw UsageError(unit + " are removed without repair, with least-squares maps folded exactly (mlp-lstsq: a "
                            "removed attention's into the previous layer's down_proj, a removed MLP's into the same "
                            "layer's o_proj), or with a LinearPatch on the stream after each run of removed "
                            "sublayers (linearpatch)");
  if (job.repair.kind == RepairChoice::kLinearPatch && job.emit.mode == EmitMode::kVanilla)
    throw UsageError("the LinearPatch of " + unit + " stays on the residual stream, and a Nemotron-NAS checkpoint "
                     "has no place for it: write the exact form, or repair with mlp-lstsq, which folds into the "
                     "weights");
  if (job.distill) throw UsageError(unit + " have no repair to distill");
  if (job.emit.mode == EmitMode::kVanilla) check_nemotron_writable(config);  // the vanilla form of such layers
  validate_unit_selection(s, config, /*count_needed=*/!job.budget);  // a budget's count is a cap
}

void validate_selection(const SelectionOptions& s, const LlamaConfig& config) {
  if (s.layers < 1 && s.metric != Metric::kCosine && s.metric != Metric::kAngular)
    throw UsageError("the " + metric_name(s.metric) + " metric needs the number of layers to remove");
  if (s.layers < 1) return;
  if (s.layers >= config.num_hidden_layers)
    throw UsageError("cannot remove " + std::to_string(s.layers) + " of " + std::to_string(config.num_hidden_layers) +
                     " layers: at least one must stay");
  try {
    check_selection(s, config.num_hidden_layers);
  } catch (const UsageError& e) {
    if (s.allow_edges) throw;
    auto with_edges = s;
    with_edges.allow_edges = true;
    check_selection(with_edges, config.num_hidden_layers);  // impossible even then: that is the error
    throw RemediableUsageError(e.what(), Remedy::kAllowEdges);
  }
}

void validate_budget(const PruneJob& job) {
  const auto& b = *job.budget;
  if (b.target_kv)
    throw UsageError("a KV-cache target counts attention sublayers: it needs attention or sublayer units");
  if (!b.judges_quality() && !b.target_params)
    throw UsageError("a depth budget needs a quality limit or a parameter target");
  if (job.selection.start) throw UsageError("a forced block has one depth; a budget chooses the depth");
  const auto positive = [](const std::optional<double>& v, const std::string& what) {
    if (v && !(*v > 0 && std::isfinite(*v)))
      throw UsageError(what + " must be a positive number, got " + std::to_string(*v));
  };
  positive(b.max_ppl_ratio, "the perplexity-ratio limit");
  positive(b.max_kl, "the KL limit");
  positive(b.min_retained, "the retained-performance limit");
  positive(b.target_params, "the parameter target");
  if (b.min_retained && job.eval_tasks.empty())
    throw UsageError("a retained-performance limit needs at least one evaluation task to measure it on");
}

}  // namespace

std::string describe_parameters(double count) {
  std::ostringstream out;
  out.precision(4);
  if (count >= 1e9) out << count / 1e9 << "B";
  else if (count >= 1e6) out << count / 1e6 << "M";
  else if (count >= 1e3) out << count / 1e3 << "K";
  else out << std::fixed << std::setprecision(0) << count;
  return out.str();
}

int64_t deepest_removal(const SelectionOptions& selection, int64_t num_layers) {
  const int64_t limit = std::max<int64_t>(0, num_layers - (selection.allow_edges ? 1 : 2));
  return selection.layers > 0 ? std::min(selection.layers, limit) : limit;
}

void check_size_target(const PruneJob& job, const LlamaConfig& config) {
  if (!job.budget || !job.budget->target_params || job.selection.unit != Unit::kLayer) return;
  const double dense = static_cast<double>(config.parameter_count());
  const double target = *job.budget->target_params < 1 ? *job.budget->target_params * dense : *job.budget->target_params;
  auto smallest = config;
  const int64_t deepest = deepest_removal(job.selection, config.num_hidden_layers);
  smallest.num_hidden_layers -= deepest;
  const double reachable = static_cast<double>(smallest.parameter_count());
  if (reachable > target)
    throw GateFailed("no depth reaches the parameter target of " + describe_parameters(target) + ": removing the most layers " +
                     "allowed (" + std::to_string(deepest) + " of " + std::to_string(config.num_hidden_layers) +
                     ") leaves " + describe_parameters(reachable) + " of " + describe_parameters(dense));
}

std::string repair_choice_name(RepairChoice choice) {
  for (const auto& entry : kRepairChoices)
    if (entry.value == choice) return entry.name;
  return "?";
}

std::optional<RefitChoice> refit_choice_from_name(const std::string& name) {
  if (name == "dense") return RefitChoice::kDense;
  if (name == "sequential") return RefitChoice::kSequential;
  return std::nullopt;
}

std::optional<RepairChoice> repair_choice_from_name(const std::string& name) { return from_name(kRepairChoices, name); }
std::optional<FoldChoice> fold_choice_from_name(const std::string& name) { return from_name(kFoldChoices, name); }

void validate(const ScoreJob& job, const LlamaConfig& config) {
  if (!config.patches.empty())
    throw UsageError(job.model_dir.string() + " is already a pruned checkpoint; score the original dense model");
  if (config.has_partial_layers())
    throw UsageError(job.model_dir.string() + " already lacks some sublayers; score the original dense model");
  validate_calibration(job.calibration, config, job.model_dir.string());
  if (job.selection.unit != Unit::kLayer) {
    validate_unit_selection(job.selection, config, /*count_needed=*/job.selection.metric == Metric::kIterative);
    return;
  }
  if (job.selection.metric == Metric::kIterative)
    throw UsageError("scoring ranks contiguous blocks of layers; iterative selection of layers runs when pruning");
  validate_selection(job.selection, config);
}

void validate(const PruneJob& job, const LlamaConfig& config) {
  if (!config.patches.empty())
    throw UsageError(job.model_dir.string() + " is already a patched checkpoint; prune the original dense model instead");
  if (config.has_partial_layers())
    throw UsageError(job.model_dir.string() + " already lacks some sublayers; prune the original dense model instead");
  validate_calibration(job.calibration, config, job.model_dir.string());
  if (job.selection.unit != Unit::kLayer) {
    validate_units(job, config);
    return;
  }
  if (job.budget) {
    validate_budget(job);
    auto shallowest = job.selection;  // the search starts at one layer
    shallowest.layers = std::max<int64_t>(1, shallowest.layers);
    validate_selection(shallowest, config);
    for (const auto metric : job.compare_metrics) {
      shallowest.metric = metric;
      validate_selection(shallowest, config);
    }
  } else {
    if (!job.compare_metrics.empty()) throw UsageError("curves are compared along a depth budget's search");
    if (job.selection.layers < 1) throw UsageError("the number of layers to remove must be at least 1");
    validate_selection(job.selection, config);
  }
  if (job.distill) {
    if (job.repair.kind == RepairChoice::kNone)
      throw UsageError("distillation trains the repair of each gap: choose a repair other than none");
    const auto& o = job.distill->options;
    if (o.top_k > config.vocab_size)
      throw UsageError("top-K " + std::to_string(o.top_k) + " is larger than the vocabulary of " +
                       std::to_string(config.vocab_size) + " tokens");
    if (o.micro_batch < 1 || o.batch_size % o.micro_batch != 0)
      throw UsageError("windows per step (" + std::to_string(o.batch_size) +
                       ") must be a multiple of the windows per forward pass (" + std::to_string(o.micro_batch) + ")");
  }
  if (job.emit.fold_samples < 1)
    throw UsageError("the least-squares fold needs at least one window, got " + std::to_string(job.emit.fold_samples));
}

}  // namespace lp
