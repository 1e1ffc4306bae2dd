// Where decoder-layer weights live and how they reach the compute device.
// Private to lp_core.
//
//  * resident: on the device, uploaded at load time;
//  * BackgroundUploader: on a CUDA device, layers are uploaded in order by
//    a background thread on a side stream while the first layers already
//    compute, so loading overlaps the first forward pass;
//  * UploadCache (streaming, --max-gpu-memory): layers stay in host memory
//    and one at a time is on the device.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "linearpatch/config/tensor_table.h"

namespace lp {

// One decoder layer's tensors, indexed by the family tables' ids
// (config/tensor_table.h); tensors the layer does not hold (a family's
// absent biases, a removed sublayer's weights) are undefined.
struct LayerWeights {
  std::array<at::Tensor, kLayerTensorCount> tensors;
  int64_t attention_window = 0;  // 0: full causal attention
  // q/k/v stacked row-wise on CUDA devices (see to()): one matrix product
  // instead of three, and q_proj, k_proj, v_proj (and their biases) are row
  // ranges of these. Undefined when not stacked; never in for_each(), as
  // they own no bytes beyond the parts'. gate/up are not stacked: SiLU-mul
  // over the two column halves of one product took longer than the second
  // product saved (6.76 ms against 6.10 ms for 8 x 2048 tokens of an 8B
  // layer on an H200, scripts/gpu_op_probe.py).
  at::Tensor qkv_proj, qkv_bias;

  at::Tensor& operator[](LayerTensor id) { return tensors[static_cast<size_t>(id)]; }
  const at::Tensor& operator[](LayerTensor id) const { return tensors[static_cast<size_t>(id)]; }
  // Whether the layer holds `sublayer` (its output projection stands for it).
  bool has(Sublayer sublayer) const {
    return (*this)[sublayer == Sublayer::kAttention ? LayerTensor::kOProj : LayerTensor::kDownProj].defined();
  }
  // Where the layer's tensors are (all on one device).
  at::Device device() const {
    for (const auto& t : tensors)
      if (t.defined()) return t.device();
    return at::kCPU;
  }

  template <typename Fn>
  void for_each(Fn&& fn) {
    for (auto& t : tensors)
      if (t.defined()) fn(t);
  }
  at::Tensor* field(const std::string& suffix) {
    const auto id = layer_tensor_from_suffix(suffix);
    return !id || !(*this)[*id].defined() ? nullptr : &(*this)[*id];
  }
  // A copy on `device`, q/k/v stacked there when it is a CUDA device.
  // Host -> GPU goes through pinned memory without blocking the current
  // stream (see layer_weights.cpp).
  LayerWeights to(const at::Device& device) const;
  LayerWeights to(const at::Device& device, bool stack_qkv) const;
  // Called before `suffix`'s tensor is replaced: q/k/v run unstacked from
  // then on when it is one of them, so the stacked copy is never stale.
  void unstack_group_of(const std::string& suffix);
};

// The one decoder layer uploaded to the device while streaming, shared by
// every model handle derived from the same weights.
class UploadCache {
 public:
  std::shared_ptr<const LayerWeights> get(const std::shared_ptr<const LayerWeights>& host, const at::Device& device) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (host.get() != source_) {
      uploaded_.reset();  // free the previous layer before the next arrives
      uploaded_ = std::make_shared<const LayerWeights>(host->to(device));
      source_ = host.get();
    }
    return uploaded_;
  }

 private:
  std::mutex mutex_;
  const LayerWeights* source_ = nullptr;
  std::shared_ptr<const LayerWeights> uploaded_;
};

// Uploads `layers` to `device` in order on a background thread; get()
// waits for a layer. Layers it does not know (e.g. edited copies) are
// uploaded on the caller's thread.
class BackgroundUploader {
 public:
  BackgroundUploader(std::vector<std::shared_ptr<const LayerWeights>> layers, const at::Device& device);
  ~BackgroundUploader();
  BackgroundUploader(const BackgroundUploader&) = delete;
  BackgroundUploader& operator=(const BackgroundUploader&) = delete;

  std::shared_ptr<const LayerWeights> get(const std::shared_ptr<const LayerWeights>& host);
  // Seconds callers of get() have spent waiting for uploads so far.
  double wait_seconds();
  // True when this build can upload asynchronously (CUDA builds on a CUDA device).
  static bool available(const at::Device& device);

 private:
  void run();

  std::vector<std::shared_ptr<const LayerWeights>> host_;
  std::map<const LayerWeights*, size_t> index_;
  at::Device device_;
  std::mutex mutex_;
  std::condition_variable ready_cv_;
  std::vector<std::shared_ptr<const LayerWeights>> uploaded_;
  std::exception_ptr error_;
  double wait_seconds_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace lp
