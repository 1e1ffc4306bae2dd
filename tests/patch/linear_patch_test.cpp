// The patch P = H diag(d) Hᵀ: its algebra, and d estimated from activations
// through the calibration observer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/patch/rotation.h"

namespace lp {
namespace {

TEST(LinearPatch, IsSymmetricWithTheScalesAsEigenvalues) {
  const auto rotation = *Rotation::hadamard(48);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto d = 0.5 + at::rand({48}, gen, at::kDouble);
  const auto P = patch_matrix(rotation, d).to(at::kDouble);
  EXPECT_LT((P - P.t()).abs().max().item<double>(), 1e-6);
  const auto eigenvalues = std::get<0>(at::linalg_eigh(P));
  EXPECT_LT((std::get<0>(eigenvalues.sort()) - std::get<0>(d.sort())).abs().max().item<double>(), 1e-5);
  // x·P = ((x·H) ⊙ d)·Hᵀ
  const auto x = at::randn({4, 48}, gen, at::kDouble);
  const auto H = rotation.matrix(at::kDouble);
  EXPECT_LT((at::matmul(x, P) - at::matmul(rotation.apply(x) * d, H.t())).abs().max().item<double>(), 1e-5);
}

TEST(LinearPatch, UnitScalesGiveTheIdentity) {
  const auto P = patch_matrix(*Rotation::hadamard(320), at::ones({320}, at::kDouble));
  EXPECT_LT((P - at::eye(320)).abs().max().item<double>(), 1e-6);
}

TEST(MagnitudeStats, ScalesAreTheMeanOverWindowsOfPerWindowRatios) {
  const int64_t C = 12;
  const auto rotation = *Rotation::hadamard(C);
  MagnitudeStats stats(4, {2}, [&](const at::Tensor& x) { return rotation.apply(x); });
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  std::vector<at::Tensor> x0, x2;
  for (int batch = 0; batch < 2; ++batch) {
    std::vector<at::Tensor> positions;
    for (int p = 0; p < 4; ++p) positions.push_back(at::randn({3, 5, C}, gen) * (p + 1));
    for (int p = 0; p < 4; ++p) stats.on_layer_input(p, positions[p]);
    x0.push_back(positions[0]);
    x2.push_back(positions[2]);
  }
  // Expected: mean over the 6 windows of mean_t|X2 H| / mean_t|X0 H|.
  auto expected = at::zeros({C}, at::kDouble);
  for (int batch = 0; batch < 2; ++batch)
    for (int w = 0; w < 3; ++w) {
      auto m0 = rotation.apply(x0[batch][w].to(at::kDouble)).abs().mean(0);
      auto m2 = rotation.apply(x2[batch][w].to(at::kDouble)).abs().mean(0);
      expected += m2 / m0;
    }
  expected /= 6;
  EXPECT_EQ(stats.windows(), 6);
  EXPECT_LT((patch_scales(stats, 0, 2) - expected).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(stats.tracks(1, 3));
  EXPECT_FALSE(stats.tracks(0, 1));
}

}  // namespace
}  // namespace lp
