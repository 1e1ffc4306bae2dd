#include "linearpatch/model/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <set>

#include "linearpatch/core/error.h"
#include "model/device_testing.h"

#ifdef LP_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace lp {
namespace {

bool meta_allowed = false;

c10::Device resolve_device(const std::string& name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const c10::Error&) {
    throw UsageError("unknown device '" + name + "' (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !at::hasCUDA())
    throw UsageError("device '" + name + "' requested but this build or machine has no CUDA");
  if (!device.is_cpu() && !device.is_cuda() && !(meta_allowed && device.is_meta()))
    throw UsageError("unknown device '" + name + "' (use cpu, cuda or cuda:N)");
  if (device.is_cuda() && device.has_index() && device.index() >= cuda_device_count())
    throw UsageError("device '" + name + "' does not exist: this machine has " + std::to_string(cuda_device_count()) +
                     " CUDA device(s)");
  return device;
}

#ifdef LP_WITH_CUDA
// The caching allocator has no per-device statistics before CUDA's lazy
// initialisation (its first allocation): asking earlier, as placement does
// before loading, throws "Invalid device argument".
void init_cuda_allocator() { at::globalContext().lazyInitDevice(c10::DeviceType::CUDA); }
#endif

}  // namespace

void allow_meta_devices_for_tests() { meta_allowed = true; }

std::optional<uint64_t> peak_device_memory(const c10::Device& device) {
#ifdef LP_WITH_CUDA
  if (device.is_cuda()) {
    init_cuda_allocator();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return static_cast<uint64_t>(stats.reserved_bytes[0].peak);  // [0]: all pools together
  }
#endif
  return std::nullopt;
}

void synchronize_device(const c10::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.has_index() ? device.index() : 0);
}

struct DeviceTimer::Impl {
  Impl(const std::vector<c10::Device>& on, bool host, size_t phases)
      : devices(on), host_clock(host), seconds(phases, 0.0) {}
  std::vector<c10::Device> devices;
  bool host_clock;
  std::vector<double> seconds;
  std::chrono::steady_clock::time_point started;
#ifdef LP_WITH_CUDA
  struct Pending {
    cudaEvent_t begin = nullptr, end = nullptr;
    size_t phase = 0;
  };
  std::deque<Pending> pending;
  cudaEvent_t open = nullptr;  // recorded by begin(), not yet ended

  static cudaEvent_t record(const c10::Device& device) {
    c10::cuda::CUDAGuard guard(device.has_index() ? device.index() : c10::cuda::current_device());
    cudaEvent_t event = nullptr;
    C10_CUDA_CHECK(cudaEventCreate(&event));
    C10_CUDA_CHECK(cudaEventRecord(event, c10::cuda::getCurrentCUDAStream().stream()));
    return event;
  }
  // Adds the finished pairs at the front (all of them when `wait`).
  void collect(bool wait) {
    while (!pending.empty()) {
      auto& p = pending.front();
      if (wait) C10_CUDA_CHECK(cudaEventSynchronize(p.end));
      else if (cudaEventQuery(p.end) != cudaSuccess) break;
      float ms = 0;
      C10_CUDA_CHECK(cudaEventElapsedTime(&ms, p.begin, p.end));
      seconds[p.phase] += ms / 1000.0;
      cudaEventDestroy(p.begin);
      cudaEventDestroy(p.end);
      pending.pop_front();
    }
    (void)cudaGetLastError();  // cudaEventQuery's "not ready" is no error
  }
#endif
};

DeviceTimer::DeviceTimer(const std::vector<c10::Device>& devices, size_t phases)
    : impl_(std::make_unique<Impl>(devices, devices.size() != 1 || !devices.front().is_cuda(), phases)) {
#ifndef LP_WITH_CUDA
  impl_->host_clock = true;
#endif
}

DeviceTimer::~DeviceTimer() {
#ifdef LP_WITH_CUDA
  for (auto& p : impl_->pending) {
    cudaEventDestroy(p.begin);
    cudaEventDestroy(p.end);
  }
  if (impl_->open) cudaEventDestroy(impl_->open);
#endif
}

void DeviceTimer::begin() {
  if (impl_->host_clock) {
    for (const auto& device : impl_->devices) synchronize_device(device);
    impl_->started = std::chrono::steady_clock::now();
    return;
  }
#ifdef LP_WITH_CUDA
  if (impl_->open) cudaEventDestroy(impl_->open);
  impl_->open = Impl::record(impl_->devices.front());
#endif
}

void DeviceTimer::end(size_t phase) {
  if (impl_->host_clock) {
    for (const auto& device : impl_->devices) synchronize_device(device);
    const auto elapsed = std::chrono::steady_clock::now() - impl_->started;
    impl_->seconds.at(phase) += std::chrono::duration<double>(elapsed).count();
    return;
  }
#ifdef LP_WITH_CUDA
  if (!impl_->open || phase >= impl_->seconds.size()) throw Error("internal: DeviceTimer::end without begin");
  impl_->pending.push_back({impl_->open, Impl::record(impl_->devices.front()), phase});
  impl_->open = nullptr;
  impl_->collect(/*wait=*/false);
#endif
}

std::vector<double> DeviceTimer::seconds() {
#ifdef LP_WITH_CUDA
  if (!impl_->host_clock) impl_->collect(/*wait=*/true);
#endif
  return impl_->seconds;
}

std::vector<c10::Device> resolve_devices(const std::vector<std::string>& names) {
  if (names.empty()) throw UsageError("no device named");
  std::vector<c10::Device> devices;
  std::set<c10::DeviceIndex> cuda_indices;
  for (const auto& name : names) {
    const auto device = resolve_device(name);
    if (!devices.empty() && device.type() != devices.front().type() && !device.is_meta())
      throw UsageError("devices '" + names.front() + "' and '" + name + "' are of different kinds; use one kind");
    if (device.is_cuda() && names.size() > 1) {
      if (!device.has_index())
        throw UsageError("several CUDA devices need an index each ('cuda:N'), not '" + name + "'");
      if (!cuda_indices.insert(device.index()).second) throw UsageError("device '" + name + "' is named twice");
    }
    devices.push_back(device);
  }
  return devices;
}

int64_t cuda_device_count() {
#ifdef LP_WITH_CUDA
  return at::hasCUDA() ? static_cast<int64_t>(c10::cuda::device_count()) : 0;
#else
  return 0;
#endif
}

std::optional<DeviceMemory> device_memory(const c10::Device& device) {
#ifdef LP_WITH_CUDA
  if (device.is_cuda()) {
    const c10::DeviceIndex index = device.has_index() ? device.index() : 0;
    c10::cuda::CUDAGuard guard(index);
    size_t free = 0, total = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    init_cuda_allocator();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    const auto cached = stats.reserved_bytes[0].current - stats.allocated_bytes[0].current;
    return DeviceMemory{free + static_cast<uint64_t>(std::max<int64_t>(cached, 0)), total};
  }
#endif
  return std::nullopt;
}

uint64_t working_reserve(const DeviceMemory& memory) {
  return std::max<uint64_t>(uint64_t{4} << 30, memory.total / 8);
}

}  // namespace lp
