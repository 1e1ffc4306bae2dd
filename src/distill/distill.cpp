#include "linearpatch/distill/distill.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
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

// Phases of DeviceTimer in a Distiller.
enum Phase : size_t { kPrefixPhase, kTeacherPhase, kStudentPhase, kPhases };

class Distiller {
 public:
  Distiller(const LlamaModel& dense, const std::vector<int64_t>& removed, const LayerPatches& initial,
            const DistillOptions& options)
      : dense_(dense), options_(options), prefix_end_(first_changed_layer(removed, initial)),
        patches_(trainable_copies(initial, dense)), student_(dense.without_layers(removed, patches_)),
        timer_(dense.devices(), kPhases) {}

  DistillResult& result() { return result_; }
  DeviceTimer& timer() { return timer_; }
  // The phases' device seconds into result().
  void record_phase_seconds() {
    const auto seconds = timer_.seconds();
    result_.seconds_prefix = seconds[kPrefixPhase];
    result_.seconds_teacher = seconds[kTeacherPhase];
    result_.seconds_student = seconds[kStudentPhase];
  }
  // Where the prefix output enters the layers that train.
  at::Device prefix_device() const { return dense_.layer_device(prefix_end_); }

  at::Tensor prefix(const at::Tensor& ids) {
    at::NoGradGuard no_grad;
    timer_.begin();
    auto h = dense_.run_layers(dense_.embed(ids), 0, prefix_end_);
    timer_.end(kPrefixPhase);
    return h;
  }

