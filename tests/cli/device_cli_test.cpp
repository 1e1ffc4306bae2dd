// --device with several devices: "cpu,cpu,..." runs the multi-device path
// and gives the one-device results; lists this build or machine cannot
// serve are usage errors naming the flag.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace lp {
namespace {

using nlohmann::json;

std::string text() { return test::demo_evaluation_text().string(); }

json eval_on(const std::string& device) {
  const auto r = test::run_linearpatch(
      {"eval", "-m", test::demo_model_arg(), "--text", text(), "--seq-len", "64", "--max-windows", "6", "--device", device, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

TEST(DeviceCli, SeveralCpuEntriesGiveTheOneDevicePerplexity) {
  const auto one = eval_on("cpu"), three = eval_on("cpu,cpu,cpu");
  EXPECT_EQ(three["ppl"], one["ppl"]);
  EXPECT_EQ(three["tokens"], one["tokens"]);
}

TEST(DeviceCli, PruneReportsWhereTheLayersWent) {
  test::TempDir dir;
  const auto r = test::run_linearpatch({"prune", "-m", test::demo_model_arg(), "--layers", "2", "--calib", text(), "--calib-samples", "4",
                                        "--seq-len", "64", "--device", "cpu,cpu", "--out", (dir / "out").string(),
                                        "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto placement = json::parse(r.out)["placement"];
  ASSERT_EQ(placement.size(), 2u);
  EXPECT_EQ(placement[0]["layers"][0], 0);
  EXPECT_EQ(placement[0]["layers"][1], placement[1]["layers"][0]) << "contiguous ranges";
  EXPECT_EQ(placement[1]["layers"][1], 10);
  EXPECT_TRUE(placement[0]["embeddings"].get<bool>());
  EXPECT_TRUE(placement[1]["head"].get<bool>());
}

TEST(DeviceCli, ListsThisMachineCannotServeAreUsageErrors) {
  // Refused on any machine: with or without CUDA, for different reasons.
  for (const std::string device : {"cuda:0,cuda:0", "cuda:99", "cpu,cuda:0", "cpu,gpu", "cpu,"}) {
    const auto r = test::run_linearpatch({"eval", "-m", test::demo_model_arg(), "--text", text(), "--device", device});
    EXPECT_EQ(r.exit_code, 2) << device << ": " << r.err;
    EXPECT_NE(r.err.find("--device " + device + ":"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace lp
