// Sums tensors across the ranks of data-parallel distillation, which are
// threads of this process, one per device, through libtorch's c10d:
// ProcessGroupNCCL on CUDA devices, ProcessGroupGloo on the CPU (the same
// code, so a test checks it without GPUs). Private to lp_core.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace lp {

// One rank's end of a group.
class GradientSum {
 public:
  virtual ~GradientSum() = default;
  // Replaces `flat` (same size on every rank, on the rank's device) by its
  // sum over the ranks; every rank calls it the same number of times.
  virtual void sum(at::Tensor& flat) = 0;
};

// The ranks' meeting point: rank r of devices.size() runs on devices[r].
class GradientSumGroup {
 public:
  explicit GradientSumGroup(std::vector<at::Device> devices);
  ~GradientSumGroup();
  // Joins as `rank`, from that rank's own thread (joining may wait for
  // the others).
  std::unique_ptr<GradientSum> join(int rank);

  // Empty when this build can sum across `devices` (all CPU with Gloo, all
  // CUDA with NCCL), else why not.
  static std::string unavailable_reason(const std::vector<at::Device>& devices);

 private:
  struct Store;
  std::vector<at::Device> devices_;
  std::unique_ptr<Store> store_;
};

}  // namespace lp
