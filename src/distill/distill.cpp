#include "linearpatch/distill/distill.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "distill/gradient_sum.h"
#include "distill/teacher_targets.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/model/device.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

// AdamW as torch.optim.AdamW (decoupled weight decay, bias correction).
class AdamW {
 public:
  AdamW(double weight_decay) : weight_decay_(weight_decay) {}
  void step(at::Tensor& param, int64_t slot, double lr) {
    auto& [m, v] = moments_[slot];
    if (!m.defined()) {
      m = at::zeros_like(param);
      v = at::zeros_like(param);
    }
    const auto grad = param.grad();
    const double t = static_cast<double>(++steps_[slot]);
    param.mul_(1 - lr * weight_decay_);
    m.mul_(kBeta1).add_(grad, 1 - kBeta1);
    v.mul_(kBeta2).addcmul_(grad, grad, 1 - kBeta2);
    const auto denominator = (v / (1 - std::pow(kBeta2, t))).sqrt_().add_(kEps);
    param.addcdiv_(m, denominator, -lr / (1 - std::pow(kBeta1, t)));
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  double weight_decay_;
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> moments_;
  std::map<int64_t, int64_t> steps_;
};

// torch.optim.lr_scheduler.CosineAnnealingLR stepped once per step.
double cosine_lr(int64_t step, int64_t total_steps, double lr, double min_lr) {
  if (total_steps <= 1) return lr;
  return min_lr + (lr - min_lr) * (1 + std::cos(M_PI * static_cast<double>(step) / total_steps)) / 2;
}

// Teacher targets for one micro-batch: top-K log-probs + ids, or the full
// log-softmax (ids undefined) when K = 0.
struct Targets {
  at::Tensor log_probs;
  at::Tensor ids;
};

// Leaves on the device of the layer each applies to, where the student
// keeps them (so it uses these very tensors, not copies).
LayerPatches trainable_copies(const LayerPatches& initial, const LlamaModel& dense) {
  auto copy = [&](const std::map<int64_t, at::Tensor>& from) {
    std::map<int64_t, at::Tensor> to;
    for (const auto& [layer, patch] : from)
      to[layer] = patch.to(dense.layer_device(layer), at::kFloat).clone().requires_grad_(true);
    return to;
  };
  return {copy(initial.stream_input), copy(initial.mlp_output)};
}

// The first layer where student and teacher differ: the first removed one,
// or an earlier layer whose MLP output is patched.
int64_t first_changed_layer(const std::vector<int64_t>& removed, const LayerPatches& patches) {
  int64_t first = *std::min_element(removed.begin(), removed.end());
  if (!patches.mlp_output.empty()) first = std::min(first, patches.mlp_output.begin()->first);
  return first;
}

class Distiller {
 public:
  Distiller(const LlamaModel& dense, const std::vector<int64_t>& removed, const LayerPatches& initial,
            const DistillOptions& options)
      : dense_(dense), options_(options), prefix_end_(first_changed_layer(removed, initial)),
        patches_(trainable_copies(initial, dense)), student_(dense.without_layers(removed, patches_)) {}

  DistillResult& result() { return result_; }
  // Where the prefix output enters the layers that train.
  at::Device prefix_device() const { return dense_.layer_device(prefix_end_); }

  at::Tensor prefix(const at::Tensor& ids) {
    at::NoGradGuard no_grad;
    Stopwatch clock;
    auto h = dense_.run_layers(dense_.embed(ids), 0, prefix_end_);
    synchronize_device(h.device());
    result_.seconds_prefix += clock.seconds();
    return h;
  }

  Targets teacher(const at::Tensor& prefix_out) {
    at::NoGradGuard no_grad;
    Stopwatch clock;
    auto hidden = dense_.run_layers(prefix_out, prefix_end_, dense_.num_layers());
    auto logits = dense_.lm_head(dense_.final_norm(hidden));
    Targets t;
    if (options_.top_k > 0) std::tie(t.log_probs, t.ids) = top_k_targets(logits, options_.top_k);
    else t.log_probs = at::log_softmax(logits, -1);
    synchronize_device(logits.device());
    result_.seconds_teacher += clock.seconds();
    return t;
  }

  // Sum over tokens of KL(teacher || student), with the graph for backward.
  at::Tensor student_kl(const at::Tensor& prefix_out, const Targets& targets) {
    // Below prefix_end_ the student's layers are the dense ones, numbered alike.
    auto normed = student_.final_norm(student_.run_layers(prefix_out, prefix_end_, student_.num_layers()));
    const auto log_q = targets.ids.defined() ? at::log_softmax(student_.lm_head_at(normed, targets.ids), -1)
                                             : at::log_softmax(student_.lm_head(normed), -1);
    const auto log_p = targets.log_probs.to(log_q.device());
    return (log_p.exp() * (log_p - log_q)).sum();
  }

