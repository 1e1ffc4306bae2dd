#include "pipeline/depth_search.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

// One quality budget: its report name, how people read it, its limit and
// the value a curve point has for it (none: undefined, which fails).
struct QualityBudget {
  std::string name, what;
  double limit = 0;
  bool upper = true;  // the value must stay at or below the limit
  std::function<std::optional<double>(const CurvePoint&)> value;

  bool met_by(const CurvePoint& point) const {
    const auto v = value(point);
    return v && (upper ? *v <= limit : *v >= limit);
  }
};

std::vector<QualityBudget> quality_budgets(const DepthBudget& b) {
  std::vector<QualityBudget> budgets;
  if (b.max_ppl_ratio)
    budgets.push_back({"max_ppl_ratio", "held-out perplexity ratio", *b.max_ppl_ratio, true,
                       [](const CurvePoint& p) { return std::optional<double>(p.held_out.ppl_ratio); }});
  if (b.max_kl)
    budgets.push_back({"max_kl", "held-out KL", *b.max_kl, true,
                       [](const CurvePoint& p) { return std::optional<double>(p.held_out.kl); }});
  if (b.min_retained)
    budgets.push_back({"min_retained", "retained task performance", *b.min_retained, false,
                       [](const CurvePoint& p) { return p.tasks ? p.tasks->retained.average : std::nullopt; }});
  return budgets;
}

std::string number(double v) {
  std::ostringstream out;
  out.precision(5);
  out << v;
  return out.str();
}

// "1 layer (5)", "3 layers (2, 4, 5)"
std::string layers_text(const CurvePoint& p) {
  return std::to_string(p.layers) + (p.layers == 1 ? " layer (" : " layers (") + describe_layers(p.removed) + ")";
}

struct Judged {
  CurvePoint point;
  RepairOutcome repairs;
  const QualityBudget* failed = nullptr;  // the first quality budget not met
  bool small_enough = true;
  bool passes() const { return !failed && small_enough; }
};

// Repairs, measures and judges one depth's removal.
class DepthJudge {
 public:
  DepthJudge(const PruneJob& job, const DepthSearchInputs& in) : job_(job), in_(in) {
    budgets_ = quality_budgets(*job.budget);
    if (const auto t = job.budget->target_params)
      target_ = *t < 1 ? *t * static_cast<double>(in.parameters) : *t;
  }

  // `scored`: the selection's repairs of this depth's set (Selection::scored_repairs).
  Judged judge(const std::vector<int64_t>& removed, const std::vector<Repair>& scored) const {
    Judged j;
    j.point.layers = static_cast<int64_t>(removed.size());
    j.point.removed = removed;
    j.repairs = repair_gaps(in_.dense, removed, job_.repair.kind, job_.repair.refit, &in_.calibrated, in_.rotation,
                            &in_.held_out, job_.calibration.batch_size, scored);
    const auto model = in_.dense.without_layers(removed, layer_patches(j.repairs.repairs));
    j.point.held_out = held_out_figures(j.repairs.quality ? *j.repairs.quality : in_.held_out.quality(model),
                                        in_.held_out.windows());
    if (in_.tasks) j.point.tasks = in_.tasks->compare(model);
    j.point.parameters = parameters_of(removed, j.repairs.repairs);
    for (const auto& b : budgets_)
      if (!b.met_by(j.point)) {
        j.failed = &b;
        break;
      }
    j.small_enough = !target_ || static_cast<double>(j.point.parameters) <= *target_;
    spdlog::info("budget: {}: held-out perplexity ratio {:.4f}, KL {:.5f}{}, {} parameters: {}", layers_text(j.point),
                 j.point.held_out.ppl_ratio, j.point.held_out.kl,
                 j.point.tasks && j.point.tasks->retained.average
                     ? ", retained " + number(*j.point.tasks->retained.average)
                     : "",
                 j.point.parameters,
                 j.failed ? j.failed->what + " over its limit" : j.small_enough ? "meets the budget" : "too large");
    return j;
  }

  const std::vector<QualityBudget>& budgets() const { return budgets_; }
  std::optional<double> target() const { return target_; }
  // Parameters of a depth before its repairs are known: every layer alike,
  // with one stream patch when the repair may add one.
  double estimate(int64_t depth) const {
    const bool patch = job_.emit.mode == EmitMode::kExact &&
                       (job_.repair.kind == RepairChoice::kLinearPatch || job_.repair.kind == RepairChoice::kAuto);
    const double hidden = static_cast<double>(in_.dense.hidden_size());
    const double layer = static_cast<double>(in_.layer_parameters.at(0));
    return static_cast<double>(in_.parameters) - static_cast<double>(depth) * layer + (patch ? hidden * hidden : 0);
  }

