// NFC (src/tokenizer/unicode_nfc.h). Expected values are Python's
// unicodedata.normalize("NFC", ...) except where the Unicode 9.0 tables that
// HF tokenizers uses give another answer on purpose (marked).
#include "tokenizer/unicode_nfc.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tokenizer/unicode_nfc_tables.h"

namespace {

using lp::detail::to_nfc;

TEST(UnicodeNfcTest, TextBelowU0300IsCopied) {
  EXPECT_EQ(to_nfc(""), "");
  EXPECT_EQ(to_nfc("Hello, world!\n\t"), "Hello, world!\n\t");
  // Precomposed Latin-1 letters are NFC already; so are controls and NUL.
  EXPECT_EQ(to_nfc("caf\u00E9 \u00C5ngstr\u00F6m \u00FF\x01"), "caf\u00E9 \u00C5ngstr\u00F6m \u00FF\x01");
  EXPECT_EQ(to_nfc(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(UnicodeNfcTest, ComposesBaseAndMarks) {
  EXPECT_EQ(to_nfc("e\u0301"), "\u00E9");
  EXPECT_EQ(to_nfc("A\u030A"), "\u00C5");
  EXPECT_EQ(to_nfc("a\u0308\u0304"), "\u01DF");  // twice: a+¨ = ä, ä+¯ = ǟ
  EXPECT_EQ(to_nfc("\u00C5\u0301"), "\u01FA");  // a precomposed letter takes one more mark
  EXPECT_EQ(to_nfc("\u0B47\u0B3E"), "\u0B4B");  // two starters compose when adjacent
  EXPECT_EQ(to_nfc("x cafe\u0301 y e\u0301"), "x caf\u00E9 y \u00E9");
}

TEST(UnicodeNfcTest, OrdersMarksByCombiningClass) {
  EXPECT_EQ(to_nfc("q\u0307\u0323"), "q\u0323\u0307");  // below (220) before above (230)
  EXPECT_EQ(to_nfc("e\u0302\u0323"), "\u1EC7");  // reordered first, then both compose
  EXPECT_EQ(to_nfc("d\u0323\u0307"), "\u1E0D\u0307");
  EXPECT_EQ(to_nfc("\u1E0B\u0323"), "\u1E0D\u0307");  // decomposed, reordered, recomposed
  // U+0305 passes the quick check on its own; the mark after it does not.
  EXPECT_EQ(to_nfc("e\u0305\u0323"), "\u1EB9\u0305");
  EXPECT_EQ(to_nfc("abcdefghia\u0305\u0323"), "abcdefghi\u1EA1\u0305");
  // Marks of one class keep their order (the sort is stable).
  EXPECT_EQ(to_nfc("a\u0301\u0323\u0301\u0323\u0301\u0323"), "\u1EA1\u0323\u0323\u0301\u0301\u0301");
}

TEST(UnicodeNfcTest, BlockedMarksStay) {
  EXPECT_EQ(to_nfc("a\u0301\u0301"), "\u00E1\u0301");  // the second acute is blocked by the first
  EXPECT_EQ(to_nfc("a\u0305\u0301"), "a\u0305\u0301");  // blocked by a mark of the same class
  EXPECT_EQ(to_nfc("\u0301e"), "\u0301e");  // a leading mark has nothing to join
}

TEST(UnicodeNfcTest, HangulIsComposedArithmetically) {
  EXPECT_EQ(to_nfc("\u1100\u1161"), "\uAC00");        // L + V
  EXPECT_EQ(to_nfc("\u1100\u1161\u11A8"), "\uAC01");  // L + V + T
  EXPECT_EQ(to_nfc("\uAC00\u11A8"), "\uAC01");        // LV + T
  EXPECT_EQ(to_nfc("\uAC00\u11A7"), "\uAC00\u11A7");  // U+11A7 is below the trailing consonants
  EXPECT_EQ(to_nfc("\uAC01\u11A8"), "\uAC01\u11A8");  // LVT takes no second T
  EXPECT_EQ(to_nfc("\uD55C\uAD6D\uC5B4"), "\uD55C\uAD6D\uC5B4");
}

TEST(UnicodeNfcTest, CompositionExclusionsStayDecomposed) {
  EXPECT_EQ(to_nfc("\u0958"), "\u0915\u093C");  // DEVANAGARI QA, a script-specific exclusion
  EXPECT_EQ(to_nfc("\u0915\u093C"), "\u0915\u093C");
  EXPECT_EQ(to_nfc("\u2ADC"), "\u2ADD\u0338");  // a post-composition-version exclusion
  EXPECT_EQ(to_nfc("\uFB2C"), "\u05E9\u05BC\u05C1");
  EXPECT_EQ(to_nfc("\u0344"), "\u0308\u0301");  // a non-starter decomposition
}

TEST(UnicodeNfcTest, SingletonsAreReplaced) {
  EXPECT_EQ(to_nfc("\u212B"), "\u00C5");  // ANGSTROM SIGN
  EXPECT_EQ(to_nfc("\u2126"), "\u03A9");  // OHM SIGN
  EXPECT_EQ(to_nfc("\u0340"), "\u0300");  // COMBINING GRAVE TONE MARK
  EXPECT_EQ(to_nfc("\uF900"), "\u8C48");  // a CJK compatibility ideograph
  EXPECT_EQ(to_nfc("\U0002F800"), "\u4E3D");
}

TEST(UnicodeNfcTest, InvalidUtf8PassesThroughUnchanged) {
  EXPECT_EQ(to_nfc("\xff\xfe"), "\xff\xfe");
  EXPECT_EQ(to_nfc("e\xcc"), "e\xcc");                  // a truncated U+0301
  EXPECT_EQ(to_nfc("e\xcc\x81\xff"), "\u00E9\xff");     // composes before the bad byte
  EXPECT_EQ(to_nfc("e\xff\xcc\x81"), "e\xff\xcc\x81");  // a bad byte blocks like a starter
  EXPECT_EQ(to_nfc("\x80\xcc\x81"), "\x80\xcc\x81");
  EXPECT_EQ(to_nfc("\xed\xa0\x80\xcc\x81"), "\xed\xa0\x80\xcc\x81");  // an encoded surrogate
  EXPECT_EQ(to_nfc("\xc3\xcc\x87\xcc\xa3"), "\xc3\xcc\xa3\xcc\x87");  // marks after a bad byte still reorder
}

// HF tokenizers' tables are Unicode 9.0.0: characters encoded later are
// unassigned there (class 0, no composition), where newer Unicode differs.
TEST(UnicodeNfcTest, CharactersAfterUnicode9AreLeftAlone) {
  EXPECT_STREQ(lp::detail::nfc::kUnicodeVersion, "9.0.0");
  // DIVES AKURU VOWEL SIGN E + AA (Unicode 13) compose to U+11938 in newer Unicode.
  EXPECT_EQ(to_nfc("\U00011935\U00011930"), "\U00011935\U00011930");
  // U+1AC1 (Unicode 14, class 230) counts as a starter, so U+0323 cannot reach 'a'.
  EXPECT_EQ(to_nfc("a\u1AC1\u0323"), "a\u1AC1\u0323");
}

TEST(UnicodeNfcTest, NormalizesOnlyAroundTheFailure) {
  const std::string before(1000, 'x');
  const std::string cjk = "\u4E2D\u6587";
  EXPECT_EQ(to_nfc(before + "e\u0301" + cjk + "o\u0308" + before), before + "\u00E9" + cjk + "\u00F6" + before);
  EXPECT_EQ(to_nfc(cjk + "\u0301" + cjk), cjk + "\u0301" + cjk);
}

TEST(UnicodeNfcTest, IsIdempotent) {
  for (const std::string text : {"e\u0302\u0323 \u1100\u1161\u11A8", "\u0958\u2ADC\u212B", "a\u0301\u0323\u0301"}) {
    const std::string once = to_nfc(text);
    EXPECT_EQ(to_nfc(once), once);
  }
}

// A long run of marks in reverse class order is sorted in n log n, not n².
TEST(UnicodeNfcTest, LongRunsOfMarksStayFast) {
  std::string text = "a";
  std::string expected = "\u1EA1";  // a + the first U+0323
  for (int i = 0; i < 100000; ++i) text += "\u0301\u0323";
  for (int i = 1; i < 100000; ++i) expected += "\u0323";
  for (int i = 0; i < 100000; ++i) expected += "\u0301";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(to_nfc(text), expected);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

}  // namespace
