// Sublayers as units: the family tensor tables, models without some
// attention or MLP sublayers (in memory and written to disk), and the plan
// over sites.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "linearpatch/config/nemotron_nas.h"
#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/model/synthetic.h"
#include "linearpatch/prune/checkpoint_writer.h"
#include "linearpatch/prune/prune_plan.h"
#include "support/test_env.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(TensorTable, CountsMatchPublishedModels) {
  // Qwen3-0.6B as published: q/k norms, tied embeddings, head_dim 128.
  EXPECT_EQ(synthetic_shape("qwen3-0.6b").parameter_count(), 596049920);
  // Qwen2.5-0.5B: q/k/v biases, tied.
  EXPECT_EQ(synthetic_shape("qwen2.5-0.5b").parameter_count(), 494032768);
  const auto l3 = synthetic_shape("llama3-8b");
  // An 8B layer: attention 4096·(4096 + 2·1024 + 4096) + norm, MLP 3·4096·14336 + norm.
  EXPECT_EQ(sublayer_parameter_count(l3, Sublayer::kAttention), 4096LL * (4096 + 2 * 1024 + 4096) + 4096);
  EXPECT_EQ(sublayer_parameter_count(l3, Sublayer::kMlp), 3LL * 4096 * 14336 + 4096);
}

TEST(TensorTable, EveryFamilysTensorsBelongToTheirSublayer) {
  for (const auto family : {ModelFamily::kLlama, ModelFamily::kMistral, ModelFamily::kQwen2, ModelFamily::kQwen3}) {
    const auto specs = layer_tensor_specs(test::tiny_config(family));
    for (const auto& spec : specs) {
      const bool attention = spec.suffix.rfind("self_attn.", 0) == 0 || spec.suffix == "input_layernorm.weight";
      EXPECT_EQ(spec.owner, attention ? Sublayer::kAttention : Sublayer::kMlp) << spec.suffix;
      EXPECT_EQ(owner_of_suffix(spec.suffix), spec.owner);
    }
    EXPECT_EQ(specs.size(), family == ModelFamily::kQwen2 ? 12u : family == ModelFamily::kQwen3 ? 11u : 9u);
  }
}

// A removed sublayer passes the stream through: the same as a dense model
// whose sublayer output projection is zero.
TEST(Sublayers, RemovedSublayerEqualsAZeroedOutputProjection) {
  for (const auto family : {ModelFamily::kLlama, ModelFamily::kQwen2, ModelFamily::kQwen3}) {
    const auto config = test::tiny_config(family);
    auto weights = test::random_weights(config, 5);
    const LlamaModel dense(config, weights);
    auto zeroed = weights;
    for (const auto* name : {"model.layers.2.self_attn.o_proj.weight", "model.layers.4.mlp.down_proj.weight"})
      zeroed[name] = at::zeros_like(weights[name]);
    const LlamaModel reference(config, zeroed);
    const auto pruned = dense.without_sublayers({{2, Sublayer::kAttention}, {4, Sublayer::kMlp}});
    auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
    const auto ids = at::randint(64, {2, 10}, gen, at::kLong);
    EXPECT_LT(max_diff(pruned.forward(ids), reference.forward(ids)), 1e-5) << model_type_name(family);
    EXPECT_GT(max_diff(pruned.forward(ids), dense.forward(ids)), 1e-3);
    EXPECT_FALSE(pruned.config().layer_spec(2).attention);
    EXPECT_TRUE(pruned.config().layer_spec(2).mlp);
    EXPECT_FALSE(pruned.config().layer_spec(4).mlp);
  }
}

