// Every check that needs no weights happens before a weight file is opened:
// jobs over a copy of the demo model whose weights cannot be read still get
// the error about their options, text or output, so a bad request for a 70B
// model costs no load. The full-disk case acts out statvfs.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "linearpatch/core/error.h"
#include "linearpatch/core/output_dir.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/synthetic.h"
#include "linearpatch/pipeline/prune_pipeline.h"
#include "pipeline/preflight.h"
#include "support/expect_error.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

PruneJob job_on(const fs::path& model, const fs::path& out) {
  PruneJob job;
  job.model_dir = model;
  job.calibration.files = {test::demo_calibration_text()};
  job.calibration.samples = 4;
  job.calibration.seq_len = 64;
  job.selection.layers = 2;
  job.output_dir = out;
  return job;
}

// The demo model's config and tokenizer over weights no reader accepts.
fs::path unreadable_weights(const test::TempDir& dir) {
  const auto model = dir / "model";
  fs::create_directory(model);
  for (const auto& entry : fs::directory_iterator(test::demo_model_dir()))
    if (entry.path().filename() != "model.safetensors") fs::copy_file(entry.path(), model / entry.path().filename());
  test::write_file(model / "model.safetensors", "these bytes are not a safetensors header");
  return model;
}

// Nothing but the model and what the test wrote: no output, temporary or lock.
void expect_nothing_written(const test::TempDir& dir, size_t expected_entries = 1) {
  size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_NE(entry.path().filename().string()[0], '.') << entry.path() << " left behind";
    EXPECT_NE(entry.path().filename(), "out") << "an output appeared";
  }
  EXPECT_EQ(entries, expected_entries);
}

class ScopedFreeSpace {
 public:
  explicit ScopedFreeSpace(uint64_t bytes) {
    set_free_space_probe([this, bytes](const fs::path& path) {
      asked.push_back(path);
      return std::optional<uint64_t>(bytes);
    });
  }
  ~ScopedFreeSpace() { set_free_space_probe({}); }
  std::vector<fs::path> asked;
};

TEST(Preflight, TheWeightsReallyCannotBeRead) {
  test::TempDir dir;
  const auto message = test::error_message([&] { run_prune(job_on(unreadable_weights(dir), dir / "out")); });
  EXPECT_TRUE(test::contains(message, "model.safetensors")) << message;
  expect_nothing_written(dir);
}

TEST(Preflight, OptionsAreJudgedOnConfigJsonBeforeAnyWeightIsRead) {
  test::TempDir dir;
  const auto model = unreadable_weights(dir);
  auto too_many = job_on(model, dir / "out");
  too_many.selection.layers = 9;
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(too_many); }),
                             "cannot remove 9 of 10 layers"));
  auto bad_start = job_on(model, dir / "out");
  bad_start.selection.start = 8;
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(bad_start); }),
                             "cannot start at layer 8"));
  auto long_windows = job_on(model, dir / "out");
  long_windows.calibration.seq_len = 4097;
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(long_windows); }), "4097 tokens"));
  auto devices = job_on(model, dir / "out");
  devices.model.devices = {"cpu", "cuda:0"};
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(devices); }), "cuda:0"));
  ScoreJob score;
  score.model_dir = model;
  score.calibration = too_many.calibration;
  score.selection.layers = 9;
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_score(score); }), "cannot remove 9 of 10"));
  expect_nothing_written(dir);
}

TEST(Preflight, OutputTextAndTaskFilesAreJudgedBeforeAnyWeightIsRead) {
  test::TempDir dir;
  const auto model = unreadable_weights(dir);
  fs::create_directory(dir / "taken");
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(job_on(model, dir / "taken")); }),
                             "already exists"));
  auto inside = job_on(model, model / "pruned");
  EXPECT_TRUE(test::contains(test::error_message<UsageError>([&] { run_prune(inside); }), "must not be inside"));
  test::write_file(dir / "short.txt", "Only a few words here.");
  auto short_text = job_on(model, dir / "out");
  short_text.calibration.files = {dir / "short.txt"};
  EXPECT_TRUE(test::contains(test::error_message([&] { run_prune(short_text); }), "too little text for one window"));
  test::write_file(dir / "bad.jsonl", R"({"context": "x", "choices": [" a"], "gold": 3})" "\n");
  auto bad_task = job_on(model, dir / "out");
  bad_task.eval_tasks = {{"mc", dir / "bad.jsonl"}};
  EXPECT_TRUE(test::contains(test::error_message([&] { run_prune(bad_task); }), "bad.jsonl"));
  fs::remove(model / "tokenizer.json");
  EXPECT_TRUE(test::contains(test::error_message([&] { run_prune(job_on(model, dir / "out")); }), "tokenizer"));
  expect_nothing_written(dir, 4);  // model, taken, short.txt, bad.jsonl
}

// A full disk is found before calibration, not after minutes of it: the
// weights are never opened, the output never begun.
TEST(Preflight, TooLittleFreeSpaceFailsBeforeAnyWeightIsRead) {
  test::TempDir dir;
  const auto model = unreadable_weights(dir);
  const ScopedFreeSpace full(1 << 20);
  const auto message = test::error_message<Error>([&] { run_prune(job_on(model, dir / "out")); });
  EXPECT_TRUE(test::contains(message, "not enough space for the pruned checkpoint")) << message;
  EXPECT_TRUE(test::contains(message, "1.0 MB free")) << message;
  ASSERT_EQ(full.asked.size(), 1u);
  EXPECT_EQ(full.asked[0], dir / "out");
  expect_nothing_written(dir);
}

// The estimate bounds what a run really writes, and the free space needed
// is not a multiple of it: the demo prune (2 of 10 layers) writes ~8 MB.
TEST(Preflight, TheOutputEstimateBoundsWhatIsWritten) {
  test::TempDir dir;
  auto job = job_on(test::demo_model_dir(), dir / "out");
  const auto files = io::checkpoint_file_sizes(job.model_dir);
  EXPECT_FALSE(files.sharded);
  const auto estimate = estimated_output_bytes(job, read_llama_config(job.model_dir), files);
  const auto result = run_prune(job);
  uint64_t written = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir / "out"))
    if (entry.is_regular_file()) written += entry.file_size();
  EXPECT_GE(estimate, written);
  EXPECT_LE(estimate, written + written / 4 + (2 << 20));
  auto one_layer = job;
  one_layer.selection.layers = 1;
  const auto estimate_one = estimated_output_bytes(one_layer, read_llama_config(job.model_dir), files);
  EXPECT_GT(estimate_one, estimate + files.weight_bytes / 20) << "a tenth of the layers' bytes less, a patch more";

  // A sharded source copies every layer while the plan is unknown.
  SyntheticSpec spec;
  spec.config = synthetic_config(6, 64, 160, 8, 2, 300, /*tie_word_embeddings=*/false);
  spec.max_shard_bytes = 100000;
  fs::create_directory(dir / "sharded");
  write_synthetic_checkpoint(dir / "sharded", spec);
  const auto sharded = io::checkpoint_file_sizes(dir / "sharded");
  EXPECT_TRUE(sharded.sharded);
  const auto sharded_job = job_on(dir / "sharded", dir / "out2");
  EXPECT_GE(estimated_output_bytes(sharded_job, read_llama_config(dir / "sharded"), sharded), sharded.weight_bytes);
}

}  // namespace
}  // namespace lp
