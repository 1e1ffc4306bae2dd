#include "tokenizer/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tokenizer/unicode_nfc_tables.h"
#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

// Every code point below U+0300 is NFC_QC=Yes with combining class 0 (the
// generator checks it), and in UTF-8 only a byte of 0xCC or more can start a
// code point from U+0300 on (continuation bytes are 0x80-0xBF).
constexpr unsigned char kFirstInterestingByte = 0xCC;

constexpr uint8_t kQcYes = 0;  // NFC_Quick_Check in the tables: 0 yes, 1 maybe, 2 no

struct Properties {
  uint8_t ccc = 0;
  uint8_t quick_check = kQcYes;
  bool decomposes = false;
};

Properties properties(uint32_t cp) {
  if (cp >= nfc::kTrieLimit) return {};
  const uint16_t v = nfc::kTrieBlocks[(uint32_t{nfc::kTrieIndex[cp >> 7]} << 7) | (cp & 127)];
  return {static_cast<uint8_t>(v & 0xFF), static_cast<uint8_t>((v >> 8) & 3), ((v >> 10) & 1) != 0};
}

// Hangul syllables, Unicode chapter 3.12.
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kSCount = kLCount * kVCount * kTCount;

// A byte that forms no character travels through the buffer as kRawByte + byte:
// class 0, no decomposition, composes with nothing.
constexpr uint32_t kRawByte = 0x110000;

struct Char {
  uint32_t cp;
  uint8_t ccc;
};

void decompose(uint32_t cp, std::vector<Char>& out) {
  if (cp - kSBase < kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back({kLBase + s / (kVCount * kTCount), 0});
    out.push_back({kVBase + (s % (kVCount * kTCount)) / kTCount, 0});
    if (s % kTCount != 0) out.push_back({kTBase + s % kTCount, 0});
    return;
  }
  const Properties p = properties(cp);
  if (!p.decomposes) {
    out.push_back({cp, p.ccc});
    return;
  }
  const nfc::Decomposition* end = nfc::kDecompositions + nfc::kDecompositionCount;
  const nfc::Decomposition* d = std::lower_bound(
      nfc::kDecompositions, end, cp, [](const nfc::Decomposition& e, uint32_t c) { return e.code_point < c; });
  for (uint32_t i = d->offset; i < uint32_t{d->offset} + d->length; ++i) {
    const uint32_t part = nfc::kDecompositionPool[i];
    out.push_back({part, properties(part).ccc});
  }
}

// Canonical ordering: each run of non-starters sorted by class, stably.
void reorder(std::vector<Char>& chars) {
  for (size_t i = 0; i < chars.size();) {
    if (chars[i].ccc == 0) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < chars.size() && chars[end].ccc != 0) ++end;
    // A stable sort, not insertion: a hostile run of marks must not cost n².
    if (end - i > 1)
      std::stable_sort(chars.begin() + i, chars.begin() + end, [](Char a, Char b) { return a.ccc < b.ccc; });
    i = end;
  }
}

// The primary composite of a pair, or 0 when there is none.
uint32_t compose_pair(uint32_t first, uint32_t second) {
  if (first - kLBase < kLCount && second - kVBase < kVCount)
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  if (first - kSBase < kSCount && (first - kSBase) % kTCount == 0 && second - (kTBase + 1) < kTCount - 1)
    return first + (second - kTBase);
  const uint64_t key = (uint64_t{first} << 21) | second;
  const nfc::Composition* end = nfc::kCompositions + nfc::kCompositionCount;
  const nfc::Composition* c = std::lower_bound(nfc::kCompositions, end, key,
                                               [](const nfc::Composition& e, uint64_t k) { return e.key < k; });
  return c != end && c->key == key ? c->composite : 0;
}

