// tokenizer.json (HF tokenizers format) with a BPE model: byte-level
// (LLaMA-3) or with byte fallback (LLaMA-2). See tokenizer.h for the scope.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "linearpatch/tokenizer/tokenizer.h"
#include "tokenizer/special_config.h"

namespace lp::detail {

// Throws InputError naming `source` and the offending node.
std::unique_ptr<Tokenizer> make_json_tokenizer(std::string_view json, const SpecialConfig& config,
                                               const std::string& source);

}  // namespace lp::detail
