#include "model/rope.h"

#include <cmath>

namespace lp {

at::Tensor rope_inverse_frequencies(const LlamaConfig& config) {
  const int64_t D = config.head_dim;
  auto exponents = at::arange(0, D, 2, at::kLong).to(at::kFloat) / static_cast<float>(D);
  auto inv_freq = 1.0 / at::pow(static_cast<float>(config.rope_theta), exponents);
  const auto& s = config.rope_scaling;
  switch (s.type) {
    case RopeScaling::Type::kDefault:
      return inv_freq;
    case RopeScaling::Type::kLinear:
      return inv_freq / s.factor;
    case RopeScaling::Type::kLlama3: {
      // transformers' _compute_llama3_parameters: long wavelengths are
      // divided by `factor`, short ones kept, the band between interpolated.
      const double old_context = static_cast<double>(s.original_max_position_embeddings);
      const double low_freq_wavelen = old_context / s.low_freq_factor;
      const double high_freq_wavelen = old_context / s.high_freq_factor;
      auto wavelen = 2 * M_PI / inv_freq;
      auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
      auto smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
      auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return at::where(medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

RopeTables rope_tables(const at::Tensor& inv_freq, int64_t T, at::ScalarType dtype) {
  auto positions = at::arange(T, inv_freq.options());
  auto freqs = at::outer(positions, inv_freq);  // [T, D/2]
  auto emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables) {
  const int64_t half = x.size(-1) / 2;
  auto rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * tables.cos + rotated * tables.sin;
}

}  // namespace lp
