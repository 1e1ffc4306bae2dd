// The few Python `str` operations lm-evaluation-harness applies to task
// text, reproduced on UTF-8 so prompts match its byte for byte: Python
// counts, strips and re-cases code points (not bytes), with Unicode's
// whitespace and case tables. Input is valid UTF-8 (it comes from JSON).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lp::pystr {

// len(s): code points.
int64_t length(std::string_view s);
// s.strip() / s.rstrip() without arguments (str.isspace characters).
std::string_view strip(std::string_view s);
std::string_view rstrip(std::string_view s);
// s.capitalize(): the first character in title case, the rest lower case.
std::string capitalize(std::string_view s);

}  // namespace lp::pystr
