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

#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lp {

struct LayerWeights {
  at::Tensor input_norm, post_attention_norm;
  at::Tensor q_proj, k_proj, v_proj, o_proj;
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined unless the config has them
  at::Tensor q_norm, k_norm;                  // [head_dim], undefined unless qk_norm
  at::Tensor gate_proj, up_proj, down_proj;
  at::Tensor gate_bias, up_bias, down_bias;  // undefined unless mlp_bias
  int64_t attention_window = 0;               // 0: full causal attention
  // q/k/v stacked row-wise on CUDA devices (see to()): one matrix product
  // instead of three, and q_proj, k_proj, v_proj (and their biases) are row
  // ranges of these. Undefined when not stacked; never in for_each(), as
  // they own no bytes beyond the parts'. gate/up are not stacked: SiLU-mul
  // over the two column halves of one product took longer than the second
  // product saved (6.76 ms against 6.10 ms for 8 x 2048 tokens of an 8B
  // layer on an H200, scripts/gpu_op_probe.py).
  at::Tensor qkv_proj, qkv_bias;

  template <typename Fn>
  void for_each(Fn&& fn) {
    for (auto* t : {&input_norm, &post_attention_norm, &q_proj, &k_proj, &v_proj, &o_proj, &q_bias, &k_bias, &v_bias,
                    &o_bias, &q_norm, &k_norm, &gate_proj, &up_proj, &down_proj, &gate_bias, &up_bias, &down_bias})
      if (t->defined()) fn(*t);
  }
  at::Tensor* field(const std::string& suffix) {
    static const std::map<std::string, at::Tensor LayerWeights::*> fields = {
        {"input_layernorm.weight", &LayerWeights::input_norm},
        {"post_attention_layernorm.weight", &LayerWeights::post_attention_norm},
        {"self_attn.q_proj.weight", &LayerWeights::q_proj}, {"self_attn.k_proj.weight", &LayerWeights::k_proj},
        {"self_attn.v_proj.weight", &LayerWeights::v_proj}, {"self_attn.o_proj.weight", &LayerWeights::o_proj},
        {"self_attn.q_proj.bias", &LayerWeights::q_bias},   {"self_attn.k_proj.bias", &LayerWeights::k_bias},
        {"self_attn.v_proj.bias", &LayerWeights::v_bias},   {"self_attn.o_proj.bias", &LayerWeights::o_bias},
        {"self_attn.q_norm.weight", &LayerWeights::q_norm}, {"self_attn.k_norm.weight", &LayerWeights::k_norm},
        {"mlp.gate_proj.weight", &LayerWeights::gate_proj}, {"mlp.up_proj.weight", &LayerWeights::up_proj},
        {"mlp.down_proj.weight", &LayerWeights::down_proj}, {"mlp.gate_proj.bias", &LayerWeights::gate_bias},
        {"mlp.up_proj.bias", &LayerWeights::up_bias},       {"mlp.down_proj.bias", &LayerWeights::down_bias}};
    const auto it = fields.find(suffix);
    return it == fields.end() || !(this->*(it->second)).defined() ? nullptr : &(this->*(it->second));
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
