#include "linearpatch/patch/fold.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "linearpatch/core/error.h"
#include "linearpatch/core/progress.h"

namespace lp {
namespace {

at::Tensor current_value(const LlamaModel& dense, const Fold& fold, const std::string& name) {
  const auto it = fold.replaced.find(name);
  return it != fold.replaced.end() ? it->second : dense.weight(name).to(at::kCPU, at::kFloat);
}

void scale_weight(const LlamaModel& dense, Fold& fold, const std::string& name, double factor) {
  fold.replaced[name] = current_value(dense, fold, name) * factor;
}

bool is_removed(const std::vector<int64_t>& removed, int64_t layer) {
  return std::find(removed.begin(), removed.end(), layer) != removed.end();
}

// Σ aᵀa and Σ aᵀy over the windows for layer `layer`, y = out·P - h_mid - b:
// what down_proj' must produce so the layer's output becomes out·P.
NormalEquations down_proj_equations(const LlamaModel& dense, int64_t layer, const at::Tensor& patch,
                                    const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  const auto bias = dense.config().mlp_bias
                        ? dense.weight(layer_tensor_name(layer, "mlp.down_proj.bias")).to(dense.device(), at::kDouble)
                        : at::Tensor();
  const auto P = patch.to(dense.device(), at::kDouble);
  NormalEquations sums;
  Progress progress("least-squares fold", windows.size(0), "windows");
  for (int64_t w0 = 0; w0 < windows.size(0); w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, windows.size(0) - w0));
    const auto trace = dense.trace_layer(layer, dense.run_layers(dense.embed(ids), 0, layer));
    const auto a = trace.mlp_activation.reshape({-1, trace.mlp_activation.size(-1)}).to(at::kDouble);
    auto y = at::matmul(trace.output.reshape({a.size(0), -1}).to(at::kDouble), P) -
             trace.after_attention.reshape({a.size(0), -1}).to(at::kDouble);
    if (bias.defined()) y = y - bias;
    sums.lhs = sums.lhs.defined() ? sums.lhs + at::matmul(a.t(), a) : at::matmul(a.t(), a);
    sums.rhs = sums.rhs.defined() ? sums.rhs + at::matmul(a.t(), y) : at::matmul(a.t(), y);
    sums.tokens += a.size(0);
    progress.advance(ids.size(0));
  }
  progress.finish();
  return {sums.lhs.cpu(), sums.rhs.cpu(), sums.tokens};
}

void fold_scalar(const LlamaModel& dense, const Repair& repair, Fold& fold) {
  const int64_t C = dense.hidden_size();
  const double alpha = at::trace(repair.matrix.to(at::kDouble)).item<double>() / static_cast<double>(C);
  scale_weight(dense, fold, "model.embed_tokens.weight", alpha);
  const auto& c = dense.config();
  for (int64_t l = 0; l < repair.gap.start; ++l) {
    scale_weight(dense, fold, layer_tensor_name(l, "self_attn.o_proj.weight"), alpha);
    scale_weight(dense, fold, layer_tensor_name(l, "mlp.down_proj.weight"), alpha);
    if (c.o_bias) scale_weight(dense, fold, layer_tensor_name(l, "self_attn.o_proj.bias"), alpha);
    if (c.mlp_bias) scale_weight(dense, fold, layer_tensor_name(l, "mlp.down_proj.bias"), alpha);
  }
  fold.untie_embeddings = fold.untie_embeddings || c.tie_word_embeddings;
}

void fold_least_squares(const LlamaModel& dense, const std::vector<int64_t>& removed, const Repair& repair,
                        const at::Tensor& windows, int64_t batch_size, Fold& fold) {
  int64_t layer = repair.gap.start - 1;
  while (layer >= 0 && is_removed(removed, layer)) --layer;
  if (layer < 0) {
    const auto embeddings = current_value(dense, fold, "model.embed_tokens.weight").to(at::kDouble);
    fold.replaced["model.embed_tokens.weight"] = at::matmul(embeddings, repair.matrix.to(at::kDouble)).to(at::kFloat);
    fold.untie_embeddings = fold.untie_embeddings || dense.config().tie_word_embeddings;
    return;
  }
  const auto solution = solve_ridge(down_proj_equations(dense, layer, repair.matrix, windows, batch_size));
  fold.replaced[layer_tensor_name(layer, "mlp.down_proj.weight")] = solution.t().to(at::kFloat).contiguous();
}

}  // namespace

std::string fold_kind_name(FoldKind kind) { return kind == FoldKind::kScalar ? "scalar" : "least-squares"; }

Fold fold_mlp_repairs(const LlamaModel& dense, const std::vector<Repair>& repairs) {
  Fold fold;
  fold.kind = "exact";
  for (const auto& repair : repairs) {
    if (repair.kind == RepairKind::kNone || repair.on_stream()) continue;
    const bool attention = repair.on_attention_output;
    const int64_t layer = attention ? repair.gap.start : repair.gap.start - 1;
    const std::string projection = attention ? "self_attn.o_proj" : "mlp.down_proj";
    const auto T = repair.matrix.to(at::kFloat);
    const auto name = layer_tensor_name(layer, projection + ".weight");
    // y = (a Wᵀ) T = a (Tᵀ W)ᵀ
    fold.replaced[name] = at::matmul(T.t(), current_value(dense, fold, name)).contiguous();
    if (attention ? dense.config().o_bias : dense.config().mlp_bias) {
      const auto bias = layer_tensor_name(layer, projection + ".bias");
      fold.replaced[bias] = at::matmul(current_value(dense, fold, bias), T);
    }
  }
  return fold;
}

Fold fold_stream_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed,
                         const std::vector<Repair>& repairs, FoldKind kind, const at::Tensor& windows,
                         int64_t batch_size, Fold start) {
  Fold fold = std::move(start);
  fold.kind = fold_kind_name(kind);
  for (const auto& repair : repairs) {
    if (!repair.on_stream()) continue;
    if (kind == FoldKind::kScalar) fold_scalar(dense, repair, fold);
    else fold_least_squares(dense, removed, repair, windows, batch_size, fold);
  }
  return fold;
}

LlamaModel apply_fold(const LlamaModel& dense, const std::vector<int64_t>& removed, const Fold& fold) {
  return dense.with_replaced_weights(fold.replaced, fold.untie_embeddings).without_layers(removed, {});
}

}  // namespace lp
