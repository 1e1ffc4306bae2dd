// Token ids against the reference implementations (HF tokenizers 0.23.2,
// sentencepiece 0.2.2), from ../shared/fixtures/tokenizers/golden.json.
#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
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

// The 9 MB LLaMA-3 file takes a moment to load: once per suite.
class TokenizerGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lp::test::shared_dir().empty()) return;
    llama3_ = lp::load_tokenizer(tokenizers_dir() / "llama3");
    llama2_ = lp::load_tokenizer(tokenizers_dir() / "llama2");
  }
  static void TearDownTestSuite() {
    llama3_.reset();
    llama2_.reset();
  }

  static inline std::unique_ptr<lp::Tokenizer> llama3_;
  static inline std::unique_ptr<lp::Tokenizer> llama2_;
};

TEST_F(TokenizerGoldenTest, Llama3MatchesHfTokenizers) {
  LP_REQUIRE_SHARED();
  expect_golden(*llama3_, "llama3/tokenizer.json");
  EXPECT_EQ(llama3_->vocab_size(), 128256);
  EXPECT_EQ(llama3_->description(), "tokenizer.json (byte-level BPE, 128256 tokens)");
  // Its post-processor is ByteLevel: no BOS is added and none is known.
  EXPECT_FALSE(llama3_->bos_id().has_value());
}

TEST_F(TokenizerGoldenTest, Llama2MatchesHfTokenizers) {
  LP_REQUIRE_SHARED();
  expect_golden(*llama2_, "llama2/tokenizer.json");
  EXPECT_EQ(llama2_->vocab_size(), 32000);
  EXPECT_EQ(llama2_->bos_id(), 1);
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

TEST(TokenizerDemoModelTest, LoadsEncodesAndRoundTrips) {
  LP_REQUIRE_SHARED();
  const auto tokenizer = lp::load_tokenizer(lp::test::shared_dir() / "fixtures" / "models" / "demo-llama3-d");
  EXPECT_EQ(tokenizer->vocab_size(), 4096);
  EXPECT_EQ(tokenizer->bos_id(), 3840);  // the template's <|begin_of_text|>
  EXPECT_EQ(tokenizer->eos_id(), 3841);  // tokenizer_config.json's <|end_of_text|>
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
}

}  // namespace
