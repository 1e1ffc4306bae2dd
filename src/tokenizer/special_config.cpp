#include "tokenizer/special_config.h"

#include <spdlog/spdlog.h>

#include "tokenizer/json_reader.h"

namespace lp::detail {
namespace {

std::optional<std::string> token_name(const JsonNode& config, const char* key) {
  auto node = config.find(key);
  if (!node) return std::nullopt;
  if (node->value().is_object()) return node->at("content").string();
  return node->string();
}

std::optional<int32_t> first_id(const JsonNode& config, const char* key) {
  auto node = config.find(key);
  if (!node) return std::nullopt;
  if (node->value().is_array()) {
    if (node->size() == 0) return std::nullopt;
    return node->element(0).token_id();
  }
  return node->token_id();
}

std::optional<bool> flag(const JsonNode& config, const char* key) {
  auto node = config.find(key);
  if (!node) return std::nullopt;
  return node->boolean();
}

}  // namespace

void read_tokenizer_config(std::string_view json, const std::string& source, SpecialConfig& config) {
  const nlohmann::json doc = parse_json(json, source);
  const JsonNode root(doc, source, "");
  config.bos_token = token_name(root, "bos_token");
  config.eos_token = token_name(root, "eos_token");
  config.add_bos_token = flag(root, "add_bos_token");
  config.add_eos_token = flag(root, "add_eos_token");
}

void read_model_config(std::string_view json, const std::string& source, SpecialConfig& config) {
  const nlohmann::json doc = parse_json(json, source);
  const JsonNode root(doc, source, "");
  config.bos_token_id = first_id(root, "bos_token_id");
  config.eos_token_id = first_id(root, "eos_token_id");
}

std::optional<int32_t> resolve_named_token(const std::optional<std::string>& name, const char* role,
                                           const std::function<std::optional<int32_t>(const std::string&)>& lookup) {
  if (!name) return std::nullopt;
  auto id = lookup(*name);
  if (!id)
    spdlog::warn("tokenizer_config.json names {} token \"{}\", which is not in the vocabulary; ignored", role, *name);
  return id;
}

std::string describe_prefix(const std::vector<int32_t>& ids, std::optional<int32_t> bos,
                            const std::function<std::string(int32_t)>& token_text) {
  if (ids.empty()) return "none";
  std::string out;
  for (const int32_t id : ids) {
    if (!out.empty()) out += ", ";
    if (bos == id) out += "BOS ";
    out += token_text(id) + " (id " + std::to_string(id) + ")";
  }
  return out;
}

}  // namespace lp::detail
