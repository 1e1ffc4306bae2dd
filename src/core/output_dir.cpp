#include "linearpatch/core/output_dir.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>

#include "linearpatch/core/error.h"
#include "linearpatch/core/interrupt.h"
#include "linearpatch/core/remedy.h"

namespace fs = std::filesystem;

namespace lp {
namespace {

std::atomic<int> g_counter{0};
std::mutex g_probe_mutex;
FreeSpaceProbe g_probe;

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

// Blocks allocated under `path` (what removing it frees), symlinks not followed.
uint64_t allocated_bytes(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0;
  uint64_t bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  if (S_ISDIR(st.st_mode)) {
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
      bytes += allocated_bytes(it->path());
  }
  return bytes;
}

// ".<name>.tmp-<pid>-<n>", optionally ".old" (an output moved aside by a
// commit with overwrite): the names AtomicOutputDir gives its temporaries.
// Returns the pid, or 0 for any other name.
long temporary_owner(const std::string& entry, const std::string& output_name) {
  const std::string prefix = "." + output_name + ".tmp-";
  if (entry.compare(0, prefix.size(), prefix) != 0) return 0;
  std::string rest = entry.substr(prefix.size());
  if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, ".old") == 0) rest.resize(rest.size() - 4);
  const auto dash = rest.find('-');
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 12 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (dash == std::string::npos || !digits(rest.substr(0, dash)) || !digits(rest.substr(dash + 1))) return 0;
  return std::stol(rest.substr(0, dash));
}

std::string read_small_file(int fd) {
  char buffer[64];
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

}  // namespace

std::string describe_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(units)) value /= 1000, ++unit;
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

void ensure_not_inside(const fs::path& candidate, const fs::path& base, const char* what) {
  if (is_within(normalized(candidate), normalized(base)))
    throw UsageError(std::string(what) + " " + candidate.string() + " must not be inside " + base.string());
}

void check_output_path(const fs::path& final_path, bool overwrite, const std::vector<fs::path>& protected_inputs) {
  const auto path = normalized(final_path);
  for (const auto& input : protected_inputs) {
    ensure_not_inside(path, input, "the output directory");
    if (is_within(normalized(input), path))
      throw UsageError("the output directory " + path.string() + " contains the input " + input.string());
  }
  if (fs::exists(path) && !overwrite)
    throw RemediableUsageError("output " + path.string() + " already exists, and replacing it was not asked for",
                               Remedy::kReplaceOutput);
}

AtomicOutputDir::AtomicOutputDir(fs::path final_path, bool overwrite, const std::vector<fs::path>& protected_inputs)
    : final_path_(normalized(final_path)), overwrite_(overwrite) {
  check_output_path(final_path_, overwrite_, protected_inputs);
  std::error_code ec;
  fs::create_directories(final_path_.parent_path(), ec);
  if (ec) throw Error("cannot create " + final_path_.parent_path().string() + ": " + ec.message());
  lock();
  try {
    remove_leftovers();
    const std::string stem = "." + final_path_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-";
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const auto candidate = final_path_.parent_path() / (stem + std::to_string(g_counter++));
      if (::mkdir(candidate.c_str(), 0755) == 0) {
        temp_path_ = candidate;
        register_cleanup_path(temp_path_);
        return;
      }
      if (errno != EEXIST)
        throw Error("cannot create the output directory next to " + final_path_.string() + ": " +
                    std::strerror(errno));
    }
    throw Error("cannot create a temporary directory next to " + final_path_.string());
  } catch (...) {
    release();
    throw;
  }
}

void AtomicOutputDir::lock() {
  lock_path_ = final_path_.parent_path() / ("." + final_path_.filename().string() + ".lock");
  // A finishing run unlinks the lock file while holding it: whoever locked
  // the unlinked inode retries on the path's new file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error("cannot create the lock file " + lock_path_.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder = read_small_file(fd);
      ::close(fd);
      if (err != EWOULDBLOCK) throw Error("cannot lock " + lock_path_.string() + ": " + std::strerror(err));
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw Error("output " + final_path_.string() + " is being written by another run (pid " +
                  (holder.empty() ? std::string("unknown") : holder) + "); wait for it to end or choose another output");
    }
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        spdlog::debug("cannot write the pid into {}: {}", lock_path_.string(), std::strerror(errno));
      lock_fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw Error("cannot lock " + lock_path_.string() + ": it keeps being replaced");
}

void AtomicOutputDir::remove_leftovers() {
  // Holding the lock, every temporary of this output is a dead run's.
  const auto name = final_path_.filename().string();
  std::error_code ec;
  std::vector<fs::path> found;
  for (fs::directory_iterator it(final_path_.parent_path(), ec), end; !ec && it != end; it.increment(ec))
    if (temporary_owner(it->path().filename().string(), name) != 0) found.push_back(it->path());
  for (const auto& path : found) {
    RemovedTemporary removed{path, allocated_bytes(path)};
    fs::remove_all(path, ec);
    if (ec) throw Error("cannot remove " + path.string() + ", left by an earlier run: " + ec.message());
    spdlog::warn("removed {} ({} freed), left by run {} of this output, which did not finish", path.string(),
                 describe_bytes(removed.bytes), temporary_owner(path.filename().string(), name));
    removed_.push_back(std::move(removed));
  }
}

AtomicOutputDir::~AtomicOutputDir() { release(); }

void AtomicOutputDir::release() {
  if (!committed_ && !temp_path_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_path_, ec);
    unregister_cleanup_path(temp_path_);
    temp_path_.clear();
  }
  if (lock_fd_ >= 0) {
    ::unlink(lock_path_.c_str());
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
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

std::optional<uint64_t> available_bytes(const fs::path& path) {
  {
    std::lock_guard<std::mutex> lock(g_probe_mutex);
    if (g_probe) return g_probe(path);
  }
  auto existing = normalized(path);
  std::error_code ec;
  while (!fs::exists(existing, ec) && existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  struct statvfs st;
  if (::statvfs(existing.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

void require_free_space(const fs::path& path, uint64_t bytes, const std::string& what) {
  const auto available = available_bytes(path);
  if (!available) {
    spdlog::debug("cannot tell the free space for {}; not checked", path.string());
    return;
  }
  if (*available < bytes)
    throw Error("not enough space for " + what + " at " + normalized(path).string() + ": it needs about " +
                describe_bytes(bytes) + ", the filesystem has " + describe_bytes(*available) + " free");
}

void set_free_space_probe(FreeSpaceProbe probe) {
  std::lock_guard<std::mutex> lock(g_probe_mutex);
  g_probe = std::move(probe);
}

}  // namespace lp