 private:
  // Exact checkpoints store each stream patch as a tensor; MLP-output
  // repairs and vanilla folds change weights in place.
  int64_t parameters_of(const std::vector<int64_t>& removed, const std::vector<Repair>& repairs) const {
    int64_t count = in_.parameters;
    for (const auto layer : removed) count -= in_.layer_parameters.at(static_cast<size_t>(layer));
    if (job_.emit.mode == EmitMode::kExact)
      for (const auto& r : repairs)
        if (r.kind != RepairKind::kNone && !r.on_mlp_output) count += r.matrix.numel();
    return count;
  }

  const PruneJob& job_;
  const DepthSearchInputs& in_;
  std::vector<QualityBudget> budgets_;
  std::optional<double> target_;
};

// GateFailed for a search that found no depth: the budget that failed and
// the best it reached on any visited depth.
[[noreturn]] void no_depth(const DepthJudge& judge, const std::vector<CurvePoint>& curve,
                           const QualityBudget* failed, int64_t deepest) {
  if (!failed) {
    const auto& last = curve.back();
    throw GateFailed("no depth meets the parameter target of " + describe_parameters(*judge.target()) + ": removing " +
                     layers_text(last) + " (the deepest allowed is " + std::to_string(deepest) + ") leaves " +
                     describe_parameters(static_cast<double>(last.parameters)));
  }
  const CurvePoint* best = nullptr;
  for (const auto& p : curve) {
    const auto v = failed->value(p);
    if (!v) continue;
    const auto b = best ? failed->value(*best) : std::nullopt;
    if (!b || (failed->upper ? *v < *b : *v > *b)) best = &p;
  }
  std::string message = "no depth meets the " + failed->what + " limit (" + (failed->upper ? "at most " : "at least ") +
                        number(failed->limit) + ")";
  if (judge.target()) message += " at " + describe_parameters(*judge.target()) + " parameters or fewer";
  if (best)
    message += ": the best reached is " + number(*failed->value(*best)) + ", removing " + layers_text(*best);
  else
    message += ": it is undefined (the dense model scored 0 on every task)";
  throw GateFailed(message);
}

// Whether every limited quality worsened (or held) from each visited depth
// to the next deeper one.
bool monotone(std::vector<CurvePoint> curve, const std::vector<QualityBudget>& budgets) {
  std::sort(curve.begin(), curve.end(), [](const auto& a, const auto& b) { return a.layers < b.layers; });
  for (const auto& b : budgets)
    for (size_t i = 1; i < curve.size(); ++i) {
      const auto shallower = b.value(curve[i - 1]), deeper = b.value(curve[i]);
      if (shallower && deeper && (b.upper ? *deeper < *shallower : *deeper > *shallower)) return false;
    }
  return true;
}

SelectionInputs selection_inputs(const PruneJob& job, const DepthSearchInputs& in) {
  SelectionInputs inputs{in.dense, in.calibrated.similarity.get(), in.calibrated.magnitude.get(), in.rotation,
                         &in.held_out};
  inputs.scoring_repair = in.scoring_repair;
  inputs.fit_windows = in.fit_windows;
  inputs.batch_size = job.calibration.batch_size;
  return inputs;
}

// The greedy's nested steps, `after_step` called after each; a swap search
// would replace the nested sets, so depths are judged on the greedy alone.
void run_greedy(const PruneJob& job, const DepthSearchInputs& in, int64_t deepest, IterativeStepHook after_step) {
  auto options = job.selection;
  options.metric = Metric::kIterative;
  options.layers = deepest;
  options.search = SearchKind::kGreedy;
  auto inputs = selection_inputs(job, in);
  inputs.after_step = std::move(after_step);
  select_layers(options, inputs);
}

// Iterative: one greedy run, a depth judged after each step.
DepthSearchResult search_nested(const PruneJob& job, const DepthSearchInputs& in, const DepthJudge& judge,
                                int64_t deepest) {
  DepthSearchResult result;
  std::optional<Judged> best;
  std::vector<IterativeStep> best_steps;
  std::vector<Repair> best_scored;
  const QualityBudget* failed = nullptr;
  const bool quality = !judge.budgets().empty();
  const auto hook = [&](const IterativeResult& r) {
    auto j = judge.judge(r.removed, r.scored_repairs);
    result.curve.push_back(j.point);
    if (j.failed) {
      failed = j.failed;
      return false;
    }
    const bool small_enough = j.small_enough;
    if (small_enough) {
      best = std::move(j);
      best_steps = r.steps;
      best_scored = r.scored_repairs;
    }
    return quality || !small_enough;  // a size target alone removes just enough
  };
  run_greedy(job, in, deepest, hook);
  if (!best) no_depth(judge, result.curve, failed, deepest);
  result.selection.removed = best->point.removed;
  result.selection.steps = std::move(best_steps);
  result.selection.scored_repairs = std::move(best_scored);
  result.repairs = std::move(best->repairs);
  result.outcome.chosen_layers = best->point.layers;
  result.outcome.bound_by = failed ? failed->name : quality ? "layers" : "target_params";
  result.outcome.search =
      "greedy: one depth judged after each step, stopping at the first depth that fails a quality limit";
  return result;
}