// One operation on sites: a layer that loses both sublayers is dropped and
// the later layers renumbered (patches keyed in the original numbering),
// which computes what the layer left in place with both sublayers removed
// computes.
TEST(Sublayers, SitesOfAWholeLayerDropTheLayer) {
  const auto config = test::tiny_config();
  const LlamaModel dense(config, test::random_weights(config, 7));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const auto patch = at::eye(48) + 0.05 * at::randn({48, 48}, gen);
  const std::vector<Site> sites = {{4, Sublayer::kMlp}, {2, Sublayer::kMlp}, {2, Sublayer::kAttention}};
  const auto pruned = dense.without_sites(sites, {{{3, patch}}, {}});
  EXPECT_EQ(pruned.num_layers(), 5);
  EXPECT_FALSE(pruned.config().layer_spec(3).mlp) << "layer 4 is new layer 3";
  EXPECT_TRUE(pruned.config().layer_spec(1).mlp);
  const auto in_place = dense.without_sublayers(sites).with_layers({0, 1, 2, 3, 4, 5}, {{3, patch}});
  const auto ids = at::randint(64, {2, 10}, gen, at::kLong);
  EXPECT_TRUE(at::equal(pruned.forward(ids), in_place.forward(ids)));
  EXPECT_THROW(dense.without_sites(sites, {{{2, patch}}, {}}), Error) << "a patch on the dropped layer";
}

