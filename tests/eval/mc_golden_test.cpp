// Golden check of multiple-choice scoring against ../shared/fixtures/mc,
// computed by an independent transformers implementation of the
// lm-evaluation-harness v0.4 rules (float32, one row at a time, no
// padding): every choice's log-likelihood within 5e-3, acc and acc_norm
// identical, for every fixture model and task.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "linearpatch/eval/multiple_choice.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {

constexpr double kLlTolerance = 5e-3;

class MultipleChoiceGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MultipleChoiceGolden, MatchesTheLmEvalReference) {
  LP_REQUIRE_SHARED();
  const auto fixtures = test::shared_dir() / "fixtures";
  const auto model_dir = fixtures / "models" / GetParam();
  const auto reference = nlohmann::json::parse(test::read_file(fixtures / "mc" / (GetParam() + ".json")));
  const auto model = LlamaModel::load(model_dir);
  const auto tokenizer = load_tokenizer(model_dir);
  ASSERT_FALSE(reference["tasks"].empty());
  for (const auto& [name, expected] : reference["tasks"].items()) {
    SCOPED_TRACE(name);
    auto task = load_task({name, fixtures / "mc" / "tasks" / (name + ".jsonl")});
    const auto result =
        score_task(model, encode_task(*tokenizer, std::move(task), model.config().max_position_embeddings), 4096);
    const auto& rows = expected["scores"];
    ASSERT_EQ(result.rows.size(), rows.size());
    double max_diff = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& got = result.rows[i];
      EXPECT_EQ(got.gold, rows[i]["gold"].get<int64_t>()) << "row " << i;
      ASSERT_EQ(got.lls.size(), rows[i]["lls"].size()) << "row " << i;
      for (size_t c = 0; c < got.lls.size(); ++c) {
        max_diff = std::max(max_diff, std::abs(got.lls[c] - rows[i]["lls"][c].get<double>()));
        EXPECT_EQ(got.greedy[c], rows[i]["greedy"][c].get<bool>()) << "row " << i << " choice " << c;
      }
    }
    EXPECT_LE(max_diff, kLlTolerance);
    EXPECT_DOUBLE_EQ(result.metrics.acc, expected["acc"].get<double>());
    EXPECT_EQ(result.metrics.acc_norm.has_value(), expected.contains("acc_norm"));
    if (expected.contains("acc_norm") && result.metrics.acc_norm) {
      EXPECT_DOUBLE_EQ(*result.metrics.acc_norm, expected["acc_norm"].get<double>());
    }
    std::printf("[ golden   ] %s %s: max |ll diff| %.2e, acc %.4f, acc_norm %s\n", GetParam().c_str(), name.c_str(),
                max_diff, result.metrics.acc,
                result.metrics.acc_norm ? std::to_string(*result.metrics.acc_norm).c_str() : "-");
  }
}

// CTest runs each fixture as an entry golden_mc_<fixture> (tests/CMakeLists.txt):
// the Golden/ prefix keeps these out of the `torch` entry.
INSTANTIATE_TEST_SUITE_P(Golden, MultipleChoiceGolden, ::testing::Values("demo-llama3-d", "qwen3-q"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace lp
