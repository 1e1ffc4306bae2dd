// The command line a new user meets: every refusal is one line on stderr
// naming what would fix it (exit 2, nothing written, nothing on stdout),
// global flags work anywhere, `help COMMAND`, recipes, one stdout/stderr
// contract, `score` answering in the terminal, provenance in `inspect`, and
// eval's gates and --limit. Runs the real binary on the demo model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>

#include "support/process.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;



std::vector<std::string> small(std::vector<std::string> args) {
  args.insert(args.end(), {"--calib", test::demo_calibration_arg(), "--calib-samples", "4", "--seq-len", "64"});
  return args;
}

struct Refusal {
  std::vector<std::string> args;  // "OUT" stands for an output path that must stay absent
  std::string needle;
};

void expect_refused(const Refusal& c) {
  test::TempDir dir;
  const auto out = dir / "out";
  auto args = c.args;
  for (auto& a : args)
    if (a == "OUT") a = out.string();
  const auto r = test::run_linearpatch(args);
  std::string joined;
  for (const auto& a : c.args) joined += a + " ";
  SCOPED_TRACE(joined);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("linearpatch: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  EXPECT_FALSE(std::regex_search(r.err, std::regex("[0-9]{20}"))) << "no raw numeric limits: " << r.err;
  EXPECT_EQ(r.err.find("Run with --help"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST(UsageCli, ParseErrorsNameTheFix) {
  const auto m = test::demo_model_arg();
  const std::vector<Refusal> cases = {
      {{"prune", "-m", m, "--layers", "0", "--out", "OUT"}, "--layers: must be at least 1, got 0"},
      {{"prune", "-m", m, "--layers", "two", "--out", "OUT"}, "--layers: 'two' is not a whole number"},
      {{"prune", "-m", m, "--layers", "2", "--metric", "cosin", "--out", "OUT"}, "did you mean cosine?"},
      {{"prune", "-m", m, "--lyers", "2", "--out", "OUT"}, "unknown option --lyers (did you mean --layers?)"},
      {{"prune", "--layers", "2", "--out", "OUT"}, "prune: --model is required; linearpatch help prune"},
      {{"prune", "-m", m, "--layers", "2", "--top-k", "5", "--out", "OUT"}, "--top-k only applies with --distill"},
      {{"prune", "-m", m, "--layers", "2", "--calib", "/no/such.txt", "--out", "OUT"}, "no such file: /no/such.txt"},
      {{"prune", "-m", m, "--layers", "2", "--recipe", "fast", "--out", "OUT"}, "choose from paper, quality"},
      {{"prune", "-m", m, "--layers", "2", "--lr", "-1", "--distill", "--out", "OUT"}, "--lr: must be above 0"},
      {{"score", "-m", m, "--calib-samples", "-3"}, "--calib-samples: must be at least 1, got -3"},
      {{"score", "-m", m, "--seed", "-1"}, "--seed: must be at least 0, got -1"},
      {{"score", "-m", m, "--metric", "iterative"}, "--metric iterative ranks sublayer units"},
      {{"eval", "-m", m, "--text", test::demo_evaluation_arg(), "--seq-len", "1"}, "--seq-len: must be at least 2, got 1"},
      {{"eval", "-m", m, "--max-ppl-ratio", "1.1", "--text", test::demo_evaluation_arg()}, "--max-ppl-ratio only applies with --baseline"},
      {{"tokenize", "-m", m, "--jsonl", "-", "--text", "x"}, "cannot be combined"},
      {{"synth", "--num-layers", "2", "--hidden", "64", "--intermediate", "64", "--heads", "2", "--vocab", "10",
        "--out", "OUT"},
       "--vocab: must be at least 258, got 10"},
      {{"synth", "--shape", "llama3-8", "--out", "OUT"}, "did you mean llama3-8b?"},
      {{"prun", "-m", m}, "unknown command 'prun' (did you mean prune?"},
      {{"-q"}, "a command is required"},
      {{"inspect", "-m", m, "extra"}, "unexpected argument 'extra'"},
  };
  for (const auto& c : cases) expect_refused(c);
}

// An option that would do nothing in the given combination is refused the
// same way, before any work.
TEST(UsageCli, OptionsWithoutEffectAreRefused) {
  const auto m = test::demo_model_arg();
  const std::vector<Refusal> cases = {
      {{"prune", "-m", m, "--layers", "2", "--fold", "scalar", "--out", "OUT"}, "--fold has no effect without --emit vanilla"},
      {{"prune", "-m", m, "--layers", "2", "--fold-samples", "4", "--out", "OUT"}, "--fold-samples has no effect"},
      {{"prune", "-m", m, "--layers", "2", "--limit", "4", "--out", "OUT"}, "--limit has no effect without --task"},
      {{"prune", "-m", m, "--layers", "2", "--patch", "none", "--rotation", "random", "--out", "OUT"},
       "--rotation has no effect with --patch none"},
      {{"prune", "-m", m, "--layers", "2", "--start", "2", "--metric", "iterative", "--out", "OUT"},
       "--start forces the block, so --metric has no effect"},
      {{"score", "-m", m, "--metric", "bi"}, "--metric bi ranks blocks of one size: add --layers N"},
      {{"score", "-m", m, "--patch", "auto"}, "--patch has no effect without --layers"},
      {{"eval", "-m", m, "--text", test::demo_evaluation_arg(), "--limit", "3"}, "--limit has no effect without --task"},
      {{"eval", "-m", m, "--text", test::demo_evaluation_arg(), "--scores", "OUT"}, "--scores has no effect without --task"},
      {{"eval", "-m", m, "--task", "piqa=x.jsonl", "--seq-len", "64"}, "--seq-len has no effect without --text"},
      {{"eval", "-m", m}, "eval needs --text or --task (or both)"},
  };
  for (const auto& c : cases) expect_refused(c);
}

TEST(UsageCli, RefusalsAfterLoadingNameTheFlagThatFixesThem) {
  test::TempDir dir;
  fs::create_directory(dir / "taken");
  expect_refused({small({"prune", "-m", test::demo_model_arg(), "--layers", "2", "--out", (dir / "taken").string()}), "--force"});
  expect_refused({small({"prune", "-m", test::demo_model_arg(), "--layers", "9", "--out", "OUT"}), "--allow-edges"});
  expect_refused({small({"prune", "-m", test::demo_model_arg(), "--layers", "2", "--start", "0", "--out", "OUT"}), "--allow-edges"});
  // Impossible even with the edges: no flag to name.
  test::TempDir other;
  const auto r = test::run_linearpatch(small({"prune", "-m", test::demo_model_arg(), "--layers", "10", "--out", (other / "o").string()}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.find("--allow-edges"), std::string::npos) << r.err;
}

TEST(UsageCli, BaselineWithAnotherVocabularyIsRefusedBeforeLoading) {
  test::TempDir dir;
  const auto other = (dir / "other").string();
  const auto synth = test::run_linearpatch({"synth", "--num-layers", "2", "--hidden", "64", "--intermediate", "128",
                                            "--heads", "2", "--vocab", "300", "--dtype", "f32", "--out", other, "-q"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const auto r = test::run_linearpatch({"eval", "-m", other, "--baseline", test::demo_model_arg(), "--text", test::demo_evaluation_arg()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto error = r.err.substr(r.err.find("linearpatch: error: "));
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << r.err;
  EXPECT_NE(error.find("does not share the vocabulary"), std::string::npos) << error;
  EXPECT_NE(error.find(other), std::string::npos) << error;
  EXPECT_NE(error.find("4096 vs 300"), std::string::npos) << error;
  EXPECT_EQ(r.err.find("must match"), std::string::npos) << "no libtorch message: " << r.err;
}

TEST(UsageCli, HelpForACommandAndGlobalFlagsAnywhere) {
  const auto help = test::run_linearpatch({"help", "prune"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  for (const char* option : {"--recipe", "paper", "quality", "--task", "--layers"})
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
  EXPECT_EQ(help.out.find("--eval-task"), std::string::npos) << "old names are accepted, not listed";
  const auto top = test::run_linearpatch({"help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("synth"), std::string::npos);
  // The alias "demo" logs where it resolved to at info level; after the
  // command, -q and --log-level still silence it.
  const auto loud = test::run_linearpatch({"inspect", "-m", "demo"});
  EXPECT_EQ(loud.exit_code, 0) << loud.err;
  EXPECT_NE(loud.err.find("[info]"), std::string::npos) << loud.err;
  for (const auto& flags : std::vector<std::vector<std::string>>{{"-q"}, {"--log-level", "warn"}}) {
    auto args = std::vector<std::string>{"inspect", "-m", "demo"};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto r = test::run_linearpatch(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << flags[0] << ": " << r.err;
  }
}

TEST(UsageCli, ScoreAnswersInTheTerminal) {
  const auto every = test::run_linearpatch(small({"score", "-m", test::demo_model_arg(), "-q"}));
  ASSERT_EQ(every.exit_code, 0) << every.err;
  EXPECT_NE(every.out.find("by cosine"), std::string::npos) << every.out;
  EXPECT_NE(every.out.find("by angular"), std::string::npos) << every.out;
  // Demo: 10 layers, first and last kept: blocks of 1..8 layers.
  for (int n = 1; n <= 8; ++n)
    EXPECT_TRUE(std::regex_search(every.out, std::regex("\n +" + std::to_string(n) + "  \\[[0-9]+, [0-9]+\\)")))
        << n << "\n" << every.out;

  const auto two = test::run_linearpatch(small({"score", "-m", test::demo_model_arg(), "--layers", "2", "--held-out-samples", "1", "-q"}));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  for (const char* column : {"cosine", "angular", "patched-kl"})
    EXPECT_NE(two.out.find(column), std::string::npos) << column << "\n" << two.out;
  // Starts 1..7: one row per candidate, each with three numbers.
  const std::regex row("\n  \\[[0-9]+, [0-9]+\\) +[0-9, ]+ +-?[0-9.]+ +-?[0-9.]+ +-?[0-9.]+");
  EXPECT_EQ(std::distance(std::sregex_iterator(two.out.begin(), two.out.end(), row), std::sregex_iterator()), 7)
      << two.out;
  EXPECT_NE(two.out.find("block influence"), std::string::npos) << two.out;

  const auto bi = test::run_linearpatch(small({"score", "-m", test::demo_model_arg(), "--layers", "2", "--metric", "bi", "--json", "-q"}));
  ASSERT_EQ(bi.exit_code, 0) << bi.err;
  EXPECT_EQ(json::parse(bi.out)["metric"], "bi") << "what was asked is what the report says";
}

TEST(UsageCli, RecipesAndWhatRanIsWhatTheReportSays) {
  test::TempDir dir;
  const auto quality = test::run_linearpatch(
      small({"prune", "-m", test::demo_model_arg(), "--layers", "2", "--recipe", "quality", "--out", (dir / "q").string(), "--json", "-q"}));
  ASSERT_EQ(quality.exit_code, 0) << quality.err;
  const auto q = json::parse(quality.out);
  EXPECT_EQ(q["recipe"], "quality");
  EXPECT_EQ(q["metric"], "iterative");
  EXPECT_EQ(q["repair"], "auto");

  const auto mixed = test::run_linearpatch(small({"prune", "-m", test::demo_model_arg(), "--layers", "2", "--recipe", "quality",
                                                  "--patch", "linearpatch", "--out", (dir / "m").string(), "--json"}));
  ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
  const auto x = json::parse(mixed.out);
  EXPECT_EQ(x["metric"], "iterative");
  EXPECT_EQ(x["repair"], "linearpatch") << "an explicit option wins over the recipe";
  EXPECT_EQ(x["recipe_overrides"], json::array({"--patch"}));

  // A forced block says so, in the report, the summary and the checkpoint.
  const auto out = dir / "forced";
  const auto forced = test::run_linearpatch(
      small({"prune", "-m", test::demo_model_arg(), "--layers", "3", "--start", "6", "--patch", "none", "--out", out.string(), "-q"}));
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.out.find("removed 3 of 10 layers (the forced block): 6, 7, 8"), std::string::npos) << forced.out;
  EXPECT_TRUE(forced.err.empty()) << "the summary is the result: stdout; " << forced.err;
  const auto entry = json::parse(test::read_file(out / "config.json"))["linearpatch"];
  EXPECT_EQ(entry["metric"], "forced");
  EXPECT_EQ(entry["gaps"][0]["range"], json::array({6, 9}));
  EXPECT_EQ(entry["gaps"][0]["removed_layers"], json::array({6, 7, 8}));
  EXPECT_EQ(entry["gaps"][0]["new_position"], 6);

  const auto inspect = test::run_linearpatch({"inspect", "-m", out.string()});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  for (const char* line : {"pruned from", "removed layers 6, 7, 8 (original numbering), chosen by forced",
                           "recipe paper", "gap [6, 9) = layers 6, 7, 8: none; layer 9 is now at position 6"})
    EXPECT_NE(inspect.out.find(line), std::string::npos) << line << "\n" << inspect.out;
  const auto pruned = json::parse(test::run_linearpatch({"inspect", "-m", out.string(), "--json"}).out)["pruned"];
  EXPECT_EQ(pruned["source"], test::demo_model_arg());
  EXPECT_EQ(pruned["removed_layers"], json::array({6, 7, 8}));
}

TEST(UsageCli, EvalRecordsTheBaselineAndEachGateAndLimitsTaskRows) {
  test::TempDir dir;
  test::write_file(dir / "piqa.jsonl", test::kPiqaRows);
  const auto task = "piqa=" + (dir / "piqa.jsonl").string();
  const auto r = test::run_linearpatch({"eval", "-m", test::demo_model_arg(), "--baseline", test::demo_model_arg(), "--text", test::demo_evaluation_arg(), "--seq-len",
                                        "64", "--max-windows", "2", "--task", task, "--max-ppl-ratio", "1.5",
                                        "--min-retained", "0.5", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << "with --json, stdout holds the result and stderr only logs: " << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["baseline_model"], test::demo_model_arg());
  ASSERT_EQ(j["gates"].size(), 2u);
  EXPECT_EQ(j["gates"][0]["gate"], "max_ppl_ratio");
  EXPECT_NEAR(j["gates"][0]["value"].get<double>(), 1.0, 1e-9);
  EXPECT_EQ(j["gates"][0]["limit"], 1.5);
  EXPECT_EQ(j["gates"][0]["verdict"], "pass");
  EXPECT_EQ(j["gates"][1]["gate"], "min_retained");
  EXPECT_EQ(j["gates"][1]["verdict"], "pass");

  const auto one = test::run_linearpatch({"eval", "-m", test::demo_model_arg(), "--task", task, "--limit", "1", "-q"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_TRUE(std::regex_search(one.out, std::regex("piqa +1 "))) << "one row scored:\n" << one.out;
  EXPECT_NE(one.out.find("n/a"), std::string::npos) << "a one-row task has no deviation:\n" << one.out;
  EXPECT_EQ(one.out.find("nan"), std::string::npos) << one.out;
}

}  // namespace
}  // namespace lp
