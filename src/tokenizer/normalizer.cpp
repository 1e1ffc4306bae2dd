#include "tokenizer/normalizer.h"

#include "tokenizer/unicode_nfc.h"

namespace lp::detail {

Pattern pattern_from_json(const JsonNode& node) {
  if (auto literal = node.find("String")) return Pattern::literal(literal->string());
  if (auto regex = node.find("Regex")) return Pattern::regex(regex->string(), regex->where());
  node.fail("expected {\"String\": ...} or {\"Regex\": ...}");
}

std::string replace_all(std::string_view text, const Pattern& pattern, const std::string& content,
                        RegexScratch& scratch) {
  std::vector<Span> matches;
  pattern.find_all(text, scratch, matches);
  std::string out;
  out.reserve(text.size());
  size_t done = 0;
  for (const Span& m : matches) {
    out.append(text.substr(done, m.begin - done));
    out.append(content);
    done = m.end;
  }
  out.append(text.substr(done));
  return out;
}

Normalizer Normalizer::from_json(const JsonNode& node) {
  Normalizer n;
  if (!node.is_null()) n.add(node);
  return n;
}

void Normalizer::add(const JsonNode& node) {
  const std::string type = node.type();
  if (type == "Sequence") {
    const JsonNode children = node.at("normalizers");
    for (size_t i = 0; i < children.size(); ++i) add(children.element(i));
  } else if (type == "Prepend") {
    steps_.push_back({Step::Kind::kPrepend, Pattern::literal(""), node.at("prepend").string()});
  } else if (type == "Replace") {
    steps_.push_back({Step::Kind::kReplace, pattern_from_json(node.at("pattern")), node.at("content").string()});
  } else if (type == "NFC") {
    steps_.push_back({Step::Kind::kNfc, Pattern::literal(""), ""});
  } else {
    node.fail("unsupported normalizer type \"" + type + "\" (supported: Sequence, Prepend, Replace, NFC)");
  }
}

std::string Normalizer::apply(std::string_view text, RegexScratch& scratch) const {
  std::string out(text);
  for (const Step& step : steps_) {
    if (step.kind == Step::Kind::kReplace) {
      out = replace_all(out, step.pattern, step.content, scratch);
    } else if (step.kind == Step::Kind::kNfc) {
      out = to_nfc(out);
    } else if (!out.empty()) {  // HF prepends nothing to an empty string
      out.insert(0, step.content);
    }
  }
  return out;
}

}  // namespace lp::detail
