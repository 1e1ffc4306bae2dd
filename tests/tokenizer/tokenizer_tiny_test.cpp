// Behaviour on hand-made tokenizer.json files (tiny_tokenizers.h). Expected
// ids were worked out by hand and confirmed with HF tokenizers 0.23.2 on the
// same files.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "linearpatch/core/error.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"
#include "tokenizer/tiny_tokenizers.h"

namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

std::unique_ptr<lp::Tokenizer> make(const json& tokenizer, const std::string& config = "") {
  return lp::tokenizer_from_json(tokenizer.dump(), config, "tiny/tokenizer.json");
}

TEST(TokenizerByteLevelTest, MergesGoByRankNotByPosition) {
  const auto t = make(lp::test::tiny_byte_level());
  EXPECT_EQ(t->encode("the", false), (Ids{116, 257}));   // "h e" outranks "t h"
  EXPECT_EQ(t->encode(" the", false), (Ids{259}));       // Ġ t, h e, Ġt he
  EXPECT_EQ(t->encode("  the", false), (Ids{32, 259}));  // the regex keeps one space apart
}

TEST(TokenizerByteLevelTest, IgnoreMergesEmitsWholeWordsFromTheVocabulary) {
  auto spec = lp::test::tiny_byte_level();
  EXPECT_EQ(make(spec)->encode(" zebra", false), (Ids{266}));
  EXPECT_EQ(make(spec)->encode("hello", false), (Ids{264}));
  spec["model"]["ignore_merges"] = false;
  EXPECT_EQ(make(spec)->encode(" zebra", false), (Ids{32, 122, 101, 98, 114, 97}));
  EXPECT_EQ(make(spec)->encode("hello", false), (Ids{257, 261, 111}));
}

TEST(TokenizerByteLevelTest, MergesAsPairsReadLikeMergesAsStrings) {
  const auto strings = make(lp::test::tiny_byte_level(false));
  const auto pairs = make(lp::test::tiny_byte_level(true));
  for (const char* text : {"the", " the hello", "  a zebra", "hell o"})
    EXPECT_EQ(strings->encode(text, true), pairs->encode(text, true)) << text;
}

TEST(TokenizerByteLevelTest, SpecialTokensInTextAndBos) {
  const auto t = make(lp::test::tiny_byte_level());
  EXPECT_EQ(t->encode("<|bos|>hi<|eot|>", false), (Ids{267, 104, 105, 268}));
  EXPECT_EQ(t->encode("<|bos|>hi<|eot|>", true), (Ids{267, 267, 104, 105, 268}));
  EXPECT_EQ(t->encode("<|bos|><|eot|>", false), (Ids{267, 268}));
  EXPECT_EQ(t->encode("<|bos", false), (Ids{60, 124, 98, 111, 115}));
  EXPECT_EQ(t->encode("", true), (Ids{267}));
  EXPECT_EQ(t->bos_id(), 267);
  EXPECT_FALSE(t->eos_id().has_value());
  EXPECT_EQ(t->vocab_size(), 269);
  EXPECT_EQ(t->decode({267, 104, 105, 268}), "<|bos|>hi<|eot|>");
}

TEST(TokenizerByteLevelTest, Llama3RegexDetails) {
  const auto t = make(lp::test::tiny_byte_level());
  EXPECT_EQ(t->encode("x'\xC5\xBFt", false), (Ids{120, 39, 197, 191, 116}));  // 'ſ folds like 's
  EXPECT_EQ(t->encode("a\xC2\xA0"
                      "b",
                      false),
            (Ids{97, 194, 160, 98}));  // NBSP is \s
  EXPECT_EQ(t->encode("ok!!!\n\n\nyes", false), (Ids{111, 107, 33, 33, 33, 10, 10, 10, 121, 101, 115}));
  EXPECT_EQ(t->encode("Hello World 123456", false),
            (Ids{72, 262, 111, 32, 87, 111, 114, 108, 100, 32, 49, 50, 51, 52, 53, 54}));
}

