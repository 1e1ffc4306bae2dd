#include "tokenizer/decoder.h"

#include <utility>

#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

std::string concatenate(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

// Each token back through the GPT-2 alphabet; a token with a character
// outside it (an added token such as "<|eot_id|>" never has one) is kept as is.
class ByteLevelDecode final : public DecodeStep {
 public:
  void apply(std::vector<std::string>& tokens, RegexScratch&) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const size_t mark = bytes.size();
      bool mapped = true;
      for (size_t pos = 0; pos < token.size() && mapped;) {
        const Utf8Char c = utf8_decode(token, pos);
        const auto byte = c.valid ? byte_level_byte(c.code_point) : std::nullopt;
        if (byte) bytes.push_back(static_cast<char>(*byte));
        mapped = byte.has_value();
        pos += c.size;
      }
      if (!mapped) bytes.replace(mark, std::string::npos, token);
    }
    tokens.assign(1, std::move(bytes));
  }
};

class ReplaceDecode final : public DecodeStep {
 public:
  ReplaceDecode(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::vector<std::string>& tokens, RegexScratch& scratch) const override {
    for (auto& token : tokens) token = replace_all(token, pattern_, content_, scratch);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// <0xNN> tokens become their bytes, consecutive ones joined into one token.
class ByteFallbackDecode final : public DecodeStep {
 public:
  void apply(std::vector<std::string>& tokens, RegexScratch&) const override {
    std::vector<std::string> out;
    std::string bytes;
    for (auto& token : tokens) {
      if (auto byte = byte_token(token)) {
        bytes.push_back(static_cast<char>(*byte));
        continue;
      }
      if (!bytes.empty()) out.push_back(std::exchange(bytes, {}));
      out.push_back(std::move(token));
    }
    if (!bytes.empty()) out.push_back(std::move(bytes));
    tokens = std::move(out);
  }

 private:
  static std::optional<uint8_t> byte_token(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
    int value = 0;
    for (const char c : token.substr(3, 2)) {
      const int digit = (c >= '0' && c <= '9')   ? c - '0'
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                 : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + digit;
    }
    return static_cast<uint8_t>(value);
  }
};

class FuseDecode final : public DecodeStep {
 public:
  void apply(std::vector<std::string>& tokens, RegexScratch&) const override { tokens.assign(1, concatenate(tokens)); }
};

// Removes up to `start` leading and `stop` trailing copies of a character
// from every token.
class StripDecode final : public DecodeStep {
 public:
  StripDecode(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens, RegexScratch&) const override {
    for (auto& token : tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i)
        begin += content_.size();
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i)
        end -= content_.size();
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

// The replacement character becomes a space, except in the first token when
// the pre-tokenizer prepended one, where it is dropped.
class MetaspaceDecode final : public DecodeStep {
 public:
  MetaspaceDecode(std::string replacement, bool drop_first)
      : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void apply(std::vector<std::string>& tokens, RegexScratch& scratch) const override {
    const Pattern pattern = Pattern::literal(replacement_);
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(tokens[i], pattern, i == 0 && drop_first_ ? "" : " ", scratch);
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

size_t count_from_json(const JsonNode& node) {
  const int64_t value = node.integer();
  if (value < 0) node.fail("expected a count >= 0");
  return static_cast<size_t>(value);
}

}  // namespace

Decoder Decoder::from_json(const JsonNode& node) {
  Decoder d;
  if (!node.is_null()) d.add(node);
  return d;
}

void Decoder::add(const JsonNode& node) {
  const std::string type = node.type();
  if (type == "Sequence") {
    const JsonNode children = node.at("decoders");
    for (size_t i = 0; i < children.size(); ++i) add(children.element(i));
  } else if (type == "ByteLevel") {
    steps_.push_back(std::make_shared<ByteLevelDecode>());
  } else if (type == "Replace") {
    steps_.push_back(
        std::make_shared<ReplaceDecode>(pattern_from_json(node.at("pattern")), node.at("content").string()));
  } else if (type == "ByteFallback") {
    steps_.push_back(std::make_shared<ByteFallbackDecode>());
  } else if (type == "Fuse") {
    steps_.push_back(std::make_shared<FuseDecode>());
  } else if (type == "Strip") {
    const JsonNode content = node.at("content");
    if (content.string().empty()) content.fail("expected a character");
    steps_.push_back(std::make_shared<StripDecode>(content.string(), count_from_json(node.at("start")),
                                                   count_from_json(node.at("stop"))));
  } else if (type == "Metaspace") {
    const std::string scheme =
        node.string_or("prepend_scheme", node.boolean_or("add_prefix_space", true) ? "always" : "never");
    steps_.push_back(std::make_shared<MetaspaceDecode>(node.at("replacement").string(), scheme != "never"));
  } else {
    node.fail("unsupported decoder type \"" + type +
              "\" (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip)");
  }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  RegexScratch scratch;
  for (const auto& step : steps_) step->apply(tokens, scratch);
  return concatenate(tokens);
}

}  // namespace lp::detail
