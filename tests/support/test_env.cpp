#include "support/test_env.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace lp::test {
namespace {

std::filesystem::path env_path(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::filesystem::path(value) : std::filesystem::path();
}

}  // namespace

std::filesystem::path shared_dir() {
  auto dir = env_path("LP_SHARED_DIR");
  if (dir.empty() || !std::filesystem::is_directory(dir / "fixtures")) return {};
  return dir;
}

std::filesystem::path test_data_dir() { return env_path("LP_TEST_DATA"); }
std::filesystem::path repo_dir() { return env_path("LP_REPO_DIR"); }
std::filesystem::path binary_path() { return env_path("LP_BINARY"); }
std::filesystem::path demo_model_dir() { return repo_dir() / "data" / "models" / "demo-llama3-d"; }
std::filesystem::path demo_calibration_text() { return repo_dir() / "data" / "text" / "brown.calib.txt"; }
std::filesystem::path demo_evaluation_text() { return repo_dir() / "data" / "eval" / "brown.visible.txt"; }

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() /
                     ("lp-test-" + std::to_string(rd()) + "-" + std::to_string(attempt));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace lp::test
