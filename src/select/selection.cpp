#include "linearpatch/select/selection.h"

#include <numeric>

#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/rotation.h"
#include "linearpatch/select/patched_kl.h"

namespace lp {
namespace {

struct MetricName {
  Metric metric;
  const char* name;
};
constexpr MetricName kMetrics[] = {{Metric::kCosine, "cosine"},
                                   {Metric::kAngular, "angular"},
                                   {Metric::kBlockInfluence, "bi"},
                                   {Metric::kPatchedKl, "patched-kl"},
                                   {Metric::kIterative, "iterative"}};

std::vector<int64_t> block_layers(int64_t start, int64_t n) {
  std::vector<int64_t> layers(static_cast<size_t>(n));
  std::iota(layers.begin(), layers.end(), start);
  return layers;
}

std::vector<int64_t> sizes_up_to(int64_t n) { return block_layers(1, n); }

Rotation identity_for(const LlamaModel& dense) {
  return Rotation::create(dense.hidden_size(), RotationKind::kIdentity, 0);
}

}  // namespace

std::string metric_name(Metric metric) {
  for (const auto& m : kMetrics)
    if (m.metric == metric) return m.name;
  return "?";
}

std::optional<Metric> metric_from_name(const std::string& name) {
  for (const auto& m : kMetrics)
    if (name == m.name) return m.metric;
  return std::nullopt;
}

void check_selection(const SelectionOptions& s, int64_t num_layers) {
  const auto range = candidate_starts(num_layers, s.layers, s.allow_edges);
  if (s.start && (*s.start < range.first_start || *s.start > range.last_start))
    throw UsageError("a block of " + std::to_string(s.layers) + " layers cannot start at layer " +
                     std::to_string(*s.start) + ": starts " + std::to_string(range.first_start) + ".." +
                     std::to_string(range.last_start) + " are possible" +
                     (s.allow_edges ? "" : " while the first and the last layer stay"));
}

SelectionNeeds selection_needs(const SelectionOptions& options, int64_t num_layers) {
  const int64_t n = options.layers;
  if (options.unit != Unit::kLayer) return {{1}, {}, options.metric == Metric::kIterative};  // gap 1: the calibration summary
  if (options.start) return {{n}, {n}, false};
  switch (options.metric) {
    case Metric::kCosine:
    case Metric::kAngular: return {{n}, {n}, false};
    case Metric::kBlockInfluence: return {{1}, sizes_up_to(n), false};
    case Metric::kPatchedKl: return {{n}, {n}, true};
    case Metric::kIterative: return {{1}, sizes_up_to(std::min(n, num_layers - 1)), true};
  }
  return {};
}

Selection select_layers(const SelectionOptions& s, const SelectionInputs& in) {
  const int64_t L = in.dense.num_layers(), n = s.layers;
  Selection selection;
  if (s.unit != Unit::kLayer) {
    auto picked = s.metric == Metric::kIterative
                      ? select_sublayers_iteratively(in.dense, *in.held_out, s.unit, n, s.allow_edges)
                      : select_sublayers_by_cosine(in.dense, in.fit_windows, s.unit, n, s.allow_edges, in.batch_size);
    selection.removed_sites = std::move(picked.removed);
    selection.site_steps = std::move(picked.steps);
    selection.site_cosine = std::move(picked.cosine);
    return selection;
  }
  check_selection(s, L);
  if (s.start) {
    selection.removed = block_layers(*s.start, n);
    if (in.similarity) selection.candidates = rank_by_cosine(*in.similarity, L, n, s.allow_edges);
    return selection;
  }
  const auto identity = identity_for(in.dense);
  const Rotation& rotation = in.rotation ? *in.rotation : identity;
  switch (s.metric) {
    case Metric::kCosine:
      selection.candidates = rank_by_cosine(*in.similarity, L, n, s.allow_edges);
      break;
    case Metric::kAngular:
      selection.candidates = rank_by_angular(*in.similarity, L, n, s.allow_edges);
      break;
    case Metric::kPatchedKl:
      selection.candidates = rank_by_patched_kl(in.dense, *in.held_out, in.magnitude, rotation, n, s.allow_edges);
      break;
    case Metric::kBlockInfluence:
      selection.influence = block_influence(*in.similarity, L);
      selection.removed = lowest_influence_layers(selection.influence, n, s.allow_edges);
      return selection;
    case Metric::kIterative: {
      IterativeOptions o;
      o.n = n;
      o.allow_edges = s.allow_edges;
      o.repair = in.scoring_repair == RepairKind::kLinearPatch && !in.magnitude ? RepairKind::kNone
                                                                                : in.scoring_repair;
      o.stats = in.magnitude;
      o.rotation = &rotation;
      o.fit_windows = in.fit_windows;
      o.batch_size = in.batch_size;
      o.search = s.search;
      o.budget = s.search_budget;
      o.after_step = in.after_step;
      auto result = select_iteratively(in.dense, *in.held_out, o);
      selection.removed = std::move(result.removed);
      selection.steps = std::move(result.steps);
      selection.scored_repairs = std::move(result.scored_repairs);
      selection.search = std::move(result.search);
      return selection;
    }
  }
  selection.removed = block_layers(selection.candidates.front().start, n);
  return selection;
}

}  // namespace lp
