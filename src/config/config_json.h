// Parsing shared by the config.json reader and rewriter.
#pragma once

#include <string>
#include <string_view>

#include "io/json_util.h"
#include "linearpatch/core/error.h"

namespace lp {

// config.json nests a few levels (rope_parameters, quantization_config,
// task_specific_params); deeper nesting is hostile.
constexpr int kMaxConfigDepth = 32;

template <typename Json>
Json parse_config_json(std::string_view text, const std::string& source) {
  Json root = io::parse_json_strict<Json>(text, source, kMaxConfigDepth);
  if (!root.is_object()) throw InputError(source + ": must be a JSON object, got " + io::json_excerpt(root));
  return root;
}

}  // namespace lp
