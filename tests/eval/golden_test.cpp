// Golden check against the independent PyTorch + transformers reference
// (../shared/fixtures/reference, protocol in ../shared/README.md): dense
// perplexity of the demo model, 64 windows of 512 tokens, one BOS in front.
// Tolerance 0.1 %: the reference ran in float32 too, so only summation order
// differs (measured difference: under 0.001 %). The full protocol for both
// fixture models and every block size is scripts/check_reference.py.
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

TEST(Golden, DemoDensePerplexityMatchesTheReference) {
  LP_REQUIRE_SHARED();
  const auto fixtures = test::shared_dir() / "fixtures";
  const auto model_dir = fixtures / "models" / "demo-llama3-d";
  const auto reference = nlohmann::json::parse(test::read_file(fixtures / "reference" / "demo-llama3-d.json"));
  const auto model = LlamaModel::load(model_dir);
  const auto tokenizer = load_tokenizer(model_dir);
  const auto windows = sequential_windows(tokenize_corpus(*tokenizer, {fixtures / "text" / "brown.visible.txt"}), 512, 64);
  const auto result = perplexity(model, windows, 8);
  const double expected = reference["dense"]["brown.visible"];
  EXPECT_EQ(result.tokens, 64 * 511);
  EXPECT_NEAR(result.ppl, expected, expected * 1e-3);
}

}  // namespace
}  // namespace lp
