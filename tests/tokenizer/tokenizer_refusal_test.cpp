// What the tokenizer refuses, and that it says what and where.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "linearpatch/core/error.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"
#include "tokenizer/tiny_tokenizers.h"

namespace {

using nlohmann::json;

::testing::AssertionResult contains(const std::string& message, const std::string& needle) {
  if (message.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << message << "\" does not contain \"" << needle << "\"";
}

// The InputError message for a tokenizer.json, or a failure.
std::string refusal(const std::string& tokenizer_json, const std::string& config_json = "") {
  try {
    lp::tokenizer_from_json(tokenizer_json, config_json, "bad/tokenizer.json");
  } catch (const lp::InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << tokenizer_json.substr(0, 200);
  return "";
}

std::string load_refusal(const std::filesystem::path& dir) {
  try {
    lp::load_tokenizer(dir);
  } catch (const lp::InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted " << dir;
  return "";
}

TEST(TokenizerRefusalTest, InvalidJson) {
  EXPECT_TRUE(contains(refusal("{\"model\": "), "bad/tokenizer.json: invalid JSON"));
  EXPECT_TRUE(contains(refusal(""), "bad/tokenizer.json: invalid JSON"));
  EXPECT_TRUE(contains(refusal("[1, 2]"), "top level: expected an object"));
  EXPECT_TRUE(contains(refusal("{\"model\": {\"type\": \"BPE\"}, \"model\": {}}"), "duplicate JSON key \"model\""));
  EXPECT_TRUE(
      contains(refusal(lp::test::tiny_byte_level().dump(), "{not json"), "tokenizer_config.json): invalid JSON"));
}

TEST(TokenizerRefusalTest, UnsupportedModelType) {
  auto spec = lp::test::tiny_byte_level();
  spec["model"]["type"] = "WordPiece";
  EXPECT_TRUE(contains(refusal(spec.dump()), "model: unsupported model type \"WordPiece\""));
  spec["model"]["type"] = "Unigram";
  EXPECT_TRUE(contains(refusal(spec.dump()), "\"Unigram\""));
  spec.erase("model");
  EXPECT_TRUE(contains(refusal(spec.dump()), "missing \"model\""));
}

TEST(TokenizerRefusalTest, UnsupportedPipelineNodes) {
  auto spec = lp::test::tiny_byte_level();
  spec["pre_tokenizer"]["pretokenizers"][1] = {{"type", "Whitespace"}};
  EXPECT_TRUE(
      contains(refusal(spec.dump()),
               "bad/tokenizer.json: pre_tokenizer.pretokenizers[1]: unsupported pre-tokenizer type \"Whitespace\""));
  spec = lp::test::tiny_byte_level();
  spec["normalizer"] = {{"type", "NFKC"}};
  EXPECT_TRUE(contains(refusal(spec.dump()), "normalizer: unsupported normalizer type \"NFKC\""));
  spec = lp::test::tiny_byte_level();
  spec["decoder"] = {{"type", "WordPiece"}};
  EXPECT_TRUE(contains(refusal(spec.dump()), "decoder: unsupported decoder type \"WordPiece\""));
  spec = lp::test::tiny_byte_level();
  spec["post_processor"] = {{"type", "BertProcessing"}};
  EXPECT_TRUE(contains(refusal(spec.dump()), "post_processor: unsupported post-processor type \"BertProcessing\""));
  spec = lp::test::tiny_byte_level();
  std::swap(spec["pre_tokenizer"]["pretokenizers"][0], spec["pre_tokenizer"]["pretokenizers"][1]);
  EXPECT_TRUE(contains(refusal(spec.dump()), "ByteLevel must come last"));
}

TEST(TokenizerRefusalTest, DeeplyNestedSequences) {
  json normalizer = {{"type", "Prepend"}, {"prepend", "x"}};
  for (int i = 0; i < 100; ++i) normalizer = {{"type", "Sequence"}, {"normalizers", {normalizer}}};
  auto spec = lp::test::tiny_byte_level();
  spec["normalizer"] = normalizer;
  EXPECT_TRUE(contains(refusal(spec.dump()), "nested more than 32 levels deep"));
}

TEST(TokenizerRefusalTest, MalformedModel) {
  auto spec = lp::test::tiny_byte_level();
  spec["model"]["merges"].push_back("q nothere");
  EXPECT_TRUE(contains(refusal(spec.dump()),
                       "model.merges[10]: merge \"q\" + \"nothere\": \"nothere\" is not in the vocabulary"));
  spec = lp::test::tiny_byte_level();
  spec["model"]["merges"][0] = "Ġt";
  EXPECT_TRUE(contains(refusal(spec.dump()), "model.merges[0]: expected \"left right\""));
  spec = lp::test::tiny_byte_level();
  spec["model"]["vocab"]["big"] = 1 << 30;
  EXPECT_TRUE(contains(refusal(spec.dump()), "model.vocab: token \"big\": id must be an integer"));
  spec = lp::test::tiny_byte_level();
  spec["model"]["unk_token"] = "<nope>";
  EXPECT_TRUE(contains(refusal(spec.dump()), "model.unk_token: unknown token \"<nope>\" is not in the vocabulary"));
  spec = lp::test::tiny_byte_level();
  spec["model"]["dropout"] = 0.1;
  EXPECT_TRUE(contains(refusal(spec.dump()), "dropout is not supported"));
  spec = lp::test::tiny_byte_level();
  spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_TRUE(contains(refusal(spec.dump()), "pre_tokenizer.pretokenizers[0].pattern.Regex: invalid regex"));
  spec = lp::test::tiny_byte_level();
  spec["post_processor"]["special_tokens"]["<|bos|>"]["ids"][0] = 5000;
  EXPECT_TRUE(contains(refusal(spec.dump()), "id 5000 is outside the vocabulary"));
  spec = lp::test::tiny_byte_level();
  spec["added_tokens"][0]["id"] = "x";
  EXPECT_TRUE(contains(refusal(spec.dump()), "added_tokens[0].id: expected an integer"));
}

TEST(TokenizerRefusalTest, MissingFiles) {
  lp::test::TempDir dir;
  EXPECT_TRUE(contains(load_refusal(dir.path()), "looked for tokenizer.json and tokenizer.model"));
  EXPECT_TRUE(contains(load_refusal(dir / "absent"), "not a directory"));
  lp::test::write_file(dir / "tokenizer.json", lp::test::tiny_byte_level().dump());
  lp::test::write_file(dir / "tokenizer_config.json", "[]");
  EXPECT_TRUE(contains(load_refusal(dir.path()), "tokenizer_config.json: top level: expected an object"));
}

// Whether or not sentencepiece is available here, a bad tokenizer.model is
// an InputError naming the file.
TEST(TokenizerRefusalTest, BrokenSentencePieceModels) {
  lp::test::TempDir dir;
  const auto path = dir / "tokenizer.model";
  std::mt19937 rng(99);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  std::string truncated = "\x0a\x7f\x0a\x05hello";  // a piece message cut short
  if (!lp::test::shared_dir().empty()) {
    const auto real = lp::test::read_file(lp::test::shared_dir() / "fixtures/models/tiny-llama2-s/tokenizer.model");
    truncated = real.substr(0, real.size() / 2);
  }
  for (const std::string& content : {garbage, truncated, std::string()}) {
    lp::test::write_file(path, content);
    EXPECT_TRUE(contains(load_refusal(dir.path()), path.string()));
  }
}

TEST(TokenizerRefusalTest, HostileTextDoesNotCrash) {
  const auto tokenizer = lp::tokenizer_from_json(lp::test::tiny_byte_fallback().dump(), "", "tiny");
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string text(rng() % 120, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 3 == 0 ? "<s/> \xE2\x96\x81"[rng() % 8] : rng() % 256);
    const auto ids = tokenizer->encode(text, true);
    for (const int32_t id : ids) ASSERT_LT(id, tokenizer->vocab_size());
    tokenizer->decode(ids);
  }
  EXPECT_EQ(tokenizer->decode({-1, 100000, 263}), "i");  // ids without a token are skipped, as in HF
}

}  // namespace
