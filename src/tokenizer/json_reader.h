// Reading tokenizer.json and friends with errors that name the file and the
// node ("tokenizer.json: model.merges[12]: ..."), and refusing duplicate keys,
// which nlohmann_json would otherwise resolve silently to the last one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace lp::detail {

// Throws InputError("<source>: invalid JSON: ...") or on a duplicate key.
nlohmann::json parse_json(std::string_view text, const std::string& source);

// A JSON value together with where it sits, for error messages. Nodes
// deeper than any real tokenizer file needs are refused, which bounds the
// recursion over nested Sequence nodes.
class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string source, std::string path);

  const nlohmann::json& value() const { return value_; }
  std::string where() const { return source_ + ": " + path_; }  // for errors raised elsewhere
  bool is_null() const { return value_.is_null(); }

  [[noreturn]] void fail(const std::string& message) const;

  JsonNode at(const char* key) const;                   // required member
  std::optional<JsonNode> find(const char* key) const;  // absent or null -> nullopt
  JsonNode element(size_t index) const;                 // requires an array
  size_t size() const;                                  // requires an array

  std::string string() const;
  bool boolean() const;
  int64_t integer() const;
  int32_t token_id() const;  // integer in [0, 2^31)

  // The "type" member of a tagged node (normalizer, model, ...).
  std::string type() const;

  // Member `key` when present and non-null, else `fallback`.
  bool boolean_or(const char* key, bool fallback) const;
  std::string string_or(const char* key, const std::string& fallback) const;

 private:
  JsonNode child(const nlohmann::json& value, std::string path) const;
  void require_object() const;

  const nlohmann::json& value_;
  std::string source_;
  std::string path_;
  int depth_ = 0;
};

}  // namespace lp::detail
