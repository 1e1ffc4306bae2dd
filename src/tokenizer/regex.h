// PCRE2 behind the small interface the tokenizer needs: every match of a
// pattern in a piece of text, iterated the way HF tokenizers' Oniguruma
// wrapper does. Compiled with UTF + UCP (Unicode \s, \p{L}, case folding),
// JIT when available, and MATCH_INVALID_UTF so that arbitrary bytes are
// searched without crashing: invalid sequences simply never match.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lp::detail {

struct Span {
  size_t begin;
  size_t end;
};

// Per-call match state. PCRE2 match data and JIT stacks must not be shared
// between threads, so each encode() owns one.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Regex {
 public:
  // Throws InputError("<where>: invalid regex ... at offset N: reason").
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every match in `text`, empty ones included (they still split
  // text in HF), skipping an empty match right after the previous match
  // exactly as Oniguruma's find_iter does.
  void find_all(std::string_view text, RegexScratch& scratch, std::vector<Span>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Split/Replace pattern: {"String": "..."} or {"Regex": "..."}.
class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(const std::string& pattern, const std::string& where);

  // Same contract as Regex::find_all; an empty literal never matches, as in HF.
  void find_all(std::string_view text, RegexScratch& scratch, std::vector<Span>& out) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace lp::detail
