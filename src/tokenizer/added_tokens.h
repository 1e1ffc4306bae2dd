// Added tokens (specials such as <|begin_of_text|> and user-added ones) are
// cut out of the text before pre-tokenization, as HF's AddedVocabulary does:
// leftmost-longest matching, then the single_word / lstrip / rstrip flags.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace lp::detail {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A run of text to tokenize (token_id < 0) or a matched added token.
struct Segment {
  Span span;
  int32_t token_id;
};

class AddedTokenMatcher {
 public:
  // `pattern` is what appears in the text: the content, or for a normalized
  // token the content after the normalizer. Empty patterns are ignored.
  void add(const std::string& pattern, const AddedToken& token);
  bool empty() const { return entries_.empty(); }

  // Splits `text` into segments covering it; empty text segments are dropped.
  void split(std::string_view text, RegexScratch& scratch, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t entry = -1;
  };
  struct Entry {
    int32_t id;
    bool single_word;
    bool lstrip;
    bool rstrip;
  };

  // Length of the longest pattern starting at `pos` (0 if none) and its entry.
  std::pair<size_t, int32_t> longest_match(std::string_view text, size_t pos) const;
  bool is_single_word(std::string_view text, Span match, RegexScratch& scratch) const;

  std::vector<Node> nodes_{Node{}};
  std::vector<Entry> entries_;
  std::array<bool, 256> first_bytes_{};
};

}  // namespace lp::detail
