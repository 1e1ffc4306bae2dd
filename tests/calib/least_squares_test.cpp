// The normal equations of the least-squares repairs, accumulated batch by
// batch, equal those computed directly from the layer activations, also
// when a streamed (layer-major) run interleaves the batches; and held-out
// windows never overlap the text the fit windows come from.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/calib/stream_stash.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

// Layer inputs X^(0..L) and MLP outputs of every layer, all windows, [N·T, C] float64.
struct Activations {
  std::vector<at::Tensor> inputs, mlp_outputs;
};

class Recorder : public ForwardObserver {
 public:
  void on_layer_input(int64_t layer, const at::Tensor& h) override { append(a.inputs, layer, h); }
  void on_mlp_output(int64_t layer, const at::Tensor& m) override { append(a.mlp_outputs, layer, m); }
  Activations a;

 private:
  static void append(std::vector<at::Tensor>& list, int64_t index, const at::Tensor& x) {
    if (list.size() <= static_cast<size_t>(index)) list.resize(static_cast<size_t>(index) + 1);
    auto rows = x.reshape({-1, x.size(-1)}).to(at::kDouble);
    auto& slot = list[static_cast<size_t>(index)];
    slot = slot.defined() ? at::cat({slot, rows}) : rows;
  }
};

// One tiny model run resident and streamed (layer-major, batches
// interleaved), and five windows of ten tokens.
struct BothRunOrders {
  explicit BothRunOrders(uint64_t seed)
      : weights(test::random_weights(config, seed)), resident(config, weights), streamed(config, weights, streaming()) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
    windows = at::randint(config.vocab_size, {5, 10}, gen, at::kLong);
  }
  static ModelOptions streaming() {
    ModelOptions options;
    options.max_device_bytes = 1;
    return options;
  }
  LlamaConfig config = test::tiny_config();
  TensorMap weights;
  LlamaModel resident, streamed;
  at::Tensor windows;
};

TEST(LeastSquaresStats, EqualTheDirectSumsInAnyRunOrder) {
  const BothRunOrders f(61);
  const auto& resident = f.resident;
  const auto& streamed = f.streamed;
  const auto& windows = f.windows;
  Recorder recorder;
  run_calibration(resident, windows, 5, {&recorder}, "record");
  const auto& a = recorder.a;

  const std::vector<LeastSquaresStats::Fit> fits{{{2, 4}, LeastSquaresStats::Source::kMlpOutput},
                                                  {{0, 3}, LeastSquaresStats::Source::kStream}};
  // MLP fit of [2, 4): m = MLP output of layer 1, target X^(4) - X^(2) + m.
  const auto& m = a.mlp_outputs[1];
  const auto mlp_rhs = at::matmul(m.t(), a.inputs[4] - a.inputs[2] + m);
  const auto stream_rhs = at::matmul(a.inputs[0].t(), a.inputs[3]);
  for (const auto& [model, batch] : std::vector<std::pair<const LlamaModel*, int64_t>>{{&resident, 2}, {&streamed, 2}}) {
    LeastSquaresStats stats(fits);
    run_calibration(*model, windows, batch, {&stats}, "fit", stats.layers_needed());
    EXPECT_EQ(stats.layers_needed(), 4);
    const auto mlp = stats.equations(0), stream = stats.equations(1);
    EXPECT_EQ(mlp.tokens, 50);
    EXPECT_LT(relative_difference(mlp.lhs, at::matmul(m.t(), m)), 1e-5);
    EXPECT_LT(relative_difference(mlp.rhs, mlp_rhs), 1e-5);
    EXPECT_LT(relative_difference(stream.lhs, at::matmul(a.inputs[0].t(), a.inputs[0])), 1e-5);
    EXPECT_LT(relative_difference(stream.rhs, stream_rhs), 1e-5);
  }
}

// A fit resumed from streams a first pass kept (in any run order) gives the
// same sums bit for bit; a stash answers for its fallback's positions too.
TEST(StreamStash, ResumedFitsEqualFitsFromTheEmbeddings) {
  const BothRunOrders f(63);
  const auto& config = f.config;
  const auto& resident = f.resident;
  const auto& streamed = f.streamed;
  const auto& windows = f.windows;
  const std::vector<LeastSquaresStats::Fit> fits{{{3, 4}, LeastSquaresStats::Source::kMlpOutput}};
  EXPECT_EQ(StreamStash::evenly_spaced(config.num_hidden_layers, 1), std::vector<int64_t>{config.num_hidden_layers / 2});
  for (const auto* model : {&resident, &streamed}) {
    StreamStash checkpoints({1, 2});
    run_calibration(*model, windows, 2, {&checkpoints}, "checkpoints");
    const StreamStash later({4}, &checkpoints);
    EXPECT_EQ(later.nearest_at_or_below(3), 2);
    EXPECT_EQ(later.nearest_at_or_below(0), -1);
    EXPECT_THROW(later.at(0, 4), Error) << "position 4 was never run through";

    LeastSquaresStats from_embeddings(fits), resumed(fits);
    run_calibration(*model, windows, 2, {&from_embeddings}, "fit", from_embeddings.layers_needed());
    run_calibration(*model, windows, 2, {&resumed}, "fit", resumed.layers_needed(), &later, resumed.first_layer_read());
    EXPECT_EQ(resumed.first_layer_read(), 2);
    const auto a = from_embeddings.equations(0), b = resumed.equations(0);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_TRUE(at::equal(a.lhs, b.lhs));
    EXPECT_TRUE(at::equal(a.rhs, b.rhs));
  }
}

TEST(SplitWindows, HeldOutWindowsComeFromTheLastTenthOnly) {
  std::vector<int32_t> tokens(1000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i);
  const auto split = split_windows(tokens, 20, 30, 6, 7);
  EXPECT_LE(split.fit.max().item<int64_t>(), 899);
  EXPECT_GE(split.held_out.min().item<int64_t>(), 900);
  EXPECT_EQ(split.held_out.size(0), 6);
  const auto whole = split_windows(tokens, 20, 30, 0, 7);
  EXPECT_FALSE(whole.held_out.defined());
  EXPECT_TRUE(at::equal(whole.fit, random_windows(tokens, 20, 30, 7))) << "no held-out: the whole text, as before";
  EXPECT_THROW(split_windows(tokens, 200, 3, 1, 7), InputError) << "the last tenth cannot hold a window of 200";
}

}  // namespace
}  // namespace lp
