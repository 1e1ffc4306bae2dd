#include "tokenizer/json_reader.h"

#include <limits>
#include <unordered_set>
#include <vector>

#include "linearpatch/core/error.h"

namespace lp::detail {
namespace {

constexpr int kMaxDepth = 32;
// Checked while parsing, before the document exists: a file of a million
// '[' would otherwise be built in full before the node walk (kMaxDepth)
// refuses it. Real tokenizer.json files nest about 8 levels; a generous
// bound leaves the walk's clearer message to nesting it can reach.
constexpr int kMaxJsonDepth = 8 * kMaxDepth;

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  std::vector<std::unordered_set<std::string>> open_objects;
  auto check_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth)
      throw InputError(source + ": JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      open_objects.pop_back();
    } else if (event == Event::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) throw InputError(source + ": duplicate JSON key \"" + key + "\"");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check_keys);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source + ": invalid JSON: " + e.what());
  }
}

JsonNode::JsonNode(const nlohmann::json& value, std::string source, std::string path)
    : value_(value), source_(std::move(source)), path_(std::move(path)) {}

void JsonNode::fail(const std::string& message) const {
  throw InputError(source_ + ": " + (path_.empty() ? std::string("top level") : path_) + ": " + message);
}

JsonNode JsonNode::child(const nlohmann::json& value, std::string path) const {
  if (depth_ >= kMaxDepth) fail("nested more than " + std::to_string(kMaxDepth) + " levels deep");
  JsonNode node(value, source_, std::move(path));
  node.depth_ = depth_ + 1;
  return node;
}

void JsonNode::require_object() const {
  if (!value_.is_object()) fail(std::string("expected an object, found ") + value_.type_name());
}

JsonNode JsonNode::at(const char* key) const {
  require_object();
  auto it = value_.find(key);
  if (it == value_.end()) fail(std::string("missing \"") + key + "\"");
  return child(*it, path_.empty() ? key : path_ + "." + key);
}

std::optional<JsonNode> JsonNode::find(const char* key) const {
  require_object();
  auto it = value_.find(key);
  if (it == value_.end() || it->is_null()) return std::nullopt;
  return child(*it, path_.empty() ? key : path_ + "." + key);
}

JsonNode JsonNode::element(size_t index) const {
  if (!value_.is_array()) fail(std::string("expected an array, found ") + value_.type_name());
  if (index >= value_.size()) fail("index " + std::to_string(index) + " out of range");
  return child(value_[index], path_ + "[" + std::to_string(index) + "]");
}

size_t JsonNode::size() const {
  if (!value_.is_array()) fail(std::string("expected an array, found ") + value_.type_name());
  return value_.size();
}

std::string JsonNode::string() const {
  if (!value_.is_string()) fail(std::string("expected a string, found ") + value_.type_name());
  return value_.get<std::string>();
}

bool JsonNode::boolean() const {
  if (!value_.is_boolean()) fail(std::string("expected true or false, found ") + value_.type_name());
  return value_.get<bool>();
}

int64_t JsonNode::integer() const {
  if (value_.is_number_unsigned()) {
    const auto v = value_.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("integer out of range");
    return static_cast<int64_t>(v);
  }
  if (!value_.is_number_integer()) fail(std::string("expected an integer, found ") + value_.type_name());
  return value_.get<int64_t>();
}

int32_t JsonNode::token_id() const {
  const int64_t v = integer();
  if (v < 0 || v > std::numeric_limits<int32_t>::max()) fail("token id " + std::to_string(v) + " out of range");
  return static_cast<int32_t>(v);
}

std::string JsonNode::type() const { return at("type").string(); }

bool JsonNode::boolean_or(const char* key, bool fallback) const {
  auto member = find(key);
  return member ? member->boolean() : fallback;
}

std::string JsonNode::string_or(const char* key, const std::string& fallback) const {
  auto member = find(key);
  return member ? member->string() : fallback;
}

}  // namespace lp::detail
