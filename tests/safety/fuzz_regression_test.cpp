// Replays every committed fuzz input (tests/data/fuzz/seeds/<target>/ and
// the crashes kept in tests/data/fuzz/regressions/<target>/) through the
// same runners the fuzzers use: each input must parse or be refused with
// lp::InputError. Under the sanitizer build (scripts/sanitize.sh) this also
// checks memory safety. spm_model inputs only reach sentencepiece where the
// shim can be loaded; elsewhere they are refused as InputError up front.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_targets.h"
#include "linearpatch/core/error.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> files;
  for (const char* kind : {"seeds", "regressions"}) {
    const fs::path dir = test::test_data_dir() / "fuzz" / kind / target;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegression, EveryKeptInputParsesOrIsRefusedAsInputError) {
  const fuzz::Target* target = fuzz::find_target(GetParam());
  ASSERT_NE(target, nullptr);
  const auto files = inputs_of(GetParam());
  ASSERT_FALSE(files.empty()) << "no seeds for " << GetParam() << " in " << test::test_data_dir() / "fuzz";
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    const std::string bytes = test::read_file(file);
    try {
      target->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const InputError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an InputError: " << e.what();
    }
  }
}

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const auto& target : fuzz::targets()) names.emplace_back(target.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzRegression, ::testing::ValuesIn(target_names()),
                         [](const auto& info) { return info.param; });

TEST(FuzzRegression, EveryCorpusDirectoryNamesATarget) {
  for (const char* kind : {"seeds", "regressions"}) {
    const fs::path dir = test::test_data_dir() / "fuzz" / kind;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_directory()) continue;
      EXPECT_NE(fuzz::find_target(entry.path().filename().string()), nullptr) << entry.path();
    }
  }
}

}  // namespace
}  // namespace lp
