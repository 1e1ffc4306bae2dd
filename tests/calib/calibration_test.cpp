// Calibration statistics do not depend on how windows are batched or in
// which order a runner visits them: streamed (layer-major) runs equal
// window-major ones.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/model/llama.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

struct Stats {
  SimilarityStats similarity;
  MagnitudeStats magnitude;
};

Stats collect(const LlamaModel& model, const at::Tensor& windows, int64_t batch, StashOptions stash = {}) {
  Stats s{SimilarityStats(7, {1, 2}, stash), MagnitudeStats(7, {2}, [](const at::Tensor& x) { return x * 2; })};
  run_calibration(model, windows, batch, {&s.similarity, &s.magnitude}, "test");
  return s;
}

TEST(Calibration, StreamedLayerMajorRunsMatchWindowMajorRuns) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 41);
  const LlamaModel resident(config, weights);
  ModelOptions streamed_options;
  streamed_options.max_device_bytes = 1;  // nothing fits: layers are streamed
  const LlamaModel streamed(config, weights, streamed_options);
  ASSERT_FALSE(resident.streams_layers());
  ASSERT_TRUE(streamed.streams_layers());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  const auto windows = at::randint(config.vocab_size, {5, 12}, gen, at::kLong);

  const auto a = collect(resident, windows, 5);
  const auto b = collect(streamed, windows, 2, StashOptions{true, at::kHalf});
  for (int64_t i = 0; i + 1 < 7; ++i) {
    EXPECT_NEAR(a.similarity.mean_cosine(i, i + 1), b.similarity.mean_cosine(i, i + 1), 1e-3) << i;
    if (i + 2 < 7) {
      EXPECT_NEAR(a.similarity.mean_cosine(i, i + 2), b.similarity.mean_cosine(i, i + 2), 1e-3) << i;
    }
  }
  EXPECT_EQ(a.similarity.stashed(), 0u) << "vectors of finished batches were kept";
  EXPECT_EQ(b.similarity.stashed(), 0u);
  EXPECT_EQ(a.magnitude.windows(), 5);
  EXPECT_EQ(b.magnitude.windows(), 5);
  EXPECT_LT((a.magnitude.mean_ratio(1, 3) - b.magnitude.mean_ratio(1, 3)).abs().max().item<double>(), 1e-5);
}

TEST(Calibration, CosineIsTheMeanOverTokensOfPerTokenCosines) {
  SimilarityStats stats(3, {2});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(43);
  const auto x0 = at::randn({2, 4, 8}, gen), x1 = at::randn({2, 4, 8}, gen), x2 = at::randn({2, 4, 8}, gen);
  stats.on_layer_input(0, x0);
  stats.on_layer_input(1, x1);
  stats.on_layer_input(2, x2);
  const double expected = at::cosine_similarity(x0, x2, /*dim=*/-1).mean().item<double>();
  EXPECT_NEAR(stats.mean_cosine(0, 2), expected, 1e-6);
  const auto last = at::cosine_similarity(x0.select(1, 3), x2.select(1, 3), -1);
  EXPECT_NEAR(stats.mean_last_token_angular(0, 2), (at::acos(last) / M_PI).mean().item<double>(), 1e-6);
}

}  // namespace
}  // namespace lp
