#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior split_behavior_from_json(const JsonNode& node) {
  const std::string name = node.string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  node.fail("unknown split behavior \"" + name + "\"");
}

struct Marked {
  Span span;
  bool flag;  // is a match before the fold, to be removed after it
};

// HF's NormalizedString::split: the pattern's matches and the gaps between
// them, folded according to the behaviour; empty pieces are dropped.
void split_piece(Piece piece, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string_view text = piece.text;
  std::vector<Marked> marked;
  marked.reserve(2 * matches.size() + 1);
  size_t done = 0;
  for (const Span& m : matches) {
    if (done != m.begin) marked.push_back({{done, m.begin}, invert});
    marked.push_back({m, !invert});
    done = m.end;
  }
  if (done != text.size()) marked.push_back({{done, text.size()}, invert});

  std::vector<Marked> folded;
  folded.reserve(marked.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      folded = std::move(marked);
      break;
    case SplitBehavior::kIsolated:
      for (const Marked& m : marked) folded.push_back({m.span, false});
      break;
    case SplitBehavior::kContiguous:
      for (const Marked& m : marked) {
        if (m.flag == previous_match && !folded.empty()) {
          folded.back().span.end = m.span.end;
        } else {
          folded.push_back({m.span, false});
        }
        previous_match = m.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Marked& m : marked) {
        if (m.flag && !previous_match && !folded.empty()) {
          folded.back().span.end = m.span.end;
        } else {
          folded.push_back({m.span, false});
        }
        previous_match = m.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = marked.rbegin(); it != marked.rend(); ++it) {
        if (it->flag && !previous_match && !folded.empty()) {
          folded.back().span.begin = it->span.begin;
        } else {
          folded.push_back({it->span, false});
        }
        previous_match = it->flag;
      }
      std::reverse(folded.begin(), folded.end());
      break;
  }
  for (const Marked& m : folded) {
    if (m.flag || m.span.begin == m.span.end) continue;
    out.push_back({text.substr(m.span.begin, m.span.end - m.span.begin), piece.at_start && m.span.begin == 0});
  }
}

class SplitStep final : public PreTokenizeStep {
 public:
  SplitStep(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

  void apply(Piece piece, PreTokenizeScratch& scratch, std::vector<Piece>& out) const override {
    scratch.matches.clear();
    pattern_.find_all(piece.text, scratch.regex, scratch.matches);
    split_piece(piece, scratch.matches, behavior_, invert_, out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspaceStep final : public PreTokenizeStep {
 public:
  MetaspaceStep(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void apply(Piece piece, PreTokenizeScratch& scratch, std::vector<Piece>& out) const override {
    std::string& text = scratch.arena.emplace_back();
    text.reserve(piece.text.size() + replacement_.size());
    for (const char c : piece.text) {
      if (c == ' ') {
        text += replacement_;
      } else {
        text += c;
      }
    }
    const bool starts_with_replacement = text.compare(0, replacement_.size(), replacement_) == 0;
    const bool prepend = scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_start);
    if (prepend && !starts_with_replacement) text.insert(0, replacement_);
    if (!split_) {
      out.push_back({text, piece.at_start});
      return;
    }
    scratch.matches.clear();
    for (size_t pos = text.find(replacement_); pos != std::string::npos;
         pos = text.find(replacement_, pos + replacement_.size()))
      scratch.matches.push_back({pos, pos + replacement_.size()});
    split_piece({text, piece.at_start}, scratch.matches, SplitBehavior::kMergedWithNext, false, out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class ByteLevelStep final : public PreTokenizeStep {
 public:
  ByteLevelStep(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void apply(Piece piece, PreTokenizeScratch& scratch, std::vector<Piece>& out) const override {
    if (add_prefix_space_ && (piece.text.empty() || piece.text.front() != ' ')) {
      std::string& text = scratch.arena.emplace_back(" ");
      text.append(piece.text);
      piece.text = text;
    }
    if (!use_regex_) {
      out.push_back(piece);
      return;
    }
    // GPT-2's pattern, which HF's ByteLevel applies when use_regex is set.
    static const Regex gpt2(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                            "ByteLevel pre-tokenizer regex");
    scratch.matches.clear();
    gpt2.find_all(piece.text, scratch.regex, scratch.matches);
    split_piece(piece, scratch.matches, SplitBehavior::kIsolated, false, out);
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

PrependScheme prepend_scheme_from_json(const JsonNode& node) {
  if (auto scheme = node.find("prepend_scheme")) {
    const std::string name = scheme->string();
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    scheme->fail("unknown prepend_scheme \"" + name + "\" (expected always, first or never)");
  }
  // Files written before prepend_scheme existed say add_prefix_space.
  return node.boolean_or("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

std::string single_character(const JsonNode& node) {
  const std::string text = node.string();
  if (text.empty() || utf8_decode(text, 0).size != text.size() || !utf8_decode(text, 0).valid)
    node.fail("expected exactly one character");
  return text;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const JsonNode& node) {
  PreTokenizer p;
  if (!node.is_null()) p.add(node);
  return p;
}

void PreTokenizer::add(const JsonNode& node) {
  if (byte_level_) node.fail("a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last)");
  const std::string type = node.type();
  if (type == "Sequence") {
    const JsonNode children = node.at("pretokenizers");
    for (size_t i = 0; i < children.size(); ++i) add(children.element(i));
  } else if (type == "Split") {
    auto behavior = split_behavior_from_json(node.at("behavior"));
    steps_.push_back(
        std::make_shared<SplitStep>(pattern_from_json(node.at("pattern")), behavior, node.boolean_or("invert", false)));
  } else if (type == "Metaspace") {
    steps_.push_back(std::make_shared<MetaspaceStep>(single_character(node.at("replacement")),
                                                     prepend_scheme_from_json(node), node.boolean_or("split", true)));
  } else if (type == "ByteLevel") {
    steps_.push_back(
        std::make_shared<ByteLevelStep>(node.boolean_or("add_prefix_space", true), node.boolean_or("use_regex", true)));
    byte_level_ = true;
  } else {
    node.fail("unsupported pre-tokenizer type \"" + type + "\" (supported: Sequence, Split, ByteLevel, Metaspace)");
  }
}

void PreTokenizer::run(std::string_view text, bool at_start, PreTokenizeScratch& scratch) const {
  scratch.pieces.clear();
  scratch.pieces.push_back({text, at_start});
  for (const auto& step : steps_) {
    scratch.next.clear();
    for (const Piece& piece : scratch.pieces) step->apply(piece, scratch, scratch.next);
    std::swap(scratch.pieces, scratch.next);
  }
}

}  // namespace lp::detail
