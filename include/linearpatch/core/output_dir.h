// Atomic creation of an output directory, one run per output.
//
// Everything is written into a hidden temporary sibling
// (.<name>.tmp-<pid>-<n>); commit() fsyncs the files and renames the
// directory into place, so the final path either does not exist or holds a
// complete output. Without commit() (error, Interrupted) the destructor
// removes the temporary directory.
//
// The run owns the output through a lock file beside it (.<name>.lock, its
// pid inside) held with flock(2) for the object's life: the kernel drops the
// lock when the process dies, however it dies. So a second run to the same
// output is refused while the first lives, and temporaries of that output
// found by the lock's holder belong to runs that died (SIGKILL, OOM killer,
// power loss): they are removed, and the removal logged with the space freed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lp {

// What a new AtomicOutputDir refuses before touching the disk: UsageError
// when `final_path` exists and `overwrite` is false, or when it is inside,
// equal to, or a parent of any of `protected_inputs`.
void check_output_path(const std::filesystem::path& final_path, bool overwrite,
                       const std::vector<std::filesystem::path>& protected_inputs);

// A temporary of an earlier run of the same output, removed at start.
struct RemovedTemporary {
  std::filesystem::path path;
  uint64_t bytes = 0;  // disk space freed (allocated blocks)
};

class AtomicOutputDir {
 public:
  // Throws as check_output_path(); Error naming the other run's pid when a
  // live run holds the output (that run's files are left alone).
  AtomicOutputDir(std::filesystem::path final_path, bool overwrite,
                  const std::vector<std::filesystem::path>& protected_inputs);
  ~AtomicOutputDir();
  AtomicOutputDir(const AtomicOutputDir&) = delete;
  AtomicOutputDir& operator=(const AtomicOutputDir&) = delete;

  const std::filesystem::path& path() const { return temp_path_; }  // write here
  const std::filesystem::path& final_path() const { return final_path_; }
  // Leftovers of dead runs this one removed when it started.
  const std::vector<RemovedTemporary>& removed_leftovers() const { return removed_; }
  // Renames into place; with `sync`, files and directories are fsynced
  // first so the output also survives a power loss.
  void commit(bool sync = true);

 private:
  void lock();
  void remove_leftovers();
  void release();  // removes the temporary unless committed, then unlinks and unlocks the lock file

  std::filesystem::path final_path_, temp_path_, lock_path_;
  int lock_fd_ = -1;
  bool overwrite_ = false, committed_ = false;
  std::vector<RemovedTemporary> removed_;
};

// Throws UsageError when `candidate` is `base` or lies inside it (after
// resolving symlinks and relative parts).
void ensure_not_inside(const std::filesystem::path& candidate, const std::filesystem::path& base,
                       const char* what);

// Bytes an unprivileged process may still write on the filesystem that
// would hold `path` (statvfs of its nearest existing ancestor); nullopt when
// that cannot be told.
std::optional<uint64_t> available_bytes(const std::filesystem::path& path);

// Error naming the path, the bytes needed and those available when the
// filesystem of `path` has less than `bytes` free. `what` says what needs
// them ("the pruned checkpoint").
void require_free_space(const std::filesystem::path& path, uint64_t bytes, const std::string& what);

// Tests replace statvfs here to act out a full disk; an empty function
// restores it.
using FreeSpaceProbe = std::function<std::optional<uint64_t>(const std::filesystem::path&)>;
void set_free_space_probe(FreeSpaceProbe probe);

// "14.2 GB", "310 MB", "4.1 kB": sizes in log and error lines.
std::string describe_bytes(uint64_t bytes);

}  // namespace lp
