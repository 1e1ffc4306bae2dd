// The teacher's top-K next-token distribution for every training token:
// log-probabilities renormalised over the K tokens, and their ids. Sized up
// front; held in memory when it fits the budget, else in a temporary file
// that is unlinked as soon as it is created (so nothing is left behind even
// if the process is killed) and memory-mapped.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>

namespace lp {

class TeacherTargets {
 public:
  TeacherTargets(int64_t windows, int64_t tokens, int64_t k, uint64_t memory_budget_bytes,
                 const std::filesystem::path& spill_dir);
  ~TeacherTargets();
  TeacherTargets(const TeacherTargets&) = delete;
  TeacherTargets& operator=(const TeacherTargets&) = delete;

  // Views [n, T, K] of windows [first, first + n).
  at::Tensor log_probs(int64_t first, int64_t n) const { return log_probs_.narrow(0, first, n); }
  at::Tensor ids(int64_t first, int64_t n) const { return ids_.narrow(0, first, n); }
  const at::Tensor& log_probs_all() const { return log_probs_; }
  const at::Tensor& ids_all() const { return ids_; }
  bool on_disk() const { return mapping_ != nullptr; }

 private:
  at::Tensor log_probs_;  // float32
  at::Tensor ids_;        // int64
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
};

// Top-K of full logits [rows, V]: (log-probs renormalised over K, ids).
std::pair<at::Tensor, at::Tensor> top_k_targets(const at::Tensor& logits, int64_t k);

}  // namespace lp
