#include "linearpatch/config/llama_config.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "support/expect_error.h"
#include "linearpatch/io/checkpoint.h"
#include "support/test_env.h"

namespace lp {
namespace {

using nlohmann::json;
using test::contains;
using test::error_message;

LlamaConfig parse_file(const std::filesystem::path& path) {
  return parse_llama_config(test::read_file(path), path.string());
}

LlamaConfig parse_data(const std::string& name) { return parse_file(test::test_data_dir() / "config" / name); }

// The smallest config that parses: only the required fields.
json minimal() {
  return {{"model_type", "llama"},    {"vocab_size", 1000},     {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 4}, {"num_attention_heads", 8}};
}

LlamaConfig parse_json(const json& config) { return parse_llama_config(config.dump(), "test/config.json"); }

int64_t checkpoint_parameters(const io::Checkpoint& checkpoint) {
  int64_t count = 0;
  for (const auto& name : checkpoint.tensor_names()) {
    count += static_cast<int64_t>(checkpoint.tensor(name).info->numel());
  }
  return count;
}

TEST(LlamaConfig, TinyLlama2Fixture) {
  LP_REQUIRE_SHARED();
  const auto dir = test::shared_dir() / "fixtures/models/tiny-llama2-s";
  const LlamaConfig c = parse_file(dir / "config.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.hidden_size, 320);
  EXPECT_EQ(c.intermediate_size, 864);
  EXPECT_EQ(c.num_attention_heads, 5);
  EXPECT_EQ(c.num_key_value_heads, 5);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 8000);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e4);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_TRUE(c.patches.empty());
  EXPECT_EQ(c.parameter_count(), 24955200);  // the index's total_parameters
  EXPECT_EQ(c.parameter_count(), checkpoint_parameters(io::Checkpoint(dir)));
}

TEST(LlamaConfig, DemoLlama3Fixture) {
  LP_REQUIRE_SHARED();
  const auto dir = test::shared_dir() / "fixtures/models/demo-llama3-d";
  const LlamaConfig c = parse_file(dir / "config.json");
  EXPECT_EQ(c.num_hidden_layers, 10);
  EXPECT_EQ(c.hidden_size, 192);
  EXPECT_EQ(c.num_attention_heads, 6);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e5);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 3840);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{3841}));
  EXPECT_EQ(c.parameter_count(), checkpoint_parameters(io::Checkpoint(dir)));
}

TEST(LlamaConfig, Llama2In4xForm) {
  const LlamaConfig c = parse_data("llama-2-7b-hf.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.dtype, "float16");
  EXPECT_EQ(c.parameter_count(), 6738415616);
}

TEST(LlamaConfig, Llama31WithLlama3RopeScaling) {
  const LlamaConfig c = parse_data("llama-3.1-8b-instruct.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.parameter_count(), 8030261248);
}

TEST(LlamaConfig, Llama32In5xForm) {
  const LlamaConfig c = parse_data("llama-3.2-1b-transformers5.json");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.parameter_count(), 1235814400);
}

TEST(LlamaConfig, MistralWindows) {
  const LlamaConfig v3 = parse_data("mistral-7b-v0.3.json");
  EXPECT_EQ(v3.family, ModelFamily::kMistral);
  EXPECT_EQ(v3.model_type, "mistral");
  EXPECT_DOUBLE_EQ(v3.rope_theta, 1e6);
  EXPECT_EQ(v3.attention_windows, std::vector<int64_t>(32, 0));
  EXPECT_EQ(v3.narrowest_window(), 0);
  const LlamaConfig v1 = parse_data("mistral-7b-v0.1.json");
  EXPECT_EQ(v1.attention_windows, std::vector<int64_t>(32, 4096));
  EXPECT_EQ(v1.narrowest_window(), 4096);
  EXPECT_EQ(v1.parameter_count(), 7241732096);
  EXPECT_FALSE(v1.qkv_bias || v1.o_bias || v1.qk_norm || v1.mlp_bias);
}

TEST(LlamaConfig, MistralNemoHeadDim) {
  const LlamaConfig c = parse_data("mistral-nemo-base-2407.json");
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.head_dim, 128) << "32 heads x 128 = 4096, not hidden 5120";
  EXPECT_EQ(c.parameter_count(), 12247782400);
}

