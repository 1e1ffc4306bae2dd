// The score and prune jobs end to end on the demo model shipped in data/
// (10 layers, hidden 192), with a few short calibration windows so each job
// takes well under a second.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/pipeline/prune_pipeline.h"
#include "model/tensor_bridge.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

fs::path demo_model() { return test::repo_dir() / "data" / "models" / "demo-llama3-d"; }

PruneJob small_job(const fs::path& out) {
  PruneJob job;
  job.model_dir = demo_model();
  job.calibration.files = {test::repo_dir() / "data" / "text" / "brown.calib.txt"};
  job.calibration.samples = 6;
  job.calibration.seq_len = 64;
  job.calibration.batch_size = 3;
  job.selection.layers = 2;
  job.selection.kl_samples = 2;
  job.output_dir = out;
  return job;
}

template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PrunePipeline, WritesAReloadableCheckpointAndAFullReport) {
  test::TempDir dir;
  const auto report = run_prune(small_job(dir / "out"));
  const int64_t start = report["start"];
  EXPECT_EQ(report["end"].get<int64_t>(), start + 2);
  EXPECT_EQ(report["removed"], (std::vector<int64_t>{start, start + 1}));
  EXPECT_GE(start, 1);
  EXPECT_LE(start + 2, 9);
  EXPECT_EQ(report["candidates"].size(), 7u);  // starts 1..7
  EXPECT_EQ(report["candidates"][0]["start"].get<int64_t>(), start);
  for (const char* phase : {"load", "tokenize", "calibration", "selection", "patch", "write", "total"})
    EXPECT_TRUE(report["timings"].contains(phase)) << phase;
  const auto& scales = report["gaps"][0]["scales"];
  EXPECT_LE(scales["min"].get<double>(), scales["mean"].get<double>());
  EXPECT_GT(scales["min"].get<double>(), 0.0);

  const auto model = LlamaModel::load(dir / "out");
  EXPECT_EQ(model.num_layers(), 8);
  ASSERT_EQ(model.patches().size(), 1u);
  EXPECT_EQ(model.patches().begin()->first, start);
  const int64_t layer_params = 2 * 192 + 2 * 192 * 192 + 2 * 192 * 64 + 3 * 192 * 512;
  EXPECT_EQ(report["parameters"]["after"].get<int64_t>(),
            report["parameters"]["before"].get<int64_t>() - 2 * layer_params + 192 * 192);
  EXPECT_TRUE(fs::exists(dir / "out" / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "out" / "generation_config.json"));
}

TEST(PrunePipeline, SameSeedWritesTheSamePatch) {
  test::TempDir dir;
  auto a = small_job(dir / "a");
  auto b = small_job(dir / "b");
  run_prune(a);
  run_prune(b);
  const io::Checkpoint ca(dir / "a"), cb(dir / "b");
  const auto names = ca.tensor_names();
  ASSERT_EQ(names, cb.tensor_names());
  for (const auto& name : names) {
    const auto ta = ca.tensor(name), tb = cb.tensor(name);
    ASSERT_EQ(ta.info->nbytes(), tb.info->nbytes()) << name;
    EXPECT_EQ(std::memcmp(ta.data(), tb.data(), ta.info->nbytes()), 0) << name;
  }
}

TEST(PrunePipeline, ForcedBlockWithoutPatchNeedsNoCalibration) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.selection.start = 3;
  job.patch.enabled = false;
  job.calibration.files = {dir / "missing.txt"};  // never read
  const auto report = run_prune(job);
  EXPECT_EQ(report["removed"], (std::vector<int64_t>{3, 4}));
  EXPECT_FALSE(report["timings"].contains("calibration"));
  EXPECT_TRUE(LlamaModel::load(dir / "out").patches().empty());
}

TEST(PrunePipeline, OtherMetricsChooseValidBlocks) {
  test::TempDir dir;
  auto bi = small_job(dir / "bi");
  bi.selection.metric = Metric::kBlockInfluence;
  bi.selection.layers = 3;
  const auto r = run_prune(bi);
  EXPECT_EQ(r["removed"].size(), 3u);
  EXPECT_EQ(r["block_influence"].size(), 10u);
  EXPECT_EQ(LlamaModel::load(dir / "bi").patches().size(), r["gaps"].size());

  auto kl = small_job(dir / "kl");
  kl.selection.metric = Metric::kPatchedKl;
  const auto k = run_prune(kl);
  const auto& candidates = k["candidates"];
  for (size_t i = 1; i < candidates.size(); ++i)
    EXPECT_LE(candidates[i - 1]["score"].get<double>(), candidates[i]["score"].get<double>());
  EXPECT_EQ(k["start"], candidates[0]["start"]);
}

TEST(PrunePipeline, ScoreRanksEveryRequestedMetric) {
  ScoreJob job;
  job.model_dir = demo_model();
  job.calibration = small_job("unused").calibration;
  job.selection.layers = 3;
  job.selection.kl_samples = 2;
  const auto report = run_score(job);
  for (const char* metric : {"cosine", "angular", "patched-kl"}) EXPECT_EQ(report["rankings"][metric].size(), 6u) << metric;
  EXPECT_EQ(report["blocks"], report["rankings"]["cosine"]);
  const auto& cos = report["cosine_matrix"];
  EXPECT_EQ(cos.size(), 11u);
  EXPECT_DOUBLE_EQ(cos[2][5].get<double>(), cos[5][2].get<double>());
  for (const auto& block : report["rankings"]["cosine"]) {
    const int64_t start = block["start"];
    EXPECT_DOUBLE_EQ(block["score"].get<double>(), cos[start][start + 3].get<double>());
  }
}

TEST(PrunePipeline, BadRequestsFailBeforeWritingAnything) {
  test::TempDir dir;
  auto too_many = small_job(dir / "out");
  too_many.selection.layers = 9;
  expect_error([&] { run_prune(too_many); }, "cannot remove 9 of 10 layers");
  auto bad_start = small_job(dir / "out");
  bad_start.selection.start = 8;
  expect_error([&] { run_prune(bad_start); }, "--start 8 is out of range");
  auto empty = small_job(dir / "out");
  write_text_file(dir / "empty.txt", "\n  \n");
  empty.calibration.files = {dir / "empty.txt"};
  expect_error([&] { run_prune(empty); }, "no text in");
  auto short_text = small_job(dir / "out");
  write_text_file(dir / "short.txt", "Only a few words here.");
  short_text.calibration.files = {dir / "short.txt"};
  expect_error([&] { run_prune(short_text); }, "too little text for one window");
  auto inside = small_job(demo_model() / "pruned");
  expect_error([&] { run_prune(inside); }, "must not be inside");
  EXPECT_FALSE(fs::exists(demo_model() / "pruned"));
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 2) << "only the two text files may remain";
}

TEST(PrunePipeline, DistillationIsReportedAndStoredInTheCheckpoint) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.distill.emplace();
  job.distill->samples = 4;
  job.distill->val_samples = 2;
  job.distill->options.batch_size = 2;
  job.distill->options.micro_batch = 2;
  job.distill->options.lr = 1e-3;
  const auto report = run_prune(job);
  const auto& d = report["distill"];
  EXPECT_EQ(d["steps"].get<int64_t>(), 2);
  EXPECT_TRUE(d.contains("val_kl_before"));
  EXPECT_GT(d["seconds"]["student_forward_backward"].get<double>(), 0.0);
  const auto config = test::read_file(dir / "out" / "config.json");
  EXPECT_NE(config.find("\"distill\""), std::string::npos);
  EXPECT_NE(config.find("distilled"), std::string::npos);
}

}  // namespace
}  // namespace lp
