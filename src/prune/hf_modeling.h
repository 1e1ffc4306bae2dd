// The Python module written next to patched checkpoints so transformers can
// load them with trust_remote_code (src/prune/hf/modeling_linearpatch_llama.py,
// embedded at build time).
#pragma once

namespace lp {

constexpr const char* kHfModelingFile = "modeling_linearpatch_llama.py";
constexpr const char* kHfModelClass = "modeling_linearpatch_llama.LinearPatchLlamaForCausalLM";
const char* hf_modeling_source();

}  // namespace lp
