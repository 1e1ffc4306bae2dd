#include "tokenizer/byte_level.h"

#include <array>
#include <string>

#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

// Bytes that are printable Latin-1 keep their own code point; the other 68
// get 256, 257, ... in byte order (bytes_to_unicode in GPT-2's encoder.py).
constexpr uint32_t kMaxCodePoint = 256 + 68;

struct Tables {
  std::array<std::string, 256> spelling;
  std::array<int16_t, kMaxCodePoint> byte_of;

  Tables() {
    byte_of.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next_extra++;
      utf8_append(cp, spelling[b]);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

std::string_view byte_level_char(uint8_t b) { return tables().spelling[b]; }

std::optional<uint8_t> byte_level_byte(uint32_t code_point) {
  if (code_point >= kMaxCodePoint || tables().byte_of[code_point] < 0) return std::nullopt;
  return static_cast<uint8_t>(tables().byte_of[code_point]);
}

}  // namespace lp::detail
