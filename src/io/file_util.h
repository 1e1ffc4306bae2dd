// POSIX file helpers shared by the io and config readers and writers. Every
// system call is checked; failures name the file and the errno text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace lp::io {

// Throws InputError("<where>: <what>"), the form of every reader message;
// `where` is a file, or a file and the tensor or entry at fault.
[[noreturn]] void fail_input(const std::string& where, const std::string& what);

// Opens `path` read-only and returns the descriptor and its size. Anything but
// a regular file (a directory, a FIFO that would block) is an InputError.
struct OpenedFile {
  int fd = -1;
  uint64_t size = 0;
};
OpenedFile open_regular_file(const std::filesystem::path& path);

// Filesystem queries that answer false, instead of throwing, when a path
// cannot be examined (name too long, permission denied): the open that
// follows reports the real reason as an lp error.
bool path_exists(const std::filesystem::path& path);
bool directory_exists(const std::filesystem::path& path);
bool regular_file_exists(const std::filesystem::path& path);

// Whether `name` (read from a possibly hostile file) names an entry of a
// directory rather than a path that could lead out of it.
bool is_plain_file_name(const std::string& name);

// Reads a whole small file (JSON, refs); refusing files over `max_bytes`
// keeps hostile inputs from costing unbounded memory.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes);

// A file being written. Created exclusively (an existing file is never
// truncated: it may be mmapped by a reader of the same checkpoint) and
// removed again unless commit() succeeds, so a failed write leaves no
// half-written file behind. The positional calls (`*_at`) may run from
// several threads at once on disjoint ranges.
class OutputFile {
 public:
  explicit OutputFile(std::filesystem::path path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Allocates `size` bytes up front, so a full disk is reported here and
  // not as lost data after delayed allocation.
  void reserve(uint64_t size);
  void write(const void* data, uint64_t size);  // appends at the sequential position
  void write_at(uint64_t offset, const void* data, uint64_t size);
  // Copies `size` bytes read from `src_fd` at `src_offset` to `offset`,
  // kernel-side when the file systems allow it.
  void copy_at(uint64_t offset, int src_fd, uint64_t src_offset, uint64_t size);
  // Starts writing [offset, offset + size) back to the disk without waiting
  // for it (sync_file_range), so that the fsync in commit() finds little
  // left to do. Safe beside the other positional calls.
  void start_writeback(uint64_t offset, uint64_t size);
  // Closes the file; with `sync`, fsyncs it first so the data survives a
  // power loss.
  void commit(bool sync = true);

 private:
  void copy_with_pread(uint64_t offset, int src_fd, uint64_t src_offset, uint64_t size);
  [[noreturn]] void fail(const std::string& action, int err) const;

  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t position_ = 0;
  bool committed_ = false;
};

// Files committed with sync on background threads, one per file, so that
// one file's flush to the disk overlaps the writing of the next. wait()
// rethrows the first failure, whose message names the file; a file whose
// commit failed is removed like any uncommitted OutputFile.
class BackgroundCommits {
 public:
  BackgroundCommits() = default;
  ~BackgroundCommits();  // waits, ignoring failures (an error is already on its way)
  BackgroundCommits(const BackgroundCommits&) = delete;
  BackgroundCommits& operator=(const BackgroundCommits&) = delete;

  void commit(std::unique_ptr<OutputFile> file);
  void wait();

 private:
  std::vector<std::future<void>> pending_;
};

// Writes `bytes` to a new file at `path` with OutputFile's guarantees.
void write_new_file(const std::filesystem::path& path, const std::string& bytes, bool sync = true);

}  // namespace lp::io
