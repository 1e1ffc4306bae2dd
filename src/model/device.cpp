#include "linearpatch/model/device.h"

#include <ATen/detail/CUDAHooksInterface.h>

#ifdef LP_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lp {

std::optional<uint64_t> peak_device_memory(const c10::Device& device) {
#ifdef LP_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return static_cast<uint64_t>(stats.reserved_bytes[0].peak);  // [0]: all pools together
  }
#endif
  return std::nullopt;
}

void synchronize_device(const c10::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.has_index() ? device.index() : 0);
}

}  // namespace lp
