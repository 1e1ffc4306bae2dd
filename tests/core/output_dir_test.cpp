// Outputs appear complete or not at all, and never inside their input.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lp
