#include "linearpatch/patch/sublayer_repair.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>

#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

// Σ mᵀm and Σ mᵀ(m + a) per repaired layer k (m: layer k - 1's MLP output,
// a: layer k's attention output = stream after attention - input). The
// dense stream after attention of layer k is the input of k + 1 less the
// MLP output of k.
class AttentionFitSums : public ForwardObserver {
 public:
  explicit AttentionFitSums(const std::vector<int64_t>& layers) {
    for (const int64_t k : layers) sums_[k];
  }
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    if (sums_.count(layer)) inputs_[layer] = hidden;
    const int64_t k = layer - 1;  // layer k's outputs are complete now
    if (!sums_.count(k)) return;
    const auto m = rows_float64(mlp_.at(k - 1));
    const auto attention = rows_float64(hidden - mlp_.at(k) - inputs_.at(k));
    auto& s = sums_[k];
    accumulate_sum(s.lhs, at::matmul(m.t(), m));
    accumulate_sum(s.rhs, at::matmul(m.t(), m + attention));
    s.tokens += m.size(0);
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override {
    if (sums_.count(layer) || sums_.count(layer + 1)) mlp_[layer] = mlp_output;
  }
  const NormalEquations& sums(int64_t layer) const { return sums_.at(layer); }

 private:
  std::map<int64_t, NormalEquations> sums_;
  std::map<int64_t, at::Tensor> inputs_, mlp_;
};

// Σ aᵀa and Σ aᵀ(a + m) per repaired layer k (a: layer k's attention
// output, m: its MLP output); a + m is the input of k + 1 less that of k.
class MlpFitSums : public ForwardObserver {
 public:
  explicit MlpFitSums(const std::vector<int64_t>& layers) {
    for (const int64_t k : layers) sums_[k];
  }
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    if (sums_.count(layer)) inputs_[layer] = hidden;
    const int64_t k = layer - 1;  // layer k's outputs are complete now
    if (!sums_.count(k)) return;
    const auto both = rows_float64(hidden - inputs_.at(k));
    const auto attention = both - rows_float64(mlp_.at(k));
    auto& s = sums_[k];
    accumulate_sum(s.lhs, at::matmul(attention.t(), attention));
    accumulate_sum(s.rhs, at::matmul(attention.t(), both));
    s.tokens += attention.size(0);
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override {
    if (sums_.count(layer)) mlp_[layer] = mlp_output;
  }
  const NormalEquations& sums(int64_t layer) const { return sums_.at(layer); }

 private:
  std::map<int64_t, NormalEquations> sums_;
  std::map<int64_t, at::Tensor> inputs_, mlp_;
};

bool has_site(const std::vector<Site>& sites, const Site& site) {
  return std::find(sites.begin(), sites.end(), site) != sites.end();
}

// The dense model run over `windows` with `observer` watching.
void observe_dense(const LlamaModel& dense, const at::Tensor& windows, int64_t batch_size, ForwardObserver& observer,
                   const std::string& what) {
  Progress progress(what, windows.size(0), "windows");
  for (int64_t w0 = 0; w0 < windows.size(0); w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, windows.size(0) - w0));
    dense.run_layers(dense.embed(ids), 0, dense.num_layers(), &observer);
    progress.advance(ids.size(0));
  }
  progress.finish();
}

}  // namespace

std::vector<Repair> fit_mlp_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                    const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  std::vector<int64_t> layers;
  for (const auto& site : removed)
    if (site.sublayer == Sublayer::kMlp && !has_site(removed, {site.layer, Sublayer::kAttention}))
      layers.push_back(site.layer);
  std::vector<Repair> repairs;
  if (layers.empty()) return repairs;
  MlpFitSums sums(layers);
  observe_dense(dense, windows, batch_size, sums, "MLP repairs");
  for (const int64_t k : layers) {
    Repair repair{{k, k}, RepairKind::kMlpLstsq, solve_ridge(sums.sums(k)).to(at::kFloat).contiguous()};
    repair.on_attention_output = true;
    repairs.push_back(std::move(repair));
  }
  return repairs;
}

std::vector<Repair> fit_sublayer_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                         const at::Tensor& windows, int64_t batch_size) {
  auto repairs = fit_attention_repairs(dense, removed, windows, batch_size);
  for (auto& repair : fit_mlp_repairs(dense, removed, windows, batch_size)) repairs.push_back(std::move(repair));
  return repairs;
}

std::vector<Repair> fit_attention_repairs(const LlamaModel& dense, const std::vector<Site>& removed,
                                          const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  const auto lost_mlp = [&](int64_t layer) { return has_site(removed, {layer, Sublayer::kMlp}); };
  std::vector<int64_t> layers;
  for (const auto& site : removed)
    if (site.sublayer == Sublayer::kAttention && site.layer > 0 && !lost_mlp(site.layer - 1) && !lost_mlp(site.layer))
      layers.push_back(site.layer);
  std::vector<Repair> repairs;
  if (layers.empty()) return repairs;
  AttentionFitSums sums(layers);
  observe_dense(dense, windows, batch_size, sums, "attention repairs");
  for (const int64_t k : layers)
    repairs.push_back({{k, k}, RepairKind::kMlpLstsq, solve_ridge(sums.sums(k)).to(at::kFloat).contiguous(), true});
  return repairs;
}

}  // namespace lp
