// `prune` with a depth budget as a batch script meets it: exit 0 with the
// curve in the report and the chart written, exit 4 with one line and
// nothing written when no depth meets the budget, exit 2 when neither a
// depth nor a budget is given.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "support/process.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> budget_prune(const std::string& out, std::vector<std::string> budget) {
  std::vector<std::string> args{"-q", "prune", "-m", (test::repo_dir() / "data" / "models" / "demo-llama3-d").string(),
                                "--calib", (test::repo_dir() / "data" / "text" / "brown.calib.txt").string(),
                                "--calib-samples", "4", "--held-out-samples", "2", "--seq-len", "64",
                                "--metric", "iterative", "--out", out, "--json"};
  args.insert(args.end(), budget.begin(), budget.end());
  return args;
}

TEST(BudgetCli, ReportsTheCurveAndDrawsIt) {
  test::TempDir dir;
  const auto svg = (dir / "curve.svg").string();
  const auto r = test::run_linearpatch(
      budget_prune((dir / "out").string(), {"--layers", "2", "--max-kl", "1e9", "--curve", svg}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["budget"]["chosen_layers"], 2);
  EXPECT_EQ(j["budget"]["bound_by"], "layers");
  ASSERT_EQ(j["curve"].size(), 2u);
  EXPECT_EQ(j["curve"][1]["removed"], j["removed"]);
  EXPECT_EQ(j["curve"][1]["parameters"], j["parameters"]["after"]);
  EXPECT_EQ(j["curve"][1]["held_out_ppl_ratio"], j["held_out"]["ppl_ratio"]);
  const auto chart = test::read_file(svg);
  EXPECT_EQ(chart.rfind("<svg", 0), 0u);
  EXPECT_NE(chart.find("parameters removed"), std::string::npos);
}

TEST(BudgetCli, NoDepthMeetingTheBudgetExitsFourWritingNothing) {
  test::TempDir dir;
  const auto quality = test::run_linearpatch(budget_prune((dir / "q").string(), {"--max-ppl-ratio", "1.000001"}));
  EXPECT_EQ(quality.exit_code, 4) << quality.err;
  EXPECT_NE(quality.err.find("best reached"), std::string::npos) << quality.err;
  EXPECT_EQ(std::count(quality.err.begin(), quality.err.end(), '\n'), 1) << quality.err;
  EXPECT_FALSE(fs::exists(dir / "q"));

  const auto size = test::run_linearpatch(budget_prune((dir / "s").string(), {"--target-params", "1M"}));
  EXPECT_EQ(size.exit_code, 4) << size.err;
  EXPECT_NE(size.err.find("parameter target"), std::string::npos) << size.err;
  EXPECT_FALSE(fs::exists(dir / "s"));

  const auto neither = test::run_linearpatch(budget_prune((dir / "n").string(), {}));
  EXPECT_EQ(neither.exit_code, 2) << neither.err;
  const auto bad = test::run_linearpatch(budget_prune((dir / "b").string(), {"--target-params", "lots"}));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

// A KV-cache target the allowed attention units cannot reach: exit 4, one
// line, nothing written (checked from config.json before any work).
TEST(BudgetCli, UnreachableKvTargetOfAttentionUnitsExitsFour) {
  test::TempDir dir;
  const auto r = test::run_linearpatch(
      budget_prune((dir / "kv").string(), {"--unit", "attention", "--layers", "2", "--target-kv", "0.7"}));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("target_kv"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir / "kv"));
}

}  // namespace
}  // namespace lp
