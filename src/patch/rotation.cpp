#include "linearpatch/patch/rotation.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <mutex>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

// Largest factor applied as one dense product; Sylvester parts above it are
// split (S_2^(a+b) = S_2^a ⊗ S_2^b).
constexpr int64_t kMaxFactor = 128;

bool is_prime(int64_t n) {
  if (n < 2) return false;
  for (int64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// Legendre symbol of a modulo an odd prime q: 0, 1 or -1.
int quadratic_character(int64_t a, int64_t q) {
  a = ((a % q) + q) % q;
  if (a == 0) return 0;
  int64_t result = 1, base = a, exponent = (q - 1) / 2;
  while (exponent > 0) {
    if (exponent & 1) result = result * base % q;
    base = base * base % q;
    exponent >>= 1;
  }
  return result == 1 ? 1 : -1;
}

// Jacobsthal matrix Q[i][j] = chi(j - i).
at::Tensor jacobsthal(int64_t q) {
  auto Q = at::zeros({q, q}, at::kDouble);
  auto a = Q.accessor<double, 2>();
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < q; ++j) a[i][j] = quadratic_character(j - i, q);
  return Q;
}

struct Core {
  int64_t order = 1;
  at::Tensor matrix;  // unnormalised, undefined for order 1
  std::string name;
};

std::optional<Core> core_for(int64_t m) {
  if (m == 1) return Core{1, at::Tensor(), ""};
  if (is_prime(m - 1) && (m - 1) % 4 == 3)
    return Core{m, paley1_matrix(m - 1), "Paley I (q=" + std::to_string(m - 1) + ")"};
  if (m % 2 == 0 && is_prime(m / 2 - 1) && (m / 2 - 1) % 4 == 1)
    return Core{m, paley2_matrix(m / 2 - 1), "Paley II (q=" + std::to_string(m / 2 - 1) + ")"};
  return std::nullopt;
}

}  // namespace

at::Tensor sylvester_matrix(int64_t order) {
  if (!is_power_of_two(order)) throw Error("internal: Sylvester order must be a power of two");
  auto H = at::ones({1, 1}, at::kDouble);
  while (H.size(0) < order) H = at::cat({at::cat({H, H}, 1), at::cat({H, -H}, 1)}, 0);
  return H;
}

at::Tensor paley1_matrix(int64_t q) {
  // H = I + [[0, 1ᵀ], [-1, Q]]
  auto S = at::zeros({q + 1, q + 1}, at::kDouble);
  S.index_put_({0, at::indexing::Slice(1)}, 1.0);
  S.index_put_({at::indexing::Slice(1), 0}, -1.0);
  S.index_put_({at::indexing::Slice(1), at::indexing::Slice(1)}, jacobsthal(q));
  return S + at::eye(q + 1, at::kDouble);
}

at::Tensor paley2_matrix(int64_t q) {
  // S = [[0, 1ᵀ], [1, Q]]; 0 -> [[1,-1],[-1,-1]], ±1 -> ±[[1,1],[1,-1]].
  auto S = at::zeros({q + 1, q + 1}, at::kDouble);
  S.index_put_({0, at::indexing::Slice(1)}, 1.0);
  S.index_put_({at::indexing::Slice(1), 0}, 1.0);
  S.index_put_({at::indexing::Slice(1), at::indexing::Slice(1)}, jacobsthal(q));
  auto zero_block = at::tensor({1.0, -1.0, -1.0, -1.0}, at::kDouble).view({2, 2});
  auto sign_block = at::tensor({1.0, 1.0, 1.0, -1.0}, at::kDouble).view({2, 2});
  auto is_zero = (S == 0).to(at::kDouble);
  return at::kron(is_zero, zero_block) + at::kron(S, sign_block);
}

RotationKind parse_rotation_kind(const std::string& name) {
  if (name == "auto") return RotationKind::kAuto;
  if (name == "hadamard") return RotationKind::kHadamard;
  if (name == "random") return RotationKind::kRandom;
  if (name == "none") return RotationKind::kIdentity;
  throw UsageError("unknown rotation '" + name + "' (use auto, hadamard, random or none)");
}

struct Rotation::FactorCache {
  std::mutex mutex;
  std::map<std::pair<std::string, at::ScalarType>, std::vector<at::Tensor>> converted;
};

