#include "linearpatch/model/placement.h"

#include <algorithm>
#include <limits>

namespace lp {
namespace {

constexpr uint64_t kNoFit = std::numeric_limits<uint64_t>::max();
constexpr double kNoPlan = std::numeric_limits<double>::infinity();

struct Candidate {
  uint64_t busiest = kNoFit;
  double squares = kNoPlan;     // sum over devices of work², the evenness tie-break
  std::vector<int64_t> ends;    // per device first..last: the end of its range
};

// Contiguous ranges of layers on devices first..last, the embeddings on
// `first` and the head on `last`, by dynamic programming over where each
// device's range ends (O(devices · layers²), a few ms for 8 × 128).
class Partition {
 public:
  Partition(const PlacementRequest& request, size_t first, size_t last)
      : request_(request), first_(first), last_(last), prefix_(request.layer_bytes.size() + 1, 0) {
    for (size_t l = 0; l < request.layer_bytes.size(); ++l) prefix_[l + 1] = prefix_[l] + request.layer_bytes[l];
  }

  Candidate best() const {
    Candidate result;
    result.busiest = least_busiest();
    if (result.busiest == kNoFit) return result;
    most_even(result);
    return result;
  }

 private:
  int64_t layers() const { return static_cast<int64_t>(request_.layer_bytes.size()); }

  // The work of device d holding layers [begin, end), or kNoFit when its
  // weights exceed its capacity.
  uint64_t work(size_t d, int64_t begin, int64_t end) const {
    const uint64_t layers = prefix_[static_cast<size_t>(end)] - prefix_[static_cast<size_t>(begin)];
    const uint64_t head = d == last_ ? request_.head_bytes : 0;
    const uint64_t embed = d == first_ ? request_.embed_bytes : 0;
    const uint64_t capacity = request_.capacities[d];
    if (capacity < embed || capacity - embed < head || capacity - embed - head < layers) return kNoFit;
    return layers + head;
  }

  // Minimal work of the busiest device over all placements.
  uint64_t least_busiest() const {
    const int64_t L = layers();
    std::vector<uint64_t> done(static_cast<size_t>(L + 1));  // done[i]: layers [0, i) on devices so far
    for (int64_t i = 0; i <= L; ++i) done[static_cast<size_t>(i)] = work(first_, 0, i);
    for (size_t d = first_ + 1; d <= last_; ++d) {
      std::vector<uint64_t> next(done.size(), kNoFit);
      for (int64_t i = 0; i <= L; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          const uint64_t w = work(d, j, i), before = done[static_cast<size_t>(j)];
          if (w == kNoFit || before == kNoFit) continue;
          next[static_cast<size_t>(i)] = std::min(next[static_cast<size_t>(i)], std::max(before, w));
        }
      done = std::move(next);
    }
    return done[static_cast<size_t>(L)];
  }

  // Among placements whose busiest device does at most candidate.busiest,
  // the one with the least sum of squared work; fills candidate.ends.
  void most_even(Candidate& candidate) const {
    const int64_t L = layers();
    const size_t devices = last_ - first_ + 1;
    auto squared = [&](size_t d, int64_t j, int64_t i) {
      const uint64_t w = work(d, j, i);
      return w == kNoFit || w > candidate.busiest ? kNoPlan : static_cast<double>(w) * static_cast<double>(w);
    };
    std::vector<std::vector<int64_t>> start(devices, std::vector<int64_t>(static_cast<size_t>(L + 1), 0));
    std::vector<double> done(static_cast<size_t>(L + 1));
    for (int64_t i = 0; i <= L; ++i) done[static_cast<size_t>(i)] = squared(first_, 0, i);
    for (size_t d = first_ + 1; d <= last_; ++d) {
      std::vector<double> next(done.size(), kNoPlan);
      for (int64_t i = 0; i <= L; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          const double total = done[static_cast<size_t>(j)] + squared(d, j, i);
          if (total < next[static_cast<size_t>(i)]) {
            next[static_cast<size_t>(i)] = total;
            start[d - first_][static_cast<size_t>(i)] = j;
          }
        }
      done = std::move(next);
    }
    candidate.squares = done[static_cast<size_t>(L)];
    candidate.ends.assign(devices, L);
    for (size_t d = devices - 1; d > 0; --d)
      candidate.ends[d - 1] = start[d][static_cast<size_t>(candidate.ends[d])];
  }

  const PlacementRequest& request_;
  size_t first_, last_;
  std::vector<uint64_t> prefix_;  // prefix_[i]: bytes of layers [0, i)
};

bool better(const Candidate& a, const Candidate& b) {
  return a.busiest < b.busiest || (a.busiest == b.busiest && a.squares < b.squares);
}

}  // namespace

std::optional<Placement> place_layers(const PlacementRequest& request) {
  const size_t devices = request.capacities.size();
  Candidate best;
  size_t best_first = 0, best_last = 0;
  for (size_t first = 0; first < devices; ++first)
    for (size_t last = first; last < devices; ++last) {
      auto candidate = Partition(request, first, last).best();
      if (candidate.busiest != kNoFit && better(candidate, best)) {
        best = std::move(candidate);
        best_first = first;
        best_last = last;
      }
    }
  if (best.busiest == kNoFit) return std::nullopt;
  Placement placement;
  placement.embed_device = best_first;
  placement.head_device = best_last;
  int64_t begin = 0;
  for (size_t d = 0; d < devices; ++d) {
    const bool used = d >= best_first && d <= best_last;
    const int64_t end = used ? best.ends[d - best_first] : begin;
    placement.layers.push_back({begin, end});
    begin = end;
  }
  return placement;
}

}  // namespace lp
