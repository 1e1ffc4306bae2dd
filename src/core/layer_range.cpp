#include "linearpatch/core/layer_range.h"

namespace lp {

std::vector<LayerRange> layer_runs(const std::vector<int64_t>& layers) {
  std::vector<LayerRange> runs;
  for (const int64_t layer : layers) {
    if (!runs.empty() && runs.back().end == layer)
      ++runs.back().end;
    else
      runs.push_back({layer, layer + 1});
  }
  return runs;
}

std::string describe_layers(const std::vector<int64_t>& layers) {
  std::string out;
  for (size_t i = 0; i < layers.size(); ++i) out += (i ? ", " : "") + std::to_string(layers[i]);
  return out;
}

std::string describe_range(const LayerRange& range) {
  std::vector<int64_t> layers;
  for (int64_t l = range.start; l < range.end; ++l) layers.push_back(l);
  return "[" + std::to_string(range.start) + ", " + std::to_string(range.end) + ") = layer" +
         (layers.size() > 1 ? "s " : " ") + describe_layers(layers);
}

}  // namespace lp
