// Builds safetensors files byte by byte for reader tests: the 8-byte length
// (by default the header's real length), the header text, the data buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lp::test {

inline std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

inline std::string safetensors_bytes(const std::string& header, const std::string& data,
                                     std::optional<uint64_t> header_length = std::nullopt) {
  return le64(header_length.value_or(header.size())) + header + data;
}

}  // namespace lp::test
