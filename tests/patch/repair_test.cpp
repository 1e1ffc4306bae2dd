// Repairs: the ridge solve recovers a known map, an mlp-lstsq repair makes
// the layer before the gap reproduce the stream after it better than
// leaving the gap alone, and repairs land where they apply.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/calibration.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/repair.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

TEST(Repair, RidgeSolveRecoversAKnownMap) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(71);
  const auto x = at::randn({500, 12}, gen, at::kDouble);
  const auto m = at::randn({12, 12}, gen, at::kDouble);
  const auto solved = solve_ridge({at::matmul(x.t(), x), at::matmul(x.t(), at::matmul(x, m)), 500});
  EXPECT_LT((solved - m).abs().max().item<double>(), 1e-3);
}

TEST(Repair, PatchesLandWhereTheyApply) {
  const Repair stream{{3, 5}, RepairKind::kLinearPatch, at::eye(4), false};
  const Repair mlp{{7, 8}, RepairKind::kMlpLstsq, at::eye(4) * 2, true};
  const auto patches = layer_patches({stream, mlp, unrepaired({9, 10})});
  ASSERT_EQ(patches.stream_input.size(), 1u);
  EXPECT_EQ(patches.stream_input.count(5), 1u) << "the stream entering the first layer after the gap";
  ASSERT_EQ(patches.mlp_output.size(), 1u);
  EXPECT_EQ(patches.mlp_output.count(6), 1u) << "the MLP output of the last layer before the gap";
  EXPECT_EQ(mlp_lstsq_source({0, 2}), LeastSquaresStats::Source::kStream) << "no MLP before layer 0";
}

TEST(Repair, MlpLeastSquaresLowersTheKlOfTheGap) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 72));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(73);
  const auto fit = at::randint(config.vocab_size, {24, 16}, gen, at::kLong);
  const auto held_out = at::randint(config.vocab_size, {6, 16}, gen, at::kLong);
  const std::vector<int64_t> removed{2, 3};
  const LayerRange gap{2, 4};
  LeastSquaresStats stats({{gap, mlp_lstsq_source(gap)}});
  run_calibration(dense, fit, 8, {&stats}, "fit", stats.layers_needed());
  const auto repair = mlp_lstsq_repair(gap, stats.equations(0));
  EXPECT_TRUE(repair.on_mlp_output);
  const HeldOutKl kl(dense, held_out, 3);
  const double repaired = kl.mean_kl(dense.without_layers(removed, layer_patches({repair})));
  const double plain = kl.mean_kl(dense.without_layers(removed, {}));
  EXPECT_LT(repaired, plain) << "mlp-lstsq " << repaired << " vs plain removal " << plain;
}

// A candidate that differs from the cached base model only from layer k on
// scores the same from the cache as from a full run.
TEST(HeldOutKl, CachedPrefixGivesTheFullRunScore) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 74));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(75);
  const HeldOutKl unused(dense, at::randint(config.vocab_size, {2, 8}, gen, at::kLong), 2);
  HeldOutKl kl(dense, at::randint(config.vocab_size, {5, 12}, gen, at::kLong), 2);
  // Base: layer 1 removed with a patch entering layer 2; candidate: also
  // layer 4, with a patch entering layer 5 (position 3 in both).
  LayerPatches base_patches, candidate_patches;
  base_patches.stream_input[2] = at::eye(48) * 1.1;
  candidate_patches = base_patches;
  candidate_patches.stream_input[5] = at::eye(48) + 0.05 * at::randn({48, 48}, gen);
  kl.cache_base(dense.without_layers({1}, base_patches));
  const auto candidate = dense.without_layers({1, 4}, candidate_patches);
  EXPECT_NEAR(kl.mean_kl(candidate, 3), kl.mean_kl(candidate, 0), 1e-6);
  EXPECT_GT(kl.mean_kl(candidate, 0), 0.0);
}

}  // namespace
}  // namespace lp
