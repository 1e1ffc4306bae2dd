#include "linearpatch/prune/prune_plan.h"

#include <algorithm>

#include "linearpatch/core/error.h"

namespace lp {

PrunePlan make_prune_plan(int64_t num_layers, std::vector<int64_t> removed) {
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
  for (int64_t l = 0, r = 0; l < num_layers; ++l) {
    if (r < static_cast<int64_t>(removed.size()) && removed[r] == l) {
      if (plan.gaps.empty() || plan.gaps.back().end != l)
        plan.gaps.push_back({l, l + 1, static_cast<int64_t>(plan.kept.size())});
      else
        plan.gaps.back().end = l + 1;
      ++r;
    } else {
      plan.kept.push_back(l);
    }
  }
  return plan;
}

PrunePlan make_prune_plan(int64_t num_layers, const Block& block) {
  std::vector<int64_t> removed;
  for (int64_t l = block.start; l < block.end; ++l) removed.push_back(l);
  return make_prune_plan(num_layers, removed);
}

std::string describe_layers(const std::vector<int64_t>& layers) {
  std::string out;
  for (size_t i = 0; i < layers.size(); ++i) out += (i ? ", " : "") + std::to_string(layers[i]);
  return out;
}

std::string describe_gap(const Gap& gap) {
  std::vector<int64_t> layers;
  for (int64_t l = gap.start; l < gap.end; ++l) layers.push_back(l);
  return "[" + std::to_string(gap.start) + ", " + std::to_string(gap.end) + ") = layer" +
         (layers.size() > 1 ? "s " : " ") + describe_layers(layers);
}

}  // namespace lp
