// config.json of a pruned checkpoint, derived from the original one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lp {

// Returns the config.json text (2-space indent, keys in their original
// order) for a checkpoint that keeps `kept_layers` (old indices, strictly
// increasing) of the original model:
//   - num_hidden_layers becomes kept_layers.size();
//   - every other top-level array with one element per old layer (e.g.
//     "layer_types") keeps the kept layers' elements;
//   - max_window_layers (Qwen: the first layer with a sliding window)
//     becomes the number of kept layers below it, so every kept layer keeps
//     its attention type;
//   - "linearpatch" is set to `linearpatch_entry_json` (a JSON object), or
//     removed when that is empty.
// Nothing else changes. Throws InputError naming `source` when the original
// is not a config with a positive integer num_hidden_layers, and Error when
// kept_layers or the entry are invalid.
std::string rewrite_config_for_pruning(std::string_view original_config_json, const std::vector<int64_t>& kept_layers,
                                       std::string_view linearpatch_entry_json, const std::string& source);

}  // namespace lp
