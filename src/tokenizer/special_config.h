// What the files around a tokenizer say about its special tokens:
// tokenizer_config.json names BOS/EOS by content (a string, or an AddedToken
// object with "content") and may set add_bos_token/add_eos_token; config.json
// gives bos_token_id/eos_token_id (an id or a list of ids, the first counts).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lp::detail {

struct SpecialConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> eos_token_id;
};

// Both throw InputError naming `source` when the file is not valid JSON or a
// field has the wrong type; absent fields stay unset.
void read_tokenizer_config(std::string_view json, const std::string& source, SpecialConfig& config);
void read_model_config(std::string_view json, const std::string& source, SpecialConfig& config);

// The id of a special token named in tokenizer_config.json, or nullopt with a
// warning when `lookup` does not know it (a stale config should not make an
// otherwise usable tokenizer unusable).
std::optional<int32_t> resolve_named_token(const std::optional<std::string>& name, const char* role,
                                           const std::function<std::optional<int32_t>(const std::string&)>& lookup);

// Tokenizer::prefix_description(): "BOS <s> (id 1)", each id so with the
// BOS role named where it applies, comma-separated; "none" for no ids.
std::string describe_prefix(const std::vector<int32_t>& ids, std::optional<int32_t> bos,
                            const std::function<std::string(int32_t)>& token_text);

}  // namespace lp::detail
