#include "linearpatch/core/output_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "linearpatch/core/error.h"
#include "linearpatch/core/interrupt.h"
#include "linearpatch/core/remedy.h"

namespace fs = std::filesystem;

namespace lp {
namespace {

std::atomic<int> g_counter{0};

fs::path normalized(const fs::path& path) {
  std::error_code ec;
  auto result = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : result;
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw Error("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error("cannot sync " + path.string() + ": " + std::strerror(err));
}

void sync_tree(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) fsync_path(entry.path(), /*directory=*/false);
    else if (entry.is_directory()) fsync_path(entry.path(), /*directory=*/true);
  }
  fsync_path(dir, /*directory=*/true);
}

}  // namespace

void ensure_not_inside(const fs::path& candidate, const fs::path& base, const char* what) {
  if (is_within(normalized(candidate), normalized(base)))
    throw UsageError(std::string(what) + " " + candidate.string() + " must not be inside " + base.string());
}

AtomicOutputDir::AtomicOutputDir(fs::path final_path, bool overwrite,
                                 const std::vector<fs::path>& protected_inputs)
    : final_path_(normalized(final_path)), overwrite_(overwrite) {
  for (const auto& input : protected_inputs) {
    ensure_not_inside(final_path_, input, "the output directory");
    if (is_within(normalized(input), final_path_))
      throw UsageError("the output directory " + final_path_.string() + " contains the input " + input.string());
  }
  if (fs::exists(final_path_) && !overwrite_)
    throw RemediableUsageError("output " + final_path_.string() + " already exists, and replacing it was not asked for",
                               Remedy::kReplaceOutput);
  std::error_code ec;
  fs::create_directories(final_path_.parent_path(), ec);
  if (ec) throw Error("cannot create " + final_path_.parent_path().string() + ": " + ec.message());
  const std::string stem = "." + final_path_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-";
  for (int attempt = 0; attempt < 1000; ++attempt) {
    temp_path_ = final_path_.parent_path() / (stem + std::to_string(g_counter++));
    if (::mkdir(temp_path_.c_str(), 0755) == 0) {
      register_cleanup_path(temp_path_);
      return;
    }
    if (errno != EEXIST)
      throw Error("cannot create the output directory next to " + final_path_.string() + ": " + std::strerror(errno));
  }
  throw Error("cannot create a temporary directory next to " + final_path_.string());
}

AtomicOutputDir::~AtomicOutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_path_, ec);
  unregister_cleanup_path(temp_path_);
}

void AtomicOutputDir::commit(bool sync) {
  // A SIGINT/SIGTERM that arrived after the last progress poll still means
  // "stop": the output must not appear.
  throw_if_interrupted();
  if (sync) sync_tree(temp_path_);
  fs::path old;
  if (fs::exists(final_path_)) {
    if (!overwrite_) throw UsageError("output " + final_path_.string() + " appeared while writing; not replacing it");
    old = temp_path_;
    old += ".old";
    if (::rename(final_path_.c_str(), old.c_str()) != 0)
      throw Error("cannot move the existing " + final_path_.string() + " aside: " + std::strerror(errno));
  }
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    throw Error("cannot rename " + temp_path_.string() + " to " + final_path_.string() + ": " + std::strerror(errno));
  committed_ = true;
  unregister_cleanup_path(temp_path_);
  if (sync) fsync_path(final_path_.parent_path(), /*directory=*/true);
  if (!old.empty()) {
    std::error_code ec;
    fs::remove_all(old, ec);
  }
}

}  // namespace lp
