// GPT-2's reversible byte <-> character mapping: byte-level BPE vocabularies
// spell every byte as a printable character (space is "Ġ", newline "Ċ").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lp::detail {

// UTF-8 spelling of the character that stands for byte `b`.
std::string_view byte_level_char(uint8_t b);

// The byte a character stands for, if it is one of the 256.
std::optional<uint8_t> byte_level_byte(uint32_t code_point);

}  // namespace lp::detail