  double mean_kl(const at::Tensor& windows) {
    at::NoGradGuard no_grad;
    double kl = 0;
    for (int64_t w0 = 0; w0 < windows.size(0); w0 += options_.micro_batch) {
      const auto ids = windows.narrow(0, w0, std::min(options_.micro_batch, windows.size(0) - w0));
      const auto h = prefix(ids);
      kl += student_kl(h, teacher(h)).item<double>();
    }
    return kl / static_cast<double>(windows.numel());
  }

  // Replaces every patch's gradient, and `loss`, by their sums over the
  // ranks of `sum` (one collective on one flat buffer).
  double sum_over_ranks(GradientSum& sum, double loss) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (auto* group : {&patches_.stream_input, &patches_.mlp_output})
      for (auto& [layer, patch] : *group)
        parts.push_back(patch.grad().defined() ? patch.grad().reshape({-1})
                                               : at::zeros({patch.numel()}, patch.options()));
    parts.push_back(at::full({1}, loss, parts.front().options()));
    auto flat = at::cat(parts);
    sum.sum(flat);
    int64_t offset = 0;
    for (auto* group : {&patches_.stream_input, &patches_.mlp_output})
      for (auto& [layer, patch] : *group) {
        const auto summed = flat.narrow(0, offset, patch.numel()).view_as(patch);
        if (patch.grad().defined()) patch.mutable_grad().copy_(summed);
        else patch.mutable_grad() = summed.clone();
        offset += patch.numel();
      }
    return flat[offset].item<double>();
  }

  void update(AdamW& optimizer, double lr) {
    at::NoGradGuard no_grad;
    int64_t slot = 0;
    for (auto* group : {&patches_.stream_input, &patches_.mlp_output})
      for (auto& [layer, patch] : *group) {
        optimizer.step(patch, slot++, lr);
        patch.mutable_grad().zero_();
      }
  }

  LayerPatches trained_patches() const {
    auto detach = [](const std::map<int64_t, at::Tensor>& from) {
      std::map<int64_t, at::Tensor> to;
      for (const auto& [layer, patch] : from) to[layer] = patch.detach().to(at::kCPU).contiguous();
      return to;
    };
    return {detach(patches_.stream_input), detach(patches_.mlp_output)};
  }

 private:
  LlamaModel dense_;
  DistillOptions options_;
  int64_t prefix_end_;   // layers [0, prefix_end_) are frozen and shared
  LayerPatches patches_;  // leaves with gradients, shared with student_
  LlamaModel student_;
  DistillResult result_;
};

// What the second and later epochs reuse: the teacher's targets (memory or
// an unlinked file) and, when they fit the memory budget, the prefix
// outputs (on the prefix's device, or in host memory when several ranks
// share the cache). Ranks of one group write distinct windows within an
// epoch and read them in later epochs, after a StepBarrier.
class EpochCache {
 public:
  EpochCache(const LlamaModel& dense, int64_t windows, int64_t tokens, const DistillOptions& options,
             const at::Device& prefix_device)
      : done_(static_cast<size_t>(windows), 0) {
    if (options.epochs < 2) return;
    if (options.top_k > 0) targets_.emplace(windows, tokens, options.top_k, options.memory_budget_bytes, options.cache_dir);
    const uint64_t prefix_bytes = static_cast<uint64_t>(windows) * tokens * dense.hidden_size() *
                                  at::elementSize(dense.compute_dtype());
    if (prefix_bytes <= options.memory_budget_bytes)
      prefix_ = at::empty({windows, tokens, dense.hidden_size()},
                          at::TensorOptions().dtype(dense.compute_dtype()).device(prefix_device));
  }

