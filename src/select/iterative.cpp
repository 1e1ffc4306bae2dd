#include "linearpatch/select/iterative.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <set>

#include "linearpatch/core/error.h"
#include "linearpatch/core/layer_range.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/refit.h"
#include "linearpatch/select/block_selection.h"

namespace lp {
namespace {

std::vector<int64_t> with_layer(std::vector<int64_t> removed, int64_t layer) {
  removed.insert(std::upper_bound(removed.begin(), removed.end(), layer), layer);
  return removed;
}

std::vector<int64_t> without_layer(std::vector<int64_t> removed, int64_t layer) {
  removed.erase(std::find(removed.begin(), removed.end(), layer));
  return removed;
}

// Position of kept `layer` in the model without `removed` (ascending).
int64_t position_of(const std::vector<int64_t>& removed, int64_t layer) {
  return layer - static_cast<int64_t>(std::lower_bound(removed.begin(), removed.end(), layer) - removed.begin());
}

const LayerRange& run_containing(const std::vector<LayerRange>& runs, int64_t layer) {
  for (const auto& run : runs)
    if (run.start <= layer && layer < run.end) return run;
  throw Error("internal: layer " + std::to_string(layer) + " is in no gap");
}

// Repairs of `gaps` that need no fit on the model's stream.
Repair fixed_repair(const LayerRange& gap, const IterativeOptions& o) {
  return o.repair == RepairKind::kLinearPatch ? linearpatch_repair(gap, *o.stats, *o.rotation) : unrepaired(gap);
}

// Every gap of `removed` repaired from scratch, least squares fitted on
// the dense stream of the fit windows (one pass for all gaps).
std::vector<Repair> fresh_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed,
                                  const IterativeOptions& o) {
  const auto gaps = layer_runs(removed);
  std::vector<Repair> repairs;
  if (o.repair != RepairKind::kMlpLstsq) {
    for (const auto& gap : gaps) repairs.push_back(fixed_repair(gap, o));
    return repairs;
  }
  const auto equations = stream_fit_equations(dense, {}, {}, gaps, o.fit_windows, o.batch_size);
  for (size_t g = 0; g < gaps.size(); ++g) repairs.push_back(mlp_lstsq_repair(gaps[g], equations[g]));
  return repairs;
}

struct Candidate {
  int64_t layer = 0;
  LayerRange gap;  // the gap `layer` joins or opens
  Repair repair;
};

// The repairs of every candidate's gap: least squares on the current
// model's stream (one pass for all of them), or fixed ones.
void repair_candidates(const LlamaModel& dense, const std::vector<int64_t>& removed,
                       const std::vector<Repair>& repairs, std::vector<Candidate>& candidates,
                       const IterativeOptions& o) {
  if (o.repair != RepairKind::kMlpLstsq) {
    for (auto& c : candidates) c.repair = fixed_repair(c.gap, o);
    return;
  }
  std::vector<LayerRange> gaps;
  for (const auto& c : candidates) gaps.push_back(c.gap);
  const auto equations = stream_fit_equations(dense, removed, layer_patches(repairs), gaps, o.fit_windows,
                                              o.batch_size);
  for (size_t i = 0; i < candidates.size(); ++i) candidates[i].repair = mlp_lstsq_repair(gaps[i], equations[i]);
}

// The current repairs with those inside `gap` replaced by `repair`.
std::vector<Repair> merged_repairs(const std::vector<Repair>& repairs, const Repair& repair) {
  std::vector<Repair> merged;
  for (const auto& r : repairs)
    if (r.gap.end < repair.gap.start || r.gap.start > repair.gap.end) merged.push_back(r);
  merged.push_back(repair);
  std::sort(merged.begin(), merged.end(), [](const Repair& a, const Repair& b) { return a.gap.start < b.gap.start; });
  return merged;
}

struct Greedy {
  std::vector<int64_t> removed;
  std::vector<Repair> repairs;
  std::vector<IterativeStep> steps;
};

Greedy greedy(const LlamaModel& dense, HeldOutKl& held_out, const IterativeOptions& o,
              const std::vector<int64_t>& eligible) {
  const int64_t n = o.n, E = static_cast<int64_t>(eligible.size());
  Progress progress("iterative selection", n * E - n * (n - 1) / 2, "candidates");
  Greedy g;
  for (int64_t step = 0; step < n; ++step) {
    held_out.cache_base(dense.without_layers(g.removed, layer_patches(g.repairs)));
    std::vector<Candidate> candidates;
    for (const int64_t layer : eligible) {
      if (std::binary_search(g.removed.begin(), g.removed.end(), layer)) continue;
      candidates.push_back({layer, run_containing(layer_runs(with_layer(g.removed, layer)), layer), {}});
    }
    repair_candidates(dense, g.removed, g.repairs, candidates, o);
    IterativeStep chosen;
    chosen.kl = std::numeric_limits<double>::infinity();
    std::vector<Repair> chosen_repairs;
    for (const auto& c : candidates) {
      const auto repairs = merged_repairs(g.repairs, c.repair);
      // The candidate equals the current model below the current position
      // of `layer` and, for a repair on the MLP output before the gap, below
      // that layer: the layers before and the patches at lower positions.
      auto first_changed = position_of(g.removed, c.layer);
      if (c.repair.kind != RepairKind::kNone && c.repair.on_mlp_output)
        first_changed = std::min(first_changed, position_of(g.removed, c.gap.start - 1));
      const double kl =
          held_out.mean_kl(dense.without_layers(with_layer(g.removed, c.layer), layer_patches(repairs)), first_changed);
      chosen.candidates.emplace_back(c.layer, kl);
      progress.advance();
      if (kl < chosen.kl) {
        chosen.kl = kl;
        chosen.removed_layer = c.layer;
        chosen_repairs = repairs;
      }
    }
    g.removed = with_layer(g.removed, chosen.removed_layer);
    g.repairs = std::move(chosen_repairs);
    spdlog::info("iterative selection, step {}/{}: layer {} (KL {:.5f}); removed so far: {}", step + 1, n,
                 chosen.removed_layer, chosen.kl, describe_layers(g.removed));
    g.steps.push_back(std::move(chosen));
    if (o.after_step) {
      IterativeResult so_far;
      so_far.removed = g.removed;
      so_far.scored_repairs = g.repairs;
      so_far.steps = g.steps;
      if (!o.after_step(so_far)) break;
    }
  }
  progress.finish();
  return g;
}

// Swap search from the greedy set: first improvement, nearest kept layer first.
SearchOutcome swap_search(const LlamaModel& dense, const HeldOutKl& held_out, const IterativeOptions& o,
                          const std::vector<int64_t>& eligible, const std::vector<int64_t>& start) {
  auto judge = [&](const std::vector<int64_t>& removed) {
    return held_out.mean_kl(dense.without_layers(removed, layer_patches(fresh_repairs(dense, removed, o))));
  };
  SearchOutcome s;
  s.kind = search_kind_name(SearchKind::kSwap);
  s.greedy = start;
  s.budget = o.budget > 0 ? o.budget : o.n * static_cast<int64_t>(eligible.size());
  s.greedy_kl = s.final_kl = judge(start);
  std::set<std::vector<int64_t>> tried{start};
  auto current = start;
  Progress progress("swap search", s.budget, "sets");
  bool improved = true;
  while (improved && s.trials < s.budget) {
    improved = false;
    for (size_t i = 0; i < current.size() && !improved && s.trials < s.budget; ++i) {
      const int64_t restored = current[i];
      std::vector<int64_t> kept;
      for (const int64_t k : eligible)
        if (!std::binary_search(current.begin(), current.end(), k)) kept.push_back(k);
      std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) {
        return std::abs(a - restored) < std::abs(b - restored);
      });
      for (const int64_t k : kept) {
        if (s.trials >= s.budget) break;
        const auto trial = with_layer(without_layer(current, restored), k);
        if (!tried.insert(trial).second) continue;
        ++s.trials;
        progress.advance();
        const double kl = judge(trial);
        if (kl < s.final_kl) {
          s.final_kl = kl;
          s.accepted.push_back({restored, k, kl});
          current = trial;
          improved = true;
          spdlog::info("swap search: layer {} back, layer {} out (KL {:.5f}); removed: {}", restored, k, kl,
                       describe_layers(current));
          break;
        }
      }
    }
  }
  progress.finish();
  spdlog::info("swap search: {} of {} sets tried, {} moves accepted, KL {:.5f} -> {:.5f}", s.trials, s.budget,
               s.accepted.size(), s.greedy_kl, s.final_kl);
  return s;
}

}  // namespace

