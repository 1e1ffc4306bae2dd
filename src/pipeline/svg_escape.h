// Text placed in SVG element content or attribute values, escaped once for
// both. Private to the pipeline module.
#pragma once

#include <string>

namespace lp {

inline std::string svg_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace lp
