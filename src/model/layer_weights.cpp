#include "model/layer_weights.h"

#include <chrono>

#ifdef LP_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace lp {

// Host -> GPU: page cache -> pinned host memory (a multi-threaded copy,
// which also takes the page faults of a mapped checkpoint in parallel) ->
// device, on the current stream without blocking: a pageable source would
// go through the driver's single-threaded bounce buffer at a fraction of
// the bus rate. Kernels queued later on the stream see the finished copy.
LayerWeights LayerWeights::to(const at::Device& device) const {
  LayerWeights copy = *this;
  copy.for_each([&](at::Tensor& t) {
    if (!t.is_cpu() || !device.is_cuda()) {
      t = t.to(device);
      return;
    }
    auto pinned = at::empty(t.sizes(), t.options().pinned_memory(true));
    pinned.copy_(t);
    t = pinned.to(device, /*non_blocking=*/true);
  });
  return copy;
}

bool BackgroundUploader::available(const at::Device& device) {
#ifdef LP_WITH_CUDA
  return device.is_cuda();
#else
  return false;
#endif
}

BackgroundUploader::BackgroundUploader(std::vector<std::shared_ptr<const LayerWeights>> layers,
                                       const at::Device& device)
    : host_(std::move(layers)), device_(device), uploaded_(host_.size()) {
  for (size_t i = 0; i < host_.size(); ++i) index_[host_[i].get()] = i;
  thread_ = std::thread([this] { run(); });
}

BackgroundUploader::~BackgroundUploader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  thread_.join();
}

void BackgroundUploader::run() {
  try {
#ifdef LP_WITH_CUDA
    // A side stream, synchronised before a layer is handed out: the copy
    // overlaps kernels of the main stream, and users never see a half copy.
    auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.has_index() ? device_.index() : 0);
    c10::cuda::CUDAStreamGuard guard(stream);
#endif
    for (size_t i = 0; i < host_.size(); ++i) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return;
      }
      auto layer = std::make_shared<const LayerWeights>(host_[i]->to(device_));
#ifdef LP_WITH_CUDA
      stream.synchronize();
#endif
      std::lock_guard<std::mutex> lock(mutex_);
      uploaded_[i] = std::move(layer);
      ready_cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
    ready_cv_.notify_all();
  }
}

std::shared_ptr<const LayerWeights> BackgroundUploader::get(const std::shared_ptr<const LayerWeights>& host) {
  const auto it = index_.find(host.get());
  if (it == index_.end()) return std::make_shared<const LayerWeights>(host->to(device_));
  std::unique_lock<std::mutex> lock(mutex_);
  const auto start = std::chrono::steady_clock::now();
  ready_cv_.wait(lock, [&] { return uploaded_[it->second] != nullptr || error_; });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (error_) std::rethrow_exception(error_);
  return uploaded_[it->second];
}

double BackgroundUploader::wait_seconds() {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_seconds_;
}

}  // namespace lp
