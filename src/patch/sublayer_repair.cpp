#include "linearpatch/patch/sublayer_repair.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>
#include <utility>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/patch/rotation.h"

namespace lp {
namespace {

// The normal equations of every repaired site, from one dense pass. A fit
// at layer k reads layer k's input and MLP output (an attention fit also
// layer k - 1's MLP output) and completes when the input of k + 1 arrives:
// the stream after k's attention is that input less k's MLP output. What a
// fit still needs is kept per (batch, layer), since a streamed
// (layer-major) run interleaves the batches.
//
//  * removed attention of k: x = m_(k-1), y = m_(k-1) + a_k (a_k: k's
//    attention output), a map on the MLP output before it;
//  * removed MLP of k: x = a_k, y = a_k + m_k, a map on k's attention output.
//
// Sums: A = Σ xᵀx, B = Σ xᵀy.
class SublayerFitSums : public ForwardObserver {
 public:
  explicit SublayerFitSums(const std::vector<Site>& fits) {
    for (const auto& site : fits) sums_[site];
  }
  void begin_batch(int64_t batch) override { batch_ = batch; }
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    if (fitted(layer, Sublayer::kAttention) || fitted(layer, Sublayer::kMlp)) inputs_[{batch_, layer}] = hidden;
    const int64_t k = layer - 1;  // layer k's outputs are complete now
    if (fitted(k, Sublayer::kAttention)) attention_terms(k, hidden);
    if (fitted(k, Sublayer::kMlp)) mlp_terms(k, hidden);
    inputs_.erase({batch_, k});
    mlp_.erase({batch_, k - 1});
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override {
    if (fitted(layer, Sublayer::kAttention) || fitted(layer, Sublayer::kMlp) || fitted(layer + 1, Sublayer::kAttention))
      mlp_[{batch_, layer}] = mlp_output;
  }
  const NormalEquations& sums(const Site& site) const { return sums_.at(site); }
  // One past the last layer whose output a fit reads.
  int64_t layers_needed() const { return sums_.empty() ? 0 : sums_.rbegin()->first.layer + 1; }

 private:
  bool fitted(int64_t layer, Sublayer sublayer) const { return sums_.count({layer, sublayer}) > 0; }
  // Layer k's input and MLP output, on the device of k.
  const at::Tensor& input(int64_t k) const { return inputs_.at({batch_, k}); }
  const at::Tensor& mlp(int64_t k) const { return mlp_.at({batch_, k}); }

  void attention_terms(int64_t k, const at::Tensor& next_input) {
    const auto& x = input(k);
    const auto m = rows_float64(mlp(k - 1).to(x.device()));  // layers may live on different devices
    const auto attention = rows_float64(next_input.to(x.device()) - mlp(k) - x);
    add(sums_[{k, Sublayer::kAttention}], m, m + attention);
  }
  void mlp_terms(int64_t k, const at::Tensor& next_input) {
    const auto& x = input(k);
    const auto both = rows_float64(next_input.to(x.device()) - x);
    const auto attention = both - rows_float64(mlp(k));
    add(sums_[{k, Sublayer::kMlp}], attention, both);
  }
  static void add(NormalEquations& s, const at::Tensor& x, const at::Tensor& y) {
    accumulate_sum(s.lhs, at::matmul(x.t(), x));
    accumulate_sum(s.rhs, at::matmul(x.t(), y));
    s.tokens += x.size(0);
  }

  std::map<Site, NormalEquations> sums_;
  std::map<std::pair<int64_t, int64_t>, at::Tensor> inputs_, mlp_;  // (batch, layer) -> tensor
  int64_t batch_ = 0;
};

// Shows `inner` the dense stream at every sublayer boundary (SiteRun's
// numbering) as if each were a layer input: 2k the input of layer k,
// 2k + 1 the stream after its attention (the input of k + 1 less k's MLP
// output), 2L the final norm's input.
class SublayerBoundaries : public ForwardObserver {
 public:
  explicit SublayerBoundaries(ForwardObserver& inner) : inner_(inner) {}
  void begin_batch(int64_t batch) override {
    batch_ = batch;
    inner_.begin_batch(batch);
  }
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    if (layer > 0) {
      const auto mlp = mlp_.find({batch_, layer - 1});
      inner_.on_layer_input(2 * layer - 1, hidden - mlp->second.to(hidden.device()));
      mlp_.erase(mlp);
    }
    inner_.on_layer_input(2 * layer, hidden);
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override { mlp_[{batch_, layer}] = mlp_output; }

