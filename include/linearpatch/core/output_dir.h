// Atomic creation of an output directory. Everything is written into a
// hidden temporary sibling (.<name>.tmp-<pid>-<n>); commit() fsyncs the files
// and renames the directory into place, so the final path either does not
// exist or holds a complete output. Without commit() (error, Interrupted)
// the destructor removes the temporary directory.
#pragma once

#include <filesystem>
#include <vector>

namespace lp {

class AtomicOutputDir {
 public:
  // Throws UsageError when `final_path` exists and `overwrite` is false, or
  // when it is inside, equal to, or a parent of any of `protected_inputs`.
  AtomicOutputDir(std::filesystem::path final_path, bool overwrite,
                  const std::vector<std::filesystem::path>& protected_inputs);
  ~AtomicOutputDir();
  AtomicOutputDir(const AtomicOutputDir&) = delete;
  AtomicOutputDir& operator=(const AtomicOutputDir&) = delete;

  const std::filesystem::path& path() const { return temp_path_; }  // write here
  const std::filesystem::path& final_path() const { return final_path_; }
  // Renames into place; with `sync`, files and directories are fsynced
  // first so the output also survives a power loss.
  void commit(bool sync = true);

 private:
  std::filesystem::path final_path_, temp_path_;
  bool overwrite_ = false, committed_ = false;
};

// Throws UsageError when `candidate` is `base` or lies inside it (after
// resolving symlinks and relative parts).
void ensure_not_inside(const std::filesystem::path& candidate, const std::filesystem::path& base,
                       const char* what);

}  // namespace lp
