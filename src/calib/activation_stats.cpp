#include "linearpatch/calib/activation_stats.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

std::vector<int64_t> checked_gaps(std::vector<int64_t> gaps, int64_t num_positions) {
  std::sort(gaps.begin(), gaps.end());
  gaps.erase(std::unique(gaps.begin(), gaps.end()), gaps.end());
  for (int64_t gap : gaps)
    if (gap < 1 || gap >= num_positions) throw Error("internal: statistics gap " + std::to_string(gap) + " out of range");
  return gaps;
}

bool has_gap(const std::vector<int64_t>& gaps, int64_t i, int64_t j) {
  return i >= 0 && std::binary_search(gaps.begin(), gaps.end(), j - i);
}

// A copy of `unit` to keep for later positions. Host stashes of GPU
// tensors go to pinned memory without blocking: streamed runs move every
// window's vectors out and back, and pageable copies ran at a fraction of
// the bus rate (they made the 8 GB-budget run 4x slower than the resident one).
at::Tensor stash_copy(const at::Tensor& unit, const StashOptions& stash) {
  const auto narrowed = unit.to(stash.dtype);
  if (!stash.on_host) return narrowed;
  if (!narrowed.is_cuda()) return narrowed.cpu();
  auto host = at::empty(narrowed.sizes(), narrowed.options().device(at::kCPU).pinned_memory(true));
  host.copy_(narrowed, /*non_blocking=*/true);
  return host;
}

// Keeps only what later positions of the same batch can still pair with.
template <typename Map>
void forget_older_than(Map& recent, int64_t batch, int64_t oldest_needed) {
  recent.erase(recent.lower_bound({batch, 0}), recent.lower_bound({batch, oldest_needed}));
}

}  // namespace

SimilarityStats::SimilarityStats(int64_t num_positions, std::vector<int64_t> gaps, StashOptions stash)
    : num_positions_(num_positions), gaps_(checked_gaps(std::move(gaps), num_positions)), stash_(stash) {
  auto options = at::TensorOptions().dtype(at::kDouble);
  cosine_sum_ = at::zeros({num_positions, num_positions}, options);
  angular_sum_ = at::zeros({num_positions, num_positions}, options);
}

void SimilarityStats::on_layer_input(int64_t position, const at::Tensor& hidden) {
  if (position == 0) {
    tokens_ += hidden.size(0) * hidden.size(1);
    windows_ += hidden.size(0);
    if (cosine_sum_.device() != hidden.device()) {
      cosine_sum_ = cosine_sum_.to(hidden.device());
      angular_sum_ = angular_sum_.to(hidden.device());
    }
  }
  auto x = hidden.to(at::kFloat);
  auto unit = x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-30);
  for (int64_t gap : gaps_) {
    auto it = normalized_.find({batch_, position - gap});
    if (it == normalized_.end()) continue;
    auto cos = (unit * it->second.to(unit.device(), /*non_blocking=*/true).to(at::kFloat)).sum(-1).to(at::kDouble);
    // The sums stay where position 0 was; a model placed across devices
    // has later positions elsewhere.
    cosine_sum_[position - gap][position] += cos.sum().to(cosine_sum_.device());
    auto last = cos.select(1, cos.size(1) - 1).clamp(-1.0, 1.0);
    angular_sum_[position - gap][position] += (at::acos(last) / M_PI).sum().to(angular_sum_.device());
  }
  // After the last position nothing of this batch is needed any more.
  const int64_t oldest_needed =
      position + 1 == num_positions_ || gaps_.empty() ? num_positions_ : position + 1 - gaps_.back();
  if (position + 1 < num_positions_) normalized_[{batch_, position}] = stash_copy(unit, stash_);
  forget_older_than(normalized_, batch_, oldest_needed);
}

bool SimilarityStats::tracks(int64_t i, int64_t j) const {
  return j < num_positions_ && has_gap(gaps_, i, j);
}

double SimilarityStats::mean_cosine(int64_t i, int64_t j) const {
  if (!tracks(i, j) || tokens_ == 0) throw Error("internal: no cosine statistics for positions " + std::to_string(i) + ", " + std::to_string(j));
  return cosine_sum_[i][j].item<double>() / static_cast<double>(tokens_);
}

double SimilarityStats::mean_last_token_angular(int64_t i, int64_t j) const {
  if (!tracks(i, j) || windows_ == 0) throw Error("internal: no angular statistics for positions " + std::to_string(i) + ", " + std::to_string(j));
  return angular_sum_[i][j].item<double>() / static_cast<double>(windows_);
}

MagnitudeStats::MagnitudeStats(int64_t num_positions, std::vector<int64_t> gaps, Transform transform)
    : num_positions_(num_positions), gaps_(checked_gaps(std::move(gaps), num_positions)),
      transform_(std::move(transform)) {}

void MagnitudeStats::on_layer_input(int64_t position, const at::Tensor& hidden) {
  if (position == 0) {
    windows_ += hidden.size(0);
  }
  // Per window: mean over its tokens of |T(x)| per channel -> [B, C].
  auto magnitude = transform_(hidden.to(at::kFloat)).abs().mean(1).to(at::kDouble);
  for (int64_t gap : gaps_) {
    auto it = magnitudes_.find({batch_, position - gap});
    if (it == magnitudes_.end()) continue;
    // A channel that is exactly zero before the gap carries no signal for
    // the patch to scale; ratio 1 leaves it alone instead of making inf.
    auto denominator = it->second.to(magnitude.device());  // positions may live on different devices
    auto ratio = at::where(denominator > 0, magnitude / denominator, at::ones_like(magnitude)).sum(0);
    auto& sum = ratio_sum_[{position - gap, position}];
    sum = sum.defined() ? sum + ratio : ratio;
  }
  const int64_t oldest_needed =
      position + 1 == num_positions_ || gaps_.empty() ? num_positions_ : position + 1 - gaps_.back();
  if (position + 1 < num_positions_) magnitudes_[{batch_, position}] = magnitude;
  forget_older_than(magnitudes_, batch_, oldest_needed);
}

bool MagnitudeStats::tracks(int64_t i, int64_t j) const {
  return j < num_positions_ && has_gap(gaps_, i, j);
}

at::Tensor MagnitudeStats::mean_ratio(int64_t i, int64_t j) const {
  auto it = ratio_sum_.find({i, j});
  if (it == ratio_sum_.end() || windows_ == 0)
    throw Error("internal: no magnitude statistics for positions " + std::to_string(i) + ", " + std::to_string(j));
  return (it->second / static_cast<double>(windows_)).cpu();
}

}  // namespace lp
