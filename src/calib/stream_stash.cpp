#include "linearpatch/calib/stream_stash.h"

#include <algorithm>

#include "linearpatch/core/error.h"

namespace lp {

StreamStash::StreamStash(std::vector<int64_t> positions, const StreamStash* fallback)
    : positions_(std::move(positions)), fallback_(fallback) {
  std::sort(positions_.begin(), positions_.end());
  positions_.erase(std::unique(positions_.begin(), positions_.end()), positions_.end());
}

void StreamStash::on_layer_input(int64_t position, const at::Tensor& hidden) {
  // The forward's own tensor: no layer updates a stream in place.
  if (std::binary_search(positions_.begin(), positions_.end(), position)) kept_[{batch_, position}] = hidden;
}

int64_t StreamStash::nearest_at_or_below(int64_t position) const {
  const auto it = std::upper_bound(positions_.begin(), positions_.end(), position);
  const int64_t own = it == positions_.begin() ? -1 : *std::prev(it);
  return std::max(own, fallback_ ? fallback_->nearest_at_or_below(position) : -1);
}

const at::Tensor& StreamStash::at(int64_t batch, int64_t position) const {
  const auto it = kept_.find({batch, position});
  if (it != kept_.end()) return it->second;
  if (fallback_) return fallback_->at(batch, position);
  throw Error("internal: no stream kept for batch " + std::to_string(batch) + " at position " +
              std::to_string(position));
}

std::vector<int64_t> StreamStash::evenly_spaced(int64_t num_layers, int64_t count) {
  std::vector<int64_t> positions;
  for (int64_t i = 1; i <= count; ++i) positions.push_back(i * num_layers / (count + 1));
  positions.erase(std::remove(positions.begin(), positions.end(), 0), positions.end());
  return positions;
}

}  // namespace lp
