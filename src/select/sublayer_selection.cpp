#include "linearpatch/select/sublayer_selection.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "linearpatch/core/error.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

std::vector<Site> with_site(std::vector<Site> sites, const Site& site) {
  sites.insert(std::upper_bound(sites.begin(), sites.end(), site), site);
  return sites;
}

// Mean per-token cosine between each sublayer's input and output stream:
// attention k maps the input of layer k to the stream after attention,
// MLP k that to the input of layer k + 1. The dense stream after attention
// is the next layer's input less the MLP output.
class SiteCosines : public ForwardObserver {
 public:
  explicit SiteCosines(int64_t layers) : sums_(static_cast<size_t>(2 * layers), 0.0) {}
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    const auto h = hidden.to(at::kFloat);
    if (layer > 0) {
      const auto mid = h - mlp_;
      add(index({layer - 1, Sublayer::kAttention}), previous_, mid);
      add(index({layer - 1, Sublayer::kMlp}), mid, h);
    }
    previous_ = h;
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override { mlp_ = mlp_output.to(at::kFloat); }
  void count_tokens(int64_t tokens) { tokens_ += tokens; }
  double mean(const Site& site) const {
    return sums_[index(site)] / static_cast<double>(std::max<int64_t>(tokens_, 1));
  }

 private:
  static size_t index(const Site& site) {
    return static_cast<size_t>(2 * site.layer + (site.sublayer == Sublayer::kMlp ? 1 : 0));
  }
  void add(size_t index, const at::Tensor& a, const at::Tensor& b) {
    sums_[index] += at::cosine_similarity(a, b, -1).sum().item<double>();
  }
  std::vector<double> sums_;
  at::Tensor previous_, mlp_;
  int64_t tokens_ = 0;
};

}  // namespace

std::string unit_name(Unit unit) {
  switch (unit) {
    case Unit::kLayer: return "layer";
    case Unit::kAttention: return "attention";
    case Unit::kMlp: return "mlp";
    case Unit::kSublayer: return "sublayer";
  }
  return "?";
}

std::optional<Unit> unit_from_name(const std::string& name) {
  for (const auto unit : {Unit::kLayer, Unit::kAttention, Unit::kMlp, Unit::kSublayer})
    if (name == unit_name(unit)) return unit;
  return std::nullopt;
}

std::vector<Site> eligible_sites(const LlamaConfig& config, Unit unit, bool allow_edges) {
  std::vector<Site> sites;
  const int64_t L = config.num_hidden_layers;
  for (int64_t l = allow_edges ? 0 : 1; l < (allow_edges ? L : L - 1); ++l) {
    const auto spec = config.layer_spec(l);
    if (unit != Unit::kMlp && spec.attention) sites.push_back({l, Sublayer::kAttention});
    if (unit != Unit::kAttention && spec.mlp) sites.push_back({l, Sublayer::kMlp});
  }
  return sites;
}

SublayerSelection select_sublayers_iteratively(const LlamaModel& dense, HeldOutKl& held_out, Unit unit, int64_t n,
                                               bool allow_edges, const SiteSetTest& enough,
                                               const SiteCandidateTest& helps) {
  const auto eligible = eligible_sites(dense.config(), unit, allow_edges);
  if (n < 1 || n > static_cast<int64_t>(eligible.size()))
    throw UsageError("cannot remove " + std::to_string(n) + " " + unit_name(unit) + " units: " +
                     std::to_string(eligible.size()) + " are eligible");
  const int64_t E = static_cast<int64_t>(eligible.size());
  Progress progress("iterative " + unit_name(unit) + " selection", n * E - n * (n - 1) / 2, "candidates");
  SublayerSelection result;
  double current_kl = 0;
  for (int64_t step = 0; step < n; ++step) {
    const auto current = dense.without_sublayers(result.removed);
    held_out.cache_base(current);
    SiteStep chosen;
    double best = std::numeric_limits<double>::infinity();
    for (const auto& site : eligible) {
      if (std::binary_search(result.removed.begin(), result.removed.end(), site)) continue;
      if (helps && !helps(result.removed, site)) continue;
      const double kl = held_out.mean_kl(current.without_sublayers({site}), site.layer);
      // Damage per parameter only where units differ in size.
      const double score = unit == Unit::kSublayer
                               ? (kl - current_kl) / static_cast<double>(sublayer_parameter_count(dense.config(), site.sublayer))
                               : kl;
      chosen.candidates.emplace_back(site, score);
      progress.advance();
      if (score < best) {
        best = score;
        chosen.removed = site;
        chosen.kl = kl;
      }
    }
    if (chosen.candidates.empty()) break;
    result.removed = with_site(result.removed, chosen.removed);
    current_kl = chosen.kl;
    spdlog::info("iterative {} selection, step {}/{}: {} (KL {:.5f}); removed so far: {}", unit_name(unit), step + 1, n,
                 describe_sites({chosen.removed}), chosen.kl, describe_sites(result.removed));
    result.steps.push_back(std::move(chosen));
    if (enough && enough(result.removed)) break;
  }
  progress.finish();
  return result;
}

SublayerSelection select_sublayers_by_cosine(const LlamaModel& dense, const at::Tensor& windows, Unit unit, int64_t n,
                                             bool allow_edges, int64_t batch_size) {
  if (unit != Unit::kAttention && unit != Unit::kMlp)
    throw UsageError("cosine ranks attention or MLP units; " + unit_name(unit) + " units need the iterative metric");
  const auto eligible = eligible_sites(dense.config(), unit, allow_edges);
  if (n < 1 || n > static_cast<int64_t>(eligible.size()))
    throw UsageError("cannot remove " + std::to_string(n) + " " + unit_name(unit) + " units: " +
                     std::to_string(eligible.size()) + " are eligible");
  const int64_t L = dense.num_layers();
  SiteCosines cosines(L);
  for (int64_t b = 0; b < windows.size(0); b += batch_size) {
    const auto ids = windows.narrow(0, b, std::min(batch_size, windows.size(0) - b));
    dense.run_layers(dense.embed(ids), 0, L, &cosines);
    cosines.count_tokens(ids.numel());
  }
  SublayerSelection result;
  for (const auto& site : eligible) result.cosine.emplace_back(site, cosines.mean(site));
  std::stable_sort(result.cosine.begin(), result.cosine.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (int64_t i = 0; i < n; ++i) result.removed.push_back(result.cosine[static_cast<size_t>(i)].first);
  std::sort(result.removed.begin(), result.removed.end());
  spdlog::info("cosine {} selection: {}", unit_name(unit), describe_sites(result.removed));
  return result;
}

}  // namespace lp
