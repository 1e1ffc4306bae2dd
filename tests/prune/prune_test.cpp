// Choosing layers (candidate ranges, rankings, block influence, plans) and
// writing the pruned checkpoint, which must reload to exactly the in-memory
// pruned + patched model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/select/block_selection.h"
#include "linearpatch/prune/checkpoint_writer.h"
#include "linearpatch/prune/early_layer_copies.h"
#include "linearpatch/prune/prune_plan.h"
#include "support/test_env.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

// Position p holds the same unit vector at angle angles[p] for every token,
// so cos(X_i, X_j) = cos(angles[i] - angles[j]) exactly.
SimilarityStats stats_from_angles(const std::vector<double>& angles, std::vector<int64_t> gaps) {
  SimilarityStats stats(static_cast<int64_t>(angles.size()), std::move(gaps));
  for (size_t p = 0; p < angles.size(); ++p) {
    auto x = at::zeros({2, 3, 4});
    x.select(2, 0).fill_(std::cos(angles[p]));
    x.select(2, 1).fill_(std::sin(angles[p]));
    stats.on_layer_input(static_cast<int64_t>(p), x * (p + 1.0));
  }
  return stats;
}

TEST(BlockSelection, CandidatesKeepTheFirstAndLastLayerUnlessEdgesAreAllowed) {
  auto range = candidate_starts(16, 5, false);
  EXPECT_EQ(range.first_start, 1);
  EXPECT_EQ(range.last_start, 10);  // [10, 15): layer 15 stays
  range = candidate_starts(16, 5, true);
  EXPECT_EQ(range.first_start, 0);
  EXPECT_EQ(range.last_start, 11);
  EXPECT_THROW(candidate_starts(16, 15, false), UsageError);
  EXPECT_THROW(candidate_starts(16, 0, false), UsageError);
  EXPECT_NO_THROW(candidate_starts(16, 14, false));
}

TEST(BlockSelection, CosineRanksTheMostSimilarBlockFirst) {
  // 6 layers, positions 0..6; the stream barely turns between 3 and 5.
  const std::vector<double> angles = {0.0, 0.5, 0.9, 1.2, 1.25, 1.3, 1.9};
  const auto stats = stats_from_angles(angles, {2});
  const auto ranked = rank_by_cosine(stats, 6, 2, false);
  ASSERT_EQ(ranked.size(), 3u);  // starts 1, 2, 3
  EXPECT_EQ(ranked[0].start, 3);
  EXPECT_EQ(ranked[0].end, 5);
  EXPECT_NEAR(ranked[0].score, std::cos(0.1), 1e-6);
  for (size_t i = 1; i < ranked.size(); ++i) EXPECT_GE(ranked[i - 1].score, ranked[i].score);
  const auto angular = rank_by_angular(stats, 6, 2, false);
  EXPECT_EQ(angular[0].start, 3);
  EXPECT_NEAR(angular[0].score, 0.1 / M_PI, 1e-6);
}

TEST(BlockSelection, BlockInfluencePicksTheLeastChangingLayers) {
  const std::vector<double> angles = {0.0, 0.5, 0.6, 1.2, 1.25, 1.8, 2.5};
  const auto stats = stats_from_angles(angles, {1});
  const auto influence = block_influence(stats, 6);
  EXPECT_NEAR(influence[1], 1 - std::cos(0.1), 1e-6);
  EXPECT_EQ(lowest_influence_layers(influence, 2, false), (std::vector<int64_t>{1, 3}));
}

TEST(PrunePlan, GapsAreMaximalRunsWithTheirNewPositions) {
  const auto plan = make_prune_plan(10, std::vector<int64_t>{7, 2, 3, 8});
  EXPECT_EQ(plan.kept, (std::vector<int64_t>{0, 1, 4, 5, 6, 9}));
  ASSERT_EQ(plan.gaps.size(), 2u);
  EXPECT_EQ(plan.gaps[0].range, (LayerRange{2, 4}));
  EXPECT_EQ(plan.gaps[0].new_position, 2);
  EXPECT_EQ(plan.gaps[1].range, (LayerRange{7, 9}));
  EXPECT_EQ(plan.gaps[1].new_position, 5);
  EXPECT_EQ(describe_range(plan.gaps[0].range), "[2, 4) = layers 2, 3");
  EXPECT_EQ(describe_range({5, 6}), "[5, 6) = layer 5");
  EXPECT_EQ(new_layer_index(plan, 10), 6) << "the final norm's input";
  EXPECT_THROW(make_prune_plan(10, std::vector<int64_t>{10}), UsageError);
  EXPECT_THROW(make_prune_plan(10, std::vector<int64_t>{3, 3}), UsageError);
}