TEST(LlamaConfig, MistralWindowDefaultsTo4096WhenAbsent) {
  json config = minimal();
  config["model_type"] = "mistral";
  EXPECT_EQ(parse_json(config).attention_windows, std::vector<int64_t>(4, 4096)) << "MistralConfig's default";
  config["sliding_window"] = nullptr;
  EXPECT_EQ(parse_json(config).attention_windows, std::vector<int64_t>(4, 0));
  config["attention_bias"] = true;  // MistralAttention has no biases whatever the config says
  EXPECT_FALSE(parse_json(config).qkv_bias);
  EXPECT_EQ(parse_json(config).max_position_embeddings, 4096 * 32);
}

TEST(LlamaConfig, Qwen2Checkpoints) {
  const LlamaConfig c = parse_data("qwen2.5-7b-instruct.json");
  EXPECT_EQ(c.family, ModelFamily::kQwen2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.attention_windows, std::vector<int64_t>(28, 0)) << "use_sliding_window is false";
  EXPECT_EQ(c.parameter_count(), 7615616512);
  const LlamaConfig small = parse_data("qwen2.5-0.5b.json");
  EXPECT_TRUE(small.tie_word_embeddings);
  EXPECT_EQ(small.parameter_count(), 494032768);
}

TEST(LlamaConfig, Qwen3Checkpoints) {
  const LlamaConfig c = parse_data("qwen3-8b.json");
  EXPECT_EQ(c.family, ModelFamily::kQwen3);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.o_bias);
  EXPECT_EQ(c.parameter_count(), 8190735360);
  const LlamaConfig small = parse_data("qwen3-0.6b.json");
  EXPECT_EQ(small.head_dim, 128) << "16 heads x 128 = 2048 != hidden 1024";
  EXPECT_EQ(small.parameter_count(), 596049920);
}

TEST(LlamaConfig, Qwen3DefaultsAndBias) {
  json config = minimal();
  config["model_type"] = "qwen3";
  EXPECT_EQ(parse_json(config).head_dim, 128) << "Qwen3Config's default, not hidden / heads";
  EXPECT_EQ(parse_json(config).max_position_embeddings, 32768);
  config["attention_bias"] = true;
  const auto c = parse_json(config);
  EXPECT_TRUE(c.qkv_bias && c.o_bias);
  const int64_t q = 8 * 128, d = 64, f = 128;
  const int64_t layer = d * q * 2 + 2 * d * q + 3 * d * f + 2 * d + (q + 2 * q + d) + 2 * 128;
  EXPECT_EQ(c.parameter_count(), 2 * 1000 * d + 4 * layer + d);
}

