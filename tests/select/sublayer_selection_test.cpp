// Sublayer units: a sublayer that adds nothing to the stream is what both
// the iterative and the cosine selection remove first; each step's KL is
// that of the model without the chosen sites; unsupported combinations are
// refused before any work.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/core/error.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/fold.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/patch/rotation.h"
#include "linearpatch/patch/sublayer_repair.h"
#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/select/sublayer_selection.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

// Layer 3's attention and layer 2's MLP write (almost) nothing to the stream.
struct SublayerFixture {
  LlamaConfig config = test::tiny_config();
  TensorMap weights = test::random_weights(config, 91);
  at::Tensor windows;
  SublayerFixture() {
    weights["model.layers.3.self_attn.o_proj.weight"] = weights["model.layers.3.self_attn.o_proj.weight"] * 1e-4;
    weights["model.layers.2.mlp.down_proj.weight"] = weights["model.layers.2.mlp.down_proj.weight"] * 1e-4;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(92);
    windows = at::randint(config.vocab_size, {4, 16}, gen, at::kLong);
  }
};

TEST(SublayerSelection, IterativeRemovesTheSublayersThatDoNothingFirst) {
  SublayerFixture f;
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
  SublayerFixture f;
  const LlamaModel dense(f.config, f.weights);
  const auto attention = select_sublayers_by_cosine(dense, f.windows, Unit::kAttention, 1, false, 3);
  EXPECT_EQ(attention.removed, (std::vector<Site>{{3, Sublayer::kAttention}}));
  EXPECT_GT(attention.cosine.front().second, 0.9999);
  EXPECT_LT(attention.cosine.back().second, 0.999);
  const auto mlp = select_sublayers_by_cosine(dense, f.windows, Unit::kMlp, 1, true, 3);
  EXPECT_EQ(mlp.removed, (std::vector<Site>{{2, Sublayer::kMlp}}));
  EXPECT_EQ(mlp.cosine.size(), 6u) << "edges allowed: every layer's MLP";
}

// The least-squares map for a removed attention brings the model closer to
// the dense one, and folded into down_proj it gives the same outputs as
// applied on the MLP output.
TEST(SublayerRepair, AttentionRepairHelpsAndFoldsExactly) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 93));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(94);
  const auto windows = at::randint(config.vocab_size, {8, 24}, gen, at::kLong);
  const std::vector<Site> sites = {{0, Sublayer::kAttention}, {2, Sublayer::kAttention}, {3, Sublayer::kAttention}};
  const auto repairs = fit_attention_repairs(dense, sites, windows, 3);
  ASSERT_EQ(repairs.size(), 2u) << "layer 0's attention has no MLP before it";
  EXPECT_EQ(repairs[0].gap.start, 2);
  const auto unrepaired = dense.without_sublayers(sites);
  const auto patched = unrepaired.without_layers({}, layer_patches(repairs));
  HeldOutKl kl(dense, windows, 4);
  EXPECT_LT(kl.mean_kl(patched), 0.8 * kl.mean_kl(unrepaired));
  const auto folded = dense.with_replaced_weights(fold_mlp_repairs(dense, repairs).replaced).without_sublayers(sites);
  const auto a = patched.forward(windows), b = folded.forward(windows);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-3);
  EXPECT_NEAR(kl.quality(patched).ppl, kl.quality(folded).ppl, 1e-3 * kl.quality(patched).ppl);
}

// The least-squares map for a removed MLP, on the attention output beside
// it, brings the model closer to the dense one on windows it was not
// fitted on, and folded into o_proj gives the same outputs as applied.
TEST(SublayerRepair, MlpRepairHelpsAndFoldsExactly) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 95));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(96);
  const auto fit = at::randint(config.vocab_size, {64, 32}, gen, at::kLong);
  const auto held_out = at::randint(config.vocab_size, {4, 24}, gen, at::kLong);
  const std::vector<Site> sites = {{1, Sublayer::kMlp}, {2, Sublayer::kMlp}, {4, Sublayer::kAttention}, {4, Sublayer::kMlp}};
  const auto repairs = fit_mlp_repairs(dense, sites, fit, 3);
  ASSERT_EQ(repairs.size(), 2u) << "layer 4 lost its attention too: no attention output to map";
  EXPECT_TRUE(repairs[0].on_attention_output);
  EXPECT_EQ(repairs[1].gap.start, 2);
  EXPECT_TRUE(fit_attention_repairs(dense, sites, fit, 3).empty()) << "layer 4's attention follows a removed MLP";
  const auto unrepaired = dense.without_sublayers(sites);
  const auto patched = unrepaired.without_layers({}, layer_patches(repairs));
  HeldOutKl kl(dense, held_out, 4);
  EXPECT_LT(kl.mean_kl(patched), kl.mean_kl(unrepaired));
  const auto fold = fold_mlp_repairs(dense, repairs);
  EXPECT_EQ(fold.replaced.count("model.layers.1.self_attn.o_proj.weight"), 1u);
  const auto folded = dense.with_replaced_weights(fold.replaced).without_sublayers(sites);
  const auto a = patched.forward(held_out), b = folded.forward(held_out);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-3);
  EXPECT_NEAR(kl.quality(patched).ppl, kl.quality(folded).ppl, 1e-3 * kl.quality(patched).ppl);
}

