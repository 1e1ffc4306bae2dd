// Rotary position embeddings exactly as HF transformers computes them
// (rotate_half convention, float32 frequencies, default/linear/llama3 types).
#pragma once

#include <ATen/ATen.h>

#include "linearpatch/config/llama_config.h"

namespace lp {

struct RopeTables {
  at::Tensor cos;  // [T, head_dim], compute dtype
  at::Tensor sin;
};

// [head_dim / 2] float32 inverse frequencies, scaling applied.
at::Tensor rope_inverse_frequencies(const LlamaConfig& config);

// Tables for positions 0..T-1.
RopeTables rope_tables(const at::Tensor& inv_freq, int64_t T, at::ScalarType dtype);

// x [B, heads, T, head_dim] -> rotated x.
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables);

}  // namespace lp
