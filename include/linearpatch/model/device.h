// Queries about the compute device that the rest of the library needs
// without including CUDA headers.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace lp {

// Peak bytes reserved by libtorch's caching allocator on a CUDA device since
// the process started; nullopt on the CPU or in builds without CUDA.
std::optional<uint64_t> peak_device_memory(const c10::Device& device);

// Waits for queued device work, so host clocks measure it (no-op on CPU).
void synchronize_device(const c10::Device& device);

}  // namespace lp
