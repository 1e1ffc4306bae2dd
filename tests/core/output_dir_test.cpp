// Outputs appear complete or not at all, and never inside their input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <optional>

#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/core/output_dir.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

size_t entries(const fs::path& dir) { return static_cast<size_t>(std::distance(fs::directory_iterator(dir), {})); }

TEST(AtomicOutputDir, NothingAppearsWithoutCommit) {
  test::TempDir dir;
  {
    AtomicOutputDir out(dir / "result", false, {});
    write_text_file(out.path() / "a.txt", "x");
    EXPECT_FALSE(fs::exists(dir / "result"));
  }
  EXPECT_FALSE(fs::exists(dir / "result"));
  EXPECT_EQ(entries(dir.path()), 0u) << "temporary directory left behind";
}

TEST(AtomicOutputDir, CommitRenamesIntoPlaceAndForceReplaces) {
  test::TempDir dir;
  {
    AtomicOutputDir out(dir / "result", false, {});
    write_text_file(out.path() / "a.txt", "first");
    out.commit();
  }
  EXPECT_EQ(test::read_file(dir / "result" / "a.txt"), "first");
  EXPECT_THROW(AtomicOutputDir(dir / "result", false, {}), UsageError);
  {
    AtomicOutputDir out(dir / "result", true, {});
    write_text_file(out.path() / "b.txt", "second");
    out.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "result" / "a.txt"));
  EXPECT_EQ(test::read_file(dir / "result" / "b.txt"), "second");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicOutputDir, RefusesOutputsInsideOrAroundTheInput) {
  test::TempDir dir;
  fs::create_directory(dir / "model");
  EXPECT_THROW(AtomicOutputDir(dir / "model" / "out", false, {dir / "model"}), UsageError);
  EXPECT_THROW(AtomicOutputDir(dir / "model", true, {dir / "model"}), UsageError);
  EXPECT_THROW(AtomicOutputDir(dir.path(), true, {dir / "model"}), UsageError);
  EXPECT_THROW(AtomicOutputDir(dir / "model" / ".." / "model" / "x", false, {dir / "model"}), UsageError);
  EXPECT_NO_THROW(AtomicOutputDir(dir / "model-pruned", false, {dir / "model"}));
}

TEST(AtomicOutputDir, UnusableParentIsAClearError) {
  test::TempDir dir;
  write_text_file(dir / "file", "not a directory");
  try {
    AtomicOutputDir out(dir / "file" / "out", false, {});
    FAIL() << "created an output below a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file"), std::string::npos) << e.what();
  }
}


TEST(AtomicOutputDir, LeftoversOfDeadRunsOfTheSameOutputAreRemoved) {
  test::TempDir dir;
  for (const char* name : {".result.tmp-4242-0", ".result.tmp-4242-1.old"}) {
    fs::create_directory(dir / name);
    test::write_file(dir / name / "model.safetensors", std::string(100000, 'x'));
  }
  // Not this output's temporaries: another output's, and other names.
  for (const char* name : {".results.tmp-4242-0", ".result.tmp-x-0", ".result.lock-4242", "result.tmp-1-0"})
    fs::create_directory(dir / name);
  {
    AtomicOutputDir out(dir / "result", false, {});
    ASSERT_EQ(out.removed_leftovers().size(), 2u);
    for (const auto& removed : out.removed_leftovers()) {
      EXPECT_GE(removed.bytes, 100000u) << removed.path;
      EXPECT_FALSE(fs::exists(removed.path)) << removed.path;
    }
    out.commit(false);
  }
  for (const char* name : {".results.tmp-4242-0", ".result.tmp-x-0", ".result.lock-4242", "result.tmp-1-0"})
    EXPECT_TRUE(fs::exists(dir / name)) << name;
  EXPECT_EQ(entries(dir.path()), 5u) << "the output and the four others; no lock file";
}

// flock conflicts between two open files of one process as between two
// processes, so a second owner in this process stands for another run.
TEST(AtomicOutputDir, ASecondRunIsRefusedWhileTheFirstHoldsTheOutput) {
  test::TempDir dir;
  auto first = std::make_unique<AtomicOutputDir>(dir / "result", false, std::vector<fs::path>{});
  write_text_file(first->path() / "a.txt", "first");
  try {
    AtomicOutputDir second(dir / "result", true, {});
    FAIL() << "two owners of one output";
  } catch (const UsageError& e) {
    FAIL() << "a busy output is not a usage error: " << e.what();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(pid " + std::to_string(::getpid()) + ")"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_file(first->path() / "a.txt"), "first") << "the first run's files are untouched";
  first->commit(false);
  first.reset();
  AtomicOutputDir third(dir / "result", true, {});
  EXPECT_TRUE(third.removed_leftovers().empty());
}

TEST(FreeSpace, TooLittleIsAnErrorNamingBothSizes) {
  test::TempDir dir;
  EXPECT_TRUE(available_bytes(dir / "not" / "yet" / "there").has_value()) << "judged on the nearest existing parent";
  set_free_space_probe([](const fs::path&) { return std::optional<uint64_t>(1500000); });
  try {
    require_free_space(dir / "out", 2000000000, "the pruned checkpoint");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs about 2.0 GB, the filesystem has 1.5 MB free"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(require_free_space(dir / "out", 1000000, "the pruned checkpoint"));
  set_free_space_probe({});
  EXPECT_NO_THROW(require_free_space(dir / "out", 1, "one byte"));
}

}  // namespace
}  // namespace lp
