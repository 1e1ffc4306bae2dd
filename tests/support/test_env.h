// Where tests find their data. Set by CTest (tests/CMakeLists.txt); tests
// that need ../shared call require_shared() and skip with the reason when
// it is missing.
#pragma once

#include <filesystem>
#include <string>

namespace lp::test {

std::filesystem::path shared_dir();      // $LP_SHARED_DIR, empty if unset or missing
std::filesystem::path test_data_dir();   // $LP_TEST_DATA (tests/data)
std::filesystem::path repo_dir();        // $LP_REPO_DIR
std::filesystem::path binary_path();     // $LP_BINARY, the linearpatch executable
// The demo model shipped in data/models (LLaMA-3 format, 10 layers, hidden
// 192, one model.safetensors, 9.5 MB) and the text shipped beside it.
std::filesystem::path demo_model_dir();
std::filesystem::path demo_calibration_text();  // data/text/brown.calib.txt
std::filesystem::path demo_evaluation_text();   // data/eval/brown.visible.txt

// A fresh empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace lp::test

// Skips the current test when the shared fixtures are not available.
#define LP_REQUIRE_SHARED()                                                              \
  do {                                                                                   \
    if (::lp::test::shared_dir().empty())                                                \
      GTEST_SKIP() << "../shared fixtures not found (set LP_SHARED_DIR to run this test)"; \
  } while (0)
