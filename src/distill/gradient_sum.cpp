#include "distill/gradient_sum.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/version.h>

#include <chrono>

#include "linearpatch/core/error.h"

// c10d's headers expose each backend only when its macro is set (Torch's
// CMake package may set them already); the build sets LP_WITH_GLOO /
// LP_WITH_NCCL where the backend's own headers exist.
#ifdef LP_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(LP_WITH_NCCL) && defined(LP_WITH_CUDA)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace lp {
namespace {

// A collective that never completes means a rank died between the host
// barrier and the sum; give up rather than hang the job for ever.
constexpr std::chrono::minutes kTimeout{10};

template <typename Group>
class ProcessGroupSum : public GradientSum {
 public:
  explicit ProcessGroupSum(c10::intrusive_ptr<Group> group) : group_(std::move(group)) {}
  ~ProcessGroupSum() override { close(); }

  void sum(at::Tensor& flat) override {
    std::vector<at::Tensor> tensors{flat};
    group_->allreduce(tensors)->wait();
  }

 private:
  void close();
  c10::intrusive_ptr<Group> group_;
};

#ifdef LP_WITH_GLOO
template <>
void ProcessGroupSum<c10d::ProcessGroupGloo>::close() {}

std::unique_ptr<GradientSum> join_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size) {
  auto options = c10d::ProcessGroupGloo::Options::create(kTimeout);
  // The ranks are threads of one process: loopback is all they need.
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  return std::make_unique<ProcessGroupSum<c10d::ProcessGroupGloo>>(
      c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options));
}
#endif

#if defined(LP_WITH_NCCL) && defined(LP_WITH_CUDA)
template <>
void ProcessGroupSum<c10d::ProcessGroupNCCL>::close() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  // Since 2.4 a group destroyed without shutdown() warns that NCCL work
  // may still be pending; every sum here has been waited for.
  group_->shutdown();
#endif
}

std::unique_ptr<GradientSum> join_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size) {
  // NCCL's own settings (NCCL_NVLS_ENABLE=0 and the like) come from the
  // environment and are left as the machine sets them.
  return std::make_unique<ProcessGroupSum<c10d::ProcessGroupNCCL>>(
      c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size));
}
#endif

}  // namespace

struct GradientSumGroup::Store {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
};

GradientSumGroup::GradientSumGroup(std::vector<at::Device> devices)
    : devices_(std::move(devices)), store_(std::make_unique<Store>()) {
  const auto reason = unavailable_reason(devices_);
  if (!reason.empty()) throw Error("internal: " + reason);
}

GradientSumGroup::~GradientSumGroup() = default;

std::unique_ptr<GradientSum> GradientSumGroup::join([[maybe_unused]] int rank) {
  [[maybe_unused]] const int size = static_cast<int>(devices_.size());
#if defined(LP_WITH_NCCL) && defined(LP_WITH_CUDA)
  if (devices_.front().is_cuda()) return join_nccl(store_->store, rank, size);
#endif
#ifdef LP_WITH_GLOO
  if (devices_.front().is_cpu()) return join_gloo(store_->store, rank, size);
#endif
  throw Error("internal: no collective backend for " + devices_.front().str());
}

std::string GradientSumGroup::unavailable_reason(const std::vector<at::Device>& devices) {
  if (devices.size() < 2) return "fewer than two devices";
  for (const auto& device : devices)
    if (device.type() != devices.front().type()) return "devices of different kinds";
  if (devices.front().is_cuda()) {
#if defined(LP_WITH_NCCL) && defined(LP_WITH_CUDA)
    return "";
#else
    return "this build has no NCCL (nccl.h was not found at configure time)";
#endif
  }
  if (devices.front().is_cpu()) {
#ifdef LP_WITH_GLOO
    return "";
#else
    return "this build has no Gloo (gloo's headers, Debian's libgloo-dev, were not found at configure time)";
#endif
  }
  return "no collective backend for " + devices.front().str();
}

}  // namespace lp
