// Which sublayers to remove (`--unit attention|mlp|sublayer`): the unit is
// one attention or MLP branch of a decoder layer (a Site), not the layer.
//
//   iterative  greedy, one site at a time: the site whose removal moves the
//              model least from the dense one (KL on held-out windows, as
//              layer-wise iterative selection); for `sublayer` units, the
//              increase of KL per parameter removed, so a cheap attention
//              branch competes fairly with an MLP three times its size;
//   cosine     one pass over the calibration windows: the sites whose output
//              stream is most similar to their input stream (mean per-token
//              cosine), attention or MLP units only.
// A layer's first and last decoder layers are kept unless edges are allowed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "linearpatch/config/tensor_table.h"

namespace lp {
class HeldOutKl;
class LlamaModel;

// What one pruning unit is: a whole decoder layer (today's behaviour), its
// attention branch, its MLP branch, or either branch (chosen per step).
enum class Unit { kLayer, kAttention, kMlp, kSublayer };
std::string unit_name(Unit unit);  // layer, attention, mlp, sublayer
std::optional<Unit> unit_from_name(const std::string& name);

// The sites `unit` may remove in `config` (present sublayers; the first
// and last layers' only with `allow_edges`), in layer order.
std::vector<Site> eligible_sites(const LlamaConfig& config, Unit unit, bool allow_edges);

struct SiteStep {
  Site removed;
  double kl = 0;  // of the model after this step
  std::vector<std::pair<Site, double>> candidates;  // (site, score): KL, or KL increase per parameter
};

struct SublayerSelection {
  std::vector<Site> removed;  // sorted
  std::vector<SiteStep> steps;               // iterative
  std::vector<std::pair<Site, double>> cosine;  // cosine: every eligible site, most similar first
};

// Up to n steps; with `enough`, the steps end at the first set of removed
// sites (sorted) it accepts; with `helps`, a step considers only the
// candidates it accepts given the sites removed so far (none left: the
// steps end).
using SiteSetTest = std::function<bool(const std::vector<Site>&)>;
using SiteCandidateTest = std::function<bool(const std::vector<Site>&, const Site&)>;
SublayerSelection select_sublayers_iteratively(const LlamaModel& dense, HeldOutKl& held_out, Unit unit, int64_t n,
                                               bool allow_edges, const SiteSetTest& enough = {},
                                               const SiteCandidateTest& helps = {});
SublayerSelection select_sublayers_by_cosine(const LlamaModel& dense, const at::Tensor& windows, Unit unit, int64_t n,
                                             bool allow_edges, int64_t batch_size);

}  // namespace lp
