#include "linearpatch/config/config_rewrite.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/expect_error.h"
#include "linearpatch/config/llama_config.h"
#include "support/test_env.h"

namespace lp {
namespace {

using nlohmann::ordered_json;
using test::contains;
using test::error_message;

// Keys deliberately out of alphabetical order, a per-layer array, a token id
// list as long as the layer count, and floats whose text must survive.
const char* const kOriginal = R"({
  "model_type": "llama",
  "architectures": ["LlamaForCausalLM"],
  "num_hidden_layers": 3,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_attention_heads": 8,
  "vocab_size": 1000,
  "layer_types": ["full_attention", "sliding_attention", "full_attention_2"],
  "eos_token_id": [7, 8, 9],
  "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0,
  "rope_scaling": null,
  "name": "caf\u00e9 ☕"
})";

const std::string kEntry =
    R"({"format_version": 1, "patches": [{"layer": 1, "tensor": "model.linear_patches.1.weight"}], "source": "x"})";

TEST(RewriteConfig, ChangesOnlyLayersAndTheEntry) {
  const std::string text = rewrite_config_for_pruning(kOriginal, {0, 2}, kEntry, "orig/config.json");
  const auto before = ordered_json::parse(kOriginal);
  const auto after = ordered_json::parse(text);

  EXPECT_EQ(after["num_hidden_layers"], 2);
  EXPECT_EQ(after["layer_types"], ordered_json::parse(R"(["full_attention", "full_attention_2"])"));
  EXPECT_EQ(after["linearpatch"], ordered_json::parse(kEntry));
  for (const auto& [key, value] : before.items()) {
    if (key == "num_hidden_layers" || key == "layer_types") continue;
    EXPECT_EQ(after.at(key), value) << key;
  }
  EXPECT_EQ(after.size(), before.size() + 1);

  // Original key order, the new entry last; 2-space indent; floats as written.
  std::vector<std::string> keys;
  for (const auto& item : after.items()) keys.push_back(item.key());
  std::vector<std::string> expected_keys;
  for (const auto& item : before.items()) expected_keys.push_back(item.key());
  expected_keys.push_back("linearpatch");
  EXPECT_EQ(keys, expected_keys);
  EXPECT_EQ(text.rfind("{\n  \"model_type\": \"llama\",\n", 0), 0u) << text;
  EXPECT_TRUE(contains(text, "\"rms_norm_eps\": 1e-05")) << text;
  EXPECT_TRUE(contains(text, "\"rope_theta\": 500000.0")) << text;
  EXPECT_TRUE(contains(text, "caf\xc3\xa9 \xe2\x98\x95")) << "UTF-8 kept as is";
  EXPECT_EQ(text.back(), '\n');
}

TEST(RewriteConfig, ReplacesAnExistingEntryInPlaceAndRemovesItWhenEmpty) {
  const std::string pruned = rewrite_config_for_pruning(kOriginal, {0, 1, 2}, kEntry, "a");
  const std::string replaced =
      rewrite_config_for_pruning(pruned, {0, 2}, R"({"format_version": 1, "patches": []})", "b");
  EXPECT_EQ(ordered_json::parse(replaced)["linearpatch"]["patches"].size(), 0u);
  EXPECT_EQ(ordered_json::parse(replaced).back(), ordered_json::parse(R"({"format_version": 1, "patches": []})"));

  const auto removed = ordered_json::parse(rewrite_config_for_pruning(pruned, {1}, "", "c"));
  EXPECT_FALSE(removed.contains("linearpatch"));
  EXPECT_EQ(removed["num_hidden_layers"], 1);
  EXPECT_EQ(removed["layer_types"], ordered_json::parse(R"(["sliding_attention"])"));
}

