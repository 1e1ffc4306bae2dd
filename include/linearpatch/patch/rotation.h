// The orthonormal rotation in which LinearPatch estimates its channel
// scales (paper §3.3): a normalised Hadamard matrix H (H·Hᵀ = I).
//
// Construction (deterministic): C = 2^k · m with the smallest m for which a
// core exists: m = 1 (pure Sylvester), a Paley I core (m - 1 prime,
// ≡ 3 mod 4) or a Paley II core (m / 2 - 1 prime, ≡ 1 mod 4);
// H = (S_2^k ⊗ Core_m) / sqrt(C), the Sylvester factor first (the order the
// reference implementation uses: 320 = S_16 ⊗ Paley-I(19)). This covers
// 2048, 3072, 3584, 4096, 5120, 8192 and most LLaMA-family sizes. For other
// sizes `auto` falls back to a seeded random orthogonal matrix (any
// orthonormal basis keeps the patch exact; Hadamard is preferred because it
// spreads outlier channels evenly).
//
// x·H is applied as a sequence of small factor products along the axes of
// x viewed as [.., 2^a, 2^b, m], i.e. C·(2^a + 2^b + m) operations per row
// instead of C².
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lp {

enum class RotationKind { kAuto, kHadamard, kRandom, kIdentity };
RotationKind parse_rotation_kind(const std::string& name);  // auto|hadamard|random|none

class Rotation {
 public:
  // kHadamard throws UsageError when no construction exists for `size`.
  static Rotation create(int64_t size, RotationKind kind, uint64_t seed);
  static std::optional<Rotation> hadamard(int64_t size);

  int64_t size() const { return size_; }
  const std::string& description() const { return description_; }
  bool is_hadamard() const { return is_hadamard_; }

  // x [.., C] float32/float64 -> x·H, or x·Hᵀ with `transpose`.
  at::Tensor apply(const at::Tensor& x, bool transpose = false) const;
  at::Tensor matrix(at::ScalarType dtype) const;  // H [C, C] on the CPU

 private:
  int64_t size_ = 0;
  std::string description_;
  bool is_hadamard_ = false;
  std::vector<at::Tensor> factors_;  // H = factors_[0] ⊗ factors_[1] ⊗ ..., each [n, n] float64, normalised
  // The factors converted for each (device, dtype) applied on, shared by
  // copies: a pageable host-to-GPU copy synchronises the stream, and one
  // per call drained the GPU's queue at every layer of a calibration pass.
  struct FactorCache;
  std::shared_ptr<FactorCache> cache_;
  const std::vector<at::Tensor>& factors_for(const at::Tensor& x) const;
};

// Unnormalised ±1 matrices, exposed for tests.
at::Tensor sylvester_matrix(int64_t order);           // order a power of two
at::Tensor paley1_matrix(int64_t prime);              // order prime + 1, prime ≡ 3 mod 4
at::Tensor paley2_matrix(int64_t prime);              // order 2 (prime + 1), prime ≡ 1 mod 4

}  // namespace lp
