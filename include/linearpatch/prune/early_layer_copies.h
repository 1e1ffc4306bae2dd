// Copies a checkpoint's decoder layers, unchanged, into the output while the
// model is still being calibrated, so that writing the pruned checkpoint
// overlaps the forward passes instead of following them. One safetensors
// file per source layer, holding the source's tensor names; once the plan
// is known, write_pruned_checkpoint keeps the files of kept, unedited layers
// (renaming their tensors in place) and the files of removed layers are
// deleted. Copies run on one background thread, layer after layer.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "linearpatch/io/safetensors.h"

namespace lp {
namespace io {
class Checkpoint;
}

class EarlyLayerCopies {
 public:
  // `dir` is the output's temporary directory; `source` must outlive this.
  EarlyLayerCopies(const io::Checkpoint& source, std::filesystem::path dir, io::WriteOptions options);
  ~EarlyLayerCopies();  // stops after the layer being copied; its files stay for the directory's owner to remove
  EarlyLayerCopies(const EarlyLayerCopies&) = delete;
  EarlyLayerCopies& operator=(const EarlyLayerCopies&) = delete;

  // Copies what is left of the layers in `keep` (those not started yet are
  // copied now), deletes the files of all other layers, and returns each
  // kept layer's file. Rethrows the first copy error. Called once.
  std::map<int64_t, std::filesystem::path> finish(const std::set<int64_t>& keep);

  // Bytes of kept layers copied before finish() was called: the part of
  // the write that overlapped the work before it.
  uint64_t bytes_copied_early() const { return bytes_early_; }

 private:
  void run();
  bool wanted(int64_t layer);

  const io::Checkpoint& source_;
  std::filesystem::path dir_;
  io::WriteOptions options_;
  std::vector<std::vector<std::string>> layer_tensors_;  // source names, per layer
  std::mutex mutex_;
  std::optional<std::set<int64_t>> keep_;  // set by finish(); until then every layer is wanted
  std::atomic<bool> stop_{false};
  struct Copied {
    std::filesystem::path path;
    uint64_t bytes = 0;
  };
  std::map<int64_t, Copied> written_;  // guarded by mutex_
  uint64_t bytes_early_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace lp
