// Unicode data for NFC (see unicode_nfc.h), generated into
// unicode_nfc_tables.cpp by scripts/gen_unicode_nfc.py.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lp::detail::nfc {

// The Unicode version whose characters the tables cover.
extern const char* const kUnicodeVersion;

// Per code point: canonical combining class (bits 0-7), NFC_Quick_Check
// (bits 8-9: 0 yes, 1 maybe, 2 no), has a canonical decomposition (bit 10).
// Value of cp < kTrieLimit: kTrieBlocks[(kTrieIndex[cp >> 7] << 7) | (cp & 127)];
// every code point from kTrieLimit on has value 0.
extern const uint32_t kTrieLimit;
extern const uint16_t kTrieIndex[];
extern const uint16_t kTrieBlocks[];

// Full canonical decompositions (Hangul syllables excepted), sorted by code
// point: kDecompositionPool[offset, offset + length).
struct Decomposition {
  uint32_t code_point;
  uint16_t offset;
  uint8_t length;
};
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const uint32_t kDecompositionPool[];

// Primary composites (Hangul excepted), sorted by key = first << 21 | second.
struct Composition {
  uint64_t key;
  uint32_t composite;
};
extern const Composition kCompositions[];
extern const size_t kCompositionCount;

}  // namespace lp::detail::nfc
