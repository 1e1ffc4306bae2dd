// Folding repairs into plain weights: maps on an MLP output and the scalar
// part of a stream patch fold exactly, a gap at the embeddings folds
// exactly, and the least-squares fold beats plain removal.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/model/head_metrics.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/fold.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

double max_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Mean KL(dense || model) per token on `ids`.
double kl_to(const LlamaModel& dense, const LlamaModel& model, const at::Tensor& ids) {
  const auto a = dense.run_layers(dense.embed(ids), 0, dense.num_layers());
  const auto b = model.run_layers(model.embed(ids), 0, model.num_layers());
  return compare_heads(dense, a, model, b).kl_sum / static_cast<double>(ids.numel());
}

Repair stream_repair(LayerRange gap, at::Tensor matrix) { return {gap, RepairKind::kLinearPatch, std::move(matrix), false}; }

TEST(Fold, ScalarPatchFoldsExactlyAlsoWithTiedEmbeddings) {
  auto config = test::tiny_config();
  config.tie_word_embeddings = true;
  const LlamaModel dense(config, test::random_weights(config, 51));
  const std::vector<int64_t> removed{2, 3};
  const std::vector<Repair> repairs{stream_repair({2, 4}, at::eye(48) * 1.3)};
  const auto fold = fold_stream_repairs(dense, removed, repairs, FoldKind::kScalar, {}, 1);
  EXPECT_TRUE(fold.untie_embeddings);
  EXPECT_EQ(fold.replaced.size(), 1u + 2 * 2);  // embeddings, o_proj and down_proj of layers 0 and 1
  auto gen = at::make_generator<at::CPUGeneratorImpl>(52);
  const auto ids = at::randint(config.vocab_size, {2, 9}, gen, at::kLong);
  const auto exact = dense.without_layers(removed, layer_patches(repairs)).forward(ids);
  EXPECT_LT(max_difference(apply_fold(dense, removed, fold).forward(ids), exact), 2e-4);
}

TEST(Fold, GapAtTheEmbeddingsFoldsExactly) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 53));
  const std::vector<int64_t> removed{0, 1};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(54);
  const std::vector<Repair> repairs{stream_repair({0, 2}, at::eye(48) + 0.1 * at::randn({48, 48}, gen))};
  const auto windows = at::randint(config.vocab_size, {2, 8}, gen, at::kLong);
  const auto fold = fold_stream_repairs(dense, removed, repairs, FoldKind::kLeastSquares, windows, 2);
  EXPECT_EQ(fold.replaced.count("model.embed_tokens.weight"), 1u);
  const auto ids = at::randint(config.vocab_size, {1, 7}, gen, at::kLong);
  EXPECT_LT(max_difference(apply_fold(dense, removed, fold).forward(ids),
                           dense.without_layers(removed, layer_patches(repairs)).forward(ids)),
            2e-4);
}

TEST(Fold, LeastSquaresApproximatesThePatchBetterThanRemovingTheLayers) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 55));
  const std::vector<int64_t> removed{3, 4};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(56);
  // A patch that really changes the stream: scales differ per direction.
  const auto q = std::get<0>(at::linalg_qr(at::randn({48, 48}, gen, at::kDouble)));
  const auto patch = at::matmul(q * (0.6 + at::rand({48}, gen, at::kDouble)), q.t()).to(at::kFloat);
  const std::vector<Repair> repairs{stream_repair({3, 5}, patch)};
  const auto windows = at::randint(config.vocab_size, {16, 24}, gen, at::kLong);
  const auto fold = fold_stream_repairs(dense, removed, repairs, FoldKind::kLeastSquares, windows, 4);
  ASSERT_EQ(fold.replaced.count(layer_tensor_name(2, "mlp.down_proj.weight")), 1u);
  const auto ids = at::randint(config.vocab_size, {4, 24}, gen, at::kLong);
  const auto patched = dense.without_layers(removed, layer_patches(repairs));
  const double folded_kl = kl_to(patched, apply_fold(dense, removed, fold), ids);
  const double removed_kl = kl_to(patched, dense.without_layers(removed, {}), ids);
  EXPECT_LT(folded_kl, 0.5 * removed_kl) << "folded " << folded_kl << " vs plain removal " << removed_kl;
}

// down_proj' = Tᵀ·down_proj (and the bias times T) is the same model as T
// applied to the MLP output, whatever T is.
TEST(Fold, MapOnAnMlpOutputFoldsExactly) {
  auto config = test::tiny_config();
  config.mlp_bias = true;
  const LlamaModel dense(config, test::random_weights(config, 57));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(58);
  const Repair repair{{3, 5}, RepairKind::kMlpLstsq, at::eye(48) + 0.2 * at::randn({48, 48}, gen), true};
  const std::vector<int64_t> removed{3, 4};
  const auto fold = fold_mlp_repairs(dense, {repair});
  EXPECT_EQ(fold.replaced.size(), 2u) << "down_proj weight and bias of layer 2";
  const auto ids = at::randint(config.vocab_size, {2, 10}, gen, at::kLong);
  EXPECT_LT(max_difference(apply_fold(dense, removed, fold).forward(ids),
                           dense.without_layers(removed, layer_patches({repair})).forward(ids)),
            2e-4);
}

}  // namespace
}  // namespace lp
