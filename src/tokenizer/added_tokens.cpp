#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

// HF tests word boundaries with the Rust regex crate's Unicode \w.
bool is_word_char(std::string_view text, size_t pos, Utf8Char c, RegexScratch& scratch) {
  if (!c.valid) return false;
  static const Regex word(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", "word-character class");
  std::vector<Span> found;
  word.find_all(text.substr(pos, c.size), scratch, found);
  return !found.empty();
}

size_t skip_white_space_backward(std::string_view text, size_t end) {
  while (end > 0) {
    const Utf8Char c = utf8_decode_before(text, end);
    if (!c.valid || !is_white_space(c.code_point)) break;
    end -= c.size;
  }
  return end;
}

size_t skip_white_space_forward(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    const Utf8Char c = utf8_decode(text, pos);
    if (!c.valid || !is_white_space(c.code_point)) break;
    pos += c.size;
  }
  return pos;
}

}  // namespace

void AddedTokenMatcher::add(const std::string& pattern, const AddedToken& token) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (const char ch : pattern) {
    const auto byte = static_cast<unsigned char>(ch);
    auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), byte,
                               [](const auto& child, unsigned char b) { return child.first < b; });
    if (it != children.end() && it->first == byte) {
      node = it->second;
      continue;
    }
    const auto next = static_cast<int32_t>(nodes_.size());
    children.insert(it, {byte, next});
    nodes_.emplace_back();
    node = next;
  }
  // A repeated pattern keeps one entry; the later token's flags win, as the
  // later AddedToken replaces the earlier one for the same id in HF.
  if (nodes_[node].entry < 0) {
    nodes_[node].entry = static_cast<int32_t>(entries_.size());
    entries_.emplace_back();
  }
  entries_[nodes_[node].entry] = {token.id, token.single_word, token.lstrip, token.rstrip};
  first_bytes_[static_cast<unsigned char>(pattern.front())] = true;
}

std::pair<size_t, int32_t> AddedTokenMatcher::longest_match(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), byte,
                               [](const auto& child, unsigned char b) { return child.first < b; });
    if (it == children.end() || it->first != byte) break;
    node = it->second;
    if (nodes_[node].entry >= 0) best = {i + 1 - pos, nodes_[node].entry};
  }
  return best;
}

bool AddedTokenMatcher::is_single_word(std::string_view text, Span match, RegexScratch& scratch) const {
  if (match.begin > 0) {
    const Utf8Char before = utf8_decode_before(text, match.begin);
    if (is_word_char(text, match.begin - before.size, before, scratch)) return false;
  }
  if (match.end < text.size() && is_word_char(text, match.end, utf8_decode(text, match.end), scratch)) return false;
  return true;
}

void AddedTokenMatcher::split(std::string_view text, RegexScratch& scratch, std::vector<Segment>& out) const {
  size_t done = 0;  // end of the last emitted segment
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_bytes_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [length, entry_index] = longest_match(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    Span match{pos, pos + length};
    pos = match.end;  // the search resumes after a match even when it is discarded
    const Entry& entry = entries_[entry_index];
    if (entry.single_word && !is_single_word(text, match, scratch)) continue;
    if (entry.lstrip) match.begin = std::max(skip_white_space_backward(text, match.begin), done);
    if (entry.rstrip) match.end = skip_white_space_forward(text, match.end);
    pos = match.end;
    if (done < match.begin) out.push_back({{done, match.begin}, -1});
    out.push_back({match, entry.id});
    done = match.end;
  }
  if (done < text.size()) out.push_back({{done, text.size()}, -1});
}

}  // namespace lp::detail
