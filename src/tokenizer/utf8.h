// UTF-8 scanning that tolerates invalid input: tokenizers get arbitrary bytes
// from calibration files, and HF semantics are defined on code points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lp::detail {

struct Utf8Char {
  uint32_t code_point;  // meaningless when !valid
  uint32_t size;        // bytes consumed, at least 1
  bool valid;
};

// Decodes the character starting at `pos` (< text.size()). Overlong forms,
// surrogates and truncated sequences count as one invalid byte, so a scan
// over hostile input always makes progress.
Utf8Char utf8_decode(std::string_view text, size_t pos);

// The character that ends right before `end` (> 0), or an invalid one-byte
// character when the bytes there do not form one.
Utf8Char utf8_decode_before(std::string_view text, size_t end);

void utf8_append(uint32_t code_point, std::string& out);

// Unicode White_Space, which is what Rust's `char::is_whitespace` and the
// `regex` crate's `\s` (used by HF added-token stripping) test.
bool is_white_space(uint32_t code_point);

}  // namespace lp::detail
