#include "pipeline/unit_budget.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

// The job's targets against one set of removed sites.
class UnitTargets {
 public:
  UnitTargets(const DepthBudget& budget, const LlamaConfig& config) : config_(config) {
    dense_ = static_cast<double>(config.parameter_count());
    if (budget.target_params)
      params_ = *budget.target_params < 1 ? *budget.target_params * dense_ : *budget.target_params;
    kv_ = budget.target_kv;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) attention_ += config.layer_spec(l).attention ? 1 : 0;
  }

  double parameters_after(const std::vector<Site>& removed) const {
    double count = dense_;
    for (const auto& site : removed) count -= static_cast<double>(sublayer_parameter_count(config_, site.sublayer));
    return count;
  }
  double kv_kept(const std::vector<Site>& removed) const {
    const auto gone = std::count_if(removed.begin(), removed.end(),
                                    [](const Site& s) { return s.sublayer == Sublayer::kAttention; });
    return attention_ > 0 ? static_cast<double>(attention_ - gone) / static_cast<double>(attention_) : 0.0;
  }
  bool params_met(const std::vector<Site>& removed) const { return !params_ || parameters_after(removed) <= *params_; }
  bool kv_met(const std::vector<Site>& removed) const { return !kv_ || kv_kept(removed) <= *kv_ + 1e-12; }
  // The first target `removed` misses, or "" when it meets them all.
  std::string unmet(const std::vector<Site>& removed) const {
    return !params_met(removed) ? "target_params" : !kv_met(removed) ? "target_kv" : "";
  }
  std::vector<std::pair<std::string, double>> limits() const {
    std::vector<std::pair<std::string, double>> out;
    if (params_) out.emplace_back("target_params", *params_);
    if (kv_) out.emplace_back("target_kv", *kv_);
    return out;
  }
  // "leaves 4.1M parameters (target 4M)", "keeps 75 % of the KV cache (target 60 %)"
  std::string shortfall(const std::string& target, const std::vector<Site>& removed) const {
    if (target == "target_params")
      return "leaves " + describe_parameters(parameters_after(removed)) + " parameters (target " +
             describe_parameters(*params_) + ")";
    return "keeps " + std::to_string(static_cast<int>(std::lround(100 * kv_kept(removed)))) +
           " % of the attention KV cache (target " + std::to_string(static_cast<int>(std::lround(100 * *kv_))) +
           " %)";
  }

 private:
  const LlamaConfig& config_;
  double dense_ = 0;
  std::optional<double> params_, kv_;
  int64_t attention_ = 0;
};

int64_t unit_cap(const PruneJob& job, const std::vector<Site>& eligible) {
  const auto all = static_cast<int64_t>(eligible.size());
  return job.selection.layers > 0 ? std::min(job.selection.layers, all) : all;
}

[[noreturn]] void unreachable(const PruneJob& job, const UnitTargets& targets, const std::string& target,
                              const std::vector<Site>& most, const std::string& how) {
  throw GateFailed("no number of " + unit_name(job.selection.unit) + " units meets the " + target + ": " + how +
                   " (" + std::to_string(most.size()) + " units) " + targets.shortfall(target, most));
}

}  // namespace

void check_unit_targets(const PruneJob& job, const LlamaConfig& config) {
  if (!job.budget || job.selection.unit == Unit::kLayer) return;
  const UnitTargets targets(*job.budget, config);
  auto eligible = eligible_sites(config, job.selection.unit, job.selection.allow_edges);
  // The most any choice of `cap` units can do: the largest ones, attention
  // first among equals (each frees KV cache).
  std::stable_sort(eligible.begin(), eligible.end(), [&](const Site& a, const Site& b) {
    const auto pa = sublayer_parameter_count(config, a.sublayer), pb = sublayer_parameter_count(config, b.sublayer);
    return pa != pb ? pa > pb : a.sublayer == Sublayer::kAttention && b.sublayer != Sublayer::kAttention;
  });
  const std::vector<Site> most(eligible.begin(), eligible.begin() + unit_cap(job, eligible));
  // Parameters and KV cache bound separately: each at its own best.
  std::vector<Site> attention_first = eligible_sites(config, job.selection.unit, job.selection.allow_edges);
  std::stable_partition(attention_first.begin(), attention_first.end(),
                        [](const Site& s) { return s.sublayer == Sublayer::kAttention; });
  attention_first.resize(most.size());
  if (!targets.params_met(most)) unreachable(job, targets, "target_params", most, "removing the largest allowed");
  if (!targets.kv_met(attention_first))
    unreachable(job, targets, "target_kv", attention_first, "removing the most attention sublayers allowed");
}

UnitBudgetChoice choose_units_within_budget(const PruneJob& job, const SelectionInputs& in) {
  const auto& config = in.dense.config();
  const UnitTargets targets(*job.budget, config);
  const auto& s = job.selection;
  const int64_t cap = unit_cap(job, eligible_sites(config, s.unit, s.allow_edges));
  const auto enough = [&](const std::vector<Site>& removed) { return targets.unmet(removed).empty(); };
  SublayerSelection picked;
  UnitBudgetChoice choice;
  if (s.metric == Metric::kIterative) {
    // Once the parameter target holds, only attention brings the KV target closer.
    const auto helps = [&](const std::vector<Site>& removed, const Site& site) {
      return !targets.params_met(removed) || site.sublayer == Sublayer::kAttention;
    };
    picked = select_sublayers_iteratively(in.dense, *in.held_out, s.unit, cap, s.allow_edges, enough, helps);
    choice.outcome.search = "greedy over the units that bring an unmet target closer, stopping at the first step "
                            "that meets every target";
  } else {
    picked = select_sublayers_by_cosine(in.dense, in.fit_windows, s.unit, cap, s.allow_edges, in.batch_size);
    picked.removed.clear();
    for (const auto& [site, cosine] : picked.cosine) {
      if ((!picked.removed.empty() && enough(picked.removed)) || static_cast<int64_t>(picked.removed.size()) == cap)
        break;
      picked.removed.insert(std::upper_bound(picked.removed.begin(), picked.removed.end(), site), site);
    }
    choice.outcome.search = "the shortest prefix of the cosine ranking that meets every target";
  }
  if (!enough(picked.removed))
    unreachable(job, targets, targets.unmet(picked.removed), picked.removed, "removing the most allowed");
  // What bound the count: the target the set one unit smaller missed.
  std::vector<Site> one_fewer;
  if (!picked.steps.empty()) {
    for (size_t i = 0; i + 1 < picked.steps.size(); ++i) one_fewer.push_back(picked.steps[i].removed);
  } else {
    for (size_t i = 0; i + 1 < picked.removed.size(); ++i) one_fewer.push_back(picked.cosine[i].first);
  }
  std::sort(one_fewer.begin(), one_fewer.end());
  choice.outcome.chosen_layers = static_cast<int64_t>(picked.removed.size());
  // The targets may hold with no unit removed; one is the fewest a prune removes.
  const auto bound = targets.unmet(one_fewer);
  choice.outcome.bound_by = bound.empty() ? "one_unit" : bound;
  choice.outcome.limits = targets.limits();
  spdlog::info("budget: removing {} {} units ({} bound it)", picked.removed.size(), unit_name(s.unit),
               choice.outcome.bound_by);
  choice.selection.removed_sites = std::move(picked.removed);
  choice.selection.site_steps = std::move(picked.steps);
  choice.selection.site_cosine = std::move(picked.cosine);
  return choice;
}

}  // namespace lp
