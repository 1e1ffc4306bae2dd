// Similarity metrics over contiguous blocks of layers, from calibration
// statistics of the dense model. Layer ranges are 0-based and half-open
// everywhere: the block [start, end) removes layers start..end-1.
//
// Candidates for a contiguous block of n layers: 1 <= start and
// start + n <= L - 1 by default (the first layer and the last layer stay,
// as in the reference method); `allow_edges` admits 0 <= start and
// start + n <= L.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lp {

class SimilarityStats;

struct Block {
  int64_t start = 0;
  int64_t end = 0;  // exclusive
  double score = 0;
};

struct CandidateRange {
  int64_t first_start = 0;
  int64_t last_start = 0;  // inclusive
};
// Throws UsageError when no block of n layers fits in a model of L layers.
CandidateRange candidate_starts(int64_t num_layers, int64_t n, bool allow_edges);
// The layers any metric may remove: [1, L - 1) or, with edges, [0, L).
std::vector<int64_t> eligible_layers(int64_t num_layers, bool allow_edges);

// Every candidate block ranked best first (ties: lower start first) by the
// mean per-token cosine of X^(start) and X^(start+n), higher is better.
std::vector<Block> rank_by_cosine(const SimilarityStats& stats, int64_t num_layers, int64_t n, bool allow_edges);
// ... by the mean last-token angular distance arccos(cos)/π, lower is better.
std::vector<Block> rank_by_angular(const SimilarityStats& stats, int64_t num_layers, int64_t n, bool allow_edges);

// ShortGPT block influence BI_l = 1 - mean cos(X^(l), X^(l+1)) for every
// layer, and the n eligible layers with the lowest BI, ascending.
std::vector<double> block_influence(const SimilarityStats& stats, int64_t num_layers);
std::vector<int64_t> lowest_influence_layers(const std::vector<double>& influence, int64_t n, bool allow_edges);

// Ranks `scored` best first (stable).
std::vector<Block> rank_scored_blocks(const std::vector<Block>& scored, bool higher_better);

}  // namespace lp
