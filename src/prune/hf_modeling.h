// The Python module written next to patched checkpoints so transformers can
// load them with trust_remote_code (src/prune/hf/modeling_linearpatch.py,
// embedded at build time): one class per family, each subclassing the
// family's own transformers class.
#pragma once

namespace lp {

constexpr const char* kHfModelingFile = "modeling_linearpatch.py";
const char* hf_modeling_source();

}  // namespace lp
