// `linearpatch eval --task` as CI jobs use it: JSON results, per-row scores,
// retained performance against a baseline with its gate, and one error line
// with exit status 3 for bad rows. Runs the real binary on the demo model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "support/process.h"
#include "support/test_env.h"

namespace lp {
namespace {

using nlohmann::json;

using test::expect_one_error_line;



const char* kWinogrande =
    R"({"sentence": "The trophy did not fit in the case because the _ was too big.", "option1": "trophy", "option2": "case", "answer": "1"})"
    "\n";

TEST(EvalTaskCli, JsonResultsAndPerRowScores) {
  test::TempDir dir;
  test::write_file(dir / "piqa.jsonl", test::kPiqaRows);
  test::write_file(dir / "wg.jsonl", kWinogrande);
  const auto scores = dir / "scores.jsonl";
  const auto r = test::run_linearpatch({"eval", "-m", test::demo_model_arg(), "--task", "piqa=" + (dir / "piqa.jsonl").string(),
                                        "--task", "winogrande=" + (dir / "wg.jsonl").string(), "--scores",
                                        scores.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  const auto& piqa = j["tasks"]["piqa"];
  EXPECT_EQ(piqa["rows"], 3);
  for (const char* key : {"acc", "acc_norm", "acc_stderr"}) EXPECT_TRUE(piqa[key].is_number()) << key;
  EXPECT_FALSE(j["tasks"]["winogrande"].contains("acc_norm"));
  EXPECT_FALSE(j.contains("ppl")) << "no --text, no perplexity";
  EXPECT_EQ(r.err.find("acc_norm"), std::string::npos) << "with --json the table is not printed";

  std::istringstream lines(test::read_file(scores));
  std::vector<json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  int hits = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[i]["task"], "piqa");
    EXPECT_EQ(rows[i]["row"], i);
    EXPECT_EQ(rows[i]["gold"], 0);
    const auto lls = rows[i]["lls"].get<std::vector<double>>();
    ASSERT_EQ(lls.size(), 2u);
    hits += lls[0] >= lls[1];
  }
  EXPECT_DOUBLE_EQ(piqa["acc"].get<double>(), hits / 3.0) << "acc is the argmax of the written scores";
  EXPECT_EQ(rows[3]["task"], "winogrande");
}

TEST(EvalTaskCli, RetainedPerformanceAgainstABaselineAndItsGate) {
  test::TempDir dir;
  test::write_file(dir / "piqa.jsonl", test::kPiqaRows);
  const std::vector<std::string> args = {"eval", "-m", test::demo_model_arg(), "--baseline", test::demo_model_arg(),
                                         "--task", "piqa=" + (dir / "piqa.jsonl").string(), "--json"};
  const auto r = test::run_linearpatch(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  const auto& piqa = j["tasks"]["piqa"];
  EXPECT_EQ(piqa["baseline"]["acc_norm"], piqa["acc_norm"]) << "the same model on the same rows";
  EXPECT_EQ(piqa["retained_metric"], "acc_norm");
  if (piqa["acc_norm"].get<double>() > 0) {
    EXPECT_DOUBLE_EQ(piqa["retained"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(j["retained_performance"].get<double>(), 1.0);
  }

  auto gated = args;
  gated.insert(gated.end(), {"--min-retained", "1.5"});
  const auto failed = test::run_linearpatch(gated);
  EXPECT_EQ(failed.exit_code, 4) << failed.err;
  EXPECT_NE(failed.err.find("--min-retained"), std::string::npos) << failed.err;
  EXPECT_FALSE(json::parse(failed.out).empty()) << "results are printed before the gate fails";
}

TEST(EvalTaskCli, BadRowsAndNamesExitWithStatus3) {
  test::TempDir dir;
  const auto file = dir / "piqa.jsonl";
  test::write_file(file, std::string(test::kPiqaRows) + R"({"goal": "g", "sol1": "a", "label": 0})" + "\n");
  auto r = test::run_linearpatch({"-q", "eval", "-m", test::demo_model_arg(), "--task", "piqa=" + file.string()});
  EXPECT_EQ(r.exit_code, 3);
  expect_one_error_line(r, file.string() + ":4: field \"sol2\": missing");

  test::write_file(file, R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 5})" "\n");
  r = test::run_linearpatch({"-q", "eval", "-m", test::demo_model_arg(), "--task", "piqa=" + file.string()});
  EXPECT_EQ(r.exit_code, 3);
  expect_one_error_line(r, file.string() + ":1: field \"label\": 5 is out of range for 2 choices");

  r = test::run_linearpatch({"-q", "eval", "-m", test::demo_model_arg(), "--task", "copa=" + file.string()});
  EXPECT_EQ(r.exit_code, 3);
  expect_one_error_line(r, "unknown task 'copa'");
}

TEST(EvalTaskCli, NeedsTextOrTasks) {
  const auto r = test::run_linearpatch({"-q", "eval", "-m", test::demo_model_arg()});
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r, "--text or --task");
}

}  // namespace
}  // namespace lp
