// Distillation of the patch on a tiny random model: the objective falls,
// the run is reproducible for a seed, and the multi-epoch caches (teacher
// targets spilled to an unlinked file, prefix outputs) change nothing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/distill/distill.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/prune/prune_plan.h"
#include "support/test_env.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

struct Setup {
  LlamaModel dense;
  PrunePlan plan;
  std::map<int64_t, at::Tensor> initial;
  at::Tensor train, val;
};

Setup make_setup() {
  const auto config = test::tiny_config();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(31);
  Setup s{LlamaModel(config, test::random_weights(config, 30)), make_prune_plan(6, Block{2, 4, 0}), {}, {}, {}};
  s.initial[2] = at::eye(config.hidden_size);
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
  const auto before = s.dense.with_layers(s.plan.kept, {}).forward(s.val);
  const auto result = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, fast_options());
  EXPECT_EQ(result.steps, 9);
  EXPECT_LT(result.val_kl_after, result.val_kl_before * 0.9);
  EXPECT_LT(result.step_losses.back(), result.step_losses.front());
  ASSERT_EQ(result.patches.size(), 1u);
  EXPECT_GT((result.patches.at(2) - at::eye(48)).abs().max().item<double>(), 1e-4) << "the patch did not move";
  // Model weights are untouched: the unpatched pruned model is unchanged.
  EXPECT_TRUE(at::equal(s.dense.with_layers(s.plan.kept, {}).forward(s.val), before));
  EXPECT_GT(result.seconds_student, 0);
  EXPECT_GT(result.seconds_teacher, 0);
}

TEST(Distill, SameSeedSamePatchDifferentSeedDifferentPatch) {
  auto s = make_setup();
  auto options = fast_options();
  options.epochs = 1;
  const auto a = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, options);
  const auto b = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, options);
  EXPECT_TRUE(at::equal(a.patches.at(2), b.patches.at(2)));
  options.seed = 1;
  const auto c = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, options);
  EXPECT_FALSE(at::equal(a.patches.at(2), c.patches.at(2)));
}

TEST(Distill, CachedTargetsOnDiskGiveTheSameResultAsRecomputing) {
  auto s = make_setup();
  auto in_memory = fast_options();
  const auto a = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, in_memory);
  EXPECT_FALSE(a.targets_on_disk);
  EXPECT_TRUE(a.prefix_cached);
  auto spilled = in_memory;
  spilled.memory_budget_bytes = 0;  // forces the teacher file and recomputed prefixes
  test::TempDir dir;
  spilled.cache_dir = dir.path();
  const auto b = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, spilled);
  EXPECT_TRUE(b.targets_on_disk);
  EXPECT_FALSE(b.prefix_cached);
  EXPECT_LT((a.patches.at(2) - b.patches.at(2)).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the teacher file was not unlinked";
}

TEST(Distill, FullVocabularyKlWorksWithoutACache) {
  auto s = make_setup();
  auto options = fast_options();
  options.top_k = 0;
  const auto result = distill_patches(s.dense, s.plan, s.initial, s.train, s.val, options);
  EXPECT_LT(result.val_kl_after, result.val_kl_before);
  EXPECT_FALSE(result.targets_on_disk);
}

}  // namespace
}  // namespace lp
