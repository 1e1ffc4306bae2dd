// Distillation of the repairs on a tiny random model: the objective falls,
// the run is reproducible for a seed, the multi-epoch caches (teacher
// targets spilled to an unlinked file, prefix outputs) change nothing, and
// maps on an MLP output train like stream patches.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/distill/distill.h"
#include "linearpatch/model/llama.h"
#include "support/test_env.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

struct Setup {
  LlamaModel dense;
  std::vector<int64_t> removed;
  LayerPatches initial;
  at::Tensor train, val;
};

// Layers 2 and 3 removed; identity patch on the stream entering layer 4.
Setup make_setup() {
  const auto config = test::tiny_config();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(31);
  Setup s{LlamaModel(config, test::random_weights(config, 30)), {2, 3}, {}, {}, {}};
  s.initial.stream_input[4] = at::eye(config.hidden_size);
  s.train = at::randint(config.vocab_size, {12, 16}, gen, at::kLong);
  s.val = at::randint(config.vocab_size, {4, 16}, gen, at::kLong);
  return s;
}

DistillOptions fast_options() {
  DistillOptions o;
  o.top_k = 16;
  o.batch_size = 4;
  o.micro_batch = 2;
  o.lr = 3e-3;
  o.epochs = 3;
  return o;
}

TEST(Distill, TrainsOnlyThePatchAndLowersTheValidationKl) {
  auto s = make_setup();
  const auto before = s.dense.without_layers(s.removed, {}).forward(s.val);
  const auto result = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, fast_options());
  EXPECT_EQ(result.steps, 9);
  EXPECT_LT(result.val_kl_after, result.val_kl_before * 0.9);
  EXPECT_LT(result.step_losses.back(), result.step_losses.front());
  ASSERT_EQ(result.patches.stream_input.size(), 1u);
  EXPECT_GT((result.patches.stream_input.at(4) - at::eye(48)).abs().max().item<double>(), 1e-4)
      << "the patch did not move";
  // Model weights are untouched: the unpatched pruned model is unchanged.
  EXPECT_TRUE(at::equal(s.dense.without_layers(s.removed, {}).forward(s.val), before));
  EXPECT_GT(result.seconds_student, 0);
  EXPECT_GT(result.seconds_teacher, 0);
}

TEST(Distill, SameSeedSamePatchDifferentSeedDifferentPatch) {
  auto s = make_setup();
  auto options = fast_options();
  options.epochs = 1;
  const auto a = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, options);
  const auto b = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, options);
  EXPECT_TRUE(at::equal(a.patches.stream_input.at(4), b.patches.stream_input.at(4)));
  options.seed = 1;
  const auto c = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, options);
  EXPECT_FALSE(at::equal(a.patches.stream_input.at(4), c.patches.stream_input.at(4)));
}

TEST(Distill, CachedTargetsOnDiskGiveTheSameResultAsRecomputing) {
  auto s = make_setup();
  auto in_memory = fast_options();
  const auto a = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, in_memory);
  EXPECT_FALSE(a.targets_on_disk);
  EXPECT_TRUE(a.prefix_cached);
  auto spilled = in_memory;
  spilled.memory_budget_bytes = 0;  // forces the teacher file and recomputed prefixes
  test::TempDir dir;
  spilled.cache_dir = dir.path();
  const auto b = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, spilled);
  EXPECT_TRUE(b.targets_on_disk);
  EXPECT_FALSE(b.prefix_cached);
  EXPECT_LT((a.patches.stream_input.at(4) - b.patches.stream_input.at(4)).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the teacher file was not unlinked";
}

// mlp-lstsq repairs train too: the map on layer 1's MLP output moves, the
// frozen prefix stops before layer 1, and the objective falls.
TEST(Distill, MapOnAnMlpOutputTrains) {
  auto s = make_setup();
  s.initial.stream_input.clear();
  s.initial.mlp_output[1] = at::eye(48);
  const auto result = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, fast_options());
  ASSERT_EQ(result.patches.mlp_output.size(), 1u);
  EXPECT_TRUE(result.patches.stream_input.empty());
  EXPECT_GT((result.patches.mlp_output.at(1) - at::eye(48)).abs().max().item<double>(), 1e-4);
  EXPECT_LT(result.val_kl_after, result.val_kl_before);
}

TEST(Distill, FullVocabularyKlWorksWithoutACache) {
  auto s = make_setup();
  auto options = fast_options();
  options.top_k = 0;
  const auto result = distill_patches(s.dense, s.removed, s.initial, s.train, s.val, options);
  EXPECT_LT(result.val_kl_after, result.val_kl_before);
  EXPECT_FALSE(result.targets_on_disk);
}

}  // namespace
}  // namespace lp
