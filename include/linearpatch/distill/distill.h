// Distillation of the repair matrices alone (paper §3.4): every model
// weight stays frozen; each repair is a free [C, C] matrix (a LinearPatch on
// the stream, or an mlp-lstsq map on an MLP output) initialised from its
// training-free fit and trained with AdamW (cosine decay to lr/20) to
// minimise KL(teacher || student) per token, where the teacher is the dense
// model and both distributions are restricted to, and renormalised over,
// the teacher's top-K tokens (K = 0: the full vocabulary).
//
// Cost structure: the layers before the first repaired point are identical
// in teacher and student, so their output is computed once per window
// without gradients (and kept in memory when it fits); the teacher's top-K
// targets are computed in the same pass, once, and kept in memory or in an
// unlinked temporary file; the backward runs only through the layers after
// that point and needs activation gradients only.
//
// Several devices: data-parallel (see DistillOptions::data_parallel), the
// ranks being threads of this process that sum gradients through c10d
// (NCCL on CUDA, Gloo on the CPU); results equal one device's up to the
// order of float summation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp {

struct DistillOptions {
  int64_t top_k = 100;
  int64_t epochs = 1;
  // Windows per optimizer step: one, as the authors' code; at lr 1e-4 the
  // 8x more steps beat batches of 8 on every fixture (docs/results.md).
  int64_t batch_size = 1;
  int64_t micro_batch = 1;  // windows per forward/backward (gradient accumulation inside a step)
  double lr = 1e-4;
  double weight_decay = 1e-4;
  double min_lr_factor = 20;  // cosine decay to lr / min_lr_factor
  uint64_t seed = 0;
  uint64_t memory_budget_bytes = uint64_t{2} << 30;  // for cached targets and prefix outputs
  std::filesystem::path cache_dir;  // temporary teacher file when targets exceed the budget; default $TMPDIR
  // With a model on several devices: one replica per device when a whole
  // model fits on each, each step's windows split among them and the
  // gradients summed (c10d); otherwise, or when false, the windows run
  // through the layers as placed.
  bool data_parallel = true;
};

struct DistillResult {
  LayerPatches patches;  // trained, float32 on the CPU
  double val_kl_before = 0, val_kl_after = 0;
  std::vector<double> step_losses;
  int64_t steps = 0;
  int64_t train_tokens = 0;  // tokens seen per epoch
  int64_t ranks = 1;  // data-parallel replicas
  // Per phase, on rank 0; seconds_gradient_sum is its wait for the other
  // ranks plus the sum itself.
  double seconds_teacher = 0, seconds_prefix = 0, seconds_student = 0, seconds_gradient_sum = 0, seconds_total = 0;
  // The validation KL before and after training; the teacher and prefix
  // times above include its passes.
  double seconds_validation = 0;
  bool targets_on_disk = false;
  bool prefix_cached = false;
};

// `dense`: the unpruned model; the student is dense.without_layers(removed,
// initial) and every matrix of `initial` trains. train/val windows: [N, T]
// int64. Throws Error when there is nothing to train.
DistillResult distill_patches(const LlamaModel& dense, const std::vector<int64_t>& removed,
                              const LayerPatches& initial, const at::Tensor& train_windows,
                              const at::Tensor& val_windows, const DistillOptions& options);

}  // namespace lp