// Runs of removed sublayers in model order, whole layers included; each
// run's stream patch enters the layer holding the first sublayer kept
// after it.
TEST(PrunePlan, RemovedRunsJoinSublayersAcrossLayers) {
  using S = Sublayer;
  const auto plan = make_prune_plan(8, {3}, {{2, S::kMlp}, {4, S::kAttention}, {0, S::kAttention}, {6, S::kMlp}});
  const auto runs = removed_runs(plan);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].sites(), (std::vector<Site>{{0, S::kAttention}}));
  EXPECT_EQ(runs[0].patched_layer(), 0) << "layer 0 keeps its MLP";
  EXPECT_EQ(runs[1].sites(), (std::vector<Site>{{2, S::kMlp}, {3, S::kAttention}, {3, S::kMlp}, {4, S::kAttention}}));
  EXPECT_EQ(runs[1].patched_layer(), 4);
  EXPECT_FALSE(runs[1].whole_layers());
  EXPECT_EQ(runs[2].patched_layer(), 7);
  const auto layers = removed_runs(make_prune_plan(8, {7, 2, 3}));
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_TRUE(layers[0].whole_layers());
  EXPECT_EQ(layers[0].sites().size(), 4u);
  EXPECT_EQ(layers[1].patched_layer(), 8) << "the final norm's input";
}

TEST(CheckpointWriter, RenamesLayersAndDropsRemovedOnes) {
  const auto plan = make_prune_plan(6, {2, 3});
  EXPECT_EQ(renamed_tensor("model.layers.1.mlp.up_proj.weight", plan), "model.layers.1.mlp.up_proj.weight");
  EXPECT_EQ(renamed_tensor("model.layers.3.mlp.up_proj.weight", plan), "");
  EXPECT_EQ(renamed_tensor("model.layers.5.self_attn.q_proj.weight", plan), "model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(renamed_tensor("model.norm.weight", plan), "model.norm.weight");
}

TEST(CheckpointWriter, PrunedCheckpointReloadsAsThePatchedModel) {
  const auto config = test::tiny_config();
  test::TempDir dir;
  test::write_checkpoint(dir / "dense", config, test::random_weights(config, 21));
  test::write_file(dir / "dense" / "tokenizer_config.json", "{}");
  const io::Checkpoint source(dir / "dense");
  const auto dense = LlamaModel::load(dir / "dense");
  const auto plan = make_prune_plan(6, {2, 3});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  const auto patch = at::eye(48) + 0.05 * at::randn({48, 48}, gen);
  std::filesystem::create_directory(dir / "pruned");
  CheckpointEdits edits;
  edits.patches = {{2, patch}};
  edits.provenance_json = R"({"metric": "cosine"})";
  const auto written = write_pruned_checkpoint(source, plan, edits, 0, dir / "pruned");

  const auto pruned = LlamaModel::load(dir / "pruned");
  EXPECT_EQ(pruned.num_layers(), 4);
  const auto ids = at::randint(64, {2, 10}, gen, at::kLong);
  const auto expected = dense.with_layers(plan.kept, {{2, patch}}).forward(ids);
  EXPECT_LT((pruned.forward(ids) - expected).abs().max().item<double>(), 1e-5);

  // q, o: 48x48; k, v: 24x48; gate, up, down: 48x96; two norms.
  const int64_t per_layer = 2 * 48 * 48 + 2 * 24 * 48 + 3 * 48 * 96 + 2 * 48;
  EXPECT_EQ(written.parameters, config.parameter_count() - 2 * per_layer + 48 * 48);
  const auto reloaded = parse_llama_config(test::read_file(dir / "pruned" / "config.json"), "pruned");
  EXPECT_EQ(reloaded.parameter_count(), written.parameters);
  const auto entry = nlohmann::json::parse(test::read_file(dir / "pruned" / "config.json"))["linearpatch"];
  EXPECT_EQ(entry["removed_layers"], (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(entry["metric"], "cosine");
  EXPECT_TRUE(std::filesystem::exists(dir / "pruned" / "tokenizer_config.json"));
  const auto config_json = nlohmann::json::parse(test::read_file(dir / "pruned" / "config.json"));
  EXPECT_EQ(config_json["auto_map"]["AutoModelForCausalLM"], "modeling_linearpatch.LinearPatchLlamaForCausalLM");
  EXPECT_NE(test::read_file(dir / "pruned" / "modeling_linearpatch.py").find("class LinearPatchLlamaForCausalLM"),
            std::string::npos);

  // Kept tensors are byte-identical to the source's.
  const io::Checkpoint out(dir / "pruned");
  const auto a = source.tensor("model.layers.4.mlp.down_proj.weight");
  const auto b = out.tensor("model.layers.2.mlp.down_proj.weight");
  ASSERT_EQ(a.info->nbytes(), b.info->nbytes());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.info->nbytes()), 0);
}

// Layers copied early (one file each, as while calibrating) give the packed
// write's checkpoint tensor for tensor: kept layers renamed in place, an
// edited layer written anew, the removed layers' copies deleted.
TEST(CheckpointWriter, EarlyLayerCopiesGiveThePackedTensorsOneFilePerLayer) {
  const auto config = test::tiny_config();
  test::TempDir dir;
  test::write_checkpoint(dir / "dense", config, test::random_weights(config, 41));
  const io::Checkpoint source(dir / "dense");
  const auto plan = make_prune_plan(6, {2, 3});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  CheckpointEdits edits;
  edits.patches = {{2, at::eye(48) + 0.05 * at::randn({48, 48}, gen)}};
  edits.replaced = {{"model.layers.4.mlp.down_proj.weight", at::randn({48, 96}, gen)}};
  for (const auto* name : {"packed", "early"}) std::filesystem::create_directory(dir / name);
  write_pruned_checkpoint(source, plan, edits, 0, dir / "packed");
  WrittenCheckpoint written;
  {
    EarlyLayerCopies early(source, dir / "early", {});
    written = write_pruned_checkpoint(source, plan, edits, 0, dir / "early", {}, &early);
  }

  std::vector<std::string> expected_files;
  for (size_t i = 1; i <= 5; ++i) expected_files.push_back(io::shard_file_name(i, 5));
  expected_files.push_back("model.safetensors.index.json");
  EXPECT_EQ(written.files, expected_files) << "embeddings, norm, head and patch, then the 4 kept layers";
  EXPECT_LE(written.bytes_copied_early, written.bytes);
  for (const auto& entry : std::filesystem::directory_iterator(dir / "early"))
    EXPECT_NE(entry.path().filename().string()[0], '.') << entry.path() << " left behind";

  const io::Checkpoint packed(dir / "packed"), early(dir / "early");
  EXPECT_EQ(early.tensor_names(), packed.tensor_names());
  for (const auto& name : packed.tensor_names()) {
    const auto a = packed.tensor(name), b = early.tensor(name);
    ASSERT_EQ(a.info->nbytes(), b.info->nbytes()) << name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.info->nbytes()), 0) << name;
  }
  EXPECT_EQ(early.tensor("model.layers.3.mlp.up_proj.weight").file->path().filename(), io::shard_file_name(5, 5));
  EXPECT_EQ(early.tensor("model.linear_patches.2.weight").file->path().filename(), io::shard_file_name(1, 5));
}

