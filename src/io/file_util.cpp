#include "io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "linearpatch/core/error.h"

namespace lp::io {
namespace {

// write() and copy_file_range() move at most ~2 GiB per call anyway.
constexpr uint64_t kMaxChunk = uint64_t{1} << 30;
constexpr uint64_t kCopyBufferBytes = uint64_t{4} << 20;

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

void fail_input(const std::string& where, const std::string& what) { throw InputError(where + ": " + what); }

OpenedFile open_regular_file(const std::filesystem::path& path) {
  // O_NONBLOCK so that opening a FIFO cannot hang; it changes nothing for
  // regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    throw InputError("cannot open " + path.string() + ": " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot stat " + path.string() + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path.string() + ": not a regular file");
  }
  return {fd, static_cast<uint64_t>(st.st_size)};
}

bool path_exists(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

bool directory_exists(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

bool regular_file_exists(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes) {
  const OpenedFile file = open_regular_file(path);
  if (file.size > max_bytes) {
    ::close(file.fd);
    throw InputError(path.string() + ": " + std::to_string(file.size) + " bytes, more than the " +
                     std::to_string(max_bytes) + "-byte limit for this kind of file");
  }
  std::string text(file.size, '\0');
  uint64_t done = 0;
  while (done < file.size) {
    const ssize_t n = ::pread(file.fd, text.data() + done, file.size - done, static_cast<off_t>(done));
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n <= 0) {
      ::close(file.fd);
      throw Error("cannot read " + path.string() + ": " + (n < 0 ? errno_text(err) : "file shrank while being read"));
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(file.fd);
  return text;
}

OutputFile::OutputFile(std::filesystem::path path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw Error("cannot create " + path_.string() + ": " + errno_text(err));
  }
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(path_.c_str());
}

void OutputFile::fail(const std::string& action, int err) const {
  throw Error("cannot " + action + " " + path_.string() + ": " + errno_text(err));
}

void OutputFile::reserve(uint64_t size) {
  if (size == 0) return;
  const int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
  // File systems without allocation support report it; the writes that
  // follow then find a full disk themselves.
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) fail("reserve " + std::to_string(size) + " bytes for", rc);
}

void OutputFile::write(const void* data, uint64_t size) {
  write_at(position_, data, size);
  position_ += size;
}

void OutputFile::write_at(uint64_t offset, const void* data, uint64_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, bytes, std::min(size, kMaxChunk), static_cast<off_t>(offset));
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0) fail("write", err);
    // A regular file only returns 0 for a non-empty write when it is full.
    if (n == 0) fail("write", ENOSPC);
    bytes += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
}

void OutputFile::copy_at(uint64_t offset, int src_fd, uint64_t src_offset, uint64_t size) {
  loff_t in = static_cast<loff_t>(src_offset), out = static_cast<loff_t>(offset);
  while (size > 0) {
    const ssize_t n = ::copy_file_range(src_fd, &in, fd_, &out, std::min(size, kMaxChunk), 0);
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0 && (err == EXDEV || err == ENOSYS || err == EINVAL || err == EOPNOTSUPP)) {
      // Cross-device copies, old kernels and some file systems (FUSE, NFS)
      // cannot copy kernel-side; the data is the same either way.
      copy_with_pread(static_cast<uint64_t>(out), src_fd, static_cast<uint64_t>(in), size);
      return;
    }
    if (n < 0) fail("copy " + std::to_string(size) + " bytes from source offset " + std::to_string(in) + " into", err);
    if (n == 0) {
      throw Error("cannot copy into " + path_.string() + ": the source ends before offset " +
                  std::to_string(static_cast<uint64_t>(in) + size));
    }
    size -= static_cast<uint64_t>(n);
  }
}

void OutputFile::copy_with_pread(uint64_t offset, int src_fd, uint64_t src_offset, uint64_t size) {
  std::vector<uint8_t> buffer(std::min(size, kCopyBufferBytes));
  while (size > 0) {
    const ssize_t n =
        ::pread(src_fd, buffer.data(), std::min<uint64_t>(size, buffer.size()), static_cast<off_t>(src_offset));
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0) {
      throw Error("cannot read the source of " + path_.string() + " at offset " + std::to_string(src_offset) + ": " +
                  errno_text(err));
    }
    if (n == 0) {
      throw Error("cannot copy into " + path_.string() + ": the source ends before offset " +
                  std::to_string(src_offset + size));
    }
    write_at(offset, buffer.data(), static_cast<uint64_t>(n));
    offset += static_cast<uint64_t>(n);
    src_offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
}

void OutputFile::start_writeback(uint64_t offset, uint64_t size) {
  if (size == 0) return;
  if (::sync_file_range(fd_, static_cast<off64_t>(offset), static_cast<off64_t>(size), SYNC_FILE_RANGE_WRITE) == 0)
    return;
  // Only a hint: where the kernel or file system lacks it, commit()'s
  // fsync writes everything back instead.
  const int err = errno;
  if (err != ENOSYS && err != EOPNOTSUPP && err != EINVAL && err != ESPIPE)
    fail("start writing back " + std::to_string(size) + " bytes at offset " + std::to_string(offset) + " of", err);
}

void OutputFile::commit(bool sync) {
  if (sync && ::fsync(fd_) != 0) fail("flush", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close", errno);
  committed_ = true;
}

BackgroundCommits::~BackgroundCommits() {
  for (auto& commit : pending_)
    if (commit.valid()) commit.wait();
}

void BackgroundCommits::commit(std::unique_ptr<OutputFile> file) {
  // The file moves into the task: a failed commit leaves it uncommitted, and
  // it removes itself when the task is destroyed.
  pending_.push_back(std::async(std::launch::async, [file = std::move(file)] { file->commit(/*sync=*/true); }));
}

void BackgroundCommits::wait() {
  // All finish before the first failure is rethrown, so no flush is still
  // running while the caller cleans up.
  for (auto& commit : pending_) commit.wait();
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& commit : pending) commit.get();
}

void write_new_file(const std::filesystem::path& path, const std::string& bytes, bool sync) {
  OutputFile out(path);
  out.write(bytes.data(), bytes.size());
  out.commit(sync);
}

}  // namespace lp::io
