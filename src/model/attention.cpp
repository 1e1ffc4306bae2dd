#include "model/attention.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace lp {
namespace {

// Score matrices above this size are computed in chunks of query rows.
constexpr int64_t kMaxScoreBytes = int64_t{256} << 20;

at::Tensor merge_heads(const at::Tensor& out) {  // [B, H, T, D] -> [B, T, H*D]
  const int64_t B = out.size(0), H = out.size(1), T = out.size(2), D = out.size(3);
  return out.transpose(1, 2).reshape({B, T, H * D});
}

// Additive mask for query rows [t0, t0 + rows) over keys [k0, keys): -inf
// above the diagonal and, with a window, at or beyond `window` tokens back.
at::Tensor attention_mask(int64_t t0, int64_t rows, int64_t k0, int64_t keys, int64_t window,
                          const at::TensorOptions& options) {
  const auto query = at::arange(t0, t0 + rows, options.dtype(at::kLong)).unsqueeze(1);
  const auto key = at::arange(k0, keys, options.dtype(at::kLong)).unsqueeze(0);
  auto blocked = key > query;
  if (window > 0) blocked = blocked | (key <= query - window);
  return at::zeros({rows, keys - k0}, options.dtype(at::kFloat))
      .masked_fill(blocked, -std::numeric_limits<float>::infinity());
}

}  // namespace

at::Tensor causal_attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                                     int64_t chunk_rows) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t n_kv = k.size(1), group = H / n_kv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  // Queries of one KV head side by side: [B, Hkv, G, T, D]; no copies of K/V.
  auto q5 = q.reshape({B, n_kv, group, T, D});
  auto k5 = k.unsqueeze(2);
  auto v5 = v.unsqueeze(2);
  const int64_t row_bytes = B * H * T * static_cast<int64_t>(sizeof(float));
  const int64_t chunk =
      std::clamp<int64_t>(chunk_rows > 0 ? chunk_rows : kMaxScoreBytes / std::max<int64_t>(row_bytes, 1), 1, T);

  std::vector<at::Tensor> pieces;
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t rows = std::min(chunk, T - t0), keys = t0 + rows;
    // Keys no row of this chunk can see are skipped, not just masked.
    const int64_t k0 = window > 0 ? std::max<int64_t>(0, t0 - window + 1) : 0;
    auto q_rows = q5.narrow(3, t0, rows);
    auto scores = at::matmul(q_rows, k5.narrow(3, k0, keys - k0).transpose(-1, -2)) * scale;
    auto mask = attention_mask(t0, rows, k0, keys, window, scores.options());
    auto probs = at::softmax(scores.to(at::kFloat) + mask, -1).to(q.scalar_type());
    pieces.push_back(at::matmul(probs, v5.narrow(3, k0, keys - k0)));
  }
  auto out = pieces.size() == 1 ? pieces[0] : at::cat(pieces, 3);
  return merge_heads(out.reshape({B, H, T, D}));
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window) {
  const int64_t T = q.size(2);
  // A window that covers the whole sequence changes nothing.
  if (window >= T) window = 0;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  if (q.is_cuda()) {
    const int64_t group = q.size(1) / k.size(1);
    auto k_full = group == 1 ? k : k.repeat_interleave(group, 1);
    auto v_full = group == 1 ? v : v.repeat_interleave(group, 1);
    if (window == 0)
      return merge_heads(at::scaled_dot_product_attention(q, k_full, v_full, {}, 0.0, /*is_causal=*/true));
    const auto mask = attention_mask(0, T, 0, T, window, q.options()).to(q.scalar_type());
    return merge_heads(at::scaled_dot_product_attention(q, k_full, v_full, mask, 0.0, /*is_causal=*/false));
  }
#endif
  return causal_attention_explicit(q, k, v, window);
}

}  // namespace lp