// Both kinds of repair come from one pass over the dense model; a streamed
// (layer-major) run interleaves the batches and must give the same maps bit
// for bit, as must each kind fitted alone.
TEST(SublayerRepair, OnePassFitsTheSameRepairsResidentOrStreamed) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 97);
  ModelOptions streaming;
  streaming.max_device_bytes = 1;  // every layer uploaded in turn: layer-major calibration
  const LlamaModel resident(config, weights), streamed(config, weights, streaming);
  ASSERT_TRUE(streamed.streams_layers());
  const auto windows = test::random_ids(7, 12, config.vocab_size, 98);
  // Repaired: attention 1, 2, 5 (the MLP before each kept), MLP 3; layer 0's attention cannot be.
  const std::vector<Site> sites = {{0, Sublayer::kAttention}, {1, Sublayer::kAttention}, {2, Sublayer::kAttention},
                                   {3, Sublayer::kMlp},       {5, Sublayer::kAttention}};
  const auto a = fit_sublayer_repairs(resident, sites, windows, 3);
  const auto b = fit_sublayer_repairs(streamed, sites, windows, 3);
  const auto alone = [&] {
    auto repairs = fit_attention_repairs(resident, sites, windows, 3);
    for (auto& r : fit_mlp_repairs(resident, sites, windows, 3)) repairs.push_back(std::move(r));
    return repairs;
  }();
  ASSERT_EQ(a.size(), 4u);
  for (const auto* other : {&b, &alone}) {
    ASSERT_EQ(other->size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ((*other)[i].description(), a[i].description());
      EXPECT_TRUE(at::equal((*other)[i].matrix, a[i].matrix)) << a[i].description();
    }
  }
  EXPECT_TRUE(a[3].on_attention_output) << "attention repairs first, then the MLP one";
}

// A LinearPatch per run of removed sublayers: a run of whole layers gets
// exactly the whole-layer patch of that block; a run that starts after an
// attention and ends after one gets the scales of the streams there
// (computed here from traced layers); streamed runs give the same patches.
TEST(SublayerRepair, StreamPatchesScaleTheStreamAcrossEachRun) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 99);
  ModelOptions streaming;
  streaming.max_device_bytes = 1;
  const LlamaModel resident(config, weights), streamed(config, weights, streaming);
  const auto windows = test::random_ids(7, 12, config.vocab_size, 100);
  const auto rotation = Rotation::create(config.hidden_size, RotationKind::kAuto, 0);
  // Runs: layers 1-2 whole; 4.mlp + 5.attention.
  const std::vector<Site> sites = {{1, Sublayer::kAttention}, {1, Sublayer::kMlp}, {2, Sublayer::kAttention},
                                   {2, Sublayer::kMlp},       {4, Sublayer::kMlp}, {5, Sublayer::kAttention}};
  const auto patches = fit_stream_patches(resident, sites, windows, 3, rotation);
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(patches[0].gap.end, 3) << "the stream entering layer 3";
  EXPECT_EQ(patches[1].gap.end, 5) << "layer 5 keeps its MLP: the stream entering it, attention gone";
  EXPECT_TRUE(patches[1].on_stream());

  MagnitudeStats layer_inputs(config.num_hidden_layers + 1, {2}, [&](const at::Tensor& x) { return rotation.apply(x); });
  run_calibration(resident, windows, 3, {&layer_inputs}, "layer inputs");
  EXPECT_TRUE(at::equal(patches[0].matrix, linearpatch_repair({1, 3}, layer_inputs, rotation).matrix));

  // The stream after layer 4's attention and after layer 5's, all windows at once.
  const auto input4 = resident.run_layers(resident.embed(windows), 0, 4);
  const auto before = resident.trace_layer(4, input4).after_attention;
  const auto after = resident.trace_layer(5, resident.run_layers(input4, 4, 5)).after_attention;
  const auto magnitude = [&](const at::Tensor& x) { return rotation.apply(x).abs().mean(1).to(at::kDouble); };
  const auto scales = (magnitude(after) / magnitude(before)).mean(0);
  const auto expected = patch_matrix(rotation, scales);
  EXPECT_LT((patches[1].matrix - expected).abs().max().item<double>(), 1e-5);

  const auto from_streamed = fit_stream_patches(streamed, sites, windows, 3, rotation);
  ASSERT_EQ(from_streamed.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(at::equal(from_streamed[i].matrix, patches[i].matrix)) << i;
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
  EXPECT_NO_THROW(validate(bad, config)) << "a stream patch per removed run, in the exact form";
  bad.repair.kind = RepairChoice::kMlpLstsq;
  EXPECT_NO_THROW(validate(bad, config)) << "attention units fold into the previous down_proj";
  bad.selection.unit = Unit::kMlp;
  EXPECT_NO_THROW(validate(bad, config)) << "MLP units fold into the same layer's o_proj";
  bad.repair.kind = RepairChoice::kAuto;
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
