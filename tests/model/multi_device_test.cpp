// A model placed over several devices computes exactly what it computes on
// one. Several "cpu" entries run the whole multi-device path (ranges chosen
// by place_layers, the stream handed over where ranges meet, patches, RoPE
// tables and observers per range, the head on the last device) without a
// GPU, so every result here must be bit-identical to the one-device model.
// What "cpu" entries cannot show, a tensor on the wrong device, shows on
// {"cpu", "meta"}: meta tensors refuse to mix with CPU ones.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/core/error.h"
#include "linearpatch/model/device.h"
#include "linearpatch/model/llama.h"
#include "model/device_testing.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

ModelOptions on_cpus(int devices, uint64_t max_device_bytes = 0) {
  ModelOptions options;
  options.devices.assign(static_cast<size_t>(devices), "cpu");
  options.max_device_bytes = max_device_bytes;
  return options;
}

void expect_equal(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(at::equal(a, b)) << what << ": max abs difference " << (a - b).abs().max().item<double>();
}

std::vector<std::pair<int64_t, int64_t>> ranges(const LlamaModel& model) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& p : model.placement()) out.emplace_back(p.begin, p.end);
  return out;
}

class StreamRecorder : public ForwardObserver {
 public:
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    inputs.emplace_back(layer, hidden.clone());
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override {
    mlp_outputs.emplace_back(layer, mlp_output.clone());
  }
  std::vector<std::pair<int64_t, at::Tensor>> inputs, mlp_outputs;
};

void expect_same_records(const StreamRecorder& a, const StreamRecorder& b) {
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  ASSERT_EQ(a.mlp_outputs.size(), b.mlp_outputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    EXPECT_EQ(a.inputs[i].first, b.inputs[i].first);
    expect_equal(a.inputs[i].second, b.inputs[i].second, "input of position " + std::to_string(a.inputs[i].first));
  }
  for (size_t i = 0; i < a.mlp_outputs.size(); ++i)
    expect_equal(a.mlp_outputs[i].second, b.mlp_outputs[i].second, "MLP output " + std::to_string(i));
}

TEST(MultiDevice, LayersAreSplitEvenlyAndThePlacementIsReported) {
  const auto config = test::tiny_config();
  const LlamaModel model(config, test::random_weights(config, 1), on_cpus(3));
  EXPECT_EQ(model.devices().size(), 3u);
  EXPECT_EQ(ranges(model), (std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 4}, {4, 6}}));
  const auto placement = model.placement();
  EXPECT_TRUE(placement.front().embeddings);
  EXPECT_FALSE(placement.front().head);
  EXPECT_TRUE(placement.back().head);
  EXPECT_EQ(placement.back().device, "cpu");
  for (int64_t p = 0; p <= config.num_hidden_layers; ++p) EXPECT_TRUE(model.layer_device(p).is_cpu());
  EXPECT_FALSE(model.streams_layers());
  // One device: one entry with everything, as before.
  const LlamaModel single(config, test::random_weights(config, 1));
  ASSERT_EQ(single.placement().size(), 1u);
  EXPECT_EQ(ranges(single).front(), std::make_pair(int64_t{0}, config.num_hidden_layers));
}

TEST(MultiDevice, ForwardEqualsOneDeviceInEveryFamily) {
  for (const auto family : {ModelFamily::kLlama, ModelFamily::kQwen2, ModelFamily::kQwen3}) {
    for (const bool tied : {false, true}) {
      auto config = test::tiny_config(family);
      config.tie_word_embeddings = tied;
      const auto weights = test::random_weights(config, 2);
      const LlamaModel single(config, weights), placed(config, weights, on_cpus(4));
      ASSERT_EQ(placed.devices().size(), 4u);
      const auto ids = test::random_ids(2, 9, config.vocab_size, 3);
      StreamRecorder a, b;
      expect_equal(placed.forward(ids, &b), single.forward(ids, &a),
                   std::string(model_type_name(family)) + (tied ? " tied" : "") + " logits");
      expect_same_records(a, b);
    }
  }
}

TEST(MultiDevice, SplitRunsHandOverTheStreamAtAnyBoundary) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 4);
  const LlamaModel single(config, weights), placed(config, weights, on_cpus(2));
  const auto ids = test::random_ids(2, 7, config.vocab_size, 5);
  for (int64_t k = 0; k <= config.num_hidden_layers; ++k) {
    StreamRecorder a, b;
    auto h_single = single.run_layers(single.embed(ids), 0, k, &a);
    auto h_placed = placed.run_layers(placed.embed(ids), 0, k, &b);
    EXPECT_EQ(h_placed.device(), placed.layer_device(k));
    h_single = single.run_layers(h_single, k, config.num_hidden_layers, &a);
    h_placed = placed.run_layers(h_placed, k, config.num_hidden_layers, &b);
    expect_equal(placed.lm_head(placed.final_norm(h_placed)), single.lm_head(single.final_norm(h_single)),
                 "split at " + std::to_string(k));
    expect_same_records(a, b);
  }
}