TEST(TokenizerByteLevelTest, AddedTokenFlags) {
  auto spec = lp::test::tiny_byte_level();
  auto mask = lp::test::added_token(269, "<mask>", false);
  mask["lstrip"] = mask["rstrip"] = true;
  auto word = lp::test::added_token(270, "[W]", false);
  word["single_word"] = true;
  auto normalized = lp::test::added_token(271, "zz", false);
  normalized["normalized"] = true;
  spec["added_tokens"].push_back(mask);
  spec["added_tokens"].push_back(word);
  spec["added_tokens"].push_back(normalized);
  const auto t = make(spec);
  EXPECT_EQ(t->encode("a <mask> b", false), (Ids{97, 269, 98}));
  EXPECT_EQ(t->encode("a  <mask>  b", false), (Ids{97, 269, 98}));
  EXPECT_EQ(t->encode("a<mask>b", false), (Ids{97, 269, 98}));
  EXPECT_EQ(t->encode("x [W] y", false), (Ids{120, 32, 270, 32, 121}));
  EXPECT_EQ(t->encode("[W]", false), (Ids{270}));
  EXPECT_EQ(t->encode("x[W]y", false), (Ids{120, 91, 87, 93, 121}));
  EXPECT_EQ(t->encode("x_[W]", false), (Ids{120, 95, 91, 87, 93}));
  EXPECT_EQ(t->encode("\xC3\xA9[W]", false), (Ids{195, 169, 91, 87, 93}));
  EXPECT_EQ(t->encode("aa zz bb", false), (Ids{97, 97, 32, 271, 32, 98, 98}));
  EXPECT_EQ(t->encode("zzz", false), (Ids{271, 122}));
}

