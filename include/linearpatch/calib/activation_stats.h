// Activation statistics of the residual stream, accumulated batch by batch
// in float64 (memory does not grow with the number of windows). Positions
// 0..L are the inputs of the decoder layers and of the final norm; a pair
// (i, j = i + gap) is tracked for each requested gap. Batches may arrive
// interleaved (layer-major runs): what a later position of a batch still
// needs is kept per batch, on `stash_device` in `stash_dtype`.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp {

// Per-token cosine similarity between positions, over the hidden dimension.
struct StashOptions {
  bool on_host = false;                  // keep per-batch vectors in host memory
  at::ScalarType dtype = at::kFloat;     // unit vectors lose little in float16
};

class SimilarityStats : public ForwardObserver {
 public:
  SimilarityStats(int64_t num_positions, std::vector<int64_t> gaps, StashOptions stash = {});
  void begin_batch(int64_t batch) override { batch_ = batch; }
  void on_layer_input(int64_t position, const at::Tensor& hidden) override;

  bool tracks(int64_t i, int64_t j) const;
  // Vectors held for later positions (bounded by gaps x batches in flight).
  size_t stashed() const { return normalized_.size(); }
  // Mean over all tokens of all windows of cos(X_i[t], X_j[t]).
  double mean_cosine(int64_t i, int64_t j) const;
  // Mean over windows of the angular distance arccos(cos)/pi of the last
  // token (Gromov et al., "The Unreasonable Ineffectiveness of the Deeper Layers").
  double mean_last_token_angular(int64_t i, int64_t j) const;
  int64_t num_positions() const { return num_positions_; }

 private:
  int64_t num_positions_;
  std::vector<int64_t> gaps_;
  StashOptions stash_;
  int64_t batch_ = 0;
  std::map<std::pair<int64_t, int64_t>, at::Tensor> normalized_;  // (batch, position) -> unit vectors [B, T, C]
  at::Tensor cosine_sum_, angular_sum_;                            // [P, P] float64
  int64_t tokens_ = 0, windows_ = 0;
};

// Per-window mean magnitude of each channel after a fixed transform (the
// Hadamard rotation of the patch), and for each tracked pair the sum over
// windows of the ratio mean|T(X_j)| / mean|T(X_i)|.
class MagnitudeStats : public ForwardObserver {
 public:
  using Transform = std::function<at::Tensor(const at::Tensor&)>;  // [.., C] float32 -> [.., C]
  MagnitudeStats(int64_t num_positions, std::vector<int64_t> gaps, Transform transform);
  void begin_batch(int64_t batch) override { batch_ = batch; }
  void on_layer_input(int64_t position, const at::Tensor& hidden) override;

  bool tracks(int64_t i, int64_t j) const;
  // Mean over windows of the per-window ratio, [C] float64 on the CPU.
  at::Tensor mean_ratio(int64_t i, int64_t j) const;
  int64_t windows() const { return windows_; }

 private:
  int64_t num_positions_;
  std::vector<int64_t> gaps_;
  Transform transform_;
  int64_t batch_ = 0;
  std::map<std::pair<int64_t, int64_t>, at::Tensor> magnitudes_;  // (batch, position) -> [B, C] float64
  std::map<std::pair<int64_t, int64_t>, at::Tensor> ratio_sum_;  // [C] float64
  int64_t windows_ = 0;
};

}  // namespace lp