TEST(MultiDevice, PatchesApplyOnTheRangeOfTheirLayer) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 6);
  const LlamaModel single(config, weights), placed(config, weights, on_cpus(3));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t C = config.hidden_size;
  LayerPatches patches;
  patches.stream_input[4] = at::eye(C) + 0.05 * at::randn({C, C}, gen);      // first layer of a range
  patches.stream_input[6] = at::eye(C) + 0.05 * at::randn({C, C}, gen);      // the final norm's input
  patches.mlp_output[1] = at::eye(C) + 0.05 * at::randn({C, C}, gen);        // last layer before a boundary
  const auto ids = test::random_ids(2, 8, config.vocab_size, 8);
  const auto pruned_single = single.without_layers({2, 3}, patches);
  const auto pruned_placed = placed.without_layers({2, 3}, patches);
  EXPECT_EQ(ranges(pruned_placed), (std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 2}, {2, 4}}));
  StreamRecorder a, b;
  expect_equal(pruned_placed.forward(ids, &b), pruned_single.forward(ids, &a), "pruned and patched logits");
  expect_same_records(a, b);
  EXPECT_EQ(pruned_placed.patches().size(), 2u);
  EXPECT_EQ(pruned_placed.mlp_patches().size(), 1u);
}

TEST(MultiDevice, TraceHeadAtIdsAndReplacedWeightsEqualOneDevice) {
  auto config = test::tiny_config();
  config.tie_word_embeddings = true;
  const auto weights = test::random_weights(config, 9);
  const LlamaModel single(config, weights), placed(config, weights, on_cpus(2));
  const auto ids = test::random_ids(1, 6, config.vocab_size, 10);
  for (int64_t layer : {1, 3, 5}) {
    const auto a = single.trace_layer(layer, single.run_layers(single.embed(ids), 0, layer));
    const auto b = placed.trace_layer(layer, placed.run_layers(placed.embed(ids), 0, layer));
    expect_equal(b.output, a.output, "trace of layer " + std::to_string(layer));
    expect_equal(b.mlp_activation, a.mlp_activation, "MLP activation of layer " + std::to_string(layer));
    EXPECT_EQ(b.output.device(), placed.device());
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto normed = at::randn({1, 6, config.hidden_size}, gen);
  const auto head_ids = at::randint(config.vocab_size, {1, 6, 5}, gen, at::kLong);
  expect_equal(placed.lm_head_at(normed, head_ids), single.lm_head_at(normed, head_ids), "head at ids");
  // Replacing the tied embeddings (untied first) and a layer's weight.
  const std::string down = "model.layers.4.mlp.down_proj.weight";
  const TensorMap replacements{{"model.embed_tokens.weight", weights.at("model.embed_tokens.weight") * 1.5},
                               {down, weights.at(down) * 0.5}};
  expect_equal(placed.with_replaced_weights(replacements, true).forward(ids),
               single.with_replaced_weights(replacements, true).forward(ids), "replaced weights");
}

TEST(MultiDevice, CalibrationStatisticsEqualOneDevices) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 12);
  const LlamaModel single(config, weights), placed(config, weights, on_cpus(3));
  const auto windows = test::random_ids(5, 10, config.vocab_size, 13);
  const std::vector<LeastSquaresStats::Fit> fits{{{2, 4}, LeastSquaresStats::Source::kMlpOutput},
                                                  {{1, 5}, LeastSquaresStats::Source::kStream}};
  struct Stats {
    SimilarityStats similarity;
    MagnitudeStats magnitude;
    LeastSquaresStats least_squares;
  };
  auto collect = [&](const LlamaModel& model) {
    Stats s{{7, {1, 2, 4}}, {7, {2, 3}, [](const at::Tensor& x) { return x * 2; }}, LeastSquaresStats(fits)};
    run_calibration(model, windows, 2, {&s.similarity, &s.magnitude, &s.least_squares}, "test");
    return s;
  };
  const auto a = collect(single), b = collect(placed);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t gap : {1, 2, 4}) {
      if (i + gap >= 7) continue;
      EXPECT_EQ(a.similarity.mean_cosine(i, i + gap), b.similarity.mean_cosine(i, i + gap)) << i << "+" << gap;
      EXPECT_EQ(a.similarity.mean_last_token_angular(i, i + gap), b.similarity.mean_last_token_angular(i, i + gap));
    }
  expect_equal(b.magnitude.mean_ratio(1, 3), a.magnitude.mean_ratio(1, 3), "magnitude ratio across a boundary");
  expect_equal(b.magnitude.mean_ratio(2, 5), a.magnitude.mean_ratio(2, 5), "magnitude ratio over a gap of 3");
  for (size_t f = 0; f < fits.size(); ++f) {
    const auto x = a.least_squares.equations(f), y = b.least_squares.equations(f);
    expect_equal(y.lhs, x.lhs, "least-squares lhs " + std::to_string(f));
    expect_equal(y.rhs, x.rhs, "least-squares rhs " + std::to_string(f));
  }
}