// Every family's pruned checkpoint must reload (in our loader) as the
// pruned model, name the family's classes, and keep each kept layer's
// attention window in config.json.
class FamilyCheckpoint : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(FamilyCheckpoint, PrunedCheckpointKeepsTheFamilyAndItsWindows) {
  auto config = test::tiny_config(GetParam());
  if (GetParam() == ModelFamily::kMistral) config.attention_windows.assign(6, 7);
  if (GetParam() == ModelFamily::kQwen2 || GetParam() == ModelFamily::kQwen3)
    config.attention_windows = {0, 7, 0, 7, 7, 0};
  test::TempDir dir;
  test::write_checkpoint(dir / "dense", config, test::random_weights(config, 31));
  const io::Checkpoint source(dir / "dense");
  const auto dense = LlamaModel::load(dir / "dense");
  EXPECT_EQ(dense.config().attention_windows, config.attention_windows);
  const auto plan = make_prune_plan(6, {1, 2});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(32);
  const auto patch = at::eye(48) + 0.05 * at::randn({48, 48}, gen);
  const auto ids = at::randint(64, {2, 12}, gen, at::kLong);  // longer than the window of 7
  const std::string plain = causal_lm_class_name(GetParam());

  for (const bool patched : {true, false}) {
    const auto out = dir / (patched ? "patched" : "plain");
    std::filesystem::create_directory(out);
    CheckpointEdits edits;
    if (patched) edits.patches = {{1, patch}};
    write_pruned_checkpoint(source, plan, edits, 0, out);
    const auto pruned = LlamaModel::load(out);
    EXPECT_EQ(pruned.config().family, GetParam());
    const std::vector<int64_t> kept_windows{config.attention_windows[0], config.attention_windows[3],
                                            config.attention_windows[4], config.attention_windows[5]};
    EXPECT_EQ(pruned.config().attention_windows, kept_windows);
    const auto expected = dense.with_layers(plan.kept, patched ? std::map<int64_t, at::Tensor>{{1, patch}}
                                                               : std::map<int64_t, at::Tensor>{})
                              .forward(ids);
    EXPECT_LT((pruned.forward(ids) - expected).abs().max().item<double>(), 1e-5);
    const auto json = nlohmann::json::parse(test::read_file(out / "config.json"));
    EXPECT_EQ(json["architectures"][0], patched ? "LinearPatch" + plain : plain);
    EXPECT_EQ(json.contains("auto_map"), patched);
    EXPECT_EQ(json["model_type"], model_type_name(GetParam()));
    if (json.contains("layer_types")) {
      EXPECT_EQ(json["layer_types"].size(), 4u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyCheckpoint,
                         ::testing::Values(ModelFamily::kLlama, ModelFamily::kMistral, ModelFamily::kQwen2,
                                           ModelFamily::kQwen3),
                         [](const auto& info) { return model_type_name(info.param); });

}  // namespace
}  // namespace lp