TEST(LlamaConfig, QwenSlidingWindowLayers) {
  json config = minimal();
  config["model_type"] = "qwen2";
  config["sliding_window"] = 256;
  config["max_window_layers"] = 2;
  EXPECT_EQ(parse_json(config).attention_windows, std::vector<int64_t>(4, 0)) << "needs use_sliding_window";
  config["use_sliding_window"] = true;
  EXPECT_EQ(parse_json(config).attention_windows, (std::vector<int64_t>{0, 0, 256, 256}));
  config["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  EXPECT_EQ(parse_json(config).attention_windows, (std::vector<int64_t>{256, 0, 256, 0})) << "layer_types win";
  EXPECT_EQ(parse_json(config).narrowest_window(), 256);
  config.erase("sliding_window");
  EXPECT_EQ(parse_json(config).attention_windows, (std::vector<int64_t>{4096, 0, 4096, 0}));
}

TEST(LlamaConfig, RefusedArchitecturesNameTheTypeAndTheSupportedList) {
  for (const auto& [file, type] : std::vector<std::pair<std::string, std::string>>{
           {"gemma-2-9b.json", "gemma2"}, {"phi-3-mini-4k-instruct.json", "phi3"}, {"qwen1.5-moe-a2.7b.json", "qwen2_moe"}}) {
    const auto path = test::test_data_dir() / "config" / file;
    const auto message = error_message([&] { parse_file(path); });
    EXPECT_TRUE(contains(message, path.string() + ": field 'model_type' is '" + type + "': unsupported")) << message;
    EXPECT_TRUE(contains(message, "(supported: llama, mistral, qwen2, qwen3)")) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(LlamaConfig, DefaultsAreTransformers) {
  const LlamaConfig c = parse_json(minimal());
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.qk_norm);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.attention_windows, std::vector<int64_t>(4, 0));
  EXPECT_EQ(c.dtype, "");
  EXPECT_FALSE(c.bos_token_id);
  EXPECT_TRUE(c.eos_token_ids.empty());
  // 2 embeddings + 4 layers of (4·64² attention + 3·64·128 MLP + 2·64 norms) + final norm.
  EXPECT_EQ(c.parameter_count(), 2 * 1000 * 64 + 4 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64);
}

TEST(LlamaConfig, NullsReadAsAbsent) {
  json config = minimal();
  config["num_key_value_heads"] = nullptr;
  config["head_dim"] = nullptr;
  config["rope_scaling"] = nullptr;
  config["bos_token_id"] = nullptr;
  config["eos_token_id"] = nullptr;
  config["hidden_act"] = nullptr;
  const LlamaConfig c = parse_json(config);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FALSE(c.bos_token_id);
}

TEST(LlamaConfig, ExplicitHeadDimAndBiases) {
  json config = minimal();
  config["head_dim"] = 16;  // 8 heads × 16 = 128 != hidden 64, as in some models
  config["num_key_value_heads"] = 2;
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  const LlamaConfig c = parse_json(config);
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
  EXPECT_EQ(c.head_dim, 16);
  const int64_t q = 8 * 16, kv = 2 * 16, d = 64, f = 128;
  const int64_t layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d  // weights
                        + q + 2 * kv + d                                // attention biases
                        + 2 * f + d;                                    // MLP biases
  EXPECT_EQ(c.parameter_count(), 2 * 1000 * d + 4 * layer + d);
}

TEST(LlamaConfig, LegacyLinearRopeScaling) {
  json config = minimal();
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  const LlamaConfig c = parse_json(config);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
}

TEST(LlamaConfig, RopeParametersWinOverLegacyFields) {
  json config = minimal();
  config["rope_theta"] = 1234.0;
  config["rope_parameters"] = {{"rope_theta", 5e5}, {"rope_type", "default"}};
  EXPECT_DOUBLE_EQ(parse_json(config).rope_theta, 5e5);
  config["rope_parameters"].erase("rope_theta");
  EXPECT_DOUBLE_EQ(parse_json(config).rope_theta, 1234.0);
}

TEST(LlamaConfig, PatchesOfPrunedCheckpoints) {
  json config = minimal();
  config["linearpatch"] = {{"format_version", 1},
                           {"source", "meta-llama/Llama-2-7b-hf"},
                           {"patches",
                            {{{"layer", 2}, {"tensor", "model.linear_patches.2.weight"}},
                             {{"layer", 4}, {"tensor", "model.linear_patches.4.weight"}}}}};
  const LlamaConfig c = parse_json(config);
  ASSERT_EQ(c.patches.size(), 2u);
  EXPECT_EQ(c.patches[0].layer, 2);
  EXPECT_EQ(c.patches[0].tensor, "model.linear_patches.2.weight");
  EXPECT_EQ(c.patches[1].layer, 4) << "num_hidden_layers is a valid position: the final norm's input";
  EXPECT_EQ(c.parameter_count(), parse_json(minimal()).parameter_count() + 2 * 64 * 64);
}

struct BadConfig {
  std::string name;
  std::function<void(json&)> edit;
  std::vector<std::string> expected;
};

std::ostream& operator<<(std::ostream& out, const BadConfig& c) { return out << c.name; }

std::vector<BadConfig> bad_configs() {
  return {
      {"missing_hidden_size", [](json& c) { c.erase("hidden_size"); }, {"field 'hidden_size' is missing"}},
      {"missing_model_type", [](json& c) { c.erase("model_type"); }, {"field 'model_type' is missing"}},
      {"unknown_model_type", [](json& c) { c["model_type"] = "gpt2"; }, {"field 'model_type' is 'gpt2'"}},
      {"model_type_not_string", [](json& c) { c["model_type"] = 1; }, {"field 'model_type' must be a string, got 1"}},
      {"mixtral", [](json& c) { c["model_type"] = "mixtral"; }, {"'mixtral': unsupported, mixture-of-experts"}},
      {"qwen3_moe", [](json& c) { c["model_type"] = "qwen3_moe"; }, {"'qwen3_moe': unsupported, mixture-of-experts"}},
      {"gemma", [](json& c) { c["model_type"] = "gemma"; }, {"'gemma': unsupported, Gemma layers"}},
      {"multimodal_wrapper",
       [](json& c) { c["text_config"] = {{"model_type", "llama"}}; },
       {"'llama': unsupported, a multimodal wrapper"}},
      {"mistral_window_zero",
       [](json& c) {
         c["model_type"] = "mistral";
         c["sliding_window"] = 0;
       },
       {"field 'sliding_window' must be positive, got 0"}},
      {"layer_types_short",
       [](json& c) {
         c["model_type"] = "qwen2";
         c["layer_types"] = {"full_attention"};
       },
       {"field 'layer_types' must list one attention type per layer (4)"}},
      {"layer_types_unknown",
       [](json& c) {
         c["model_type"] = "qwen3";
         c["layer_types"] = {"full_attention", "chunked_attention", "full_attention", "full_attention"};
       },
       {"field 'layer_types' holds \"chunked_attention\""}},
      {"odd_head_dim", [](json& c) { c["head_dim"] = 7; }, {"field 'head_dim' is 7: rotary embeddings need an even"}},
      {"gelu", [](json& c) { c["hidden_act"] = "gelu"; }, {"field 'hidden_act' is 'gelu'"}},
      {"pretraining_tp", [](json& c) { c["pretraining_tp"] = 2; }, {"field 'pretraining_tp' is 2"}},
      {"quantized",
       [](json& c) {
         c["quantization_config"] = {{"quant_method", "gptq"}};
       },
       {"field 'quantization_config' is set"}},
      {"yarn",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
       },
       {"field 'rope_scaling.rope_type' is 'yarn': unsupported rope type"}},
      {"dynamic_legacy",
       [](json& c) {
         c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
       },
       {"field 'rope_scaling.type' is 'dynamic'"}},
      {"longrope_5x",
       [](json& c) {
         c["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 1e4}};
       },
       {"field 'rope_parameters.rope_type' is 'longrope'"}},
      {"rope_scaling_not_object",
       [](json& c) { c["rope_scaling"] = "linear"; },
       {"field 'rope_scaling' must be an object"}},
      {"llama3_missing_low_freq",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 8192}};
       },
       {"field 'rope_scaling.low_freq_factor' is missing"}},
      {"llama3_inverted_factors",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 4.0},
                              {"high_freq_factor", 1.0},
                              {"original_max_position_embeddings", 8192}};
       },
       {"field 'rope_scaling.high_freq_factor' must be larger"}},
      {"linear_without_factor",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "linear"}};
       },
       {"field 'rope_scaling.factor' is missing"}},
      {"negative_theta", [](json& c) { c["rope_theta"] = -1.0; }, {"field 'rope_theta' must be a positive number"}},
      {"size_as_string",
       [](json& c) { c["hidden_size"] = "64"; },
       {"field 'hidden_size' must be an integer, got \"64\""}},
      {"size_as_float", [](json& c) { c["hidden_size"] = 64.5; }, {"field 'hidden_size' must be an integer, got 64.5"}},
      {"size_negative",
       [](json& c) { c["num_hidden_layers"] = -3; },
       {"field 'num_hidden_layers' must be positive, got -3"}},
      {"size_zero", [](json& c) { c["vocab_size"] = 0; }, {"field 'vocab_size' must be positive, got 0"}},
      {"size_huge", [](json& c) { c["vocab_size"] = 18446744073709551615ull; }, {"field 'vocab_size' is too large"}},
      {"tie_not_bool",
       [](json& c) { c["tie_word_embeddings"] = "yes"; },
       {"field 'tie_word_embeddings' must be true or false"}},
      {"eps_not_number", [](json& c) { c["rms_norm_eps"] = "1e-5"; }, {"field 'rms_norm_eps' must be a number"}},
      {"eps_zero", [](json& c) { c["rms_norm_eps"] = 0; }, {"field 'rms_norm_eps' must be a positive number"}},
      {"kv_heads_not_dividing",
       [](json& c) { c["num_key_value_heads"] = 3; },
       {"field 'num_key_value_heads' is 3, which does not divide num_attention_heads 8"}},
      {"hidden_not_divisible",
       [](json& c) { c["hidden_size"] = 60; },
       {"field 'hidden_size' is 60, not divisible by num_attention_heads 8"}},
      {"eos_string",
       [](json& c) { c["eos_token_id"] = "2"; },
       {"field 'eos_token_id' must hold non-negative token ids"}},
      {"eos_negative_in_list",
       [](json& c) {
         c["eos_token_id"] = {1, -2};
       },
       {"field 'eos_token_id' must hold non-negative token ids, got -2"}},
      {"bos_float", [](json& c) { c["bos_token_id"] = 1.5; }, {"field 'bos_token_id'"}},
      {"dtype_unknown", [](json& c) { c["torch_dtype"] = "int8"; }, {"field 'torch_dtype' is 'int8'"}},
      {"overflowing_sizes",
       [](json& c) {
         c["vocab_size"] = int64_t{1} << 40;
         c["hidden_size"] = int64_t{1} << 40;
         c["num_attention_heads"] = 1;
       },
       {"more parameters than 64 bits"}},
      {"patch_entry_not_object", [](json& c) { c["linearpatch"] = 1; }, {"field 'linearpatch' must be an object"}},
      {"patch_version",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 2}, {"patches", json::array()}};
       },
       {"field 'linearpatch.format_version' is 2"}},
      {"patch_without_version",
       [](json& c) {
         c["linearpatch"] = {{"patches", json::array()}};
       },
       {"field 'linearpatch.format_version' is missing"}},
      {"patches_not_array",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 1}, {"patches", 3}};
       },
       {"field 'linearpatch.patches' must be an array"}},
      {"patch_not_object",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 1}, {"patches", {7}}};
       },
       {"field 'linearpatch.patches[0]' must be an object"}},
      {"patch_layer_out_of_range",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 1}, {"patches", {{{"layer", 5}, {"tensor", "p"}}}}};
       },
       {"field 'linearpatch.patches[0].layer' must be a layer index in [0, 4]"}},
      {"patch_layer_negative",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 1}, {"patches", {{{"layer", -1}, {"tensor", "p"}}}}};
       },
       {"field 'linearpatch.patches[0].layer'"}},
      {"patch_tensor_empty",
       [](json& c) {
         c["linearpatch"] = {{"format_version", 1}, {"patches", {{{"layer", 1}, {"tensor", ""}}}}};
       },
       {"field 'linearpatch.patches[0].tensor' must name the patch tensor"}},
  };
}

