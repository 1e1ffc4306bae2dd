#include "linearpatch/select/block_selection.h"

#include <algorithm>
#include <numeric>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/core/error.h"

namespace lp {
namespace {

template <typename Score>
std::vector<Block> rank_by(int64_t num_layers, int64_t n, bool allow_edges, bool higher_better, Score score) {
  const auto range = candidate_starts(num_layers, n, allow_edges);
  std::vector<Block> blocks;
  for (int64_t start = range.first_start; start <= range.last_start; ++start)
    blocks.push_back({start, start + n, score(start, start + n)});
  return rank_scored_blocks(blocks, higher_better);
}

}  // namespace

CandidateRange candidate_starts(int64_t num_layers, int64_t n, bool allow_edges) {
  CandidateRange range;
  range.first_start = allow_edges ? 0 : 1;
  range.last_start = (allow_edges ? num_layers : num_layers - 1) - n;
  if (n < 1 || range.last_start < range.first_start) {
    throw UsageError("cannot remove " + std::to_string(n) + " of " + std::to_string(num_layers) + " layers" +
                     (allow_edges ? "" : " while keeping the first and the last layer") + ": at most " +
                     std::to_string(std::max<int64_t>(0, num_layers - (allow_edges ? 1 : 2))) + " can go");
  }
  return range;
}

std::vector<int64_t> eligible_layers(int64_t num_layers, bool allow_edges) {
  std::vector<int64_t> layers;
  for (int64_t l = allow_edges ? 0 : 1; l < (allow_edges ? num_layers : num_layers - 1); ++l) layers.push_back(l);
  return layers;
}

std::vector<Block> rank_scored_blocks(const std::vector<Block>& scored, bool higher_better) {
  auto ranked = scored;
  std::stable_sort(ranked.begin(), ranked.end(), [higher_better](const Block& a, const Block& b) {
    return higher_better ? a.score > b.score : a.score < b.score;
  });
  return ranked;
}

std::vector<Block> rank_by_cosine(const SimilarityStats& stats, int64_t num_layers, int64_t n, bool allow_edges) {
  return rank_by(num_layers, n, allow_edges, true,
                 [&](int64_t start, int64_t end) { return stats.mean_cosine(start, end); });
}

std::vector<Block> rank_by_angular(const SimilarityStats& stats, int64_t num_layers, int64_t n, bool allow_edges) {
  return rank_by(num_layers, n, allow_edges, false,
                 [&](int64_t start, int64_t end) { return stats.mean_last_token_angular(start, end); });
}

std::vector<double> block_influence(const SimilarityStats& stats, int64_t num_layers) {
  std::vector<double> influence(num_layers);
  for (int64_t l = 0; l < num_layers; ++l) influence[l] = 1.0 - stats.mean_cosine(l, l + 1);
  return influence;
}

std::vector<int64_t> lowest_influence_layers(const std::vector<double>& influence, int64_t n, bool allow_edges) {
  const int64_t L = static_cast<int64_t>(influence.size());
  candidate_starts(L, n, allow_edges);  // validates n
  auto eligible = eligible_layers(L, allow_edges);
  std::stable_sort(eligible.begin(), eligible.end(),
                   [&](int64_t a, int64_t b) { return influence[a] < influence[b]; });
  eligible.resize(n);
  std::sort(eligible.begin(), eligible.end());
  return eligible;
}

}  // namespace lp
