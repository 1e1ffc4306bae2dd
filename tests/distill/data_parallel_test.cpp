// Distillation with the model on several devices. Several "cpu" entries
// stand for GPUs: through the layers as placed (one rank) the result is the
// one-device result bit for bit; data-parallel (one replica and one thread
// per device, gradients summed with c10d's Gloo) it is the same up to the
// order of float summation, also when ranks get unequal or no windows in a
// step and when later epochs read caches another rank filled.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "distill/gradient_sum.h"
#include "linearpatch/distill/distill.h"
#include "linearpatch/model/llama.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

struct Case {
  LlamaConfig config = test::tiny_config();
  TensorMap weights = test::random_weights(config, 70);
  std::vector<int64_t> removed{2, 3};
  LayerPatches initial;
  at::Tensor train, val;

  explicit Case(int64_t train_windows = 12) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(71);
    initial.stream_input[4] = at::eye(config.hidden_size);
    initial.mlp_output[1] = at::eye(config.hidden_size);
    train = at::randint(config.vocab_size, {train_windows, 16}, gen, at::kLong);
    val = at::randint(config.vocab_size, {4, 16}, gen, at::kLong);
  }
  LlamaModel model(int devices) const {
    ModelOptions options;
    options.devices.assign(static_cast<size_t>(devices), "cpu");
    return LlamaModel(config, weights, options);
  }
  DistillResult distill(int devices, DistillOptions options) const {
    return distill_patches(model(devices), removed, initial, train, val, options);
  }
};

DistillOptions options(int64_t epochs = 3) {
  DistillOptions o;
  o.top_k = 16;
  o.batch_size = 4;
  o.micro_batch = 2;
  o.lr = 3e-3;
  o.epochs = epochs;
  return o;
}

double max_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void expect_same_training(const DistillResult& one, const DistillResult& many, double tolerance) {
  ASSERT_EQ(one.step_losses.size(), many.step_losses.size());
  for (size_t i = 0; i < one.step_losses.size(); ++i)
    EXPECT_NEAR(many.step_losses[i], one.step_losses[i], tolerance * std::abs(one.step_losses[i])) << "step " << i;
  for (auto kind : {&LayerPatches::stream_input, &LayerPatches::mlp_output})
    for (const auto& [layer, patch] : one.patches.*kind) {
      const auto& other = (many.patches.*kind).at(layer);
      EXPECT_LE(max_difference(other, patch), tolerance) << "patch at " << layer;
      EXPECT_TRUE(other.device().is_cpu());
    }
  EXPECT_NEAR(many.val_kl_after, one.val_kl_after, tolerance * one.val_kl_after);
  EXPECT_EQ(many.steps, one.steps);
}

bool gloo_available() { return GradientSumGroup::unavailable_reason({at::kCPU, at::kCPU}).empty(); }

TEST(DataParallelDistill, ThroughThePlacedLayersEqualsOneDeviceExactly) {
  const Case s;
  auto placed = options();
  placed.data_parallel = false;
  const auto one = s.distill(1, options()), many = s.distill(3, placed);
  EXPECT_EQ(many.ranks, 1);
  expect_same_training(one, many, 0.0);
  EXPECT_TRUE(at::equal(many.patches.stream_input.at(4), one.patches.stream_input.at(4)));
}

TEST(DataParallelDistill, TwoRanksTrainTheMatricesOneRankTrains) {
  if (!gloo_available()) GTEST_SKIP() << GradientSumGroup::unavailable_reason({at::kCPU, at::kCPU});
  const Case s;
  const auto one = s.distill(1, options()), two = s.distill(2, options());
  EXPECT_EQ(one.ranks, 1);
  EXPECT_EQ(two.ranks, 2);
  EXPECT_GT(max_difference(two.patches.stream_input.at(4), s.initial.stream_input.at(4)), 1e-3) << "nothing trained";
  expect_same_training(one, two, 1e-4);
  EXPECT_TRUE(two.prefix_cached) << "later epochs should read the shared cache";
  EXPECT_GT(two.seconds_gradient_sum, 0);
}

TEST(DataParallelDistill, RanksWithUnequalOrNoWindowsInAStep) {
  if (!gloo_available()) GTEST_SKIP() << GradientSumGroup::unavailable_reason({at::kCPU, at::kCPU});
  // 5 windows in steps of 2 over 3 ranks: rank 0 never has a window (its
  // gradients come from the sums alone), ranks 1 and 2 one each, and the
  // last step's single window goes to rank 2.
  const Case s(5);
  auto o = options(2);
  o.batch_size = 2;
  o.micro_batch = 1;
  const auto one = s.distill(1, o), three = s.distill(3, o);
  EXPECT_EQ(three.ranks, 3);
  expect_same_training(one, three, 1e-4);
}

TEST(DataParallelDistill, SpilledTargetsAndRecomputedPrefixesAreShared) {
  if (!gloo_available()) GTEST_SKIP() << GradientSumGroup::unavailable_reason({at::kCPU, at::kCPU});
  const Case s;
  auto o = options();
  o.memory_budget_bytes = 0;  // the teacher file, no prefix cache
  const auto one = s.distill(1, o), two = s.distill(2, o);
  EXPECT_TRUE(two.targets_on_disk);
  EXPECT_FALSE(two.prefix_cached);
  expect_same_training(one, two, 1e-4);
}

}  // namespace
}  // namespace lp
