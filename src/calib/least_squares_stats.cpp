#include "linearpatch/calib/least_squares_stats.h"

#include <ATen/ATen.h>

#include <limits>

#include "linearpatch/core/error.h"

namespace lp {

at::Tensor rows_float64(const at::Tensor& x) { return x.reshape({-1, x.size(-1)}).to(at::kDouble); }

void accumulate_sum(at::Tensor& sum, const at::Tensor& term) { sum = sum.defined() ? sum.add_(term) : term; }

LeastSquaresStats::LeastSquaresStats(std::vector<Fit> fits) : fits_(std::move(fits)), sums_(fits_.size()) {
  for (const auto& fit : fits_)
    if (fit.gap.start < (fit.source == Source::kMlpOutput ? 1 : 0) || fit.gap.end <= fit.gap.start)
      throw Error("internal: no least-squares fit for the gap " + describe_range(fit.gap));
}

void LeastSquaresStats::on_mlp_output(int64_t layer, const at::Tensor& mlp_output) {
  for (size_t i = 0; i < fits_.size(); ++i) {
    if (fits_[i].source != Source::kMlpOutput || fits_[i].gap.start - 1 != layer) continue;
    auto m = rows_float64(mlp_output);
    accumulate_sum(sums_[i].lhs, at::matmul(m.t(), m));
    sums_[i].tokens += m.size(0);
    pending_[{batch_, i}] = Pending{m, m.clone()};
  }
}

void LeastSquaresStats::on_layer_input(int64_t position, const at::Tensor& hidden) {
  for (size_t i = 0; i < fits_.size(); ++i) {
    const auto& fit = fits_[i];
    if (position == fit.gap.start) {
      auto x = rows_float64(hidden);
      if (fit.source == Source::kStream) {
        accumulate_sum(sums_[i].lhs, at::matmul(x.t(), x));
        sums_[i].tokens += x.size(0);
        pending_[{batch_, i}] = Pending{x, {}};
      } else {
        auto& residual = pending_.at({batch_, i}).residual;
        residual.sub_(x.to(residual.device()));  // layers may live on different devices
      }
    }
    if (position == fit.gap.end) {
      const auto it = pending_.find({batch_, i});
      auto target = rows_float64(hidden).to(it->second.source.device());
      if (it->second.residual.defined()) target = target + it->second.residual;
      accumulate_sum(sums_[i].rhs, at::matmul(it->second.source.t(), target));
      pending_.erase(it);
    }
  }
}

NormalEquations LeastSquaresStats::equations(size_t index) const {
  const auto& sums = sums_.at(index);
  if (!sums.lhs.defined() || !sums.rhs.defined())
    throw Error("internal: no least-squares statistics for the gap " + describe_range(fits_.at(index).gap));
  return {sums.lhs.cpu(), sums.rhs.cpu(), sums.tokens};
}

int64_t LeastSquaresStats::layers_needed() const {
  int64_t needed = 0;
  for (const auto& fit : fits_) needed = std::max(needed, fit.gap.end);
  return needed;
}

int64_t LeastSquaresStats::first_layer_read() const {
  int64_t first = std::numeric_limits<int64_t>::max();
  for (const auto& fit : fits_) first = std::min(first, fit.gap.start - (fit.source == Source::kMlpOutput ? 1 : 0));
  return first;
}

}  // namespace lp
