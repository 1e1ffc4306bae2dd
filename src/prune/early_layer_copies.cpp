#include "linearpatch/prune/early_layer_copies.h"

#include <cstdio>

#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"

namespace fs = std::filesystem;

namespace lp {
namespace {

fs::path staged_file(const fs::path& dir, int64_t layer) {
  char name[64];
  std::snprintf(name, sizeof(name), ".early-layer-%05lld.safetensors", static_cast<long long>(layer));
  return dir / name;
}

}  // namespace

EarlyLayerCopies::EarlyLayerCopies(const io::Checkpoint& source, fs::path dir, io::WriteOptions options)
    : source_(source), dir_(std::move(dir)), options_(options) {
  for (const auto& name : source.tensor_names()) {
    const auto layer = split_layer_tensor_name(name).first;
    if (layer < 0) continue;
    if (static_cast<size_t>(layer) >= layer_tensors_.size()) layer_tensors_.resize(static_cast<size_t>(layer) + 1);
    layer_tensors_[static_cast<size_t>(layer)].push_back(name);
  }
  thread_ = std::thread([this] { run(); });
}

EarlyLayerCopies::~EarlyLayerCopies() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool EarlyLayerCopies::wanted(int64_t layer) {
  std::lock_guard<std::mutex> lock(mutex_);
  return !keep_ || keep_->count(layer) != 0;
}

void EarlyLayerCopies::run() {
  try {
    for (int64_t layer = 0; layer < static_cast<int64_t>(layer_tensors_.size()) && !stop_; ++layer) {
      if (!wanted(layer) || layer_tensors_[static_cast<size_t>(layer)].empty()) continue;
      std::vector<io::OutputTensor> tensors;
      uint64_t bytes = 0;
      for (const auto& name : layer_tensors_[static_cast<size_t>(layer)]) {
        tensors.push_back(io::file_range_copy(source_.tensor(name), name));
        bytes += tensors.back().nbytes;
      }
      const auto path = staged_file(dir_, layer);
      io::write_safetensors(path, std::move(tensors), {}, options_);
      std::lock_guard<std::mutex> lock(mutex_);
      written_[layer] = {path, bytes};
    }
  } catch (...) {
    error_ = std::current_exception();
  }
}

std::map<int64_t, fs::path> EarlyLayerCopies::finish(const std::set<int64_t>& keep) {
  std::set<int64_t> done_early;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    keep_ = keep;
    for (const auto& entry : written_) done_early.insert(entry.first);
  }
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(error_);
  std::map<int64_t, fs::path> kept;
  for (const auto& [layer, copied] : written_) {
    if (!keep.count(layer)) {
      fs::remove(copied.path);
      continue;
    }
    kept[layer] = copied.path;
    if (done_early.count(layer)) bytes_early_ += copied.bytes;
  }
  for (const auto layer : keep)
    if (!kept.count(layer)) throw Error("internal: layer " + std::to_string(layer) + " was not copied early");
  return kept;
}

}  // namespace lp
