#include "eval/python_text.h"

#include <locale.h>
#include <wctype.h>

#include <array>
#include <utility>
#include <vector>

#include "linearpatch/core/error.h"

namespace lp::pystr {
namespace {

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = b < 0x80 ? 0 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
    char32_t cp = extra == 0 ? b : b & (0x3F >> extra);
    for (int k = 1; k <= extra && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Length in bytes of the UTF-8 sequence starting with `lead`.
size_t sequence_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// glibc's C.UTF-8 case tables hold the same single-character mappings as
// Python 3.11's (checked over every code point); only Python's
// multi-character mappings and the final-sigma rule need code of their own.
class CaseTables {
 public:
  static const CaseTables& get() {
    static const CaseTables tables;
    return tables;
  }
  char32_t lower(char32_t c) const { return c < 0x80 ? ascii_lower(c) : towlower_l(checked(c), locale_); }
  char32_t upper(char32_t c) const { return c < 0x80 ? ascii_upper(c) : towupper_l(checked(c), locale_); }
  char32_t title(char32_t c) const { return c < 0x80 ? ascii_upper(c) : towctrans_l(checked(c), totitle_, locale_); }

 private:
  CaseTables() : locale_(newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t{})) {
    if (locale_) totitle_ = wctrans_l("totitle", locale_);
  }
  static char32_t ascii_lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
  static char32_t ascii_upper(char32_t c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }
  wint_t checked(char32_t c) const {
    if (!locale_ || !totitle_) throw Error("changing the case of non-ASCII text needs the C.UTF-8 locale, which is missing");
    return static_cast<wint_t>(c);
  }
  locale_t locale_;
  wctrans_t totitle_ = nullptr;
};

bool is_cased(char32_t c) {
  const auto& t = CaseTables::get();
  return t.lower(c) != c || t.upper(c) != c || t.title(c) != c;
}

// Approximates Unicode's Case_Ignorable with the characters that occur
// inside words: apostrophes, word-internal punctuation, modifier letters
// and combining marks.
bool is_case_ignorable(char32_t c) {
  switch (c) {
    case '\'': case '.': case ':': case '^': case '`': case 0xA8: case 0xAD: case 0xAF: case 0xB4: case 0xB7:
    case 0xB8: case 0x2018: case 0x2019: case 0x2024: case 0x2027:
      return true;
    default:
      return (c >= 0x2B0 && c <= 0x36F) || (c >= 0x483 && c <= 0x489);
  }
}

// Python lower-cases U+03A3 to final sigma when a cased letter precedes it
// and none follows (skipping case-ignorable characters both ways).
bool is_final_sigma(const std::vector<char32_t>& text, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(text[j - 1])) --j;
  if (j == 0 || !is_cased(text[j - 1])) return false;
  size_t k = i + 1;
  while (k < text.size() && is_case_ignorable(text[k])) ++k;
  return k == text.size() || !is_cased(text[k]);
}

// Characters whose title case is more than one character, from Python 3.11
// (Unicode 14 SpecialCasing.txt).
const std::array<std::pair<char32_t, std::u32string_view>, 48> kMultiTitle = {{
    {0x00DF, U"\u0053\u0073"}, {0x0149, U"\u02BC\u004E"}, {0x01F0, U"\u004A\u030C"},
    {0x0390, U"\u0399\u0308\u0301"}, {0x03B0, U"\u03A5\u0308\u0301"}, {0x0587, U"\u0535\u0582"},
    {0x1E96, U"\u0048\u0331"}, {0x1E97, U"\u0054\u0308"}, {0x1E98, U"\u0057\u030A"},
    {0x1E99, U"\u0059\u030A"}, {0x1E9A, U"\u0041\u02BE"}, {0x1F50, U"\u03A5\u0313"},
    {0x1F52, U"\u03A5\u0313\u0300"}, {0x1F54, U"\u03A5\u0313\u0301"}, {0x1F56, U"\u03A5\u0313\u0342"},
    {0x1FB2, U"\u1FBA\u0345"}, {0x1FB4, U"\u0386\u0345"}, {0x1FB6, U"\u0391\u0342"},
    {0x1FB7, U"\u1FBC\u0342"}, {0x1FC2, U"\u1FCA\u0345"}, {0x1FC4, U"\u0389\u0345"},
    {0x1FC6, U"\u0397\u0342"}, {0x1FC7, U"\u1FCC\u0342"}, {0x1FD2, U"\u0399\u0308\u0300"},
    {0x1FD3, U"\u0399\u0308\u0301"}, {0x1FD6, U"\u0399\u0342"}, {0x1FD7, U"\u0399\u0308\u0342"},
    {0x1FE2, U"\u03A5\u0308\u0300"}, {0x1FE3, U"\u03A5\u0308\u0301"}, {0x1FE4, U"\u03A1\u0313"},
    {0x1FE6, U"\u03A5\u0342"}, {0x1FE7, U"\u03A5\u0308\u0342"}, {0x1FF2, U"\u1FFA\u0345"},
    {0x1FF4, U"\u038F\u0345"}, {0x1FF6, U"\u03A9\u0342"}, {0x1FF7, U"\u1FFC\u0342"},
    {0xFB00, U"\u0046\u0066"}, {0xFB01, U"\u0046\u0069"}, {0xFB02, U"\u0046\u006C"},
    {0xFB03, U"\u0046\u0066\u0069"}, {0xFB04, U"\u0046\u0066\u006C"}, {0xFB05, U"\u0053\u0074"},
    {0xFB06, U"\u0053\u0074"}, {0xFB13, U"\u0544\u0576"}, {0xFB14, U"\u0544\u0565"},
    {0xFB15, U"\u0544\u056B"}, {0xFB16, U"\u054E\u0576"}, {0xFB17, U"\u0544\u056D"},
}};

void append_title(std::string& out, char32_t c) {
  for (const auto& [from, to] : kMultiTitle) {
    if (from != c) continue;
    for (const char32_t t : to) append_utf8(out, t);
    return;
  }
  append_utf8(out, CaseTables::get().title(c));
}

void append_lower(std::string& out, const std::vector<char32_t>& text, size_t i) {
  const char32_t c = text[i];
  if (c == 0x130) {  // İ: the one character whose lower case is two
    out += "i\xCC\x87";
  } else if (c == 0x3A3) {
    append_utf8(out, is_final_sigma(text, i) ? 0x3C2 : 0x3C3);
  } else {
    append_utf8(out, CaseTables::get().lower(c));
  }
}

}  // namespace

int64_t length(std::string_view s) {
  int64_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string_view rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!is_space(decode(s.substr(start, end - start)).front())) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string_view strip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t n = sequence_length(static_cast<unsigned char>(s[begin]));
    if (!is_space(decode(s.substr(begin, n)).front())) break;
    begin += n;
  }
  return rstrip(s.substr(begin));
}

std::string capitalize(std::string_view s) {
  const auto text = decode(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 0) append_title(out, text[0]);
    else append_lower(out, text, i);
  }
  return out;
}

}  // namespace lp::pystr
