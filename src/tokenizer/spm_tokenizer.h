// tokenizer.model (sentencepiece), run through lp_spm_shim.
#pragma once

#include <memory>
#include <string>

#include "linearpatch/tokenizer/tokenizer.h"
#include "tokenizer/special_config.h"

namespace lp::detail {

// `model` is the file's content. Throws InputError naming `source` when the
// shim is unavailable or sentencepiece rejects the model.
std::unique_ptr<Tokenizer> make_spm_tokenizer(const std::string& model, const SpecialConfig& config,
                                              const std::string& source);

}  // namespace lp::detail
