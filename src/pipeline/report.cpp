// The one place where pipeline results become JSON and human summaries.
#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "linearpatch/pipeline/results.h"

namespace lp {
namespace {

using Json = nlohmann::ordered_json;

Json blocks_json(const std::vector<Block>& blocks) {
  auto out = Json::array();
  for (const auto& b : blocks) out.push_back({{"start", b.start}, {"end", b.end}, {"score", b.score}});
  return out;
}

Json timings_json(const Timings& timings) {
  Json out = Json::object();
  for (const auto& [phase, seconds] : timings) out[phase] = seconds;
  return out;
}

void add_memory(Json& out, const MemoryUse& memory) {
  out["peak_rss_mib"] = memory.peak_rss_mib;
  if (memory.peak_gpu_mib) out["peak_gpu_mib"] = *memory.peak_gpu_mib;
  if (memory.streamed_layers) out["streamed_layers"] = true;
  if (memory.placement.size() < 2) return;
  auto placement = Json::array();
  for (const auto& p : memory.placement) {
    Json entry{{"device", p.device}, {"layers", {p.layers.start, p.layers.end}}, {"embeddings", p.embeddings},
               {"head", p.head}};
    if (p.peak_mib) entry["peak_mib"] = *p.peak_mib;
    placement.push_back(entry);
  }
  out["placement"] = placement;
}

Json calibration_json(const CalibrationSummary& c) {
  Json j{{"files", c.files},
         {"samples", c.samples},
         {"held_out_samples", c.held_out_samples},
         {"seq_len", c.seq_len},
         {"seed", c.seed},
         {"corpus_tokens", c.corpus_tokens},
         {"text_prefix", c.text_prefix}};
  if (!c.attention_note.empty()) j["attention"] = c.attention_note;
  return j;
}

Json gap_json(const GapReport& g) {
  Json j{{"start", g.range.start},         {"end", g.range.end},       {"new_position", g.new_position},
         {"description", describe_range(g.range)}, {"repair", g.repair}, {"repair_description", g.description}};
  if (g.scales) j["scales"] = {{"mean", (*g.scales)[0]}, {"min", (*g.scales)[1]}, {"max", (*g.scales)[2]}, {"std", (*g.scales)[3]}};
  if (!g.candidates.empty()) {
    Json candidates = Json::object();
    for (const auto& [kind, kl] : g.candidates) candidates[kind] = {{"held_out_kl", kl}};
    j["repair_candidates"] = candidates;
  }
  if (g.refit)
    j["refit"] = {{"held_out_kl_dense_fit", g.refit->kl_dense_fit},
                  {"held_out_kl_sequential", g.refit->kl_refit},
                  {"kept", g.refit->kept ? "sequential" : "dense"}};
  return j;
}

Json search_json(const SearchOutcome& s) {
  auto moves = Json::array();
  for (const auto& m : s.accepted) moves.push_back({{"restored", m.restored}, {"removed", m.removed}, {"held_out_kl", m.kl}});
  return {{"kind", s.kind},       {"greedy", s.greedy},   {"greedy_held_out_kl", s.greedy_kl},
          {"accepted", moves},    {"final_held_out_kl", s.final_kl}, {"sets_tried", s.trials},
          {"budget", s.budget}};
}

Json distill_json(const DistillReport& d) {
  return {{"samples", d.samples},
          {"val_samples", d.val_samples},
          {"seq_len", d.seq_len},
          {"top_k", d.top_k},
          {"epochs", d.epochs},
          {"batch_size", d.batch_size},
          {"grad_accum", d.grad_accum},
          {"lr", d.lr},
          {"min_lr", d.min_lr},
          {"weight_decay", d.weight_decay},
          {"seed", d.seed},
          {"steps", d.steps},
          {"val_kl_before", d.val_kl_before},
          {"val_kl_after", d.val_kl_after},
          {"first_step_kl", d.first_step_kl},
          {"last_step_kl", d.last_step_kl},
          {"teacher_targets_on_disk", d.targets_on_disk},
          {"prefix_cached", d.prefix_cached},
          {"tokens_per_second", d.tokens_per_second},
          {"data_parallel_ranks", d.data_parallel_ranks},
          {"seconds",
           {{"total", d.seconds_total},
            {"validation", d.seconds_validation},
            {"teacher", d.seconds_teacher},
            {"frozen_prefix", d.seconds_prefix},
            {"student_forward_backward", d.seconds_student},
            {"gradient_sum", d.seconds_gradient_sum}}}};
}

Json fold_json(const FoldReport& f) {
  auto quality = [&](const FoldQuality& q, bool relative) {
    Json j{{"mean_kl_to_dense", q.mean_kl}, {"ppl", q.ppl}};
    if (relative && f.exact.ppl > 0) j["ppl_ratio_to_exact_patch"] = q.ppl / f.exact.ppl;
    return j;
  };
  Json j{{"measured_on", std::to_string(f.held_out_windows) + " held-out calibration windows"},
         {"exact_patch", quality(f.exact, false)}};
  for (const auto& fold : f.folds) j["folds"][fold.kind] = quality(fold, true);
  j["chosen"] = f.chosen;
  return j;
}

Json iterative_json(const std::vector<IterativeStep>& steps) {
  auto out = Json::array();
  for (const auto& step : steps) {
    Json candidates = Json::array();
    for (const auto& [layer, kl] : step.candidates) candidates.push_back({{"layer", layer}, {"held_out_kl", kl}});
    out.push_back({{"removed", step.removed_layer}, {"held_out_kl", step.kl}, {"candidates", candidates}});
  }
  return out;
}

Json held_out_json(const HeldOutFigures& h) {
  return {{"ppl_ratio", h.ppl_ratio}, {"kl", h.kl}, {"ppl", h.ppl}, {"dense_ppl", h.dense_ppl}, {"windows", h.windows}};
}

Json curve_json(const std::vector<CurvePoint>& curve) {
  auto out = Json::array();
  for (const auto& p : curve) {
    Json point{{"layers", p.layers},
               {"removed", p.removed},
               {"parameters", p.parameters},
               {"held_out_ppl_ratio", p.held_out.ppl_ratio},
               {"held_out_kl", p.held_out.kl}};
    if (p.tasks) {
      const auto tasks = task_comparison_json(*p.tasks);
      point["tasks"] = tasks["tasks"];
      point["retained_performance"] = tasks["retained_performance"];
    }
    out.push_back(point);
  }
  return out;
}

Json budget_json(const BudgetOutcome& b, const std::string& unit) {
  Json limits = Json::object();
  for (const auto& [name, limit] : b.limits) limits[name] = limit;
  if (unit != "layer")  // a count of sublayer units; no quality judged, no curve
    return {{"chosen_units", b.chosen_layers}, {"unit", unit}, {"bound_by", b.bound_by}, {"limits", limits},
            {"search", b.search}};
  return {{"chosen_layers", b.chosen_layers},
          {"bound_by", b.bound_by},
          {"limits", limits},
          {"search", b.search},
          {"monotone", b.monotone}};
}

std::string fixed(double value, int digits) { return fmt::format("{:.{}f}", value, digits); }

Json site_json(const Site& site) { return {{"layer", site.layer}, {"sublayer", sublayer_name(site.sublayer)}}; }

Json sites_json(const std::vector<Site>& sites) {
  auto out = Json::array();
  for (const auto& site : sites) out.push_back(site_json(site));
  return out;
}

Json site_scores_json(const std::vector<std::pair<Site, double>>& scores) {
  auto out = Json::array();
  for (const auto& [site, score] : scores) {
    auto entry = site_json(site);
    entry["score"] = score;
    out.push_back(entry);
  }
  return out;
}

Json site_steps_json(const std::vector<SiteStep>& steps) {
  auto out = Json::array();
  for (const auto& step : steps)
    out.push_back({{"removed", site_json(step.removed)},
                   {"held_out_kl", step.kl},
                   {"candidates", site_scores_json(step.candidates)}});
  return out;
}

}  // namespace

Report to_json(const PruneResult& r) {
  Json out;
  out["model"] = r.model;
  out["output"] = r.output;
  if (!r.recipe.empty()) out["recipe"] = r.recipe;
  if (!r.recipe_overrides.empty()) out["recipe_overrides"] = r.recipe_overrides;
  out["num_layers"] = r.layers;  // before pruning
  out["n"] = r.n;
  out["num_layers_after"] = r.layers - static_cast<int64_t>(r.selection.removed.size());
  out["metric"] = r.metric;
  out["removed"] = r.selection.removed;
  if (r.unit != "layer") {
    out["unit"] = r.unit;
    out["removed_sublayers"] = sites_json(r.selection.removed_sites);
    if (!r.selection.site_steps.empty()) out["sublayer_steps"] = site_steps_json(r.selection.site_steps);
    if (!r.selection.site_cosine.empty()) out["sublayer_cosine"] = site_scores_json(r.selection.site_cosine);
    out["sublayer_repairs"] = r.sublayer_repairs;
  }
  // Half-open [start, end) runs in the original numbering; start/end only
  // where they describe the whole removal.
  auto ranges = Json::array();
  for (const auto& g : r.gaps) ranges.push_back({g.range.start, g.range.end});
  out["ranges"] = ranges;
  out["contiguous"] = r.gaps.size() == 1;
  if (r.gaps.size() == 1) {
    out["start"] = r.gaps.front().range.start;
    out["end"] = r.gaps.front().range.end;
  }
  auto gaps = Json::array();
  for (const auto& g : r.gaps) gaps.push_back(gap_json(g));
  out["gaps"] = gaps;
  out["repair"] = r.repair;
  out["rotation"] = r.rotation;
  if (!r.selection.candidates.empty()) out["candidates"] = blocks_json(r.selection.candidates);
  if (!r.selection.influence.empty()) out["block_influence"] = r.selection.influence;
  if (!r.selection.steps.empty()) out["iterative_steps"] = iterative_json(r.selection.steps);
  if (r.selection.search) out["search"] = search_json(*r.selection.search);
  if (r.distill) out["distill"] = distill_json(*r.distill);
  out["emit"] = r.emit;
  if (r.fold) out["vanilla"] = fold_json(*r.fold);
  if (r.tasks) out["eval_tasks"] = task_comparison_json(*r.tasks);
  if (r.held_out) out["held_out"] = held_out_json(*r.held_out);
  if (r.budget) {
    out["budget"] = budget_json(*r.budget, r.unit);
    if (r.unit == "layer") out["curve"] = curve_json(r.curve);
    for (const auto& [metric, curve] : r.compared_curves) out["compared_curves"][metric] = curve_json(curve);
  }
  out["parameters"] = {{"before", r.parameters_before},
                       {"after", r.parameters_after},
                       {"removed", r.parameters_before - r.parameters_after}};
  out["files"] = r.files;
  out["bytes"] = r.bytes;
  out["bytes_written_early"] = r.bytes_written_early;
  // The write phase (copy, flushes, rename) of what was left after the
  // early copies: with sync, the rate at which it became durable.
  for (const auto& [phase, seconds] : r.timings)
    if (phase == "write" && seconds > 0)
      out["write"] = {{"mb_per_s", (r.bytes - r.bytes_written_early) / 1e6 / seconds}, {"durable", r.synced}};
  if (r.calibration) out["calibration"] = calibration_json(*r.calibration);
  out["timings"] = timings_json(r.timings);
  add_memory(out, r.memory);
  return out;
}

namespace {

// A ranking of sublayer units: every site with its score, best first
// (cosine: the most similar; iterative: the order of removal, with the
// held-out KL after each step).
Json ranked_sites_json(const Selection& s) {
  if (!s.site_cosine.empty()) return site_scores_json(s.site_cosine);
  auto out = Json::array();
  for (const auto& step : s.site_steps) {
    auto entry = site_json(step.removed);
    entry["held_out_kl"] = step.kl;
    out.push_back(entry);
  }
  return out;
}

void add_unit_scores(Json& out, const ScoreResult& r) {
  out["unit"] = r.unit;
  if (r.n) {
    out["n"] = *r.n;
    out["removed_sublayers"] = sites_json(r.sites.removed_sites);
  }
  out["ranked"] = ranked_sites_json(r.sites);
  if (!r.sites.site_steps.empty()) out["sublayer_steps"] = site_steps_json(r.sites.site_steps);
}

}  // namespace

Report to_json(const ScoreResult& r) {
  Json out;
  out["model"] = r.model;
  out["num_layers"] = r.layers;
  out["metric"] = r.metric;
  if (r.unit != "layer") {
    add_unit_scores(out, r);
    out["calibration"] = calibration_json(r.calibration);
    out["timings"] = timings_json(r.timings);
    add_memory(out, r.memory);
    return out;
  }
  if (r.n) {
    out["n"] = *r.n;
    Json rankings = Json::object();
    for (const auto& [metric, blocks] : r.rankings) rankings[metric] = blocks_json(blocks);
    const auto chosen = r.rankings.find(r.metric);
    if (chosen != r.rankings.end()) out["blocks"] = blocks_json(chosen->second);
    out["rankings"] = rankings;
    out["block_influence"] = r.influence;
    out["bi_layers"] = r.bi_layers;
  } else {
    Json by_n = Json::object();
    for (const auto& [n, blocks] : r.blocks_by_n) by_n[std::to_string(n)] = blocks_json(blocks);
    out["blocks_by_n"] = by_n;
  }
  auto matrix = Json::array();
  for (const auto& row : r.cosine) {
    auto values = Json::array();
    for (const auto& v : row) values.push_back(v ? Json(*v) : Json(nullptr));
    matrix.push_back(values);
  }
  out["cosine_matrix"] = matrix;
  out["calibration"] = calibration_json(r.calibration);
  out["timings"] = timings_json(r.timings);
  add_memory(out, r.memory);
  return out;
}

std::string summarize(const PruneResult& r) {
  std::ostringstream out;
  const bool forced = r.metric == "forced";
  if (r.unit != "layer") {
    out << "removed " << r.selection.removed_sites.size() << " " << r.unit << " units (chosen by " << r.metric
        << "): " << describe_sites(r.selection.removed_sites);
    // A layer that lost both its sublayers is gone as a whole.
    if (!r.selection.removed.empty())
      out << "\n  layers without either sublayer, removed whole: " << describe_layers(r.selection.removed);
    for (const auto& repair : r.sublayer_repairs) out << "\n  " << repair;
  } else {
    out << "removed " << r.selection.removed.size() << " of " << r.layers << " layers ("
        << (forced ? "the forced block" : "chosen by " + r.metric) << "): " << describe_layers(r.selection.removed);
  }
  if (!r.recipe.empty()) {
    out << "\nrecipe " << r.recipe;
    if (!r.recipe_overrides.empty()) {
      out << ", with your";
      for (const auto& option : r.recipe_overrides) out << " " << option;
    }
  }
  // Layer numbers are the original model's; the pruned model's own index of
  // the layer after a gap is said as "new position".
  for (const auto& g : r.gaps) {
    out << "\n  " << describe_range(g.range) << "; " << g.description;
    if (g.scales) out << ", d mean " << fixed((*g.scales)[0], 4) << " [" << fixed((*g.scales)[1], 4) << ", "
                      << fixed((*g.scales)[2], 4) << "]";
    if (g.range.end < r.layers) out << "; layer " << g.range.end << " is now at position " << g.new_position;
    for (const auto& [kind, kl] : g.candidates) out << "\n    held-out KL with " << kind << ": " << fixed(kl, 5);
    if (g.refit)
      out << "\n    sequential refit: held-out KL " << fixed(g.refit->kl_dense_fit, 5) << " (dense fit) -> "
          << fixed(g.refit->kl_refit, 5) << (g.refit->kept ? ", kept" : ", dense fit kept");
  }
  if (const auto& s = r.selection.search) {
    out << "\n" << s->kind << " search: greedy set " << describe_layers(s->greedy) << " (held-out KL "
        << fixed(s->greedy_kl, 5) << ")";
    for (const auto& m : s->accepted)
      out << "\n  layer " << m.restored << " back, layer " << m.removed << " out: KL " << fixed(m.kl, 5);
    out << "\n  " << s->trials << " of " << s->budget << " sets tried";
  }
  if (r.distill)
    out << "\ndistillation: validation KL " << fixed(r.distill->val_kl_before, 5) << " -> "
        << fixed(r.distill->val_kl_after, 5) << " in " << r.distill->steps << " steps"
        << (r.distill->data_parallel_ranks > 1
                ? ", data-parallel over " + std::to_string(r.distill->data_parallel_ranks) + " devices"
                : "");
  if (r.budget && r.unit != "layer")
    out << "\nbudget: " << r.budget->chosen_layers << " " << r.unit << " units, the fewest that meet every target ("
        << r.budget->bound_by << " bound it)";
  else if (r.budget)
    out << "\nbudget: " << r.budget->chosen_layers << " layers, the deepest of " << r.curve.size()
        << " depths tried that meets every limit (" << r.budget->bound_by << " bound it)";
  if (r.held_out)
    out << "\nheld-out perplexity ratio " << fixed(r.held_out->ppl_ratio, 4) << ", KL " << fixed(r.held_out->kl, 5)
        << " (" << r.held_out->windows << " calibration windows)";
  if (r.fold) out << "\nvanilla export: " << r.fold->chosen << " fold";
  if (r.tasks && r.tasks->retained.average)
    out << "\nretained zero-shot performance " << fixed(100 * *r.tasks->retained.average, 2) << " %";
  out << "\nparameters " << r.parameters_before << " -> " << r.parameters_after;
  double total = 0;
  for (const auto& [phase, seconds] : r.timings)
    if (phase == "total") total = seconds;
  out << "\nwrote " << r.output << " (" << r.files.size() << " weight file(s), " << r.bytes << " bytes";
  if (r.bytes_written_early) out << ", " << r.bytes_written_early << " of them during calibration";
  out << ") in " << fixed(total, 1) << " s";
  return out.str();
}

namespace {

// What each metric's number means, for the table heads.
std::string metric_legend(bool patched_kl) {
  return std::string("cosine: mean cosine across the block, higher = more redundant; angular: last-token angular "
                     "distance, lower = more redundant") +
         (patched_kl ? "; patched-kl: held-out KL to the dense model with the block removed and repaired, lower = better"
                     : "");
}

std::string score_without_n(const ScoreResult& r) {
  std::string out = "best block of each size (layers in the original numbering; " + metric_legend(false) + "):";
  out += fmt::format("\n  {:>3}  {:<28} {:<28}", "n", "by cosine", "by angular");
  for (const auto& [n, blocks] : r.blocks_by_n) {
    out += fmt::format("\n  {:>3}", n);
    for (const char* metric : {"cosine", "angular"}) {
      const auto found = r.best_by_n.find(metric);
      if (found == r.best_by_n.end() || !found->second.count(n)) {
        out += fmt::format("  {:<27}", "-");
        continue;
      }
      const auto& b = found->second.at(n);
      out += fmt::format("  {:<18} {:>8}", fmt::format("[{}, {})", b.start, b.end), fixed(b.score, 5));
    }
  }
  out += "\nblocks are half-open [start, end); --layers N ranks every block of N layers by every metric";
  return out;
}

std::string score_with_n(const ScoreResult& r) {
  const int64_t n = *r.n;
  std::vector<std::string> metrics;
  for (const char* metric : {"cosine", "angular", "patched-kl"})
    if (r.rankings.count(metric)) metrics.push_back(metric);
  std::map<std::string, std::map<int64_t, double>> score;  // metric -> start -> score
  for (const auto& metric : metrics)
    for (const auto& b : r.rankings.at(metric)) score[metric][b.start] = b.score;
  // Rows in the order of the chosen ranking (cosine when bi was asked for).
  const auto order = r.rankings.count(r.metric) ? r.rankings.at(r.metric) : r.rankings.at("cosine");
  std::string out = "every block of " + std::to_string(n) + " layers, best first by " +
                    (r.rankings.count(r.metric) ? r.metric : std::string("cosine")) + " (" +
                    metric_legend(r.rankings.count("patched-kl") > 0) + "):";
  out += fmt::format("\n  {:<12} {:<24}", "block", "layers");
  for (const auto& metric : metrics) out += fmt::format(" {:>11}", metric);
  for (const auto& b : order) {
    std::vector<int64_t> layers;
    for (int64_t l = b.start; l < b.end; ++l) layers.push_back(l);
    out += fmt::format("\n  {:<12} {:<24}", fmt::format("[{}, {})", b.start, b.end), describe_layers(layers));
    for (const auto& metric : metrics) out += fmt::format(" {:>11}", fixed(score[metric][b.start], 5));
  }
  if (!r.bi_layers.empty())
    out += "\nblock influence (ShortGPT, may be non-contiguous) would remove layers " + describe_layers(r.bi_layers);
  return out;
}

std::string unit_ranking_text(const ScoreResult& r) {
  const auto& s = r.sites;
  const auto chosen = [&](const Site& site) {
    return std::binary_search(s.removed_sites.begin(), s.removed_sites.end(), site) ? "  *" : "";
  };
  std::string out;
  if (!s.site_cosine.empty()) {
    out = "every eligible " + r.unit + " unit, most redundant first (cosine: mean per-token cosine between the "
          "sublayer's input and output stream, higher = more redundant):";
    out += fmt::format("\n  {:>4}  {:<16} {:>9}", "rank", "site", "cosine");
    for (size_t i = 0; i < s.site_cosine.size(); ++i) {
      const auto& [site, cosine] = s.site_cosine[i];
      out += fmt::format("\n  {:>4}  {:<16} {:>9}{}", i + 1, describe_sites({site}), fixed(cosine, 5), chosen(site));
    }
  } else {
    out = r.unit + " units in the order iterative selection removes them (held-out KL to the dense model after each "
          "step, lower = better" + (r.unit == "sublayer" ? "; chosen by KL increase per parameter removed" : "") + "):";
    out += fmt::format("\n  {:>4}  {:<16} {:>11}", "step", "site", "held-out KL");
    for (size_t i = 0; i < s.site_steps.size(); ++i)
      out += fmt::format("\n  {:>4}  {:<16} {:>11}", i + 1, describe_sites({s.site_steps[i].removed}),
                         fixed(s.site_steps[i].kl, 5));
  }
  if (r.n)
    out += "\n" + std::string(s.site_cosine.empty() ? "" : "* ") + "removing " + std::to_string(*r.n) + " " + r.unit +
           " units by " + r.metric + ": " + describe_sites(s.removed_sites);
  return out;
}

}  // namespace

std::string summarize(const ScoreResult& r) {
  if (r.unit != "layer") return unit_ranking_text(r);
  return r.n ? score_with_n(r) : score_without_n(r);
}

}  // namespace lp