TEST(MultiDevice, ModelsBeyondTheDevicesCapacitiesStream) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 14);
  uint64_t layer = 0, other = 0;  // bytes of layer 0; of the embeddings, final norm and head
  for (const auto& [name, tensor] : weights) {
    const auto l = split_layer_tensor_name(name).first;
    if (l == 0) layer += tensor.nbytes();
    if (l < 0) other += tensor.nbytes();
  }
  const LlamaModel single(config, weights);
  const auto ids = test::random_ids(1, 8, config.vocab_size, 15);
  const LlamaModel fitting(config, weights, on_cpus(2, 3 * layer + other));
  EXPECT_EQ(ranges(fitting), (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}}));
  EXPECT_FALSE(fitting.streams_layers());
  // Two layers per device at most: six do not fit on two.
  const LlamaModel streamed(config, weights, on_cpus(2, 3 * layer - 1));
  EXPECT_TRUE(streamed.streams_layers());
  EXPECT_EQ(streamed.devices().size(), 1u);
  expect_equal(streamed.forward(ids), single.forward(ids), "streamed when the layers do not fit");
}

TEST(MultiDevice, AReplicaHoldsEverythingOnOneDevice) {
  const auto config = test::tiny_config();
  const auto weights = test::random_weights(config, 16);
  const LlamaModel placed(config, weights, on_cpus(3));
  const auto replica = placed.replica(at::kCPU);
  EXPECT_EQ(replica.devices().size(), 1u);
  EXPECT_EQ(replica.weight_bytes(), placed.weight_bytes());
  const auto ids = test::random_ids(2, 5, config.vocab_size, 17);
  expect_equal(replica.forward(ids), placed.forward(ids), "replica logits");
}

// Layers 0-2 on the CPU, 3-5 and the head on the meta device (no data):
// every hand-over, patch, RoPE table and head must be where its layer is.
// (libtorch 1.13 has no meta index_select, so lm_head_at is not run here.)
TEST(MultiDevice, EveryTensorIsOnItsRangesDevice) {
  allow_meta_devices_for_tests();
  auto config = test::tiny_config(ModelFamily::kQwen3);
  config.tie_word_embeddings = true;
  ModelOptions options;
  options.devices = {"cpu", "meta"};
  const LlamaModel model(config, test::random_weights(config, 18), options);
  ASSERT_EQ(ranges(model), (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}}));
  EXPECT_TRUE(model.device().is_meta());
  const auto ids = test::random_ids(2, 8, config.vocab_size, 19);
  const auto logits = model.forward(ids);
  EXPECT_TRUE(logits.is_meta());
  EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 8, config.vocab_size}));
  const int64_t C = config.hidden_size;
  LayerPatches patches;
  patches.stream_input[2] = at::eye(C);  // stays on the CPU side
  patches.stream_input[4] = at::eye(C);  // crosses to the meta side
  patches.stream_input[6] = at::eye(C);  // the head's
  patches.mlp_output[0] = at::eye(C);
  patches.mlp_output[5] = at::eye(C);
  const auto pruned = model.without_layers({1, 3}, patches);
  EXPECT_TRUE(pruned.patches().at(1).is_cpu());
  EXPECT_TRUE(pruned.patches().at(2).is_meta());
  EXPECT_TRUE(pruned.patches().at(4).is_meta());
  EXPECT_EQ(pruned.forward(ids).sizes(), logits.sizes());
  const auto trace = model.trace_layer(4, model.run_layers(model.embed(ids), 0, 4));
  EXPECT_TRUE(trace.output.is_meta());
}

TEST(MultiDevice, DevicesAreOfOneKindAndNamedOnce) {
  auto refused = [](std::vector<std::string> names, const std::string& needle) {
    try {
      resolve_devices(names);
      ADD_FAILURE() << "accepted devices that should fail with '" << needle << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  EXPECT_EQ(resolve_devices({"cpu", "cpu"}).size(), 2u);
  refused({}, "no device");
  refused({"gpu:0"}, "unknown device 'gpu:0'");
  if (!at::hasCUDA()) {
    refused({"cpu", "cuda:0"}, "no CUDA");
  } else {
    refused({"cpu", "cuda:0"}, "different kinds");
    refused({"cuda:0", "cuda:0"}, "named twice");
    refused({"cuda", "cuda:0"}, "an index each");
    refused({"cuda:" + std::to_string(cuda_device_count())}, "does not exist");
  }
}

}  // namespace
}  // namespace lp
