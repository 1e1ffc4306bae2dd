#include "tokenizer/json_tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include "linearpatch/core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace lp::detail {
namespace {

// Scratch space for one encode() call, so that concurrent calls share nothing
// but the model's cache.
struct EncodeScratch {
  PreTokenizeScratch pre;
  BpeScratch bpe;
  std::vector<Segment> segments;
  std::vector<Segment> inner_segments;
};

// Ids the post-processor puts around a single sequence.
struct Template {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

class JsonTokenizer final : public Tokenizer {
 public:
  JsonTokenizer(std::string_view json, const SpecialConfig& config, const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::vector<int32_t> prefix_ids() const override { return template_.prefix; }
  std::string prefix_description() const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::string description() const override;

 private:
  void read_added_tokens(const JsonNode& node);
  void read_post_processor(const JsonNode& node);
  void read_template(const JsonNode& node);
  void resolve_special_ids(const SpecialConfig& config);
  std::optional<int32_t> token_to_id(const std::string& token) const;

  void encode_segment(std::string_view text, bool at_start, EncodeScratch& scratch, std::vector<int32_t>& ids) const;
  void encode_pieces(std::string_view text, bool at_start, EncodeScratch& scratch, std::vector<int32_t>& ids) const;

  std::string source_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  Decoder decoder_;
  std::unordered_map<std::string, int32_t> added_ids_;
  std::unordered_map<int32_t, std::string> added_contents_;
  AddedTokenMatcher raw_matcher_;         // tokens with normalized: false
  AddedTokenMatcher normalized_matcher_;  // the others, matched after the normalizer
  Template template_;
  int32_t vocab_size_ = 0;
  std::optional<int32_t> bos_;
  std::optional<int32_t> eos_;
};

// "truncation" and "padding" are ignored: transformers switches both off
// unless a call asks for them, and callers here cut the ids into windows.
JsonTokenizer::JsonTokenizer(std::string_view json, const SpecialConfig& config, const std::string& source)
    : source_(source) {
  const nlohmann::json doc = parse_json(json, source);
  const JsonNode root(doc, source, "");
  const auto optional_node = [&root](const char* key) {
    static const nlohmann::json null_value;
    auto node = root.find(key);
    return node ? *node : JsonNode(null_value, "", key);
  };
  normalizer_ = Normalizer::from_json(optional_node("normalizer"));
  pre_tokenizer_ = PreTokenizer::from_json(optional_node("pre_tokenizer"));
  const JsonNode model = root.at("model");
  const std::string model_type = model.type();
  if (model_type != "BPE") model.fail("unsupported model type \"" + model_type + "\" (only BPE is supported)");
  model_ = BpeModel::from_json(model, pre_tokenizer_.byte_level());
  vocab_size_ = model_->id_limit();
  if (auto added = root.find("added_tokens")) read_added_tokens(*added);
  read_post_processor(optional_node("post_processor"));
  decoder_ = Decoder::from_json(optional_node("decoder"));
  resolve_special_ids(config);
}

// Ids follow HF's AddedVocabulary: a token already in the model keeps the
// model's id, others are numbered after the model; HF warns when that
// disagrees with the id in the file, and so do we.
void JsonTokenizer::read_added_tokens(const JsonNode& node) {
  RegexScratch scratch;
  int32_t max_added = -1;
  for (size_t i = 0; i < node.size(); ++i) {
    const JsonNode entry = node.element(i);
    AddedToken token;
    token.content = entry.at("content").string();
    token.single_word = entry.boolean_or("single_word", false);
    token.lstrip = entry.boolean_or("lstrip", false);
    token.rstrip = entry.boolean_or("rstrip", false);
    token.special = entry.boolean_or("special", false);
    token.normalized = entry.boolean_or("normalized", !token.special);
    const int32_t file_id = entry.at("id").token_id();
    if (token.content.empty()) continue;
    if (auto known = token_to_id(token.content)) {
      token.id = *known;
    } else {
      const auto model_size = static_cast<int32_t>(model_->vocab_entries());
      token.id = max_added < 0 || (max_added < model_size && model_size > 0) ? model_size : max_added + 1;
    }
    if (token.id != file_id)
      spdlog::warn("{}: added token \"{}\" has id {} in the file but gets id {}", source_, token.content, file_id,
                   token.id);
    max_added = std::max(max_added, token.id);
    vocab_size_ = std::max(vocab_size_, token.id + 1);
    added_ids_[token.content] = token.id;
    added_contents_[token.id] = token.content;
    if (token.normalized) {
      normalized_matcher_.add(normalizer_.apply(token.content, scratch), token);
    } else {
      raw_matcher_.add(token.content, token);
    }
  }
}

void JsonTokenizer::read_post_processor(const JsonNode& node) {
  if (node.is_null()) return;
  const std::string type = node.type();
  if (type == "Sequence") {
    const JsonNode children = node.at("processors");
    for (size_t i = 0; i < children.size(); ++i) read_post_processor(children.element(i));
  } else if (type == "TemplateProcessing") {
    read_template(node);
  } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
    node.fail("unsupported post-processor type \"" + type + "\" (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
}

// Each processor wraps what the previous ones produced.
void JsonTokenizer::read_template(const JsonNode& node) {
  const JsonNode specials = node.at("special_tokens");
  const JsonNode single = node.at("single");
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonNode item = single.element(i);
    if (auto sequence = item.find("Sequence")) {
      if (seen_sequence || sequence->at("id").string() != "A")
        sequence->fail("a single-sequence template must contain sequence A exactly once");
      seen_sequence = true;
    } else if (auto special = item.find("SpecialToken")) {
      const std::string name = special->at("id").string();
      const JsonNode ids = specials.at(name.c_str()).at("ids");
      for (size_t k = 0; k < ids.size(); ++k) {
        const int32_t id = ids.element(k).token_id();
        if (id >= vocab_size_)
          ids.element(k).fail("id " + std::to_string(id) + " is outside the vocabulary (" +
                              std::to_string(vocab_size_) + " tokens)");
        (seen_sequence ? suffix : prefix).push_back(id);
      }
    } else {
      item.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_sequence) single.fail("the template has no sequence A");
  template_.prefix.insert(template_.prefix.begin(), prefix.begin(), prefix.end());
  template_.suffix.insert(template_.suffix.end(), suffix.begin(), suffix.end());
}

std::optional<int32_t> JsonTokenizer::token_to_id(const std::string& token) const {
  auto it = added_ids_.find(token);
  if (it != added_ids_.end()) return it->second;
  return model_->token_to_id(token);
}

// BOS/EOS: what the post-processor adds, else tokenizer_config.json's token
// names, else config.json's ids.
void JsonTokenizer::resolve_special_ids(const SpecialConfig& config) {
  const auto lookup = [this](const std::string& token) { return token_to_id(token); };
  const auto in_range = [this](std::optional<int32_t> id) -> std::optional<int32_t> {
    if (!id || *id < vocab_size_) return id;
    spdlog::warn("{}: config.json's special token id {} is outside the vocabulary ({} tokens); ignored", source_, *id,
                 vocab_size_);
    return std::nullopt;
  };
  bos_ = !template_.prefix.empty() ? std::optional<int32_t>(template_.prefix.front())
                                   : resolve_named_token(config.bos_token, "BOS", lookup);
  if (!bos_) bos_ = in_range(config.bos_token_id);
  eos_ = !template_.suffix.empty() ? std::optional<int32_t>(template_.suffix.back())
                                   : resolve_named_token(config.eos_token, "EOS", lookup);
  if (!eos_) eos_ = in_range(config.eos_token_id);
}

std::vector<int32_t> JsonTokenizer::encode(std::string_view text, bool add_special) const {
  EncodeScratch scratch;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + template_.prefix.size() + template_.suffix.size());
  if (add_special) ids = template_.prefix;
  if (raw_matcher_.empty()) {
    if (!text.empty()) encode_segment(text, true, scratch, ids);
  } else {
    raw_matcher_.split(text, scratch.pre.regex, scratch.segments);
    for (const Segment& segment : scratch.segments) {
      if (segment.token_id >= 0) {
        ids.push_back(segment.token_id);
      } else {
        const Span s = segment.span;
        encode_segment(text.substr(s.begin, s.end - s.begin), s.begin == 0, scratch, ids);
      }
    }
  }
  if (add_special) ids.insert(ids.end(), template_.suffix.begin(), template_.suffix.end());
  return ids;
}

// One stretch of text between raw added tokens: normalize, cut out the
// normalized added tokens, pre-tokenize, run the model.
void JsonTokenizer::encode_segment(std::string_view text, bool at_start, EncodeScratch& scratch,
                                   std::vector<int32_t>& ids) const {
  std::string normalized;
  if (!normalizer_.is_identity()) {
    normalized = normalizer_.apply(text, scratch.pre.regex);
    text = normalized;
  }
  if (normalized_matcher_.empty()) {
    if (!text.empty()) encode_pieces(text, at_start, scratch, ids);
    return;
  }
  scratch.inner_segments.clear();
  normalized_matcher_.split(text, scratch.pre.regex, scratch.inner_segments);
  for (const Segment& segment : scratch.inner_segments) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
    } else {
      const Span s = segment.span;
      encode_pieces(text.substr(s.begin, s.end - s.begin), at_start && s.begin == 0, scratch, ids);
    }
  }
}

void JsonTokenizer::encode_pieces(std::string_view text, bool at_start, EncodeScratch& scratch,
                                  std::vector<int32_t>& ids) const {
  pre_tokenizer_.run(text, at_start, scratch.pre);
  for (const Piece& piece : scratch.pre.pieces) model_->encode(piece.text, ids, scratch.bpe);
  scratch.pre.arena.clear();
}

// Ids without a token are skipped, as HF does.
std::string JsonTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (auto it = added_contents_.find(id); it != added_contents_.end()) {
      tokens.push_back(it->second);
    } else if (const std::string* token = model_->id_to_token(id)) {
      tokens.push_back(*token);
    }
  }
  return decoder_.decode(std::move(tokens));
}

std::string JsonTokenizer::prefix_description() const {
  return describe_prefix(template_.prefix, bos_, [this](int32_t id) {
    if (auto it = added_contents_.find(id); it != added_contents_.end()) return it->second;
    const std::string* token = model_->id_to_token(id);
    return token ? *token : std::string();
  });
}

std::string JsonTokenizer::description() const {
  const char* kind = model_->byte_level()      ? "byte-level BPE"
                     : model_->byte_fallback() ? "BPE with byte fallback"
                                               : "BPE";
  return "tokenizer.json (" + std::string(kind) + ", " + std::to_string(vocab_size_) + " tokens)";
}

}  // namespace

std::unique_ptr<Tokenizer> make_json_tokenizer(std::string_view json, const SpecialConfig& config,
                                               const std::string& source) {
  return std::make_unique<JsonTokenizer>(json, config, source);
}

}  // namespace lp::detail
