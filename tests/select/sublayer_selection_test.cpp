// Sublayer units: a sublayer that adds nothing to the stream is what both
// the iterative and the cosine selection remove first; each step's KL is
// that of the model without the chosen sites; unsupported combinations are
// refused before any work.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/core/error.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/select/sublayer_selection.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

// Layer 3's attention and layer 2's MLP write (almost) nothing to the stream.
struct Fixture {
  LlamaConfig config = test::tiny_config();
  TensorMap weights = test::random_weights(config, 91);
  at::Tensor windows;
  Fixture() {
    weights["model.layers.3.self_attn.o_proj.weight"] = weights["model.layers.3.self_attn.o_proj.weight"] * 1e-4;
    weights["model.layers.2.mlp.down_proj.weight"] = weights["model.layers.2.mlp.down_proj.weight"] * 1e-4;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(92);
    windows = at::randint(config.vocab_size, {4, 16}, gen, at::kLong);
  }
};

TEST(SublayerSelection, IterativeRemovesTheSublayersThatDoNothingFirst) {
  Fixture f;
  const LlamaModel dense(f.config, f.weights);
  HeldOutKl held_out(dense, f.windows, 2);
  const auto attention = select_sublayers_iteratively(dense, held_out, Unit::kAttention, 2, false);
  ASSERT_EQ(attention.steps.size(), 2u);
  EXPECT_EQ(attention.steps[0].removed, (Site{3, Sublayer::kAttention}));
  EXPECT_EQ(attention.steps[0].candidates.size(), 4u) << "attention of layers 1..4";
  EXPECT_LT(attention.steps[0].kl, 1e-6);
  // The second step's KL is that of the model without both sites, run whole.
  HeldOutKl fresh(dense, f.windows, 2);
  EXPECT_NEAR(attention.steps[1].kl, fresh.mean_kl(dense.without_sublayers(attention.removed)), 1e-6);
  const auto mlp = select_sublayers_iteratively(dense, held_out, Unit::kMlp, 1, false);
  EXPECT_EQ(mlp.removed, (std::vector<Site>{{2, Sublayer::kMlp}}));
  const auto either = select_sublayers_iteratively(dense, held_out, Unit::kSublayer, 2, false);
  EXPECT_EQ(either.removed, (std::vector<Site>{{2, Sublayer::kMlp}, {3, Sublayer::kAttention}}));
  EXPECT_EQ(either.steps[0].candidates.size(), 8u);
}

TEST(SublayerSelection, CosineRanksTheSublayersThatDoNothingFirst) {
  Fixture f;
  const LlamaModel dense(f.config, f.weights);
  const auto attention = select_sublayers_by_cosine(dense, f.windows, Unit::kAttention, 1, false, 3);
  EXPECT_EQ(attention.removed, (std::vector<Site>{{3, Sublayer::kAttention}}));
  EXPECT_GT(attention.cosine.front().second, 0.9999);
  EXPECT_LT(attention.cosine.back().second, 0.999);
  const auto mlp = select_sublayers_by_cosine(dense, f.windows, Unit::kMlp, 1, true, 3);
  EXPECT_EQ(mlp.removed, (std::vector<Site>{{2, Sublayer::kMlp}}));
  EXPECT_EQ(mlp.cosine.size(), 6u) << "edges allowed: every layer's MLP";
}

TEST(SublayerSelection, UnsupportedCombinationsAreRefusedUpFront) {
  const auto config = test::tiny_config();
  PruneJob job;
  job.selection.unit = Unit::kAttention;
  job.selection.metric = Metric::kIterative;
  job.selection.layers = 2;
  job.repair.kind = RepairChoice::kNone;
  job.calibration.seq_len = 64;
  EXPECT_NO_THROW(validate(job, config));
  auto bad = job;
  bad.repair.kind = RepairChoice::kLinearPatch;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.emit.mode = EmitMode::kVanilla;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.metric = Metric::kBlockInfluence;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.unit = Unit::kSublayer;
  bad.selection.metric = Metric::kCosine;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.layers = 5;  // attention of layers 1..4 only
  EXPECT_THROW(validate(bad, config), UsageError);
  bad.selection.allow_edges = true;
  EXPECT_NO_THROW(validate(bad, config));
}

}  // namespace
}  // namespace lp