TEST(RewriteConfig, ResultParsesAsAPrunedConfig) {
  LP_REQUIRE_SHARED();
  const auto path = test::shared_dir() / "fixtures/models/tiny-llama2-s/config.json";
  std::vector<int64_t> kept;
  for (int64_t layer = 0; layer < 16; ++layer) {
    if (layer < 9 || layer >= 13) kept.push_back(layer);
  }
  const std::string entry =
      R"({"format_version": 1, "patches": [{"layer": 9, "tensor": "model.linear_patches.9.weight"}]})";
  const std::string text = rewrite_config_for_pruning(test::read_file(path), kept, entry, path.string());
  const LlamaConfig pruned = parse_llama_config(text, "pruned");
  const LlamaConfig original = parse_llama_config(test::read_file(path), path.string());
  EXPECT_EQ(pruned.num_hidden_layers, 12);
  ASSERT_EQ(pruned.patches.size(), 1u);
  EXPECT_EQ(pruned.patches[0].layer, 9);
  EXPECT_EQ(pruned.hidden_size, original.hidden_size);
  EXPECT_DOUBLE_EQ(pruned.rope_theta, original.rope_theta);
  // transformers writes sorted keys; keeping that order keeps the diff small.
  EXPECT_EQ(text.find("\"architectures\""), 4u);
}

// Pruning must keep each kept layer's attention type whichever way the
// config states it, and leave a config that parses to the same windows.
TEST(RewriteConfig, QwenWindowLayersKeepTheirTypes) {
  ordered_json qwen = {{"model_type", "qwen2"},        {"vocab_size", 100},         {"hidden_size", 16},
                       {"intermediate_size", 32},      {"num_hidden_layers", 6},    {"num_attention_heads", 2},
                       {"use_sliding_window", true},   {"sliding_window", 64},      {"max_window_layers", 3}};
  const std::vector<int64_t> kept{0, 2, 3, 5};
  const auto by_index = parse_llama_config(rewrite_config_for_pruning(qwen.dump(), kept, "", "q"), "q");
  EXPECT_EQ(by_index.attention_windows, (std::vector<int64_t>{0, 0, 64, 64}));
  EXPECT_EQ(ordered_json::parse(rewrite_config_for_pruning(qwen.dump(), kept, "", "q"))["max_window_layers"], 2);

  qwen["layer_types"] = {"full_attention",    "sliding_attention", "full_attention",
                         "sliding_attention", "full_attention",    "sliding_attention"};
  const auto by_type = parse_llama_config(rewrite_config_for_pruning(qwen.dump(), kept, "", "q"), "q");
  EXPECT_EQ(by_type.attention_windows, (std::vector<int64_t>{0, 0, 64, 64}));
}

TEST(RewriteConfig, MaxWindowLayersBeyondTheModelShrinksToTheKeptCount) {
  // Qwen2.5 checkpoints say 28 or more; vLLM checks it against the layer count.
  ordered_json qwen = {{"model_type", "qwen2"}, {"num_hidden_layers", 12}, {"max_window_layers", 28}};
  const auto pruned = ordered_json::parse(rewrite_config_for_pruning(qwen.dump(), {0, 1, 2, 3, 8, 9, 10, 11}, "", "q"));
  EXPECT_EQ(pruned["max_window_layers"], 8);
}

TEST(RewriteConfig, RefusesBadInputs) {
  auto message = error_message([] { rewrite_config_for_pruning("{\"a\": 1}", {0}, "", "x/config.json"); });
  EXPECT_TRUE(contains(message, "x/config.json: field 'num_hidden_layers' must be a positive integer")) << message;
  message = error_message([] { rewrite_config_for_pruning("[]", {0}, "", "x/config.json"); });
  EXPECT_TRUE(contains(message, "x/config.json: must be a JSON object")) << message;
  message = error_message([] { rewrite_config_for_pruning("{", {0}, "", "x/config.json"); });
  EXPECT_TRUE(contains(message, "x/config.json: invalid JSON")) << message;

  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {}, "", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {2, 1}, "", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {0, 0}, "", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {0, 3}, "", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {-1}, "", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {0}, "[1]", "x"), Error);
  EXPECT_THROW(rewrite_config_for_pruning(kOriginal, {0}, "{", "x"), Error);
}

}  // namespace
}  // namespace lp