class BadLlamaConfig : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadLlamaConfig, IsAnInputErrorNamingFileAndField) {
  json config = minimal();
  GetParam().edit(config);
  const std::string message = error_message([&] { parse_json(config); });
  EXPECT_TRUE(contains(message, "test/config.json: ")) << message;
  for (const auto& part : GetParam().expected) EXPECT_TRUE(contains(message, part)) << message;
}

INSTANTIATE_TEST_SUITE_P(Cases, BadLlamaConfig, ::testing::ValuesIn(bad_configs()),
                         [](const auto& info) { return info.param.name; });

TEST(LlamaConfig, MalformedTextIsAnInputError) {
  const auto expect = [](const std::string& text, const std::string& part) {
    const auto message = error_message([&] { parse_llama_config(text, "m/config.json"); });
    EXPECT_TRUE(contains(message, "m/config.json: ") && contains(message, part)) << message;
  };
  expect("{\"model_type\": \"llama\",", "invalid JSON");
  expect("", "invalid JSON");
  expect("[1, 2]", "must be a JSON object");
  expect(R"({"hidden_size": 64, "hidden_size": 128})", "duplicate key 'hidden_size'");
  expect(std::string(100000, '[') + std::string(100000, ']'), "nested deeper than 32");
}

}  // namespace
}  // namespace lp
