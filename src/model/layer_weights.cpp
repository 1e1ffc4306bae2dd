#include "model/layer_weights.h"

#include <atomic>
#include <chrono>
#include <set>

#ifdef LP_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace lp {
namespace {

std::atomic<bool> stack_on_cpu{false};

// `src` into `dst` (same shape, dtype, maybe another device). Host -> GPU:
// page cache -> pinned host memory (a multi-threaded copy, which also takes
// the page faults of a mapped checkpoint in parallel) -> device, on the
// current stream without blocking: a pageable source would go through the
// driver's single-threaded bounce buffer at a fraction of the bus rate.
// Kernels queued later on the stream see the finished copy.
void copy_into(at::Tensor dst, const at::Tensor& src) {
  if (!src.is_cpu() || !dst.is_cuda()) {
    dst.copy_(src);
    return;
  }
  auto pinned = at::empty(src.sizes(), src.options().pinned_memory(true));
  pinned.copy_(src);
  dst.copy_(pinned, /*non_blocking=*/true);
}

at::Tensor copy_to(const at::Tensor& t, const at::Device& device) {
  if (!t.is_cpu() || !device.is_cuda()) return t.to(device);
  auto out = at::empty(t.sizes(), t.options().device(device));
  copy_into(out, t);
  return out;
}

// The parts, stacked row-wise on `device` in one new tensor; each part
// becomes its row range. Undefined (parts untouched) when there is nothing
// to stack or the parts differ in dtype.
at::Tensor stack_rows(const at::Device& device, std::initializer_list<at::Tensor*> parts) {
  const at::Tensor& first = **parts.begin();
  if (!first.defined()) return {};
  int64_t rows = 0;
  for (const auto* part : parts) {
    if (!part->defined() || part->scalar_type() != first.scalar_type() || part->dim() != first.dim()) return {};
    rows += part->size(0);
  }
  auto shape = first.sizes().vec();
  shape[0] = rows;
  auto stacked = at::empty(shape, first.options().device(device));
  int64_t row = 0;
  for (auto* part : parts) {
    auto range = stacked.narrow(0, row, part->size(0));
    copy_into(range, *part);
    row += part->size(0);
    *part = range;
  }
  return stacked;
}

}  // namespace

void stack_projections_on_cpu_for_tests(bool on) { stack_on_cpu = on; }

LayerWeights LayerWeights::to(const at::Device& device) const {
  return to(device, device.is_cuda() || (device.is_cpu() && stack_on_cpu));
}

LayerWeights LayerWeights::to(const at::Device& device, bool stack_qkv) const {
  LayerWeights copy = *this;
  copy.qkv_proj = copy.qkv_bias = at::Tensor();
  if (stack_qkv) {
    using T = LayerTensor;
    copy.qkv_proj = stack_rows(device, {&copy[T::kQProj], &copy[T::kKProj], &copy[T::kVProj]});
    // The biases are stacked only with their weights: the forward adds
    // qkv_bias to the stacked product or none at all.
    if (copy.qkv_proj.defined())
      copy.qkv_bias = stack_rows(device, {&copy[T::kQBias], &copy[T::kKBias], &copy[T::kVBias]});
  }
  copy.for_each([&](at::Tensor& t) {
    if (t.device() != device) t = copy_to(t, device);
  });
  return copy;
}

void LayerWeights::unstack_group_of(const std::string& suffix) {
  using T = LayerTensor;
  static const std::set<T> qkv = {T::kQProj, T::kKProj, T::kVProj, T::kQBias, T::kKBias, T::kVBias};
  const auto id = layer_tensor_from_suffix(suffix);
  if (id && qkv.count(*id)) qkv_proj = qkv_bias = at::Tensor();
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