 private:
  ForwardObserver& inner_;
  std::map<std::pair<int64_t, int64_t>, at::Tensor> mlp_;  // (batch, layer) -> MLP output
  int64_t batch_ = 0;
};

bool has_site(const std::vector<Site>& sites, const Site& site) {
  return std::find(sites.begin(), sites.end(), site) != sites.end();
}

// The removed sites that get a repair (see the header): attention where the
// MLP before it and the one beside it are kept, MLP where its attention is.
std::vector<Site> repairable(const std::vector<Site>& removed, bool attention, bool mlp) {
  const auto lost = [&](int64_t layer, Sublayer s) { return has_site(removed, {layer, s}); };
  std::vector<Site> sites;
  for (const auto& site : removed) {
    if (site.sublayer == Sublayer::kAttention && attention && site.layer > 0 &&
        !lost(site.layer - 1, Sublayer::kMlp) && !lost(site.layer, Sublayer::kMlp))
      sites.push_back(site);
    if (site.sublayer == Sublayer::kMlp && mlp && !lost(site.layer, Sublayer::kAttention)) sites.push_back(site);
  }
  return sites;
}

std::vector<Repair> fit(const LlamaModel& dense, const std::vector<Site>& sites, const at::Tensor& windows,
                        int64_t batch_size) {
  c10::InferenceMode guard;
  std::vector<Repair> repairs;
  if (sites.empty()) return repairs;
  SublayerFitSums sums(sites);
  run_calibration(dense, windows, batch_size, {&sums}, "sublayer repairs", sums.layers_needed());
  // Attention repairs first, each kind in the order the sites were removed.
  for (const auto kind : {Sublayer::kAttention, Sublayer::kMlp})
    for (const auto& site : sites) {
      if (site.sublayer != kind) continue;
      const auto map = solve_ridge(sums.sums(site)).to(at::kFloat).contiguous();
      Repair repair{{site.layer, site.layer}, RepairKind::kMlpLstsq, map};
      repair.on_mlp_output = kind == Sublayer::kAttention;
      repair.on_attention_output = kind == Sublayer::kMlp;
      repairs.push_back(std::move(repair));
    }
  return repairs;
}

}  // namespace

std::vector<Repair> fit_attention_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                          const at::Tensor& windows, int64_t batch_size) {
  return fit(dense, repairable(removed, true, false), windows, batch_size);
}

std::vector<Repair> fit_mlp_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                    const at::Tensor& windows, int64_t batch_size) {
  return fit(dense, repairable(removed, false, true), windows, batch_size);
}

std::vector<Repair> fit_sublayer_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                         const at::Tensor& windows, int64_t batch_size) {
  return fit(dense, repairable(removed, true, true), windows, batch_size);
}

std::vector<Repair> fit_stream_patches(const LlamaModel& dense, const std::vector<Site>& removed,
                                       const at::Tensor& windows, int64_t batch_size, const Rotation& rotation) {
  c10::InferenceMode guard;
  const auto runs = site_runs(removed);
  std::vector<Repair> repairs;
  if (runs.empty()) return repairs;
  std::vector<int64_t> lengths;
  int64_t end_layer = 0;  // the last boundary read is the input of this layer or the stream inside the one before
  for (const auto& run : runs) {
    lengths.push_back(run.end - run.begin);
    end_layer = std::max(end_layer, (run.end + 1) / 2);
  }
  MagnitudeStats stats(2 * dense.num_layers() + 1, lengths, [&](const at::Tensor& x) { return rotation.apply(x); });
  SublayerBoundaries boundaries(stats);
  run_calibration(dense, windows, batch_size, {&boundaries}, "stream patches", end_layer);
  for (const auto& run : runs) {
    const int64_t layer = run.patched_layer();
    repairs.push_back({{layer, layer}, RepairKind::kLinearPatch,
                       patch_matrix(rotation, patch_scales(stats, run.begin, run.end))});
  }
  return repairs;
}

}  // namespace lp
