// Iterative selection scored with the repair the run keeps (least squares
// fitted on the current model's stream): every candidate's score equals a
// full run of that candidate built from scratch; the swap search never ends
// worse than the greedy set and stays within its budget.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/refit.h"
#include "linearpatch/patch/repair.h"
#include "linearpatch/select/iterative.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

struct Fixture {
  LlamaConfig config = test::tiny_config();
  LlamaModel dense{config, test::random_weights(config, 81)};
  at::Tensor fit, held_out;
  Fixture() {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(82);
    fit = at::randint(config.vocab_size, {6, 16}, gen, at::kLong);
    held_out = at::randint(config.vocab_size, {4, 16}, gen, at::kLong);
  }
  IterativeOptions options(int64_t n) const {
    IterativeOptions o;
    o.n = n;
    o.repair = RepairKind::kMlpLstsq;
    o.fit_windows = fit;
    o.batch_size = 3;
    return o;
  }
};

std::vector<int64_t> with_layer(std::vector<int64_t> removed, int64_t layer) {
  removed.push_back(layer);
  std::sort(removed.begin(), removed.end());
  return removed;
}

// The repairs the greedy keeps after its steps, rebuilt independently: each
// new gap fitted on the stream of the model before that step.
TEST(IterativeSelection, KeptRepairScoresEqualFullRunsOfEachCandidate) {
  const Fixture f;
  HeldOutKl held_out(f.dense, f.held_out, 2);
  const auto result = select_iteratively(f.dense, held_out, f.options(3));
  ASSERT_EQ(result.steps.size(), 3u);
  const HeldOutKl full(f.dense, f.held_out, 2);
  std::vector<int64_t> removed;
  std::vector<Repair> repairs;
  for (const auto& step : result.steps) {
    std::vector<Repair> chosen;
    for (const auto& [layer, kl] : step.candidates) {
      const auto candidate = with_layer(removed, layer);
      const auto runs = layer_runs(candidate);
      const auto gap = *std::find_if(runs.begin(), runs.end(),
                                     [&](const LayerRange& r) { return r.start <= layer && layer < r.end; });
      const auto equations = stream_fit_equations(f.dense, removed, layer_patches(repairs), {gap}, f.fit, 3);
      std::vector<Repair> candidate_repairs;
      for (const auto& r : repairs)
        if (r.gap.end < gap.start || r.gap.start > gap.end) candidate_repairs.push_back(r);
      candidate_repairs.push_back(mlp_lstsq_repair(gap, equations.front()));
      const double expected = full.mean_kl(f.dense.without_layers(candidate, layer_patches(candidate_repairs)));
      EXPECT_NEAR(kl, expected, 1e-5 * std::max(1.0, expected)) << "layer " << layer << " after " << removed.size();
      if (layer == step.removed_layer) chosen = candidate_repairs;
    }
    removed = with_layer(removed, step.removed_layer);
    repairs = chosen;
  }
  EXPECT_EQ(result.removed, removed);
  EXPECT_FALSE(result.search);
}

// With nothing removed, the stream fit is the dense fit the calibration
// pass accumulates.
TEST(StreamFit, NothingRemovedGivesTheDenseFit) {
  const Fixture f;
  const LayerRange gap{2, 4};
  LeastSquaresStats stats({{gap, mlp_lstsq_source(gap)}});
  f.dense.forward(f.fit, &stats);
  const auto expected = stats.equations(0);
  const auto got = stream_fit_equations(f.dense, {}, {}, {gap}, f.fit, 4).front();
  EXPECT_EQ(got.tokens, expected.tokens);
  EXPECT_TRUE(at::allclose(got.lhs, expected.lhs, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(got.rhs, expected.rhs, 1e-6, 1e-6));
}

// Refitting the second gap on the stream the first gap's repair gives fits
// that stream better than the dense fit does: the squared error between
// what the pruned model feeds the layer after gap 2 and the dense stream
// there, on the fit windows.
TEST(StreamFit, SequentialRefitMatchesTheDenseStreamBetter) {
  const Fixture f;
  const LayerRange first{1, 2}, second{3, 5};
  const std::vector<int64_t> removed{1, 3, 4};
  const auto dense_eq = stream_fit_equations(f.dense, {}, {}, {first, second}, f.fit, 3);
  const auto r1 = mlp_lstsq_repair(first, dense_eq[0]);
  const auto dense_fit = mlp_lstsq_repair(second, dense_eq[1]);
  const auto refit =
      mlp_lstsq_repair(second, stream_fit_equations(f.dense, {1}, layer_patches({r1}), {second}, f.fit, 3).front());
  const auto target = f.dense.run_layers(f.dense.embed(f.fit), 0, 5);
  auto error = [&](const Repair& r2) {
    const auto pruned = f.dense.without_layers(removed, layer_patches({r1, r2}));
    // Layer 5 sits at position 2 of the pruned model.
    return (pruned.run_layers(pruned.embed(f.fit), 0, 2) - target).pow(2).mean().item<double>();
  };
  EXPECT_LT(error(refit), error(dense_fit));
}

TEST(IterativeSelection, SwapSearchNeverEndsWorseAndKeepsItsBudget) {
  const Fixture f;
  for (const int64_t budget : {1, 3, 50}) {
    HeldOutKl held_out(f.dense, f.held_out, 2);
    auto o = f.options(2);
    o.search = SearchKind::kSwap;
    o.budget = budget;
    const auto result = select_iteratively(f.dense, held_out, o);
    ASSERT_TRUE(result.search);
    const auto& s = *result.search;
    EXPECT_LE(s.trials, budget);
    EXPECT_EQ(s.budget, budget);
    EXPECT_LE(s.final_kl, s.greedy_kl);
    EXPECT_EQ(result.removed.size(), 2u);
    double previous = s.greedy_kl;
    auto replay = s.greedy;
    for (const auto& move : s.accepted) {
      EXPECT_LT(move.kl, previous);
      previous = move.kl;
      replay.erase(std::find(replay.begin(), replay.end(), move.restored));
      replay = with_layer(replay, move.removed);
    }
    EXPECT_EQ(replay, result.removed);
    EXPECT_DOUBLE_EQ(previous, s.final_kl);
    if (budget == 50) {
      EXPECT_LT(s.trials, budget) << "stops when no swap helps";
    }
  }
}

}  // namespace
}  // namespace lp
