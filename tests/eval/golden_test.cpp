// Golden check against the independent PyTorch + transformers reference
// (../shared/fixtures/reference, protocol in ../shared/README.md): dense
// perplexity of every fixture family (LLaMA-3, LLaMA-2, Mistral, Qwen2,
// Qwen3) on one text, 64 windows of 512 tokens, the stream starting with
// whatever the model's tokenizer puts in front (BOS, or nothing for Qwen).
// Tolerance 0.1 %: the reference ran in float32 too, so only summation order
// differs (measured difference: under 0.001 %). The full protocol for every
// text and block size is scripts/check_reference.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {

class GoldenPerplexity : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPerplexity, DenseMatchesTheReference) {
  LP_REQUIRE_SHARED();
  const auto fixtures = test::shared_dir() / "fixtures";
  const auto model_dir = fixtures / "models" / GetParam();
  const auto reference = nlohmann::json::parse(test::read_file(fixtures / "reference" / (GetParam() + ".json")));
  const auto spm_reason = sentencepiece_unavailable_reason();
  if (!std::filesystem::exists(model_dir / "tokenizer.json") && spm_reason) GTEST_SKIP() << *spm_reason;
  const auto model = LlamaModel::load(model_dir);
  const auto tokenizer = load_tokenizer(model_dir);
  if (reference.contains("special_prefix")) {  // the later references record it
    EXPECT_EQ(tokenizer->prefix_ids(), reference["special_prefix"].get<std::vector<int32_t>>());
  }
  const auto windows = sequential_windows(tokenize_corpus(*tokenizer, {fixtures / "text" / "brown.visible.txt"}), 512, 64);
  const auto result = perplexity(model, windows, 8);
  const double expected = reference["dense"]["brown.visible"];
  EXPECT_EQ(result.tokens, 64 * 511);
  EXPECT_NEAR(result.ppl, expected, expected * 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenPerplexity,
                         ::testing::Values("demo-llama3-d", "tiny-llama2-s", "mistral-m", "qwen2-q", "qwen3-q"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace lp