// Canonical composition in place (UAX #15's reference algorithm): a character
// joins the last starter unless a starter, or a mark of the same or a higher
// class, stands between them.
void compose(std::vector<Char>& chars) {
  if (chars.empty()) return;
  size_t starter = 0;
  int last_ccc = chars[0].ccc == 0 ? 0 : 256;  // 256: no starter to compose with yet
  size_t kept = 1;
  for (size_t i = 1; i < chars.size(); ++i) {
    const Char c = chars[i];
    if (last_ccc == 0 || last_ccc < c.ccc) {
      if (const uint32_t composite = compose_pair(chars[starter].cp, c.cp)) {
        chars[starter].cp = composite;
        continue;
      }
    }
    if (c.ccc == 0) starter = kept;
    last_ccc = c.ccc;
    chars[kept++] = c;
  }
  chars.resize(kept);
}

void normalize_segment(std::string_view segment, std::vector<Char>& chars, std::string& out) {
  chars.clear();
  for (size_t pos = 0; pos < segment.size();) {
    const Utf8Char c = utf8_decode(segment, pos);
    if (c.valid) {
      decompose(c.code_point, chars);
    } else {
      chars.push_back({kRawByte + static_cast<unsigned char>(segment[pos]), 0});
    }
    pos += c.size;
  }
  reorder(chars);
  compose(chars);
  for (const Char& c : chars) {
    if (c.cp >= kRawByte) {
      out.push_back(static_cast<char>(c.cp - kRawByte));
    } else {
      utf8_append(c.cp, out);
    }
  }
}

// Nothing before a stable starter can compose with it or move past it, so
// normalization never crosses one: the text splits into independent segments.
bool is_stable_starter(const Utf8Char& c) {
  if (!c.valid) return true;
  const Properties p = properties(c.code_point);
  return p.ccc == 0 && p.quick_check == kQcYes;
}

size_t next_stable_starter(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    const Utf8Char c = utf8_decode(text, pos);
    if (is_stable_starter(c)) break;
    pos += c.size;
  }
  return pos;
}

// The first byte from `pos` on that may start a code point of U+0300 or more.
size_t next_interesting_byte(std::string_view text, size_t pos) {
  constexpr uint64_t kHighBits = 0x8080808080808080ULL;
  for (; pos + 8 <= text.size(); pos += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + pos, 8);
    if ((word & kHighBits) == 0) continue;
    for (size_t i = pos; i < pos + 8; ++i)
      if (static_cast<unsigned char>(text[i]) >= kFirstInterestingByte) return i;
  }
  for (; pos < text.size(); ++pos)
    if (static_cast<unsigned char>(text[pos]) >= kFirstInterestingByte) return pos;
  return text.size();
}

}  // namespace

// The quick check (UAX #15 section 9) runs over the text; where it fails,
// the segment around the failure, from the last stable starter to the next,
// is normalized and everything else is copied. Runs of code points below
// U+0300 are skipped eight bytes at a time.
std::string to_nfc(std::string_view text) {
  size_t segment = 0;  // where the last stable starter begins
  int last_ccc = 0;
  // Moves to the next byte that needs a look; what it skips is stable
  // starters, the last of which may still take marks that follow.
  const auto skip_from = [&](size_t from) {
    const size_t next = next_interesting_byte(text, from);
    if (next > from) {
      segment = next - utf8_decode_before(text, next).size;
      last_ccc = 0;
    }
    return next;
  };
  size_t pos = skip_from(0);
  if (pos == text.size()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::vector<Char> chars;
  size_t copied = 0;
  while (pos < text.size()) {
    const Utf8Char c = utf8_decode(text, pos);
    const Properties p = c.valid ? properties(c.code_point) : Properties{};
    if (p.quick_check == kQcYes && (p.ccc == 0 || p.ccc >= last_ccc)) {
      if (p.ccc == 0) segment = pos;
      last_ccc = p.ccc;
      pos = skip_from(pos + c.size);
      continue;
    }
    const size_t end = next_stable_starter(text, pos + c.size);
    out.append(text.substr(copied, segment - copied));
    normalize_segment(text.substr(segment, end - segment), chars, out);
    copied = segment = end;
    last_ccc = 0;
    pos = skip_from(end);
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace lp::detail
