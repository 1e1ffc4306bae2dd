// The tokenizer.json normalizers LLaMA-family files use: Prepend and
// Replace (LLaMA-2's "▁" handling) and NFC (Qwen2/Qwen3), alone or in a
// Sequence. Other types are refused when the file is loaded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_reader.h"
#include "tokenizer/regex.h"

namespace lp::detail {

class Normalizer {
 public:
  // From the "normalizer" node; a null node gives the identity.
  static Normalizer from_json(const JsonNode& node);

  bool is_identity() const { return steps_.empty(); }
  std::string apply(std::string_view text, RegexScratch& scratch) const;

 private:
  struct Step {
    enum class Kind { kPrepend, kReplace, kNfc } kind;
    Pattern pattern;  // what kReplace replaces
    std::string content;
  };
  void add(const JsonNode& node);

  std::vector<Step> steps_;
};

// Replaces every match of `pattern` in `text` by `content` (HF's
// NormalizedString::replace); shared with the Replace decoder.
std::string replace_all(std::string_view text, const Pattern& pattern, const std::string& content,
                        RegexScratch& scratch);

// {"String": "..."} or {"Regex": "..."}.
Pattern pattern_from_json(const JsonNode& node);

}  // namespace lp::detail
