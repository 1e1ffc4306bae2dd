// The rotation the patch is estimated in: orthonormal for every hidden size
// the method targets, the factored product equal to the dense matrix, and
// the documented construction and fallbacks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/core/error.h"
#include "linearpatch/patch/rotation.h"

namespace lp {
namespace {

double orthogonality_error(const at::Tensor& H) {
  return (at::matmul(H, H.t()) - at::eye(H.size(0), H.options())).abs().max().item<double>();
}

TEST(Rotation, HadamardIsOrthonormalWithPlusMinusOneEntriesForLlamaSizes) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int64_t size : {2, 12, 20, 48, 192, 320, 2048, 3072, 3584, 4096, 5120}) {
    auto r = Rotation::hadamard(size);
    ASSERT_TRUE(r.has_value()) << size;
    const auto H = r->matrix(at::kDouble);
    const auto scaled = (H * std::sqrt(double(size))).abs();
    EXPECT_LT((scaled - 1).abs().max().item<double>(), 1e-9) << size << ": entries are not ±1/sqrt(C)";
    if (size <= 512) {
      EXPECT_LT(orthogonality_error(H), 1e-10) << size;
    } else {
      // H·Hᵀ = I checked on random rows: a C³ product would dominate the suite.
      const auto x = at::randn({4, size}, gen, at::kDouble);
      EXPECT_LT((at::matmul(at::matmul(x, H), H.t()) - x).abs().max().item<double>(), 1e-9) << size;
    }
  }
}

TEST(Rotation, FactorisationChoosesTheSmallestCore) {
  EXPECT_EQ(Rotation::hadamard(320)->description(), "Hadamard 320 = Sylvester 16 ⊗ Paley I (q=19)");
  EXPECT_EQ(Rotation::hadamard(4096)->description(), "Hadamard 4096 = Sylvester 4096");
  EXPECT_EQ(Rotation::hadamard(3072)->description(), "Hadamard 3072 = Sylvester 256 ⊗ Paley I (q=11)");
  EXPECT_EQ(Rotation::hadamard(3584)->description(), "Hadamard 3584 = Sylvester 128 ⊗ Paley II (q=13)");
  EXPECT_EQ(Rotation::hadamard(600)->description(), "Hadamard 600 = Sylvester 2 ⊗ Paley II (q=149)");
  EXPECT_FALSE(Rotation::hadamard(52).has_value());  // no core of order 13, 26 or 52 without prime powers
}

TEST(Rotation, KroneckerOrderPutsSylvesterFirst) {
  // H_320 = S_16 ⊗ P_20 / sqrt(320): entry (i, j) = S[i/20][j/20] · P[i%20][j%20].
  const auto H = Rotation::hadamard(320)->matrix(at::kDouble) * std::sqrt(320.0);
  const auto S = sylvester_matrix(16), P = paley1_matrix(19);
  EXPECT_LT((H - at::kron(S, P)).abs().max().item<double>(), 1e-9);
}

TEST(Rotation, PaleyCoresAreHadamardMatrices) {
  for (int64_t q : {3, 7, 11, 19, 23, 31, 43}) {
    const auto P = paley1_matrix(q);
    EXPECT_LT((at::matmul(P, P.t()) - (q + 1) * at::eye(q + 1, at::kDouble)).abs().max().item<double>(), 1e-9) << q;
  }
  for (int64_t q : {5, 13, 17, 29}) {
    const auto P = paley2_matrix(q);
    const int64_t n = 2 * (q + 1);
    EXPECT_LT((at::matmul(P, P.t()) - n * at::eye(n, at::kDouble)).abs().max().item<double>(), 1e-9) << q;
  }
}

TEST(Rotation, FactoredApplyEqualsTheDenseProduct) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (int64_t size : {48, 320, 1024}) {
    const auto r = *Rotation::hadamard(size);
    const auto x = at::randn({3, 5, size}, gen, at::kDouble);
    const auto H = r.matrix(at::kDouble);
    EXPECT_LT((r.apply(x) - at::matmul(x, H)).abs().max().item<double>(), 1e-10) << size;
    EXPECT_LT((r.apply(x, /*transpose=*/true) - at::matmul(x, H.t())).abs().max().item<double>(), 1e-10) << size;
  }
}

TEST(Rotation, AutoFallsBackToASeededRandomOrthogonalMatrix) {
  const auto a = Rotation::create(52, RotationKind::kAuto, 7);
  const auto b = Rotation::create(52, RotationKind::kAuto, 7);
  EXPECT_FALSE(a.is_hadamard());
  EXPECT_LT(orthogonality_error(a.matrix(at::kDouble)), 1e-10);
  EXPECT_TRUE(at::equal(a.matrix(at::kDouble), b.matrix(at::kDouble)));
  EXPECT_THROW(Rotation::create(52, RotationKind::kHadamard, 7), UsageError);
  EXPECT_TRUE(at::equal(Rotation::create(8, RotationKind::kIdentity, 0).matrix(at::kDouble), at::eye(8, at::kDouble)));
}

}  // namespace
}  // namespace lp
