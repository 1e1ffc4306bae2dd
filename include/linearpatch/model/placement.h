// Which device holds which decoder layers when a model is spread over
// several devices: contiguous ranges in layer order, the embeddings with
// the first, the final norm and the head with the last, each device's
// weights within its capacity. Arithmetic on byte counts only (no
// libtorch), so it is tested with made-up devices.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "linearpatch/core/layer_range.h"

namespace lp {

struct PlacementRequest {
  std::vector<uint64_t> layer_bytes;  // per decoder layer, in order
  uint64_t embed_bytes = 0;           // the embedding table
  uint64_t head_bytes = 0;            // final norm + lm_head (a copy when tied to the embeddings)
  std::vector<uint64_t> capacities;   // per device: the bytes of weights it may hold
};

struct Placement {
  // Per device of the request, its layers; devices that hold none have an
  // empty range. Together the ranges cover every layer once, in order.
  std::vector<LayerRange> layers;
  size_t embed_device = 0;  // holds the embeddings, and the first layer unless it holds only them
  size_t head_device = 0;   // holds the final norm and the head, after the last layer
};

// The placement whose busiest device does the least work (a layer's or the
// head's work counted as its bytes; looking up embeddings as none), and
// among those the most even one; nullopt when the weights do not fit.
// Devices before the embeddings' and after the head's hold nothing, so a
// device too small for the embeddings is skipped, not fatal.
std::optional<Placement> place_layers(const PlacementRequest& request);

}  // namespace lp
