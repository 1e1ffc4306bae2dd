#include "linearpatch/config/config_rewrite.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "config/config_json.h"
#include "linearpatch/core/error.h"

namespace lp {
namespace {

// ordered_json keeps the original key order, so the diff against the
// original config shows only what pruning changed.
using OrderedJson = nlohmann::ordered_json;

void check_kept_layers(const std::vector<int64_t>& kept_layers, int64_t old_layers) {
  if (kept_layers.empty()) throw Error("a pruned model must keep at least one layer");
  for (size_t i = 0; i < kept_layers.size(); ++i) {
    if (kept_layers[i] < 0 || kept_layers[i] >= old_layers || (i > 0 && kept_layers[i] <= kept_layers[i - 1])) {
      throw Error("kept layers must be strictly increasing indices in [0, " + std::to_string(old_layers) + "), got " +
                  std::to_string(kept_layers[i]) + " at position " + std::to_string(i));
    }
  }
}

// Token id lists (eos_token_id of LLaMA-3.1 Instruct has 3 entries) and
// "architectures" are not per-layer even when their length matches a tiny
// model's layer count.
bool may_be_per_layer(const std::string& key) {
  const auto ends_with = [&key](const std::string& suffix) {
    return key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return key != "architectures" && !ends_with("_token_id") && !ends_with("_token_ids");
}

// Qwen's layers from max_window_layers on use the sliding window; the kept
// layers before that index are the first ones of the pruned model.
void renumber_max_window_layers(OrderedJson& config, const std::vector<int64_t>& kept_layers) {
  const auto it = config.find("max_window_layers");
  if (it == config.end() || !it->is_number_integer()) return;
  const int64_t first_windowed = it->get<int64_t>();
  *it = static_cast<int64_t>(std::count_if(kept_layers.begin(), kept_layers.end(),
                                           [&](int64_t layer) { return layer < first_windowed; }));
}

}  // namespace

std::string rewrite_config_for_pruning(std::string_view original_config_json, const std::vector<int64_t>& kept_layers,
                                       std::string_view linearpatch_entry_json, const std::string& source) {
  auto config = parse_config_json<OrderedJson>(original_config_json, source);
  const auto layers = config.find("num_hidden_layers");
  if (layers == config.end() || !layers->is_number_integer() || layers->get<int64_t>() <= 0) {
    throw InputError(source + ": field 'num_hidden_layers' must be a positive integer, got " +
                     (layers == config.end() ? std::string("nothing") : io::json_excerpt(*layers)));
  }
  const int64_t old_layers = layers->get<int64_t>();
  check_kept_layers(kept_layers, old_layers);
  *layers = static_cast<int64_t>(kept_layers.size());

  for (auto it = config.begin(); it != config.end(); ++it) {
    auto& value = it.value();
    if (!value.is_array() || value.size() != static_cast<size_t>(old_layers) || !may_be_per_layer(it.key())) continue;
    OrderedJson kept = OrderedJson::array();
    for (int64_t layer : kept_layers) kept.push_back(value[static_cast<size_t>(layer)]);
    value = std::move(kept);
  }
  renumber_max_window_layers(config, kept_layers);

  if (linearpatch_entry_json.empty()) {
    config.erase("linearpatch");
  } else {
    auto entry = io::parse_json_strict<OrderedJson>(linearpatch_entry_json, "the linearpatch entry", kMaxConfigDepth);
    if (!entry.is_object()) throw Error("the linearpatch entry must be a JSON object, got " + io::json_excerpt(entry));
    config["linearpatch"] = std::move(entry);
  }
  return config.dump(2) + "\n";
}

}  // namespace lp
