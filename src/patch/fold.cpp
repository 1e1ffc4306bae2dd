#include "linearpatch/patch/fold.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "linearpatch/core/error.h"
#include "linearpatch/core/progress.h"

namespace lp {
namespace {

const Gap& gap_at(const PrunePlan& plan, int64_t position) {
  for (const auto& gap : plan.gaps)
    if (gap.new_position == position) return gap;
  throw Error("internal: no gap at position " + std::to_string(position));
}

void scale_weight(const LlamaModel& dense, Fold& fold, const std::string& name, double factor) {
  auto it = fold.replaced.find(name);
  const auto current = it != fold.replaced.end() ? it->second : dense.weight(name).to(at::kCPU, at::kFloat);
  fold.replaced[name] = current * factor;
}

// Σ aᵀa and Σ aᵀy over the windows for layer `layer`, y = out·P - h_mid - b:
// what down_proj' must produce so the layer's output becomes out·P.
std::pair<at::Tensor, at::Tensor> normal_equations(const LlamaModel& dense, int64_t layer, const at::Tensor& patch,
                                                   const at::Tensor& windows, int64_t batch_size) {
  c10::InferenceMode guard;
  const auto bias = dense.config().mlp_bias
                        ? dense.weight(layer_tensor_name(layer, "mlp.down_proj.bias")).to(dense.device(), at::kDouble)
                        : at::Tensor();
  const auto P = patch.to(dense.device(), at::kDouble);
  at::Tensor ata, aty;
  Progress progress("least-squares fold", windows.size(0), "windows");
  for (int64_t w0 = 0; w0 < windows.size(0); w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, windows.size(0) - w0));
    const auto trace = dense.trace_layer(layer, dense.run_layers(dense.embed(ids), 0, layer));
    const auto a = trace.mlp_activation.reshape({-1, trace.mlp_activation.size(-1)}).to(at::kDouble);
    auto y = at::matmul(trace.output.reshape({a.size(0), -1}).to(at::kDouble), P) -
             trace.after_attention.reshape({a.size(0), -1}).to(at::kDouble);
    if (bias.defined()) y = y - bias;
    ata = ata.defined() ? ata + at::matmul(a.t(), a) : at::matmul(a.t(), a);
    aty = aty.defined() ? aty + at::matmul(a.t(), y) : at::matmul(a.t(), y);
    progress.advance(ids.size(0));
  }
  progress.finish();
  return {ata, aty};
}

}  // namespace

Fold fold_scalar(const LlamaModel& dense, const PrunePlan& plan, const std::map<int64_t, at::Tensor>& patches) {
  Fold fold;
  fold.kind = "scalar";
  const int64_t C = dense.hidden_size();
  for (const auto& [position, patch] : patches) {
    const auto& gap = gap_at(plan, position);
    const double alpha = at::trace(patch.to(at::kDouble)).item<double>() / static_cast<double>(C);
    scale_weight(dense, fold, "model.embed_tokens.weight", alpha);
    const auto& c = dense.config();
    for (int64_t l = 0; l < gap.start; ++l) {
      scale_weight(dense, fold, layer_tensor_name(l, "self_attn.o_proj.weight"), alpha);
      scale_weight(dense, fold, layer_tensor_name(l, "mlp.down_proj.weight"), alpha);
      if (c.o_bias) scale_weight(dense, fold, layer_tensor_name(l, "self_attn.o_proj.bias"), alpha);
      if (c.mlp_bias) scale_weight(dense, fold, layer_tensor_name(l, "mlp.down_proj.bias"), alpha);
    }
  }
  fold.untie_embeddings = dense.config().tie_word_embeddings;
  return fold;
}

Fold fold_least_squares(const LlamaModel& dense, const PrunePlan& plan, const std::map<int64_t, at::Tensor>& patches,
                        const at::Tensor& windows, int64_t batch_size) {
  Fold fold;
  fold.kind = "least-squares";
  for (const auto& [position, patch] : patches) {
    const auto& gap = gap_at(plan, position);
    if (gap.start == 0) {
      const auto embeddings = dense.weight("model.embed_tokens.weight").to(at::kCPU, at::kDouble);
      fold.replaced["model.embed_tokens.weight"] = at::matmul(embeddings, patch.to(at::kDouble)).to(at::kFloat);
      fold.untie_embeddings = dense.config().tie_word_embeddings;
      continue;
    }
    const int64_t layer = gap.start - 1;
    auto [ata, aty] = normal_equations(dense, layer, patch, windows, batch_size);
    // A small ridge keeps the solve stable where activations are rank-poor.
    const double ridge = 1e-6 * at::trace(ata).item<double>() / static_cast<double>(ata.size(0));
    const auto eye = at::eye(ata.size(0), ata.options());
    const auto solution = at::linalg_solve(ata + ridge * eye, aty);  // [F, C] = down_projᵀ
    fold.replaced[layer_tensor_name(layer, "mlp.down_proj.weight")] = solution.t().to(at::kCPU, at::kFloat).contiguous();
  }
  return fold;
}

LlamaModel apply_fold(const LlamaModel& dense, const PrunePlan& plan, const Fold& fold) {
  return dense.with_replaced_weights(fold.replaced, fold.untie_embeddings).with_layers(plan.kept, {});
}

}  // namespace lp
