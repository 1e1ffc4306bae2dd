// Decoder layers are numbered from 0 and ranges of them are half-open
// everywhere: [start, end) holds layers start..end-1. Messages print a range
// with the literal list of its layers, so nobody has to guess the convention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lp {

struct LayerRange {
  int64_t start = 0;
  int64_t end = 0;  // exclusive
  int64_t size() const { return end - start; }
  bool operator==(const LayerRange& other) const { return start == other.start && end == other.end; }
};

// The maximal runs of consecutive layers in `layers` (ascending, distinct).
std::vector<LayerRange> layer_runs(const std::vector<int64_t>& layers);

std::string describe_layers(const std::vector<int64_t>& layers);  // "2, 3, 7"
std::string describe_range(const LayerRange& range);             // "[2, 4) = layers 2, 3"

}  // namespace lp
