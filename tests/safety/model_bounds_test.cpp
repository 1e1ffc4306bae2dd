// Inputs the model cannot honour are refused with a message instead of an
// opaque libtorch index error or silently extrapolated positions.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ModelBounds, TokenIdsOutsideTheVocabularyAreAnInputError) {
  const auto config = test::tiny_config();
  const LlamaModel model(config, test::random_weights(config, 1));
  const int64_t V = config.vocab_size;
  EXPECT_NO_THROW(model.forward(at::tensor({int64_t{0}, V - 1}, at::kLong).view({1, 2})));
  for (const int64_t bad : {V, V + 1000, int64_t{-1}}) {
    try {
      model.forward(at::tensor({int64_t{1}, bad, int64_t{2}}, at::kLong).view({1, 3}));
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const InputError& e) {
      EXPECT_TRUE(contains(e.what(), "token id " + std::to_string(bad))) << e.what();
      EXPECT_TRUE(contains(e.what(), "vocabulary of " + std::to_string(V))) << e.what();
    }
  }
}

TEST(ModelBounds, WindowsLongerThanTheTrainedPositionsAreAUsageError) {
  auto config = test::tiny_config();
  config.max_position_embeddings = 128;
  EXPECT_NO_THROW(require_window_fits(128, config, "tiny"));
  try {
    require_window_fits(129, config, "tiny");
    ADD_FAILURE() << "129 > 128 positions accepted";
  } catch (const UsageError& e) {
    EXPECT_TRUE(contains(e.what(), "windows of 129 tokens are longer than the 128 positions tiny supports")) << e.what();
  }
}

}  // namespace
}  // namespace lp
