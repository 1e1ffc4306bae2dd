// The command line as users and scripts meet it: subcommands, JSON on
// stdout, one error line and the documented exit status on failure. Each
// case runs the real binary on the demo model shipped in data/.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "linearpatch/tokenizer/tokenizer.h"
#include "support/process.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::expect_one_error_line;


std::vector<std::string> small_prune(const std::string& out) {
  return {"prune", "-m", test::demo_model_arg(), "--layers", "2", "--calib", test::demo_calibration_arg(), "--calib-samples", "4", "--seq-len", "64",
          "--out", out, "--json"};
}

TEST(Cli, HelpListsTheCommandsAndBadFlagsAreUsageErrors) {
  const auto help = test::run_linearpatch({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* command : {"inspect", "tokenize", "eval", "score", "prune"})
    EXPECT_NE(help.out.find(command), std::string::npos) << command;
  const auto bad = test::run_linearpatch({"prune", "--no-such-flag"});
  EXPECT_EQ(bad.exit_code, 2);
  const auto none = test::run_linearpatch({});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(Cli, InspectReportsTheShape) {
  const auto r = test::run_linearpatch({"inspect", "-m", test::demo_model_arg(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["num_layers"], 10);
  EXPECT_EQ(j["hidden_size"], 192);
  EXPECT_EQ(j["heads"], 6);
  EXPECT_EQ(j["kv_heads"], 2);
  EXPECT_EQ(j["vocab_size"], 4096);
  EXPECT_EQ(j["dtype"], "bfloat16");
  EXPECT_EQ(j["parameters"], 4722624);
}

// Sublayer units end to end: attention units removed, the Nemotron-NAS
// form written and read back; combinations this build cannot do are
// refused with one line, exit 2, and no output.
TEST(Cli, AttentionUnitsWriteANemotronCheckpointAndRefuseWhatTheyCannotDo) {
  test::TempDir dir;
  const auto out = (dir / "nemotron").string();
  const auto r = test::run_linearpatch({"prune", "-m", test::demo_model_arg(), "--unit", "attention", "--layers", "2", "--metric",
                                        "cosine", "--emit", "vanilla", "--calib", test::demo_calibration_arg(), "--calib-samples", "4",
                                        "--seq-len", "64", "--out", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = json::parse(r.out);
  EXPECT_EQ(report["unit"], "attention");
  EXPECT_EQ(report["removed_sublayers"].size(), 2u);
  EXPECT_EQ(report["num_layers_after"], 10);
  const auto inspected = test::run_linearpatch({"inspect", "-m", out, "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out)["model_type"], "nemotron-nas");
  EXPECT_EQ(json::parse(inspected.out)["attention"]["layers_without_attention"].size(), 2u);
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--unit", "sublayer", "--metric", "cosine"},
        std::vector<std::string>{"--unit", "mlp", "--patch", "linearpatch", "--emit", "vanilla"},
        std::vector<std::string>{"--unit", "attention", "--metric", "bi"}}) {
    std::vector<std::string> args = {"prune", "-m", test::demo_model_arg(), "--layers", "2", "--calib", test::demo_calibration_arg(),
                                     "--out", (dir / "refused").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto refused = test::run_linearpatch(args);
    EXPECT_EQ(refused.exit_code, 2) << extra[1];
    expect_one_error_line(refused, "units");
    EXPECT_FALSE(fs::exists(dir / "refused"));
  }
}

// score ranks sublayer units: iterative over either kind, in the order of
// removal, each unit a real site of the model (no edge layer).
TEST(Cli, ScoreRanksSublayerUnitsBySite) {
  const auto r = test::run_linearpatch({"score", "-m", test::demo_model_arg(), "--unit", "sublayer", "--metric", "iterative",
                                        "--layers", "2", "--calib", test::demo_calibration_arg(), "--calib-samples", "4",
                                        "--held-out-samples", "2", "--seq-len", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = json::parse(r.out);
  EXPECT_EQ(report["unit"], "sublayer");
  ASSERT_EQ(report["ranked"].size(), 2u);
  std::set<std::pair<int64_t, std::string>> ranked;
  for (const auto& site : report["ranked"]) {
    EXPECT_GE(site["layer"].get<int64_t>(), 1);
    EXPECT_LE(site["layer"].get<int64_t>(), 8);
    const auto sublayer = site["sublayer"].get<std::string>();
    EXPECT_TRUE(sublayer == "attention" || sublayer == "mlp") << sublayer;
    ranked.insert({site["layer"].get<int64_t>(), sublayer});
  }
  EXPECT_EQ(ranked.size(), 2u);
  for (const auto& site : report["removed_sublayers"])
    EXPECT_EQ(ranked.count({site["layer"].get<int64_t>(), site["sublayer"].get<std::string>()}), 1u);
  EXPECT_EQ(report["sublayer_steps"][0]["candidates"].size(), 16u) << "attention and MLP of layers 1..8";
}

// Architectures whose maths differ end before any work: one line naming the
// model_type and the supported list, exit 3, no output directory.
TEST(Cli, UnsupportedArchitecturesAreRefusedBeforeAnyWork) {
  test::TempDir dir;
  for (const char* config : {"gemma-2-9b.json", "phi-3-mini-4k-instruct.json", "qwen1.5-moe-a2.7b.json"}) {
    const auto model = dir / fs::path(config).stem();
    fs::create_directories(model);
    fs::copy_file(test::test_data_dir() / "config" / config, model / "config.json");
    const auto out = dir / (model.filename().string() + "-out");
    const auto r = test::run_linearpatch({"prune", "-m", model.string(), "--layers", "2", "--out", out.string()});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    expect_one_error_line(r, "unsupported");
    EXPECT_NE(r.err.find("(supported: llama, mistral, qwen2, qwen3)"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(Cli, TokenizePrintsOneArrayPerJsonLine) {
  test::TempDir dir;
  test::write_file(dir / "in.jsonl", "\"Hello world\"\n\"<|begin_of_text|>Tokens, 12345!\"\n");
  const auto r = test::run_linearpatch({"tokenize", "-m", test::demo_model_arg(), "--jsonl", (dir / "in.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto tokenizer = load_tokenizer(test::demo_model_arg());
  EXPECT_EQ(r.out, json(tokenizer->encode("Hello world", false)).dump() + "\n" +
                       json(tokenizer->encode("<|begin_of_text|>Tokens, 12345!", false)).dump() + "\n");
  test::write_file(dir / "bad.jsonl", "{\"text\": 1}\n");
  const auto bad = test::run_linearpatch({"tokenize", "-m", test::demo_model_arg(), "--jsonl", (dir / "bad.jsonl").string()});
  EXPECT_EQ(bad.exit_code, 3);
  expect_one_error_line(bad, "bad.jsonl:1");
}

TEST(Cli, PruneThenEvalAgainstTheBaselineWithAQualityGate) {
  test::TempDir dir;
  const auto pruned = (dir / "pruned").string();
  const auto prune = test::run_linearpatch(small_prune(pruned));
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  const auto report = json::parse(prune.out);
  EXPECT_EQ(report["end"].get<int>() - report["start"].get<int>(), 2);
  EXPECT_EQ(report["removed"].size(), 2u);

  const std::vector<std::string> eval = {"eval", "-m", pruned, "--baseline", test::demo_model_arg(), "--text", test::demo_evaluation_arg(),
                                         "--seq-len", "64", "--max-windows", "4", "--json"};
  const auto r = test::run_linearpatch(eval);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["tokens"], 4 * 63);
  EXPECT_GT(j["ppl"].get<double>(), j["baseline_ppl"].get<double>());
  EXPECT_NEAR(j["ppl_ratio"].get<double>(), j["ppl"].get<double>() / j["baseline_ppl"].get<double>(), 1e-9);
  EXPECT_GT(j["mean_kl"].get<double>(), 0.0);

  auto gated = eval;
  gated.insert(gated.end(), {"--max-ppl-ratio", "1.0001"});
  const auto failed = test::run_linearpatch(gated);
  EXPECT_EQ(failed.exit_code, 4);
  EXPECT_NE(failed.err.find("above --max-ppl-ratio"), std::string::npos) << failed.err;
  EXPECT_FALSE(json::parse(failed.out).empty()) << "results are printed before the gate fails";
}

TEST(Cli, VanillaExportIsAPlainLlamaCheckpoint) {
  test::TempDir dir;
  const auto out = (dir / "vanilla").string();
  auto args = small_prune(out);
  args.insert(args.end(), {"--emit", "vanilla"});
  const auto r = test::run_linearpatch(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["vanilla"]["folds"].size(), 2u);
  const auto config = json::parse(test::read_file(fs::path(out) / "config.json"));
  EXPECT_EQ(config["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_FALSE(config.contains("auto_map"));
  const auto inspect = json::parse(test::run_linearpatch({"inspect", "-m", out, "--json"}).out);
  EXPECT_TRUE(inspect["patches"].empty());
  EXPECT_FALSE(fs::exists(fs::path(out) / "modeling_linearpatch.py"));
}

TEST(Cli, RefusalsAreOneLineWithTheirExitStatusAndLeaveNoOutput) {
  test::TempDir dir;
  const auto out = (dir / "out").string();
  auto too_many = small_prune(out);
  too_many[4] = "9";
  const auto r = test::run_linearpatch(too_many);
  EXPECT_EQ(r.exit_code, 2);
  expect_one_error_line(r, "cannot remove 9 of 10 layers");
  EXPECT_FALSE(fs::exists(out));

  const auto missing = test::run_linearpatch({"inspect", "-m", "no-such-org/no-such-model"});
  EXPECT_EQ(missing.exit_code, 3);
  expect_one_error_line(missing, "no-such-org/no-such-model");
  EXPECT_NE(missing.err.find("huggingface"), std::string::npos) << "the error should say where it looked: " << missing.err;
}

}  // namespace
}  // namespace lp
