// Token ids against the reference implementations (HF tokenizers 0.23.2,
// sentencepiece 0.2.2), from ../shared/fixtures/tokenizers/golden.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "linearpatch/core/error.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace {

namespace fs = std::filesystem;

fs::path tokenizers_dir() { return lp::test::shared_dir() / "fixtures" / "tokenizers"; }

const nlohmann::json& golden_cases(const std::string& key) {
  static const nlohmann::json golden = nlohmann::json::parse(lp::test::read_file(tokenizers_dir() / "golden.json"));
  return golden.at("cases").at(key);
}

std::string show(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << ids[i];
  out << "]";
  return out.str();
}

// Every case must match; each mismatch is reported with its text and both
// id lists.
void expect_golden(const lp::Tokenizer& tokenizer, const std::string& key) {
  const nlohmann::json& cases = golden_cases(key);
  size_t matched = 0;
  for (const auto& c : cases) {
    const auto text = c.at("text").get<std::string>();
    bool ok = true;
    for (const bool add_special : {false, true}) {
      const char* field = add_special ? "ids_with_special" : "ids";
      if (!c.contains(field)) continue;
      const auto expected = c.at(field).get<std::vector<int32_t>>();
      const auto actual = tokenizer.encode(text, add_special);
      if (actual == expected) continue;
      ok = false;
      ADD_FAILURE() << key << " " << field << " for text " << nlohmann::json(text).dump() << "\n  expected "
                    << show(expected) << "\n  actual   " << show(actual);
    }
    matched += ok;
  }
  std::cout << "[ golden   ] " << key << ": " << matched << "/" << cases.size() << " cases match\n";
  EXPECT_EQ(matched, cases.size());
  EXPECT_GT(cases.size(), 200u);
}

// encode(text, true) is prefix_ids() + encode(text, false) + a suffix, and
// the prefix is what the golden ids_with_special start with.
void expect_prefix(const lp::Tokenizer& tokenizer, const std::string& key, const std::vector<int32_t>& prefix) {
  EXPECT_EQ(tokenizer.prefix_ids(), prefix);
  for (const auto& c : golden_cases(key)) {
    const auto text = c.at("text").get<std::string>();
    const auto with = tokenizer.encode(text, true);
    const auto without = tokenizer.encode(text, false);
    ASSERT_GE(with.size(), prefix.size() + without.size()) << text;
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), with.begin())) << text;
    EXPECT_TRUE(std::equal(without.begin(), without.end(), with.begin() + static_cast<std::ptrdiff_t>(prefix.size())))
        << text;
  }
}

// The 9 MB LLaMA-3 and 11 MB Qwen3 files take a moment to load: once per suite.
class TokenizerGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lp::test::shared_dir().empty()) return;
    llama3_ = lp::load_tokenizer(tokenizers_dir() / "llama3");
    llama2_ = lp::load_tokenizer(tokenizers_dir() / "llama2");
    qwen3_ = lp::load_tokenizer(tokenizers_dir() / "qwen3");
  }
  static void TearDownTestSuite() {
    llama3_.reset();
    llama2_.reset();
    qwen3_.reset();
  }

  static inline std::unique_ptr<lp::Tokenizer> llama3_;
  static inline std::unique_ptr<lp::Tokenizer> llama2_;
  static inline std::unique_ptr<lp::Tokenizer> qwen3_;
};

TEST_F(TokenizerGoldenTest, Llama3MatchesHfTokenizers) {
  LP_REQUIRE_SHARED();
  expect_golden(*llama3_, "llama3/tokenizer.json");
  EXPECT_EQ(llama3_->vocab_size(), 128256);
  EXPECT_EQ(llama3_->description(), "tokenizer.json (byte-level BPE, 128256 tokens)");
  // Its post-processor is ByteLevel: no BOS is added and none is known.
  EXPECT_FALSE(llama3_->bos_id().has_value());
  expect_prefix(*llama3_, "llama3/tokenizer.json", {});
  EXPECT_EQ(llama3_->prefix_description(), "none");
}

TEST_F(TokenizerGoldenTest, Llama2MatchesHfTokenizers) {
  LP_REQUIRE_SHARED();
  expect_golden(*llama2_, "llama2/tokenizer.json");
  EXPECT_EQ(llama2_->vocab_size(), 32000);
  EXPECT_EQ(llama2_->bos_id(), 1);
  expect_prefix(*llama2_, "llama2/tokenizer.json", {1});
  EXPECT_EQ(llama2_->prefix_description(), "BOS <s> (id 1)");
}

