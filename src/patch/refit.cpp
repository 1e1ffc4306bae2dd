#include "linearpatch/patch/refit.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

// Where each layer of the dense numbering sits in the pruned model (-1: removed).
std::vector<int64_t> positions(int64_t num_layers, const std::vector<int64_t>& removed) {
  std::vector<int64_t> position(static_cast<size_t>(num_layers + 1), -1);
  int64_t next = 0;
  for (int64_t l = 0; l <= num_layers; ++l)
    if (!std::binary_search(removed.begin(), removed.end(), l)) position[static_cast<size_t>(l)] = next++;
  return position;
}

// The stream entering `position` of `model` after the patch there, from
// the one before it (what run_layers returns).
at::Tensor patched_input(const LlamaModel& model, int64_t position, const at::Tensor& hidden) {
  const auto it = model.patches().find(position);
  if (it == model.patches().end()) return hidden;
  return at::matmul(hidden.to(at::kFloat), it->second.to(hidden.device())).to(hidden.scalar_type());
}

}  // namespace

std::vector<NormalEquations> stream_fit_equations(const LlamaModel& dense, const std::vector<int64_t>& removed,
                                                  const LayerPatches& patches, const std::vector<LayerRange>& gaps,
                                                  const at::Tensor& windows, int64_t batch_size,
                                                  const StreamStash* dense_streams) {
  c10::InferenceMode guard;
  const int64_t L = dense.num_layers();
  const auto pruned = dense.without_layers(removed, patches);
  const auto position = positions(L, removed);
  // Per gap, the pruned model's position it reads: layer s - 1, or the
  // embeddings (position 0) for a gap at layer 0.
  std::vector<int64_t> source(gaps.size());
  for (size_t g = 0; g < gaps.size(); ++g) {
    const auto& gap = gaps[g];
    if (gap.start < 0 || gap.end > L || gap.end <= gap.start ||
        (gap.start > 0 && position[static_cast<size_t>(gap.start - 1)] < 0) || position[static_cast<size_t>(gap.end)] < 0)
      throw Error("internal: no stream fit for the gap " + describe_range(gap) + " of a model without layers " +
                  describe_layers(removed));
    source[g] = gap.start > 0 ? position[static_cast<size_t>(gap.start - 1)] : 0;
  }
  std::vector<size_t> by_source(gaps.size());
  std::iota(by_source.begin(), by_source.end(), size_t{0});
  std::sort(by_source.begin(), by_source.end(), [&](size_t a, size_t b) { return source[a] < source[b]; });
  // Below the first removed layer's predecessor (whose MLP output may be
  // patched) and the first layer read, the pruned model is the dense one:
  // its run starts from the dense stream there.
  int64_t fork = removed.empty() ? L : std::max<int64_t>(removed.front() - 1, 0);
  for (const int64_t p : source) fork = std::min(fork, p);
  std::vector<int64_t> stops{fork};
  for (const auto& gap : gaps) stops.push_back(gap.end);
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());

  std::vector<NormalEquations> sums(gaps.size());
  for (int64_t w0 = 0, batch = 0; w0 < windows.size(0); w0 += batch_size, ++batch) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, windows.size(0) - w0));
    std::map<int64_t, at::Tensor> dense_stream;  // entering each gap's end, and the fork
    at::Tensor h;
    int64_t at = -1;
    for (const int64_t stop : stops) {
      const int64_t kept = dense_streams ? dense_streams->nearest_at_or_below(stop) : -1;
      if (kept > at) {
        h = dense_streams->at(batch, kept);
        at = kept;
      } else if (at < 0) {
        h = dense.embed(ids);
        at = 0;
      }
      h = dense.run_layers(h, at, stop);
      at = stop;
      dense_stream[stop] = h;
    }
    auto x = dense_stream.at(fork);
    at = fork;
    for (const size_t g : by_source) {
      x = pruned.run_layers(x, at, source[g]);
      at = source[g];
      const auto input = patched_input(pruned, at, x);
      auto target = rows_float64(dense_stream.at(gaps[g].end));
      at::Tensor from, residual;
      if (gaps[g].start == 0) {
        from = rows_float64(input);
      } else {
        const auto trace = pruned.trace_layer(at, input);
        from = rows_float64(trace.output - trace.after_attention);
        residual = rows_float64(trace.after_attention);
      }
      target = target.to(from.device());
      if (residual.defined()) target = target - residual;
      accumulate_sum(sums[g].lhs, at::matmul(from.t(), from));
      accumulate_sum(sums[g].rhs, at::matmul(from.t(), target));
      sums[g].tokens += from.size(0);
    }
  }
  for (auto& s : sums) {
    s.lhs = s.lhs.cpu();
    s.rhs = s.rhs.cpu();
  }
  return sums;
}

}  // namespace lp