  // Prefix outputs and teacher targets of the windows `picked` of `all_windows`.
  std::pair<at::Tensor, Targets> get(Distiller& distiller, const at::Tensor& picked, const at::Tensor& all_windows) {
    const auto* index = picked.data_ptr<int64_t>();
    const int64_t n = picked.size(0);
    bool seen = true;
    for (int64_t i = 0; i < n; ++i) seen = seen && done_[static_cast<size_t>(index[i])];
    const auto device_index = prefix_.defined() ? picked.to(prefix_.device()) : picked;
    auto h = seen && prefix_.defined() ? prefix_.index_select(0, device_index).to(distiller.prefix_device())
                                       : distiller.prefix(all_windows.index_select(0, picked));
    if (seen && targets_)
      return {h, Targets{targets_->log_probs_all().index_select(0, picked), targets_->ids_all().index_select(0, picked)}};
    auto t = distiller.teacher(h);
    for (int64_t i = 0; i < n; ++i) {
      if (targets_) {
        targets_->log_probs(index[i], 1).copy_(t.log_probs.narrow(0, i, 1));
        targets_->ids(index[i], 1).copy_(t.ids.narrow(0, i, 1));
      }
      if (prefix_.defined()) prefix_.narrow(0, index[i], 1).copy_(h.narrow(0, i, 1));
      done_[static_cast<size_t>(index[i])] = 1;
    }
    return {h, t};
  }
  bool targets_on_disk() const { return targets_ && targets_->on_disk(); }
  bool prefix_cached() const { return prefix_.defined(); }

 private:
  std::optional<TeacherTargets> targets_;
  at::Tensor prefix_;
  std::vector<char> done_;  // not vector<bool>: ranks set distinct windows at once
};

// The host-side meeting point of the ranks before each gradient sum: no
// rank enters a collective that another will never join (once a rank has
// failed or left, every rank stops at its next arrival), and what one
// rank wrote into the shared cache is visible to all afterwards.
class StepBarrier {
 public:
  explicit StepBarrier(int ranks) : present_(ranks) {}

  // Waits for every rank; false when one failed or left: stop.
  bool arrive() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (++arrived_ == present_) {
      arrived_ = 0;
      ++generation_;
      all_arrived_.notify_all();
    } else {
      all_arrived_.wait(lock, [&] { return generation_ != generation || stopped_; });
    }
    return !stopped_;
  }

  // A rank that is done, normally or not, never arrives again.
  void leave(bool failed) {
    std::lock_guard<std::mutex> lock(mutex_);
    --present_;
    stopped_ = stopped_ || failed;
    all_arrived_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable all_arrived_;
  int present_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  bool stopped_ = false;
};

// What ranks of a data-parallel group share; absent for one rank.
struct RankGroup {
  GradientSum& sum;
  StepBarrier& barrier;
};

// The training loop of one rank (of `ranks`): every rank draws the same
// window order, takes its share of each step's windows, and, with several
// ranks, sums gradients and loss before the same AdamW step. Rank 0
// records the losses and reports progress. Stops early when another rank
// failed.
void train(Distiller& distiller, EpochCache& cache, const at::Tensor& windows, const DistillOptions& options,
           int rank, int ranks, std::optional<RankGroup> group) {
  auto& result = distiller.result();
  const int64_t N = windows.size(0), T = windows.size(1);
  const int64_t steps_per_epoch = (N + options.batch_size - 1) / options.batch_size;
  const int64_t total_steps = steps_per_epoch * options.epochs;
  AdamW optimizer(options.weight_decay);
  std::optional<Progress> progress;
  if (rank == 0) progress.emplace("distillation", total_steps, "steps");
  for (int64_t epoch = 0, step = 0; epoch < options.epochs; ++epoch) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed + static_cast<uint64_t>(epoch));
    const auto order = at::randperm(N, generator, at::kLong);
    for (int64_t s0 = 0; s0 < N; s0 += options.batch_size, ++step) {
      const int64_t in_step = std::min(options.batch_size, N - s0);
      const int64_t first = s0 + in_step * rank / ranks, end = s0 + in_step * (rank + 1) / ranks;
      double step_kl = 0;
      for (int64_t m0 = first; m0 < end; m0 += options.micro_batch) {
        const auto picked = order.narrow(0, m0, std::min(options.micro_batch, end - m0)).contiguous();
        const auto [h, t] = cache.get(distiller, picked, windows);
        Stopwatch student_clock;
        auto kl = distiller.student_kl(h, t);
        (kl / static_cast<double>(in_step * T)).backward();
        step_kl += kl.item<double>();
        result.seconds_student += student_clock.seconds();
      }
      if (group) {
        Stopwatch sum_clock;
        if (!group->barrier.arrive()) return;
        step_kl = distiller.sum_over_ranks(group->sum, step_kl);
        result.seconds_gradient_sum += sum_clock.seconds();
      }
      Stopwatch update_clock;
      const double lr = cosine_lr(step, total_steps, options.lr, options.lr / options.min_lr_factor);
      distiller.update(optimizer, lr);
      result.seconds_student += update_clock.seconds();
      if (rank == 0) {
        result.step_losses.push_back(step_kl / static_cast<double>(in_step * T));
        progress->advance(1, fmt::format("KL {:.5f}, lr {:.2e}", result.step_losses.back(), lr));
      }
    }
  }
  if (progress) progress->finish();
}