std::optional<Rotation> Rotation::hadamard(int64_t size) {
  if (size < 1) return std::nullopt;
  // From the largest power of two dividing size down: the smallest core wins.
  for (int64_t power = size & -size; power >= 1; power /= 2) {
    auto core = core_for(size / power);
    if (!core) continue;
    Rotation r;
    r.cache_ = std::make_shared<FactorCache>();
    r.size_ = size;
    r.is_hadamard_ = true;
    r.description_ = "Hadamard " + std::to_string(size) + " = ";
    // Sylvester part split into factors of at most kMaxFactor.
    for (int64_t rest = power; rest > 1;) {
      const int64_t n = std::min(rest, kMaxFactor);
      r.factors_.push_back(sylvester_matrix(n));
      rest /= n;
    }
    if (power > 1) r.description_ += "Sylvester " + std::to_string(power);
    if (core->order > 1) {
      r.factors_.push_back(core->matrix);
      r.description_ += std::string(power > 1 ? " ⊗ " : "") + core->name;
    }
    if (r.factors_.empty()) r.factors_.push_back(at::ones({1, 1}, at::kDouble));
    for (auto& f : r.factors_) f = f / std::sqrt(static_cast<double>(f.size(0)));
    return r;
  }
  return std::nullopt;
}

Rotation Rotation::create(int64_t size, RotationKind kind, uint64_t seed) {
  if (kind == RotationKind::kAuto || kind == RotationKind::kHadamard) {
    if (auto h = hadamard(size)) return *h;
    if (kind == RotationKind::kHadamard)
      throw UsageError("no Hadamard construction for hidden size " + std::to_string(size) +
                       " (supported: 2^k·m with m = 1, a Paley I or a Paley II order); a random orthogonal rotation works for any size");
  }
  Rotation r;
  r.cache_ = std::make_shared<FactorCache>();
  r.size_ = size;
  if (kind == RotationKind::kIdentity) {
    r.description_ = "identity (no rotation)";
    r.factors_.push_back(at::eye(size, at::kDouble));
    return r;
  }
  // Seeded Gaussian -> QR, signs fixed so the result does not depend on the
  // LAPACK implementation's sign convention.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto gaussian = at::randn({size, size}, generator, at::kDouble);
  auto [q, rr] = at::linalg_qr(gaussian);
  r.factors_.push_back(q * at::sign(at::diagonal(rr)).unsqueeze(0));
  r.description_ = "random orthogonal " + std::to_string(size) + " (seed " + std::to_string(seed) + ")";
  return r;
}

const std::vector<at::Tensor>& Rotation::factors_for(const at::Tensor& x) const {
  if (x.is_cpu() && x.scalar_type() == at::kDouble) return factors_;
  std::lock_guard<std::mutex> lock(cache_->mutex);
  auto& converted = cache_->converted[{x.device().str(), x.scalar_type()}];
  if (converted.empty())
    for (const auto& factor : factors_) converted.push_back(factor.to(x.device(), x.scalar_type()));
  return converted;
}

at::Tensor Rotation::apply(const at::Tensor& x, bool transpose) const {
  TORCH_CHECK(x.size(-1) == size_, "rotation of size ", size_, " applied to rows of ", x.size(-1));
  const auto leading = x.sizes().slice(0, x.dim() - 1).vec();
  auto y = x.reshape({-1, size_});
  const int64_t rows = y.size(0);
  int64_t before = 1, after = size_;
  for (const auto& factor : factors_for(y)) {
    const int64_t n = factor.size(0);
    after /= n;
    // y viewed [rows * before, n, after]; (x·(A ⊗ B))[p, q] = Σ x[i, j] A[i, p] B[j, q].
    // Hᵀ = ⊗ Fᵀ: the same products with each factor transposed.
    auto f = transpose ? factor.t() : factor;
    // One large product with the factor's axis last: many small batched
    // products ([n, n] x [n, after]) ran 1.5x slower on CPU.
    y = after == 1 ? at::matmul(y.reshape({rows * before, n}), f)
                   : at::matmul(y.reshape({rows * before, n, after}).transpose(1, 2), f).transpose(1, 2);
    before *= n;
  }
  auto out_shape = leading;
  out_shape.push_back(size_);
  return y.reshape(out_shape);
}

at::Tensor Rotation::matrix(at::ScalarType dtype) const {
  return apply(at::eye(size_, at::kDouble)).to(dtype);
}

}  // namespace lp
