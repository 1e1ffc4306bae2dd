#include "linearpatch/patch/patch_aware.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <map>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/model/head_metrics.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/prune/prune_plan.h"

namespace lp {
namespace {

// Keeps the dense inputs of the layers where a candidate block may start.
class InputCache : public ForwardObserver {
 public:
  InputCache(int64_t first, int64_t last) : first_(first), last_(last) {}
  void on_layer_input(int64_t position, const at::Tensor& hidden) override {
    if (position >= first_ && position <= last_) inputs_[position].push_back(hidden.clone());
  }
  at::Tensor input(int64_t position, int64_t batch) const { return inputs_.at(position)[batch]; }

 private:
  int64_t first_, last_;
  std::map<int64_t, std::vector<at::Tensor>> inputs_;  // position -> per batch [B, T, C]
};

}  // namespace

std::vector<Block> rank_blocks_patched_kl(const LlamaModel& model, const at::Tensor& windows,
                                          const MagnitudeStats* stats, const Rotation& rotation, int64_t n,
                                          bool allow_edges, int64_t batch_size) {
  c10::InferenceMode guard;
  const int64_t L = model.num_layers(), N = windows.size(0);
  const auto range = candidate_starts(L, n, allow_edges);
  InputCache cache(range.first_start, range.last_start);
  std::vector<at::Tensor> dense_final;  // per batch: input of the final norm
  for (int64_t w0 = 0, b = 0; w0 < N; w0 += batch_size, ++b)
    dense_final.push_back(model.run_layers(model.embed(windows.narrow(0, w0, std::min(batch_size, N - w0))), 0, L, &cache));

  Progress progress("patched-kl scoring", range.last_start - range.first_start + 1, "blocks");
  std::vector<Block> scored;
  for (int64_t start = range.first_start; start <= range.last_start; ++start) {
    const auto plan = make_prune_plan(L, Block{start, start + n, 0});
    std::map<int64_t, at::Tensor> patches;
    if (stats) patches[start] = patch_matrix(rotation, patch_scales(*stats, start, start + n));
    const auto pruned = model.with_layers(plan.kept, patches);
    double kl = 0;
    int64_t tokens = 0;
    for (size_t b = 0; b < dense_final.size(); ++b) {
      // Layers before the gap are shared, so the cached dense input of
      // `start` is exactly what the pruned model sees there.
      auto hidden = pruned.run_layers(cache.input(start, static_cast<int64_t>(b)), start, pruned.num_layers());
      kl += compare_heads(model, dense_final[b], pruned, hidden).kl_sum;
      tokens += hidden.size(0) * hidden.size(1);
    }
    scored.push_back({start, start + n, kl / static_cast<double>(tokens)});
    progress.advance();
  }
  progress.finish();
  return rank_scored_blocks(scored, /*higher_better=*/false);
}

}  // namespace lp