  Targets teacher(const at::Tensor& prefix_out) {
    at::NoGradGuard no_grad;
    timer_.begin();
    auto normed = dense_.final_norm(dense_.run_layers(prefix_out, prefix_end_, dense_.num_layers()));
    Targets t;
    // The top K of the logits as the product gives them (bf16 on a GPU):
    // float32 would only be a rounded-up copy of the same values, and
    // converting every vocabulary entry cost as much as the top-K itself.
    if (options_.top_k > 0)
      std::tie(t.log_probs, t.ids) = top_k_targets(dense_.lm_head_compute_dtype(normed), options_.top_k);
    else
      t.log_probs = at::log_softmax(dense_.lm_head(normed), -1);
    timer_.end(kTeacherPhase);
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

  // Mean KL per token over `windows`. The dense side of every pass over
  // the same windows is the same: with `keep`, its prefix outputs and
  // targets are kept (when they fit the memory budget) for the next call,
  // which then runs only the student.
  double mean_kl(const at::Tensor& windows, bool keep) {
    at::NoGradGuard no_grad;
    at::Tensor kl;
    int64_t batch = 0;
    for (int64_t w0 = 0; w0 < windows.size(0); w0 += options_.micro_batch, ++batch) {
      at::Tensor h;
      Targets t;
      if (batch < static_cast<int64_t>(validation_.size())) {
        h = validation_[static_cast<size_t>(batch)].first.to(prefix_device());
        t = validation_[static_cast<size_t>(batch)].second;
      } else {
        h = prefix(windows.narrow(0, w0, std::min(options_.micro_batch, windows.size(0) - w0)));
        t = teacher(h);
        // Kept in host memory: the device's is the training's.
        if (keep && fits_validation_cache(windows))
          validation_.emplace_back(h.to(at::kCPU),
                                   Targets{t.log_probs.to(at::kCPU), t.ids.defined() ? t.ids.to(at::kCPU) : t.ids});
      }
      const auto part = student_kl(h, t).to(at::kDouble);
      kl = kl.defined() ? kl + part : part;
    }
    if (!keep) validation_.clear();
    return kl.defined() ? kl.item<double>() / static_cast<double>(windows.numel()) : 0.0;
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
  DeviceTimer timer_;
  DistillResult result_;
  std::vector<std::pair<at::Tensor, Targets>> validation_;  // see mean_kl

  bool fits_validation_cache(const at::Tensor& windows) const {
    const uint64_t targets = options_.top_k > 0
                                 ? static_cast<uint64_t>(options_.top_k) * (sizeof(float) + sizeof(int64_t))
                                 : static_cast<uint64_t>(dense_.config().vocab_size) * sizeof(float);
    const uint64_t per_token =
        static_cast<uint64_t>(dense_.hidden_size()) * at::elementSize(dense_.compute_dtype()) + targets;
    return static_cast<uint64_t>(windows.numel()) * per_token <= options_.memory_budget_bytes;
  }
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

// The dense side of the coming micro-batches (frozen prefix outputs and
// teacher targets), which no patch changes. On a GPU it is computed for at
// least kDenseWindows windows at once: one window of 2 048 tokens is too
// small a matrix product to keep the device busy. Elsewhere it is one
// micro-batch at a time, so CPU results stay exactly what they were.
class DenseAhead {
 public:
  static constexpr int64_t kDenseWindows = 8;

  // `plan`: the micro-batches (window indices) in the order next() is called.
  DenseAhead(Distiller& distiller, EpochCache& cache, const at::Tensor& windows, std::vector<at::Tensor> plan)
      : distiller_(distiller), cache_(cache), windows_(windows), plan_(std::move(plan)),
        min_windows_(distiller.prefix_device().is_cuda() ? kDenseWindows : 1) {}

  std::pair<at::Tensor, Targets> next() {
    if (ready_.empty()) fill();
    auto out = std::move(ready_.front());
    ready_.pop_front();
    return out;
  }

 private:
  void fill() {
    std::vector<at::Tensor> parts;
    int64_t windows = 0;
    while (planned_ < plan_.size() && (parts.empty() || windows < min_windows_)) {
      parts.push_back(plan_[planned_++]);
      windows += parts.back().size(0);
    }
    if (parts.empty()) throw Error("internal: distillation asked for more windows than planned");
    const auto [h, t] = cache_.get(distiller_, parts.size() == 1 ? parts.front() : at::cat(parts), windows_);
    int64_t offset = 0;
    for (const auto& part : parts) {
      const int64_t n = part.size(0);
      ready_.emplace_back(h.narrow(0, offset, n), Targets{t.log_probs.narrow(0, offset, n),
                                                          t.ids.defined() ? t.ids.narrow(0, offset, n) : t.ids});
      offset += n;
    }
  }

  Distiller& distiller_;
  EpochCache& cache_;
  const at::Tensor& windows_;
  std::vector<at::Tensor> plan_;
  int64_t min_windows_;
  size_t planned_ = 0;
  std::deque<std::pair<at::Tensor, Targets>> ready_;
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
  // A step's loss is read once the next step is queued, so the host never
  // waits for the device to drain (rank 0 records it then).
  struct Loss {
    at::Tensor sum;  // double scalar on the device; undefined: no windows
    int64_t tokens;
    double lr;
  };
  std::optional<Loss> unread;
  auto record = [&](const Loss& loss) {
    const double sum = loss.sum.defined() ? loss.sum.item<double>() : 0.0;
    result.step_losses.push_back(sum / static_cast<double>(loss.tokens));
    progress->advance(1, fmt::format("KL {:.5f}, lr {:.2e}", result.step_losses.back(), loss.lr));
  };
  for (int64_t epoch = 0, step = 0; epoch < options.epochs; ++epoch) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed + static_cast<uint64_t>(epoch));
    const auto order = at::randperm(N, generator, at::kLong);
    // This rank's share of each step, in micro-batches.
    auto micro_batches = [&](int64_t s0) {
      const int64_t in_step = std::min(options.batch_size, N - s0);
      const int64_t first = s0 + in_step * rank / ranks, end = s0 + in_step * (rank + 1) / ranks;
      std::vector<at::Tensor> picked;
      for (int64_t m0 = first; m0 < end; m0 += options.micro_batch)
        picked.push_back(order.narrow(0, m0, std::min(options.micro_batch, end - m0)).contiguous());
      return picked;
    };
    std::vector<at::Tensor> plan;
    std::vector<size_t> in_plan;  // per step, its micro-batches
    for (int64_t s0 = 0; s0 < N; s0 += options.batch_size) {
      auto picked = micro_batches(s0);
      in_plan.push_back(picked.size());
      for (auto& p : picked) plan.push_back(std::move(p));
    }
    DenseAhead dense(distiller, cache, windows, std::move(plan));
    for (int64_t s0 = 0, i = 0; s0 < N; s0 += options.batch_size, ++step, ++i) {
      const int64_t in_step = std::min(options.batch_size, N - s0);
      at::Tensor step_kl;
      for (size_t m = 0; m < in_plan[static_cast<size_t>(i)]; ++m) {
        const auto [h, t] = dense.next();
        distiller.timer().begin();
        auto kl = distiller.student_kl(h, t);
        (kl / static_cast<double>(in_step * T)).backward();
        distiller.timer().end(kStudentPhase);
        const auto part = kl.detach().to(at::kDouble);
        step_kl = step_kl.defined() ? step_kl + part : part;
      }
      if (group) {
        Stopwatch sum_clock;
        if (!group->barrier.arrive()) return;
        const double summed = distiller.sum_over_ranks(group->sum, step_kl.defined() ? step_kl.item<double>() : 0.0);
        step_kl = at::full({}, summed, at::TensorOptions().dtype(at::kDouble));
        result.seconds_gradient_sum += sum_clock.seconds();
      }
      const double lr = cosine_lr(step, total_steps, options.lr, options.lr / options.min_lr_factor);
      distiller.timer().begin();
      distiller.update(optimizer, lr);
      distiller.timer().end(kStudentPhase);
      if (rank == 0) {
        if (unread) record(*unread);
        unread = Loss{step_kl, in_step * T, lr};
      }
    }
  }
  if (unread) record(*unread);
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
  result.val_kl_before = distiller.mean_kl(val_windows, /*keep=*/true);
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
  result.val_kl_after = distiller.mean_kl(val_windows, /*keep=*/false);
  result.seconds_validation += validation_after.seconds();
  spdlog::info("distillation: validation KL {:.5f} -> {:.5f}", result.val_kl_before, result.val_kl_after);
  result.patches = distiller.trained_patches();
  distiller.record_phase_seconds();
  result.seconds_total = total_clock.seconds();
  return result;
}

}  // namespace lp