TEST(PrunePlan, BothSublayersOfALayerRemoveTheLayer) {
  const auto plan = make_prune_plan(6, {1}, {{3, Sublayer::kMlp}, {4, Sublayer::kAttention}, {3, Sublayer::kAttention}});
  EXPECT_EQ(plan.removed, (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(plan.removed_sublayers.size(), 1u);
  EXPECT_EQ(plan.removed_sublayers[0], (Site{4, Sublayer::kAttention}));
  EXPECT_EQ(removed_sites(plan), (std::vector<Site>{{1, Sublayer::kAttention}, {1, Sublayer::kMlp},
                                                    {3, Sublayer::kAttention}, {3, Sublayer::kMlp},
                                                    {4, Sublayer::kAttention}}));
  EXPECT_THROW(make_prune_plan(6, {1}, {{1, Sublayer::kMlp}}), UsageError);
  EXPECT_THROW(make_prune_plan(6, {}, {{6, Sublayer::kMlp}}), UsageError);
  EXPECT_THROW(make_prune_plan(6, {}, {{2, Sublayer::kMlp}, {2, Sublayer::kMlp}}), UsageError);
}

// Every family: the written checkpoint has no tensor of a removed sublayer,
// says which sublayers each layer has, and reloads as the in-memory model.
class SublayerCheckpoint : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(SublayerCheckpoint, WrittenWithoutTheRemovedTensorsAndReloadsExactly) {
  const auto config = test::tiny_config(GetParam());
  test::TempDir dir;
  test::write_checkpoint(dir / "dense", config, test::random_weights(config, 11), at::kFloat);
  const io::Checkpoint source(dir / "dense");
  const auto dense = LlamaModel::load(dir / "dense");
  const auto plan = make_prune_plan(6, {1}, {{2, Sublayer::kAttention}, {4, Sublayer::kMlp}});
  std::filesystem::create_directory(dir / "out");
  write_pruned_checkpoint(source, plan, {}, 0, dir / "out");

  const io::Checkpoint written(dir / "out");
  for (const auto& name : written.tensor_names()) {
    EXPECT_EQ(name.rfind("model.layers.1.self_attn", 0), std::string::npos) << "layer 2 is new layer 1: " << name;
    EXPECT_NE(name, "model.layers.1.input_layernorm.weight");
    EXPECT_EQ(name.rfind("model.layers.3.mlp", 0), std::string::npos) << name;
    EXPECT_NE(name, "model.layers.3.post_attention_layernorm.weight");
  }
  EXPECT_TRUE(written.contains("model.layers.1.mlp.down_proj.weight"));
  EXPECT_TRUE(written.contains("model.layers.3.self_attn.o_proj.weight"));
  const auto json = nlohmann::json::parse(test::read_file(dir / "out" / "config.json"));
  EXPECT_EQ(json["architectures"][0], "LinearPatch" + causal_lm_class_name(GetParam()));
  EXPECT_TRUE(json.contains("auto_map"));
  EXPECT_EQ(json["linearpatch"]["layers"][1], (nlohmann::json{{"attention", false}, {"mlp", true}}));
  EXPECT_EQ(json["linearpatch"]["layers"][3], (nlohmann::json{{"attention", true}, {"mlp", false}}));
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "modeling_linearpatch.py"));

  const auto reloaded = LlamaModel::load(dir / "out");
  const auto expected = dense.without_sites(removed_sites(plan), {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
  const auto ids = at::randint(64, {2, 9}, gen, at::kLong);
  EXPECT_LT(max_diff(reloaded.forward(ids), expected.forward(ids)), 1e-5);
  EXPECT_EQ(reloaded.config().layer_specs, expected.config().layer_specs);
  int64_t stored = 0;
  for (const auto& name : written.tensor_names()) stored += static_cast<int64_t>(written.tensor(name).info->numel());
  EXPECT_EQ(reloaded.config().parameter_count(), stored);
}

INSTANTIATE_TEST_SUITE_P(Families, SublayerCheckpoint,
                         ::testing::Values(ModelFamily::kLlama, ModelFamily::kMistral, ModelFamily::kQwen2,
                                           ModelFamily::kQwen3),
                         [](const auto& info) { return model_type_name(info.param); });

TEST(Sublayers, LoaderRefusesAMissingTensorOfAPresentSublayer) {
  auto config = test::tiny_config();
  auto weights = test::random_weights(config, 3);
  weights.erase(layer_tensor_name(2, "self_attn.q_proj.weight"));
  EXPECT_THROW(LlamaModel(config, weights), InputError);
  config.layer_specs.assign(6, LayerSpec{});
  config.layer_specs[2].attention = false;
  for (const auto* suffix : {"self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                             "input_layernorm.weight"})
    weights.erase(layer_tensor_name(2, suffix));
  EXPECT_NO_THROW(LlamaModel(config, weights));
}

// A LLaMA tiny model whose intermediate size ffn_mult can express (256 =
// 2 * 8.0 * 48 / 3).
LlamaConfig nemotron_ready_config() {
  auto config = test::tiny_config();
  config.intermediate_size = 256;
  return config;
}

TEST(NemotronNas, WrittenCheckpointHasNoOpBlocksAndNoRemovedTensors) {
  const auto config = nemotron_ready_config();
  test::TempDir dir;
  test::write_checkpoint(dir / "dense", config, test::random_weights(config, 21), at::kFloat);
  const io::Checkpoint source(dir / "dense");
  const auto plan = make_prune_plan(6, {4}, {{1, Sublayer::kAttention}, {2, Sublayer::kMlp}});
  CheckpointEdits edits;
  edits.nemotron_nas = true;
  std::filesystem::create_directory(dir / "out");
  write_pruned_checkpoint(source, plan, edits, 0, dir / "out");

  const auto json = nlohmann::json::parse(test::read_file(dir / "out" / "config.json"));
  EXPECT_EQ(json["architectures"][0], "DeciLMForCausalLM");
  EXPECT_EQ(json["model_type"], "nemotron-nas");
  EXPECT_EQ(json["auto_map"]["AutoModelForCausalLM"], "modeling_decilm.DeciLMForCausalLM");
  ASSERT_EQ(json["block_configs"].size(), 5u);
  EXPECT_TRUE(json["block_configs"][1]["attention"]["no_op"].get<bool>());
  EXPECT_TRUE(json["block_configs"][1]["attention"]["n_heads_in_group"].is_null());
  EXPECT_FALSE(json["block_configs"][1]["ffn"]["no_op"].get<bool>());
  EXPECT_TRUE(json["block_configs"][2]["ffn"]["no_op"].get<bool>());
  EXPECT_EQ(json["block_configs"][0]["attention"]["n_heads_in_group"], 2);
  EXPECT_EQ(nemotron_intermediate_size(json["block_configs"][0]["ffn"]["ffn_mult"].get<double>(), 48), 256);
  EXPECT_FALSE(json["linearpatch"].contains("layers"));
  for (const auto* file : {"configuration_decilm.py", "modeling_decilm.py"})
    EXPECT_TRUE(std::filesystem::exists(dir / "out" / file)) << file;
  const io::Checkpoint written(dir / "out");
  for (const auto& name : written.tensor_names()) {
    EXPECT_EQ(name.rfind("model.layers.1.self_attn", 0), std::string::npos) << name;
    EXPECT_EQ(name.rfind("model.layers.2.mlp", 0), std::string::npos) << name;
  }

  // Read back: the same function as the exact form and the in-memory model.
  const auto dense = LlamaModel::load(dir / "dense");
  const auto reloaded = LlamaModel::load(dir / "out");
  EXPECT_EQ(reloaded.config().model_type, "nemotron-nas");
  const auto expected = dense.without_sites(removed_sites(plan), {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  const auto ids = at::randint(64, {2, 9}, gen, at::kLong);
  EXPECT_LT(max_diff(reloaded.forward(ids), expected.forward(ids)), 1e-5);
}

TEST(NemotronNas, ModelsTheFormatCannotExpressAreRefused) {
  EXPECT_NO_THROW(check_nemotron_writable(nemotron_ready_config()));
  EXPECT_THROW(check_nemotron_writable(test::tiny_config()), UsageError) << "intermediate 96";
  auto qwen3 = test::tiny_config(ModelFamily::kQwen3);
  qwen3.intermediate_size = 256;
  EXPECT_THROW(check_nemotron_writable(qwen3), UsageError);
  auto windowed = nemotron_ready_config();
  windowed.attention_windows.assign(6, 8);
  EXPECT_THROW(check_nemotron_writable(windowed), UsageError);
}

// A config as NVIDIA writes them: block_configs instead of
// num_key_value_heads and intermediate_size.
std::string nemotron_json(const std::string& block1_attention) {
  std::string blocks;
  for (int l = 0; l < 3; ++l) {
    const std::string attention =
        l == 1 ? block1_attention : R"({"n_heads_in_group": 2, "no_op": false, "replace_with_linear": false})";
    const std::string ffn = l == 2 ? R"({"ffn_mult": null, "no_op": true, "replace_with_linear": false})"
                                   : R"({"ffn_mult": 8.0, "no_op": false, "replace_with_linear": false})";
    blocks += std::string(l ? "," : "") + R"({"attention": )" + attention + R"(, "ffn": )" + ffn + "}";
  }
  return R"({"architectures": ["DeciLMForCausalLM"], "model_type": "nemotron-nas", "vocab_size": 64,
             "hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4, "rms_norm_eps": 1e-5,
             "hidden_act": "silu", "block_configs": [)" +
         blocks + "]}";
}

TEST(NemotronNas, ReadsNoOpBlocksAndRefusesOtherKindsNamingTheField) {
  const auto config =
      parse_llama_config(nemotron_json(R"({"n_heads_in_group": null, "no_op": true, "replace_with_linear": false})"),
                         "config.json");
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.intermediate_size, 256);
  EXPECT_EQ(config.head_dim, 12);
  EXPECT_EQ(config.layer_specs,
            (std::vector<LayerSpec>{{true, true}, {false, true}, {true, false}}));
  const auto refused = [](const std::string& attention, const std::string& needle) {
    try {
      parse_llama_config(nemotron_json(attention), "config.json");
      ADD_FAILURE() << "accepted " << attention;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(R"({"n_heads_in_group": null, "no_op": false, "replace_with_linear": true})",
          "block_configs[1].attention.replace_with_linear");
  refused(R"({"n_heads_in_group": 4, "no_op": false, "replace_with_linear": false})",
          "block_configs[1].attention.n_heads_in_group");
}

}  // namespace
}  // namespace lp
