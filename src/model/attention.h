// Causal grouped-query attention. Uses scaled_dot_product_attention where
// the libtorch version has it (>= 2.1), else an explicit float32-softmax
// path (Debian's libtorch 1.13) that bounds memory by chunking query rows.
#pragma once

#include <ATen/ATen.h>

namespace lp {

// q [B, H, T, D], k/v [B, Hkv, T, D] with H % Hkv == 0 -> [B, T, H*D].
// `window` > 0 limits each query to itself and the window - 1 keys before
// it (sliding-window attention, transformers' convention); 0 is full causal.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window = 0);

// The explicit path, exposed so tests can compare it with the fused one.
// Query rows go through in chunks of `chunk_rows` (0: as many as keep one
// chunk's scores within 256 MiB).
at::Tensor causal_attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     int64_t window = 0, int64_t chunk_rows = 0);

}  // namespace lp
