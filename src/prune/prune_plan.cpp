#include "linearpatch/prune/prune_plan.h"

#include <algorithm>

#include "linearpatch/core/error.h"

namespace lp {

PrunePlan make_prune_plan(int64_t num_layers, std::vector<int64_t> removed, std::vector<Site> removed_sites) {
  std::sort(removed_sites.begin(), removed_sites.end());
  for (size_t i = 0; i < removed_sites.size(); ++i) {
    const auto& site = removed_sites[i];
    if (site.layer < 0 || site.layer >= num_layers)
      throw UsageError("layer " + std::to_string(site.layer) + " does not exist (the model has layers 0.." +
                       std::to_string(num_layers - 1) + ")");
    if (i > 0 && site == removed_sites[i - 1]) throw UsageError("sublayer " + describe_sites({site}) + " listed twice");
    if (std::find(removed.begin(), removed.end(), site.layer) != removed.end())
      throw UsageError("sublayer " + describe_sites({site}) + " of a removed layer");
  }
  auto split = split_whole_layers(std::move(removed_sites));
  removed.insert(removed.end(), split.layers.begin(), split.layers.end());
  std::sort(removed.begin(), removed.end());
  for (size_t i = 0; i < removed.size(); ++i) {
    if (removed[i] < 0 || removed[i] >= num_layers)
      throw UsageError("layer " + std::to_string(removed[i]) + " does not exist (the model has layers 0.." +
                       std::to_string(num_layers - 1) + ")");
    if (i > 0 && removed[i] == removed[i - 1])
      throw UsageError("layer " + std::to_string(removed[i]) + " listed twice");
  }
  if (static_cast<int64_t>(removed.size()) >= num_layers)
    throw UsageError("cannot remove all " + std::to_string(num_layers) + " layers");
  PrunePlan plan;
  plan.original_layers = num_layers;
  plan.removed = removed;
  for (int64_t l = 0; l < num_layers; ++l)
    if (!std::binary_search(removed.begin(), removed.end(), l)) plan.kept.push_back(l);
  for (const auto& range : layer_runs(removed)) plan.gaps.push_back({range, new_layer_index(plan, range.end)});
  plan.removed_sublayers = std::move(split.partial);
  return plan;
}

bool removes_sublayer(const PrunePlan& plan, int64_t layer, Sublayer sublayer) {
  return std::binary_search(plan.removed_sublayers.begin(), plan.removed_sublayers.end(), Site{layer, sublayer});
}

int64_t new_layer_index(const PrunePlan& plan, int64_t layer) {
  if (layer == plan.original_layers) return static_cast<int64_t>(plan.kept.size());
  const auto it = std::lower_bound(plan.kept.begin(), plan.kept.end(), layer);
  if (it == plan.kept.end() || *it != layer) throw Error("internal: layer " + std::to_string(layer) + " is not kept");
  return it - plan.kept.begin();
}

std::vector<Site> removed_sites(const PrunePlan& plan) {
  auto sites = plan.removed_sublayers;
  for (const int64_t layer : plan.removed) {
    sites.push_back({layer, Sublayer::kAttention});
    sites.push_back({layer, Sublayer::kMlp});
  }
  std::sort(sites.begin(), sites.end());
  return sites;
}

std::vector<SiteRun> removed_runs(const PrunePlan& plan) { return site_runs(removed_sites(plan)); }

}  // namespace lp
