// Normal equations of linear maps that repair a removed block [s, e),
// accumulated in float64 over calibration batches (memory does not grow
// with the number of windows):
//
//  * kMlpOutput (ReplaceMe's fit): a map T on the MLP output m of layer
//    s - 1, the last layer kept before the gap, so that that layer's output
//    h_mid + m·T reproduces X^(e), the stream the dense model has after the
//    block. With h_mid = X^(s) - m:  A = Σ mᵀm,  B = Σ mᵀ(X^(e) - X^(s) + m).
//  * kStream: a map P on the stream itself, X^(s)·P ≈ X^(e):
//    A = Σ X^(s)ᵀX^(s),  B = Σ X^(s)ᵀX^(e). (What a gap at layer 0 gets:
//    it has no MLP before it.)
//
// Sums run over every token of every window. Batches may arrive interleaved
// (layer-major runs); what a batch still needs is kept per batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "linearpatch/core/layer_range.h"
#include "linearpatch/model/llama.h"

namespace lp {

// The rows of x [..., C] as one float64 [N, C] matrix: normal equations are
// summed in float64 so that millions of tokens do not lose the small terms.
at::Tensor rows_float64(const at::Tensor& x);
// sum += term; the first term becomes the sum.
void accumulate_sum(at::Tensor& sum, const at::Tensor& term);

struct NormalEquations {
  at::Tensor lhs;  // A [C, C] float64
  at::Tensor rhs;  // B [C, C] float64
  int64_t tokens = 0;
};

class LeastSquaresStats : public ForwardObserver {
 public:
  enum class Source { kMlpOutput, kStream };
  struct Fit {
    LayerRange gap;
    Source source = Source::kMlpOutput;
  };

  explicit LeastSquaresStats(std::vector<Fit> fits);
  void begin_batch(int64_t batch) override { batch_ = batch; }
  void on_layer_input(int64_t position, const at::Tensor& hidden) override;
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override;

  const std::vector<Fit>& fits() const { return fits_; }
  // The sums of fits()[index], on the CPU.
  NormalEquations equations(size_t index) const;
  // One past the last layer whose output any fit reads.
  int64_t layers_needed() const;
  // The first layer whose input or MLP output any fit reads.
  int64_t first_layer_read() const;

 private:
  struct Pending {
    at::Tensor source;    // m or X^(s), [N, C] float64
    at::Tensor residual;  // kMlpOutput: m - X^(s)
  };
  std::vector<Fit> fits_;
  std::vector<NormalEquations> sums_;
  std::map<std::pair<int64_t, size_t>, Pending> pending_;  // (batch, fit) -> what X^(e) pairs with
  int64_t batch_ = 0;
};

}  // namespace lp
