// Causal grouped-query attention. Uses scaled_dot_product_attention where
// the libtorch version has it (>= 2.1), else an explicit float32-softmax
// path (Debian's libtorch 1.13) that bounds memory by chunking query rows.
#pragma once

#include <ATen/ATen.h>

namespace lp {

// q [B, H, T, D], k/v [B, Hkv, T, D] with H % Hkv == 0 -> [B, T, H*D].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The explicit path, exposed so tests can compare it with the fused one.
at::Tensor causal_attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace lp