TEST(TokenizerByteLevelTest, Gpt2StylePreTokenizer) {
  auto spec = lp::test::tiny_byte_level();
  spec["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  spec["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", false}};
  const auto t = make(spec);
  EXPECT_EQ(t->encode("the", true), (Ids{259}));
  EXPECT_EQ(t->encode("hello", false), (Ids{32, 257, 261, 111}));
  EXPECT_EQ(t->encode("don't", false), (Ids{32, 100, 111, 110, 39, 116}));
  EXPECT_EQ(t->encode("<|bos|>hi<|eot|>", false), (Ids{267, 32, 104, 105, 268}));
  EXPECT_FALSE(t->bos_id().has_value());
}

struct SplitCase {
  const char* behavior;
  bool invert;
  Ids whitespace;  // Regex "\s+" on "the  hello zebra"
};

TEST(TokenizerByteLevelTest, SplitBehaviors) {
  const SplitCase cases[] = {
      {"Removed", false, {116, 257, 264, 122, 101, 98, 114, 97}},
      {"Removed", true, {260, 32}},
      {"Isolated", false, {116, 257, 260, 264, 32, 122, 101, 98, 114, 97}},
      {"Isolated", true, {116, 257, 260, 264, 32, 122, 101, 98, 114, 97}},
      {"MergedWithPrevious", false, {116, 257, 260, 257, 261, 111, 32, 122, 101, 98, 114, 97}},
      {"MergedWithPrevious", true, {116, 257, 260, 257, 261, 111, 266}},
      {"MergedWithNext", false, {116, 257, 260, 257, 261, 111, 266}},
      {"MergedWithNext", true, {116, 257, 260, 257, 261, 111, 32, 122, 101, 98, 114, 97}},
      {"Contiguous", false, {116, 257, 260, 264, 32, 122, 101, 98, 114, 97}},
      {"Contiguous", true, {116, 257, 260, 264, 32, 122, 101, 98, 114, 97}},
  };
  auto spec = lp::test::tiny_byte_level();
  auto& split = spec["pre_tokenizer"]["pretokenizers"][0];
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.behavior) + (c.invert ? " inverted" : ""));
    split = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", c.behavior}, {"invert", c.invert}};
    EXPECT_EQ(make(spec)->encode("the  hello zebra", false), c.whitespace);
  }
  split = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Contiguous"}, {"invert", false}};
  EXPECT_EQ(make(spec)->encode("a b  c", false), (Ids{97, 32, 98, 260, 99}));
  // Empty matches still cut the text, as Oniguruma's find_iter reports them.
  split = {{"type", "Split"}, {"pattern", {{"Regex", "x*"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_EQ(make(spec)->encode("aaxxbb x", false), (Ids{97, 97, 120, 120, 98, 98, 32, 120}));
  split = {{"type", "Split"}, {"pattern", {{"Regex", "x*"}}}, {"behavior", "Removed"}, {"invert", true}};
  EXPECT_EQ(make(spec)->encode("aaxxbb x", false), (Ids{120, 120, 120}));
}

TEST(TokenizerByteLevelTest, ReplaceNormalizerWithRegex) {
  auto spec = lp::test::tiny_byte_level();
  spec["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}};
  EXPECT_EQ(make(spec)->encode("the  hello zebra", false),
            (Ids{116, 257, 95, 257, 261, 111, 95, 122, 101, 98, 114, 97}));
}

// HF never sees invalid UTF-8 (Python strings are valid); here a byte that is
// not part of a character is its own piece and its own byte token, so
// nothing is lost.
TEST(TokenizerByteLevelTest, InvalidUtf8IsKeptByteForByte) {
  const auto t = make(lp::test::tiny_byte_level());
  EXPECT_EQ(t->encode("a\xFF"
                      "b",
                      false),
            (Ids{97, 255, 98}));
  for (const char* text : {"\xFF", "a\xC3", "\xE2\x82", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xC0\xAF x",
                           "<|bos|>\xFF<|eot", "  \xFE\n\xFE  "})
    EXPECT_EQ(t->decode(t->encode(text, false)), text);
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string text(rng() % 80, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 4 == 0 ? " \n<|'"[rng() % 5] : rng() % 256);
    ASSERT_EQ(t->decode(t->encode(text, false)), text) << "case " << i;
  }
}

TEST(TokenizerByteLevelTest, LongRunsDoNotOverflow) {
  const auto t = make(lp::test::tiny_byte_level());
  for (const std::string& text : {std::string(300000, 'a'), std::string(300000, ' '), std::string(100000, '\n'),
                                  std::string(100000, '1'), std::string(200000, '!')}) {
    const auto ids = t->encode(text, false);
    EXPECT_EQ(t->decode(ids), text);
  }
}

TEST(TokenizerByteLevelTest, ConcurrentEncodesAgree) {
  const auto t = make(lp::test::tiny_byte_level());
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "the hello zebra " + std::to_string(i) + (i % 7 ? " " : "\n");
  const auto expected = t->encode(text, true);
  std::vector<std::thread> threads;
  std::vector<Ids> results(4);
  for (size_t i = 0; i < results.size(); ++i) threads.emplace_back([&, i] { results[i] = t->encode(text, true); });
  for (auto& thread : threads) thread.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
}

TEST(TokenizerByteFallbackTest, NormalizerMergesAndByteFallback) {
  const auto t = make(lp::test::tiny_byte_fallback());
  EXPECT_EQ(t->encode("ab hi", false), (Ids{266, 265, 269}));
  EXPECT_EQ(t->encode("ab hi", true), (Ids{1, 266, 265, 269}));
  EXPECT_EQ(t->encode("ab  hi", false), (Ids{266, 265, 270}));
  EXPECT_EQ(t->encode("b a", false), (Ids{259, 265, 260}));
  EXPECT_EQ(t->encode("\xC3\xA9", false), (Ids{259, 198, 172}));  // <0xC3> <0xA9>
  EXPECT_EQ(t->encode("a\xC3\xA9", false), (Ids{266, 198, 172}));
  EXPECT_EQ(t->encode(" ", false), (Ids{259, 259}));
  EXPECT_EQ(t->encode("", false), (Ids{}));
  EXPECT_EQ(t->encode("", true), (Ids{1}));
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->vocab_size(), 271);
}

TEST(TokenizerByteFallbackTest, SpecialTokensAreCutBeforeTheNormalizer) {
  const auto t = make(lp::test::tiny_byte_fallback());
  EXPECT_EQ(t->encode("<s>ab</s>", false), (Ids{1, 268, 2}));
  EXPECT_EQ(t->encode("<s>", true), (Ids{1, 1}));
}

TEST(TokenizerByteFallbackTest, UnknownCharactersFuseOnlyWhenAsked) {
  auto spec = lp::test::tiny_byte_fallback();
  spec["model"]["byte_fallback"] = false;
  EXPECT_EQ(make(spec)->encode("\xC3\xA9\xC3\xA9", false), (Ids{259, 0}));
  EXPECT_EQ(make(spec)->encode("zebra", false), (Ids{259, 0, 261, 0, 260}));
  spec["model"]["fuse_unk"] = false;
  EXPECT_EQ(make(spec)->encode("\xC3\xA9\xC3\xA9", false), (Ids{259, 0, 0}));
  EXPECT_EQ(make(spec)->encode("zebra", false), (Ids{259, 0, 0, 261, 0, 260}));
}

TEST(TokenizerByteFallbackTest, NormalizedAddedTokenMatchesTheNormalizedText) {
  auto spec = lp::test::tiny_byte_fallback();
  auto hi = lp::test::added_token(269, "hi", false);
  hi["normalized"] = true;
  spec["added_tokens"].push_back(hi);
  const auto t = make(spec);
  EXPECT_EQ(t->encode("x hi", false), (Ids{259, 264, 269}));  // "▁hi" is the pattern
  EXPECT_EQ(t->encode(" hi", false), (Ids{259, 269}));
  EXPECT_EQ(t->encode("hihi", false), (Ids{269, 269}));
}

TEST(TokenizerByteFallbackTest, DecodeRoundTrips) {
  const auto t = make(lp::test::tiny_byte_fallback());
  for (const char* text : {"ab hi", "\xC3\xA9", " leading", "trailing  ", "x\xFFy", "\n\n"})
    EXPECT_EQ(t->decode(t->encode(text, false)), text);
}

TEST(TokenizerByteFallbackTest, ConfigSuppliesWhatThePostProcessorDoesNot) {
  const auto t = make(lp::test::tiny_byte_fallback(), R"({"bos_token": "</s>", "eos_token": {"content": "</s>"}})");
  EXPECT_EQ(t->bos_id(), 1);  // the template's BOS wins
  EXPECT_EQ(t->eos_id(), 2);
}

TEST(TokenizerByteFallbackTest, ModelConfigIdsComeLast) {
  auto spec = lp::test::tiny_byte_level();
  spec["post_processor"] = nullptr;
  lp::test::TempDir dir;
  lp::test::write_file(dir / "tokenizer.json", spec.dump());
  lp::test::write_file(dir / "config.json", R"({"bos_token_id": 267, "eos_token_id": [268, 1]})");
  auto t = lp::load_tokenizer(dir.path());
  EXPECT_EQ(t->bos_id(), 267);
  EXPECT_EQ(t->eos_id(), 268);
  lp::test::write_file(dir / "tokenizer_config.json", R"({"bos_token": "<|eot|>", "eos_token": null})");
  t = lp::load_tokenizer(dir.path());
  EXPECT_EQ(t->bos_id(), 268);
  EXPECT_EQ(t->eos_id(), 268);
}

TEST(TokenizerPrefixTest, IsWhatThePostProcessorPutsInFront) {
  const auto byte_level = make(lp::test::tiny_byte_level());
  EXPECT_EQ(byte_level->prefix_ids(), (Ids{267}));
  EXPECT_EQ(byte_level->prefix_description(), "BOS <|bos|> (id 267)");
  const auto byte_fallback = make(lp::test::tiny_byte_fallback());
  EXPECT_EQ(byte_fallback->prefix_ids(), (Ids{1}));
  EXPECT_EQ(byte_fallback->prefix_description(), "BOS <s> (id 1)");
  for (const char* text : {"", "ab hi", "<s>"}) {
    Ids expected = byte_fallback->prefix_ids();
    for (const int32_t id : byte_fallback->encode(text, false)) expected.push_back(id);
    EXPECT_EQ(byte_fallback->encode(text, true), expected) << text;
  }
}

// Qwen's case: the tokenizer adds nothing, though config.json and
// tokenizer_config.json name a BOS.
TEST(TokenizerPrefixTest, ANamedBosIsNotAPrefix) {
  for (const nlohmann::json& post_processor :
       {nlohmann::json(nullptr), nlohmann::json({{"type", "ByteLevel"}, {"add_prefix_space", false}}),
        nlohmann::json({{"type", "TemplateProcessing"},
                        {"single", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                        {"pair", nlohmann::json::array()},
                        {"special_tokens", nlohmann::json::object()}})}) {
    auto spec = lp::test::tiny_byte_level();
    spec["post_processor"] = post_processor;
    lp::test::TempDir dir;
    lp::test::write_file(dir / "tokenizer.json", spec.dump());
    lp::test::write_file(dir / "config.json", R"({"bos_token_id": 267})");
    lp::test::write_file(dir / "tokenizer_config.json", R"({"bos_token": "<|bos|>", "add_bos_token": true})");
    const auto t = lp::load_tokenizer(dir.path());
    EXPECT_EQ(t->bos_id(), 267) << post_processor.dump();
    EXPECT_EQ(t->prefix_ids(), Ids{}) << post_processor.dump();
    EXPECT_EQ(t->prefix_description(), "none");
    EXPECT_EQ(t->encode("the", true), t->encode("the", false));
  }
}

TEST(TokenizerPrefixTest, TemplatesInASequenceNestAndSuffixesStayOut) {
  auto spec = lp::test::tiny_byte_level();
  nlohmann::json inner = lp::test::bos_template("<|bos|>", 267);
  inner["single"].push_back({{"SpecialToken", {{"id", "<|eot|>"}, {"type_id", 0}}}});
  inner["special_tokens"]["<|eot|>"] = {{"id", "<|eot|>"}, {"ids", {268}}, {"tokens", {"<|eot|>"}}};
  nlohmann::json outer = lp::test::bos_template("<|eot|>", 268);
  spec["post_processor"] = {{"type", "Sequence"},
                            {"processors", {{{"type", "ByteLevel"}, {"add_prefix_space", false}}, inner, outer}}};
  const auto t = make(spec);
  EXPECT_EQ(t->encode("hi", true), (Ids{268, 267, 104, 105, 268}));
  EXPECT_EQ(t->prefix_ids(), (Ids{268, 267}));
  EXPECT_EQ(t->bos_id(), 268);  // the first id the post-processor adds
  EXPECT_EQ(t->prefix_description(), "BOS <|eot|> (id 268), <|bos|> (id 267)");
}

TEST(TokenizerNfcTest, NormalizesBeforeSplittingAndMatchesAddedTokensAfter) {
  auto spec = lp::test::tiny_byte_level();
  spec["normalizer"] = {{"type", "NFC"}};
  auto cafe = lp::test::added_token(269, "caf\u00E9", false);
  cafe["normalized"] = true;
  spec["added_tokens"].push_back(cafe);
  const auto t = make(spec);
  EXPECT_EQ(t->encode("e\u0301", false), (Ids{195, 169}));  // U+00E9's two bytes
  EXPECT_EQ(t->encode("cafe\u0301", false), (Ids{269}));    // the added token's text is normalized too
  EXPECT_EQ(t->encode("\u212B", false), t->encode("\u00C5", false));
  EXPECT_EQ(t->decode(t->encode("A\u030A <|eot|>\xFF", false)), "\u00C5 <|eot|>\xFF");
}

struct MetaspaceCase {
  const char* scheme;
  bool split;
  Ids ab_hi;   // "ab hi"
  Ids b_a;     // "b a"
  Ids eos_ab;  // "</s>ab"
  Ids ab__hi;  // "ab  hi"
};

TEST(TokenizerMetaspaceTest, PrependSchemesAndSplit) {
  const MetaspaceCase cases[] = {
      {"first", true, {268, 270}, {259, 261, 266}, {2, 267}, {268, 259, 270}},
      {"first", false, {266, 265, 269}, {259, 265, 260}, {2, 267}, {266, 265, 270}},
      {"always", true, {268, 270}, {259, 261, 266}, {2, 268}, {268, 259, 270}},
      {"always", false, {266, 265, 269}, {259, 265, 260}, {2, 268}, {266, 265, 270}},
      {"never", true, {267, 270}, {261, 266}, {2, 267}, {267, 259, 270}},
      {"never", false, {260, 265, 269}, {265, 260}, {2, 267}, {260, 265, 270}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.scheme) + (c.split ? " split" : " no split"));
    const auto t = make(lp::test::tiny_metaspace(c.scheme, c.split));
    EXPECT_EQ(t->encode("ab hi", false), c.ab_hi);
    EXPECT_EQ(t->encode("b a", false), c.b_a);
    EXPECT_EQ(t->encode("</s>ab", false), c.eos_ab);
    EXPECT_EQ(t->encode("ab  hi", false), c.ab__hi);
    EXPECT_EQ(t->encode(" ", false), (Ids{259}));
    EXPECT_EQ(t->decode(t->encode("ab hi", false)), "ab hi");
  }
}

}  // namespace