std::string search_kind_name(SearchKind kind) { return kind == SearchKind::kSwap ? "swap" : "greedy"; }

std::optional<SearchKind> search_kind_from_name(const std::string& name) {
  if (name == "greedy") return SearchKind::kGreedy;
  if (name == "swap") return SearchKind::kSwap;
  return std::nullopt;
}

IterativeResult select_iteratively(const LlamaModel& dense, HeldOutKl& held_out, const IterativeOptions& o) {
  const int64_t L = dense.num_layers();
  candidate_starts(L, o.n, o.allow_edges);  // validates n
  if ((o.repair == RepairKind::kLinearPatch && (!o.stats || !o.rotation)) ||
      (o.repair == RepairKind::kMlpLstsq && !o.fit_windows.defined()))
    throw Error("internal: iterative selection lacks what its " + repair_kind_name(o.repair) + " repairs need");
  const auto eligible = eligible_layers(L, o.allow_edges);
  auto g = greedy(dense, held_out, o, eligible);
  IterativeResult result;
  result.steps = std::move(g.steps);
  result.removed = g.removed;
  result.scored_repairs = g.repairs;
  if (o.search == SearchKind::kSwap && static_cast<int64_t>(result.steps.size()) == o.n) {
    result.search = swap_search(dense, held_out, o, eligible, g.removed);
    const auto& accepted = result.search->accepted;
    if (!accepted.empty()) {
      // Replays the accepted moves: the final set.
      for (const auto& move : accepted) result.removed = with_layer(without_layer(result.removed, move.restored), move.removed);
      result.scored_repairs = fresh_repairs(dense, result.removed, o);
    }
  }
  return result;
}

}  // namespace lp