TEST_F(TokenizerGoldenTest, Qwen3MatchesHfTokenizers) {
  LP_REQUIRE_SHARED();
  expect_golden(*qwen3_, "qwen3/tokenizer.json");
  EXPECT_EQ(qwen3_->vocab_size(), 151669);
  EXPECT_EQ(qwen3_->description(), "tokenizer.json (byte-level BPE, 151669 tokens)");
  // Its post-processor is ByteLevel and tokenizer_config.json says
  // "bos_token": null: no BOS, added or known.
  EXPECT_FALSE(qwen3_->bos_id().has_value());
  EXPECT_EQ(qwen3_->eos_id(), 151645);  // tokenizer_config.json's <|im_end|>
  expect_prefix(*qwen3_, "qwen3/tokenizer.json", {});
  EXPECT_EQ(qwen3_->prefix_description(), "none");
}

TEST_F(TokenizerGoldenTest, Qwen3NormalizesToNfcAndDecodes) {
  LP_REQUIRE_SHARED();
  for (const auto& c : golden_cases("qwen3/tokenizer.json")) {
    const auto text = c.at("text").get<std::string>();
    EXPECT_EQ(qwen3_->decode(qwen3_->encode(text, false)), text);  // the golden texts are NFC already
  }
  // Decomposed and precomposed spellings give the same ids; U+212B ANGSTROM
  // SIGN becomes U+00C5.
  EXPECT_EQ(qwen3_->encode("cafe\u0301 \u212Bngstr\u00F6m", false),
            qwen3_->encode("caf\u00E9 \u00C5ngstr\u00F6m", false));
  EXPECT_EQ(qwen3_->decode(qwen3_->encode("\u1100\u1161\u11A8", false)), "\uAC01");
}

// Text that is not NFC (the golden texts all are). Ids from an independent
// implementation, @huggingface/transformers (JS) 4.3.2, on the same file.
TEST_F(TokenizerGoldenTest, Qwen3MatchesTransformersJsOnTextThatIsNotNfc) {
  LP_REQUIRE_SHARED();
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases = {
      {"cafe\u0301 au lait", {924, 58858, 7906, 1187, 275}},
      {"\u212Bngstr\u00F6m", {144044, 968, 495, 85584}},
      {"\u1100\u1161\u11A8 \u1112\u1161\u11AB\u1100\u1173\u11AF", {126317, 61298, 83291}},
      {"q\u0307\u0323 d\u0323\u0307 e\u0302\u0323", {80, 136, 96, 136, 229, 86089, 116, 235, 136, 229, 220, 25232}},
      {"\u0344\u0340\u0341", {136, 230, 53839, 96549, 53839}},
      {"Vie\u0302\u0323t Nam 2024", {35544, 124382, 29974, 220, 17, 15, 17, 19}},
      {"A\u030A\u0301 12345 67", {148947, 220, 16, 17, 18, 19, 20, 220, 21, 22}},
      {"x\u0301<|endoftext|>\u0301y", {87, 53839, 151643, 53839, 88}},
      {"\u03A9\u2126\u03C9\u0301", {144572, 144572, 145240}},
      {"\u3046\u3099\u304B\u3099 \u30CF\u309A", {148455, 28195, 20711, 239}},
  };
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(qwen3_->encode(text, false), ids) << nlohmann::json(text).dump();
    EXPECT_EQ(qwen3_->encode(text, true), ids) << nlohmann::json(text).dump();
  }
}

TEST_F(TokenizerGoldenTest, Llama3DecodeRoundTrips) {
  LP_REQUIRE_SHARED();
  for (const auto& c : golden_cases("llama3/tokenizer.json")) {
    const auto text = c.at("text").get<std::string>();
    EXPECT_EQ(llama3_->decode(llama3_->encode(text, false)), text);
  }
}

TEST_F(TokenizerGoldenTest, Llama2DecodeRoundTripsTextWithoutSpecialTokens) {
  LP_REQUIRE_SHARED();
  EXPECT_EQ(llama2_->decode(llama2_->encode("  Hello\tworld, 你好 😀\n", false)), "  Hello\tworld, 你好 😀\n");
  EXPECT_EQ(llama2_->decode(llama2_->encode("x\xff\xfe", false)), "x\xff\xfe");
}

// The fixture models' Qwen-style tokenizer (qwen2-q and qwen3-q share it):
// NFC, Qwen's split regex, a TemplateProcessing that adds nothing, and a
// config.json that names bos_token_id 8176 all the same.
class TokenizerQwenFixtureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerQwenFixtureTest, MatchesHfTokenizersAndAddsNoBos) {
  LP_REQUIRE_SHARED();
  const auto tokenizer = lp::load_tokenizer(lp::test::shared_dir() / "fixtures" / "models" / GetParam());
  expect_golden(*tokenizer, "../models/qwen2-q/tokenizer.json");
  EXPECT_EQ(tokenizer->vocab_size(), 8192);
  EXPECT_EQ(tokenizer->bos_id(), 8176);  // config.json's id, which the tokenizer never adds
  expect_prefix(*tokenizer, "../models/qwen2-q/tokenizer.json", {});
  EXPECT_EQ(tokenizer->prefix_description(), "none");
  EXPECT_EQ(tokenizer->encode("Hello", true), tokenizer->encode("Hello", false));
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerQwenFixtureTest, ::testing::Values("qwen2-q", "qwen3-q"));