// Any other metric: each depth is its own choice; binary search between the
// shallowest depth small enough and the deepest allowed.
DepthSearchResult search_independent(const PruneJob& job, const DepthSearchInputs& in, const DepthJudge& judge,
                                     int64_t deepest) {
  DepthSearchResult result;
  const auto inputs = selection_inputs(job, in);
  std::optional<Judged> best;
  Selection best_selection;
  const auto visit = [&](int64_t depth) {
    auto options = job.selection;
    options.layers = depth;
    auto selection = select_layers(options, inputs);
    auto j = judge.judge(selection.removed, selection.scored_repairs);
    result.curve.push_back(j.point);
    const bool passes = j.passes();
    const auto* failed = j.failed;
    if (passes && (!best || depth > best->point.layers)) {
      best = std::move(j);
      best_selection = std::move(selection);
    }
    return std::make_pair(passes, failed);
  };
  int64_t good = 1;
  if (const auto target = judge.target())
    while (good < deepest && judge.estimate(good) > *target) ++good;
  auto [passes, failed] = visit(good);
  // A layer of unusual size or a repair without a patch can move the floor.
  while (!passes && !failed && good < deepest) std::tie(passes, failed) = visit(++good);
  if (!passes) no_depth(judge, result.curve, failed, deepest);
  const bool quality = !judge.budgets().empty();
  int64_t bad = deepest + 1;
  std::string bound_by = quality ? "layers" : "target_params";
  while (quality && bad - good > 1) {
    const int64_t middle = good + (bad - good) / 2;
    const auto [ok, why] = visit(middle);
    if (ok) {
      good = middle;
    } else {
      bad = middle;
      bound_by = why ? why->name : "target_params";
    }
  }
  std::sort(result.curve.begin(), result.curve.end(), [](const auto& a, const auto& b) { return a.layers < b.layers; });
  result.selection = std::move(best_selection);
  result.repairs = std::move(best->repairs);
  result.outcome.chosen_layers = best->point.layers;
  result.outcome.bound_by = bound_by;
  result.outcome.search = quality ? "binary search over depths, each its own choice by the metric (assumes quality "
                                    "worsens with depth)"
                                  : "the shallowest depth within the parameter target";
  return result;
}

}  // namespace

HeldOutFigures held_out_figures(const HeldOutQuality& quality, int64_t windows) {
  return {quality.ppl_ratio(), quality.mean_kl, quality.ppl, quality.reference_ppl, windows};
}

SelectionNeeds depth_search_needs(const PruneJob& job, const SelectionNeeds& at_deepest, int64_t num_layers) {
  const int64_t deepest = deepest_removal(job.selection, num_layers);
  std::vector<int64_t> every;
  for (int64_t n = 1; n <= deepest; ++n) every.push_back(n);
  auto needs = at_deepest;
  const auto m = job.selection.metric;
  if (m == Metric::kCosine || m == Metric::kAngular || m == Metric::kPatchedKl) needs.similarity_gaps = every;
  if (!needs.magnitude_gaps.empty()) needs.magnitude_gaps = every;
  needs.held_out = true;
  return needs;
}

std::vector<CurvePoint> metric_curve(const PruneJob& job, Metric metric, const DepthSearchInputs& in,
                                     int64_t deepest) {
  auto measured = job;  // no limits: every depth is only measured
  measured.selection.metric = metric;
  measured.budget.emplace();
  const DepthJudge judge(measured, in);
  std::vector<CurvePoint> curve;
  if (metric == Metric::kIterative) {
    run_greedy(measured, in, deepest, [&](const IterativeResult& r) {
      curve.push_back(judge.judge(r.removed, r.scored_repairs).point);
      return true;
    });
    return curve;
  }
  const auto inputs = selection_inputs(job, in);
  for (int64_t depth = 1; depth <= deepest; ++depth) {
    auto options = measured.selection;
    options.layers = depth;
    const auto selection = select_layers(options, inputs);
    curve.push_back(judge.judge(selection.removed, selection.scored_repairs).point);
  }
  return curve;
}

DepthSearchResult search_depth(const PruneJob& job, const DepthSearchInputs& in) {
  const int64_t deepest = deepest_removal(job.selection, in.dense.num_layers());
  const DepthJudge judge(job, in);
  auto result = job.selection.metric == Metric::kIterative ? search_nested(job, in, judge, deepest)
                                                           : search_independent(job, in, judge, deepest);
  for (const auto& b : judge.budgets()) result.outcome.limits.emplace_back(b.name, b.limit);
  if (const auto target = judge.target()) result.outcome.limits.emplace_back("target_params", *target);
  result.outcome.monotone = monotone(result.curve, judge.budgets());
  if (!result.outcome.monotone)
    spdlog::warn("held-out quality does not worsen steadily with depth on this model{}",
                 job.selection.metric == Metric::kIterative
                     ? ""
                     : ": the binary search over depths may have missed a deeper depth that meets the budget");
  spdlog::info("budget: removing {} layers ({} bound it)", result.outcome.chosen_layers, result.outcome.bound_by);
  return result;
}

}  // namespace lp