// One replica per device of `dense` when distillation can run
// data-parallel there: several devices, a collective for them, and room
// for a whole model on each; otherwise none (it runs on `dense` as placed).
std::vector<at::Device> replica_devices(const LlamaModel& dense, const DistillOptions& options) {
  const auto devices = dense.devices();
  if (devices.size() < 2 || !options.data_parallel) return {};
  if (const auto reason = GradientSumGroup::unavailable_reason(devices); !reason.empty()) {
    spdlog::warn("distillation runs through the layers as placed, not data-parallel: {}", reason);
    return {};
  }
  const uint64_t bytes = dense.weight_bytes();
  for (const auto& device : devices) {
    const auto memory = device_memory(device);
    if (memory && memory->free < bytes + working_reserve(*memory)) {
      spdlog::info("distillation runs through the layers as placed, not data-parallel: a whole model ({:.1f} GiB) "
                   "does not fit on {} ({:.1f} GiB free)",
                   static_cast<double>(bytes) / (1 << 30), device.str(), static_cast<double>(memory->free) / (1 << 30));
      return {};
    }
  }
  return devices;
}

// Trains one Distiller per replica, each rank on a thread of its own.
// The ranks' patches stay identical (same start, same summed gradients,
// same steps); rank 0's are the result.
void train_data_parallel(std::vector<std::unique_ptr<Distiller>>& ranks, EpochCache& cache,
                         const at::Tensor& windows, const DistillOptions& options,
                         const std::vector<at::Device>& devices) {
  const int size = static_cast<int>(ranks.size());
  GradientSumGroup group(devices);
  StepBarrier barrier(size);
  std::vector<std::exception_ptr> errors(ranks.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        // The current device and the gradient mode are per thread.
        c10::DeviceGuard device_guard(devices[static_cast<size_t>(r)]);
        c10::AutoGradMode grad_mode(true);
        const auto sum = group.join(r);
        train(*ranks[static_cast<size_t>(r)], cache, windows, options, r, size, RankGroup{*sum, barrier});
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
      barrier.leave(errors[static_cast<size_t>(r)] != nullptr);
    });
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
}

}  // namespace

DistillResult distill_patches(const LlamaModel& dense, const std::vector<int64_t>& removed,
                              const LayerPatches& initial, const at::Tensor& train_windows,
                              const at::Tensor& val_windows, const DistillOptions& options) {
  if (removed.empty() || initial.empty()) throw Error("internal: distillation needs a repaired gap");
  if (options.batch_size % options.micro_batch != 0)
    throw Error("internal: windows per step (" + std::to_string(options.batch_size) +
                ") must be a multiple of windows per pass (" + std::to_string(options.micro_batch) + ")");
  c10::AutoGradMode grad_mode(true);
  Stopwatch total_clock;
  const auto devices = replica_devices(dense, options);
  std::vector<std::unique_ptr<Distiller>> ranks;
  if (devices.empty()) ranks.push_back(std::make_unique<Distiller>(dense, removed, initial, options));
  for (const auto& device : devices)
    ranks.push_back(std::make_unique<Distiller>(dense.replica(device), removed, initial, options));
  if (!devices.empty()) spdlog::info("distillation: data-parallel over {} devices", devices.size());
  auto& distiller = *ranks.front();
  auto& result = distiller.result();
  result.ranks = static_cast<int64_t>(ranks.size());
  Stopwatch validation_clock;
  result.val_kl_before = distiller.mean_kl(val_windows);
  result.seconds_validation = validation_clock.seconds();
  spdlog::info("distillation: validation KL {:.5f} before", result.val_kl_before);

  const int64_t N = train_windows.size(0), T = train_windows.size(1);
  EpochCache cache(dense, N, T, options, devices.empty() ? distiller.prefix_device() : at::Device(at::kCPU));
  if (devices.empty()) train(distiller, cache, train_windows, options, 0, 1, std::nullopt);
  else train_data_parallel(ranks, cache, train_windows, options, devices);
  result.steps = (N + options.batch_size - 1) / options.batch_size * options.epochs;
  result.train_tokens = N * T;
  result.targets_on_disk = cache.targets_on_disk();
  result.prefix_cached = cache.prefix_cached();
  Stopwatch validation_after;
  result.val_kl_after = distiller.mean_kl(val_windows);
  result.seconds_validation += validation_after.seconds();
  spdlog::info("distillation: validation KL {:.5f} -> {:.5f}", result.val_kl_before, result.val_kl_after);
  result.patches = distiller.trained_patches();
  result.seconds_total = total_clock.seconds();
  return result;
}

}  // namespace lp
