// Queries about the compute device that the rest of the library needs
// without including CUDA headers.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lp {

// Peak bytes reserved by libtorch's caching allocator on a CUDA device since
// the process started; nullopt on the CPU or in builds without CUDA.
std::optional<uint64_t> peak_device_memory(const c10::Device& device);

// Waits for queued device work, so host clocks measure it (no-op on CPU).
void synchronize_device(const c10::Device& device);

// Device seconds of phases of queued work, measured without making the
// host wait: on one CUDA device, events recorded on its current stream at
// begin() and end() and read once they complete; on the CPU (whose work is
// done when a call returns) or across several devices, the host clock
// after synchronising every one of them.
class DeviceTimer {
 public:
  DeviceTimer(const std::vector<c10::Device>& devices, size_t phases);
  ~DeviceTimer();
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  void begin();             // the next phase's work is queued after this
  void end(size_t phase);   // ... and before this
  std::vector<double> seconds();  // per phase; waits for the work queued so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The devices named ("cpu", "cuda", "cuda:N"): one, or several of one kind,
// CUDA ones by distinct index. UsageError naming the entry otherwise, or
// when this build or machine lacks it.
std::vector<c10::Device> resolve_devices(const std::vector<std::string>& names);

// CUDA devices this process sees (0 in builds without CUDA).
int64_t cuda_device_count();

struct DeviceMemory {
  uint64_t free = 0;   // the driver's free bytes plus what libtorch's cache holds unused
  uint64_t total = 0;
};
// Nullopt on the CPU or in builds without CUDA.
std::optional<DeviceMemory> device_memory(const c10::Device& device);

// Memory a device keeps free of weights for activations and workspace
// when a model is placed or replicated by free memory: an eighth of the
// device, at least 4 GiB.
uint64_t working_reserve(const DeviceMemory& memory);

}  // namespace lp