TEST(TokenizerDemoModelTest, LoadsEncodesAndRoundTrips) {
  LP_REQUIRE_SHARED();
  const auto tokenizer = lp::load_tokenizer(lp::test::shared_dir() / "fixtures" / "models" / "demo-llama3-d");
  EXPECT_EQ(tokenizer->vocab_size(), 4096);
  EXPECT_EQ(tokenizer->bos_id(), 3840);  // the template's <|begin_of_text|>
  EXPECT_EQ(tokenizer->eos_id(), 3841);  // tokenizer_config.json's <|end_of_text|>
  EXPECT_EQ(tokenizer->prefix_ids(), std::vector<int32_t>{3840});
  EXPECT_EQ(tokenizer->prefix_description(), "BOS <|begin_of_text|> (id 3840)");
  for (const auto& c : golden_cases("llama3/tokenizer.json")) {
    const auto text = c.at("text").get<std::string>();
    const auto ids = tokenizer->encode(text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 3840);
    for (const int32_t id : ids) EXPECT_LT(id, 4096);
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false)), text);
  }
}

class TokenizerSentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LP_REQUIRE_SHARED();
    if (auto reason = lp::sentencepiece_unavailable_reason()) GTEST_SKIP() << *reason;
  }
  static fs::path model_dir() { return lp::test::shared_dir() / "fixtures" / "models" / "tiny-llama2-s"; }
};

TEST_F(TokenizerSentencePieceTest, MatchesSentencePiece) {
  const auto tokenizer = lp::load_tokenizer(model_dir());
  expect_golden(*tokenizer, "../models/tiny-llama2-s/tokenizer.model");
  EXPECT_EQ(tokenizer->vocab_size(), 8000);
  EXPECT_EQ(tokenizer->description(), "tokenizer.model (sentencepiece, 8000 tokens)");
  expect_prefix(*tokenizer, "../models/tiny-llama2-s/tokenizer.model", {1});
  EXPECT_EQ(tokenizer->prefix_description(), "BOS <s> (id 1)");
}

TEST_F(TokenizerSentencePieceTest, MistralFixtureAddsBos) {
  const auto tokenizer = lp::load_tokenizer(lp::test::shared_dir() / "fixtures" / "models" / "mistral-m");
  EXPECT_EQ(tokenizer->prefix_ids(), std::vector<int32_t>{1});
  EXPECT_EQ(tokenizer->encode("Hello world", true), (std::vector<int32_t>{1, 795, 310, 7911, 1457}));
}

TEST_F(TokenizerSentencePieceTest, AddBosTokenFalseLeavesNoPrefix) {
  lp::test::TempDir dir;
  lp::test::write_file(dir / "tokenizer.model", lp::test::read_file(model_dir() / "tokenizer.model"));
  lp::test::write_file(dir / "tokenizer_config.json", R"({"add_bos_token": false})");
  lp::test::write_file(dir / "config.json", R"({"bos_token_id": 1})");
  const auto tokenizer = lp::load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_TRUE(tokenizer->prefix_ids().empty());
  EXPECT_EQ(tokenizer->prefix_description(), "none");
  EXPECT_EQ(tokenizer->encode("Hello world", true), tokenizer->encode("Hello world", false));
}

TEST_F(TokenizerSentencePieceTest, AddsBosAndDecodes) {
  const auto tokenizer = lp::load_tokenizer(model_dir());
  ASSERT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  const auto ids = tokenizer->encode("Hello world", true);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 795, 310, 7911, 1457}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("Hello world", false)), "Hello world");
  EXPECT_THROW(tokenizer->decode({8000}), lp::Error);
}

TEST_F(TokenizerSentencePieceTest, ConfigOverridesSpecialTokensByContent) {
  lp::test::TempDir dir;
  lp::test::write_file(dir / "tokenizer.model", lp::test::read_file(model_dir() / "tokenizer.model"));
  lp::test::write_file(dir / "tokenizer_config.json",
                       R"({"bos_token": {"content": "</s>"}, "eos_token": "<s>", "add_eos_token": true})");
  const auto tokenizer = lp::load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->bos_id(), 2);
  EXPECT_EQ(tokenizer->eos_id(), 1);
  const auto ids = tokenizer->encode("Hello world", true);
  EXPECT_EQ(ids.front(), 2);
  EXPECT_EQ(ids.back(), 1);
  EXPECT_EQ(tokenizer->prefix_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(tokenizer->prefix_description(), "BOS </s> (id 2)");
}

}  // namespace
