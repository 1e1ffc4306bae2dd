// Unicode Normalization Form C (UAX #15), as HF tokenizers' "NFC"
// normalizer computes it: canonical decomposition, canonical ordering by
// combining class, canonical composition (composition exclusions honoured,
// Hangul done arithmetically). The tables are Unicode 9.0.0, the version of
// the crate HF normalizes with (see scripts/gen_unicode_nfc.py), so
// characters encoded later pass through unchanged, as they do there.
#pragma once

#include <string>
#include <string_view>

namespace lp::detail {

// Bytes that do not form UTF-8 are kept as they are and act as starters that
// nothing composes with. Text that is NFC by quick check is copied with only a
// scan; text made only of code points below U+0300 costs one pass over its
// bytes, eight at a time.
std::string to_nfc(std::string_view text);

}  // namespace lp::detail
