#include "linearpatch/pipeline/prune_pipeline.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "linearpatch/core/error.h"
#include "linearpatch/core/output_dir.h"
#include "linearpatch/core/version.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/patch/sublayer_repair.h"
#include "linearpatch/prune/early_layer_copies.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "linearpatch/select/patched_kl.h"
#include "pipeline/depth_search.h"
#include "pipeline/preflight.h"
#include "pipeline/stages.h"
#include "pipeline/unit_budget.h"

namespace lp {
namespace {

// Beside GPU forward passes, enough to copy an 8B model's layers before
// calibration ends (a kernel-side copy runs at 1-2 GB/s); beside CPU ones,
// which want every core, one.
int early_copy_threads(const LlamaModel& model) { return model.devices().front().is_cpu() ? 1 : 4; }

using Json = nlohmann::ordered_json;

int64_t parameter_count(const io::Checkpoint& checkpoint) {
  int64_t count = 0;
  for (const auto& name : checkpoint.tensor_names()) count += static_cast<int64_t>(checkpoint.tensor(name).info->numel());
  return count;
}

// Each decoder layer's parameters, from the tensor names
// (model.layers.<i>.…) in the checkpoint's headers.
std::vector<int64_t> layer_parameter_counts(const io::Checkpoint& checkpoint, int64_t num_layers) {
  std::vector<int64_t> counts(static_cast<size_t>(num_layers), 0);
  const std::string marker = "layers.";
  for (const auto& name : checkpoint.tensor_names()) {
    const auto at = name.find(marker);
    if (at == std::string::npos) continue;
    const auto end = name.find('.', at + marker.size());
    const auto index = name.substr(at + marker.size(), end - at - marker.size());
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto layer = std::stoll(index);
    if (layer < num_layers) counts[static_cast<size_t>(layer)] += static_cast<int64_t>(checkpoint.tensor(name).info->numel());
  }
  return counts;
}

// Which statistics and held-out windows the whole job needs: selection's,
// plus LinearPatch statistics for the repairs and held-out windows for
// every choice judged by KL.
SelectionNeeds job_needs(const PruneJob& job, int64_t num_layers) {
  auto needs = selection_needs(job.selection, num_layers);
  const auto kind = job.repair.kind;
  // patched-kl scores its blocks with LinearPatches whatever the repair
  // kept; iterative scores with the kept kind.
  const bool linearpatch_scored =
      !job.selection.start && (job.selection.metric == Metric::kPatchedKl ||
                               (job.selection.metric == Metric::kIterative &&
                                job.selection.score_repair == RepairKind::kLinearPatch));
  if ((kind == RepairChoice::kNone || kind == RepairChoice::kMlpLstsq) && !linearpatch_scored)
    needs.magnitude_gaps.clear();
  // mlp-lstsq patches the stream only at a gap at layer 0 (edges allowed).
  const bool stream_patches = kind == RepairChoice::kLinearPatch || kind == RepairChoice::kAuto ||
                              (kind == RepairChoice::kMlpLstsq && job.selection.allow_edges);
  needs.held_out = needs.held_out || kind == RepairChoice::kAuto ||
                   (job.emit.mode == EmitMode::kVanilla && stream_patches);
  return needs;
}

// Iterative candidates are scored with the repair the run keeps; `auto`
// keeps mlp-lstsq on nearly every gap (docs/results.md), so it scores with
// that and still chooses per gap afterwards.
RepairKind scoring_repair(RepairChoice kind) {
  switch (kind) {
    case RepairChoice::kNone: return RepairKind::kNone;
    case RepairChoice::kLinearPatch: return RepairKind::kLinearPatch;
    case RepairChoice::kMlpLstsq:
    case RepairChoice::kAuto: return RepairKind::kMlpLstsq;
  }
  return RepairKind::kLinearPatch;
}

// The calibration windows the search's least squares are fitted on: twice
// the held-out windows, so a step's fitting pass (dense and current model,
// up to the last candidate gap) costs a fraction of its scoring (about
// E/2 runs of the held-out windows). The kept repairs are fitted on every
// calibration window afterwards.
at::Tensor search_fit_windows(const Calibrated& c) {
  const int64_t held_out = c.held_out_windows.defined() ? c.held_out_windows.size(0) : 0;
  return c.fit_windows.narrow(0, 0, std::min(c.fit_windows.size(0), std::max<int64_t>(2 * held_out, 1)));
}

// A budget may visit every depth up to its deepest, by its metric and by
// every metric its curve is compared with.
SelectionNeeds budget_needs(const PruneJob& job, int64_t num_layers) {
  auto deepest = job;
  deepest.selection.layers = deepest_removal(job.selection, num_layers);
  auto needs = depth_search_needs(deepest, job_needs(deepest, num_layers), num_layers);
  const auto merge = [](std::vector<int64_t>& into, const std::vector<int64_t>& more) {
    into.insert(into.end(), more.begin(), more.end());
    std::sort(into.begin(), into.end());
    into.erase(std::unique(into.begin(), into.end()), into.end());
  };
  for (const auto metric : job.compare_metrics) {
    auto other = deepest;
    other.selection.metric = metric;
    const auto more = depth_search_needs(other, job_needs(other, num_layers), num_layers);
    merge(needs.similarity_gaps, more.similarity_gaps);
    merge(needs.magnitude_gaps, more.magnitude_gaps);
  }
  return needs;
}

// What a forced block removed without repair needs: nothing measured.
bool pure_surgery(const PruneJob& job) {
  return job.selection.start && job.repair.kind == RepairChoice::kNone;
}

std::string provenance(const PruneJob& job, const PruneResult& result) {
  Json entry{{"tool", std::string("linearpatch ") + version()},
             {"source", job.model_dir.string()},
             {"recipe", job.recipe},
             {"metric", result.metric},
             {"repair", result.repair},
             {"rotation", result.rotation},
             {"calibration",
              {{"samples", job.calibration.samples}, {"seq_len", job.calibration.seq_len}, {"seed", job.calibration.seed}}}};
  if (!job.recipe_overrides.empty()) entry["recipe_overrides"] = job.recipe_overrides;
  // Ranges are half-open in the original numbering; each gap also lists its
  // layers, so nobody has to know the convention.
  entry["ranges"] = "[start, end): layers start..end-1, original numbering";
  auto gaps = Json::array();
  for (const auto& g : result.gaps) {
    std::vector<int64_t> layers;
    for (int64_t l = g.range.start; l < g.range.end; ++l) layers.push_back(l);
    gaps.push_back({{"range", {g.range.start, g.range.end}},
                    {"removed_layers", layers},
                    {"new_position", g.new_position},
                    {"repair", g.repair},
                    {"how", g.description}});
  }
  entry["gaps"] = gaps;
  entry["emit"] = result.emit;
  if (result.fold) entry["fold"] = result.fold->chosen;
  if (result.distill) {
    auto distill = to_json(result)["distill"];
    distill.erase("seconds");
    entry["distill"] = distill;
  }
  return entry.dump();
}

// A stream patch also names the run of sublayers it repairs.
std::string unit_repair_description(const Repair& repair, const PrunePlan& plan) {
  if (!repair.on_stream()) return repair.description();
  for (const auto& run : removed_runs(plan))
    if (run.patched_layer() == repair.gap.end) return repair.description() + ", after " + describe_sites(run.sites());
  throw Error("internal: a stream patch at layer " + std::to_string(repair.gap.end) + " repairs no removed run");
}

// Sublayer units: with a count, the sites the selection removes (cosine:
// beside every eligible site's score; iterative: each step's candidates);
// without one, every eligible site ranked by cosine.
ScoreResult score_units(const ScoreJob& job, const Tokenizer& tokenizer, const LlamaConfig& config, PhaseClock& clock) {
  auto s = job.selection;
  const bool iterative = s.metric == Metric::kIterative;
  auto text = prepare_calibration_text(tokenizer, job.calibration, iterative, clock);
  const auto model = clock.time("load", [&] { return LlamaModel::load(job.model_dir, job.model); });
  const auto c = calibrate(model, std::move(text), job.calibration, selection_needs(s, config.num_hidden_layers),
                           nullptr, clock);
  ScoreResult result;
  result.model = job.model_dir.string();
  result.layers = config.num_hidden_layers;
  result.metric = metric_name(s.metric);
  result.unit = unit_name(s.unit);
  if (s.layers > 0) result.n = s.layers;
  else s.layers = static_cast<int64_t>(eligible_sites(config, s.unit, s.allow_edges).size());
  result.sites = clock.time("selection", [&] {
    std::optional<HeldOutKl> held_out;
    if (iterative) held_out.emplace(model, c.held_out_windows, job.calibration.batch_size);
    SelectionInputs inputs{model, nullptr, nullptr, nullptr, held_out ? &*held_out : nullptr};
    inputs.fit_windows = c.fit_windows;
    inputs.batch_size = job.calibration.batch_size;
    return select_layers(s, inputs);
  });
  if (!result.n) result.sites.removed_sites.clear();  // ranked, none chosen
  result.calibration = c.summary;
  result.memory = memory_use(model);
  return result;
}

}  // namespace

PruneResult run_prune(const PruneJob& job) {
  Stopwatch total;
  PhaseClock clock;
  // Every check that needs no weights comes first, the text included.
  const auto checked = preflight(job);
  const auto& tokenizer = checked.tokenizer;
  const auto& tasks = checked.tasks;
  const int64_t L = checked.config.num_hidden_layers;
  const bool depth_budget = job.budget && job.selection.unit == Unit::kLayer;  // units: pipeline/unit_budget.h
  const auto needs = depth_budget ? budget_needs(job, L) : job_needs(job, L);
  check_size_target(job, checked.config);
  check_unit_targets(job, checked.config);
  std::optional<CalibrationText> text;
  if (!pure_surgery(job)) text = prepare_calibration_text(*tokenizer, job.calibration, needs.held_out, clock);
  AtomicOutputDir output(job.output_dir, job.overwrite, {job.model_dir});
  const auto source = open_checkpoint(job.model_dir);
  const auto model = clock.time("load", [&] { return LlamaModel::load(source, job.model); });
  io::WriteOptions write_options;
  write_options.sync = job.sync;
  // A sharded source is written one file per layer, copied while the model
  // is calibrated; an explicit shard size keeps the packed layout.
  std::optional<EarlyLayerCopies> early_copies;
  if (source->sharded() && job.max_shard_bytes == 0) {
    auto early_options = write_options;
    early_options.threads = early_copy_threads(model);
    early_copies.emplace(*source, output.path(), early_options);
  }

  PruneResult result;
  result.model = job.model_dir.string();
  result.layers = L;
  result.n = job.selection.layers;
  result.metric = job.selection.start ? "forced" : metric_name(job.selection.metric);
  result.unit = unit_name(job.selection.unit);
  result.recipe = job.recipe;
  result.recipe_overrides = job.recipe_overrides;
  result.repair = repair_choice_name(job.repair.kind);
  result.emit = job.emit.mode == EmitMode::kVanilla ? "vanilla" : "exact";

  std::optional<Rotation> rotation;
  if (!needs.magnitude_gaps.empty() || job.repair.kind == RepairChoice::kLinearPatch)
    rotation = make_rotation(model, job.repair.rotation, job.calibration.seed);
  result.rotation = rotation ? rotation->description() : "none";
  std::optional<Calibrated> calibrated;
  const bool least_squares = job.selection.unit == Unit::kLayer &&
                             (job.repair.kind == RepairChoice::kMlpLstsq || job.repair.kind == RepairChoice::kAuto);
  if (text)
    calibrated = calibrate(model, std::move(*text), job.calibration, needs, rotation ? &*rotation : nullptr, clock,
                           least_squares);
  std::optional<HeldOutKl> held_out;
  if (calibrated && calibrated->held_out_windows.defined())
    held_out.emplace(model, calibrated->held_out_windows, job.calibration.batch_size);

  const Calibrated* calibration = calibrated ? &*calibrated : nullptr;
  const RepairKind scoring = job.selection.score_repair.value_or(scoring_repair(job.repair.kind));
  const at::Tensor fit_windows = calibrated ? search_fit_windows(*calibrated) : at::Tensor();
  RepairOutcome repaired;
  if (depth_budget) {
    std::optional<TaskBaseline> task_baseline;
    if (!tasks.empty())
      clock.time("eval_tasks_dense", [&] {
        task_baseline.emplace(model, *tokenizer, tasks, job.calibration.batch_size * job.calibration.seq_len);
      });
    const DepthSearchInputs search_inputs{model,
                                          *calibrated,
                                          rotation ? &*rotation : nullptr,
                                          *held_out,
                                          task_baseline ? &*task_baseline : nullptr,
                                          parameter_count(*source),
                                          layer_parameter_counts(*source, L),
                                          scoring,
                                          fit_windows};
    auto found = clock.time("depth_search", [&] { return search_depth(job, search_inputs); });
    result.selection = std::move(found.selection);
    repaired = std::move(found.repairs);
    result.curve = std::move(found.curve);
    result.budget = std::move(found.outcome);
    result.n = result.budget->chosen_layers;
    int64_t visited = 0;
    for (const auto& point : result.curve) visited = std::max(visited, point.layers);
    for (const auto metric : job.compare_metrics)
      result.compared_curves.emplace_back(metric_name(metric), clock.time("compare_" + metric_name(metric), [&] {
        return metric_curve(job, metric, search_inputs, visited);
      }));
  } else {
    result.selection = clock.time("selection", [&] {
      SelectionInputs inputs{model, calibrated ? calibrated->similarity.get() : nullptr,
                             calibrated && calibrated->magnitude ? calibrated->magnitude.get() : nullptr,
                             rotation ? &*rotation : nullptr, held_out ? &*held_out : nullptr};
      inputs.scoring_repair = scoring;
      inputs.fit_windows = fit_windows;
      // Sublayer cosines are measured on every calibration window.
      if (job.selection.unit != Unit::kLayer && calibrated) inputs.fit_windows = calibrated->fit_windows;
      inputs.batch_size = job.calibration.batch_size;
      if (!job.budget) return select_layers(job.selection, inputs);
      auto chosen = choose_units_within_budget(job, inputs);
      result.budget = std::move(chosen.outcome);
      result.n = result.budget->chosen_layers;
      return std::move(chosen.selection);
    });
    repaired = clock.time("repair", [&] {
      if (job.selection.unit != Unit::kLayer) {  // validate() allows none, mlp-lstsq and linearpatch
        RepairOutcome outcome;
        const auto& sites = result.selection.removed_sites;
        const auto batch = job.calibration.batch_size;
        if (job.repair.kind == RepairChoice::kMlpLstsq)
          outcome.repairs = fit_sublayer_repairs(model, sites, calibrated->fit_windows, batch);
        if (job.repair.kind == RepairChoice::kLinearPatch)
          outcome.repairs = fit_stream_patches(model, sites, calibrated->fit_windows, batch, *rotation);
        return outcome;
      }
      return repair_gaps(model, result.selection.removed, job.repair.kind, job.repair.refit, calibration,
                         rotation ? &*rotation : nullptr, held_out ? &*held_out : nullptr, job.calibration.batch_size,
                         result.selection.scored_repairs);
    });
  }
  const auto plan = make_prune_plan(L, result.selection.removed, result.selection.removed_sites);
  spdlog::info("removing layers {}", describe_layers(plan.removed));
  if (!plan.removed_sublayers.empty()) spdlog::info("removing sublayers {}", describe_sites(plan.removed_sublayers));
  result.selection.removed = plan.removed;  // sublayer units: layers that lost both sublayers
  if (depth_budget) {
    for (const auto& point : result.curve)
      if (point.layers == result.budget->chosen_layers) result.held_out = point.held_out;
  } else if (held_out) {
    result.held_out = clock.time("held_out_eval", [&] {
      if (repaired.quality) return held_out_figures(*repaired.quality, held_out->windows());
      const auto pruned = model.without_sites(removed_sites(plan), layer_patches(repaired.repairs));
      return held_out_figures(held_out->quality(pruned), held_out->windows());
    });
  }
  if (job.distill)
    result.distill = clock.time("distill", [&] {
      return distill_repairs(model, plan.removed, repaired.repairs, *tokenizer, *job.distill, job.calibration);
    });
  result.gaps = std::move(repaired.reports);
  if (job.selection.unit != Unit::kLayer)
    for (const auto& r : repaired.repairs) result.sublayer_repairs.push_back(unit_repair_description(r, plan));

  auto emitted = clock.time("emit", [&] {
    return emit_repairs(model, plan, repaired.repairs, job.emit, calibration, job.calibration.batch_size);
  });
  result.fold = std::move(emitted.fold);
  emitted.edits.provenance_json = provenance(job, result);
  emitted.edits.nemotron_nas = job.emit.mode == EmitMode::kVanilla && !plan.removed_sublayers.empty();
  const auto written = clock.time("write", [&] {
    auto w = write_pruned_checkpoint(*source, plan, emitted.edits, job.max_shard_bytes, output.path(), write_options,
                                     early_copies ? &*early_copies : nullptr);
    Stopwatch commit;
    output.commit(job.sync);
    w.sync_seconds += commit.seconds();
    return w;
  });
  clock.add("write_copy", written.copy_seconds);
  clock.add("write_sync", written.sync_seconds);
  result.synced = job.sync;
  result.output = output.final_path().string();
  result.parameters_before = parameter_count(*source);
  result.parameters_after = written.parameters;
  result.files = written.files;
  result.bytes = written.bytes;
  result.bytes_written_early = written.bytes_copied_early;
  if (!tasks.empty())
    result.tasks = clock.time("eval_tasks", [&] {
      const auto pruned = LlamaModel::load(output.final_path(), job.model);
      return compare_on_tasks(pruned, model, *tokenizer, tasks, job.calibration.batch_size * job.calibration.seq_len);
    });
  if (calibrated) result.calibration = calibrated->summary;
  clock.add("total", total.seconds());
  result.timings = clock.timings();
  result.memory = memory_use(model);
  return result;
}

ScoreResult run_score(const ScoreJob& job) {
  Stopwatch total;
  PhaseClock clock;
  const auto checked = preflight(job);
  const auto& tokenizer = checked.tokenizer;
  const int64_t L = checked.config.num_hidden_layers;
  const auto& s = job.selection;
  if (s.unit != Unit::kLayer) {
    auto result = score_units(job, *tokenizer, checked.config, clock);
    clock.add("total", total.seconds());
    result.timings = clock.timings();
    return result;
  }
  const bool ranked_by_kl = s.layers > 0 && (job.rank_patched_kl || s.metric == Metric::kPatchedKl);
  auto text = prepare_calibration_text(*tokenizer, job.calibration, ranked_by_kl, clock);
  const auto model = clock.time("load", [&] { return LlamaModel::load(job.model_dir, job.model); });

  ScoreResult result;
  result.model = job.model_dir.string();
  result.layers = L;
  result.metric = metric_name(s.metric);
  SelectionNeeds needs;
  needs.held_out = ranked_by_kl;
  // Every pair of layer inputs, for the whole similarity matrix: a few dot
  // products per token beside a forward pass.
  for (int64_t n = 1; n <= L; ++n) needs.similarity_gaps.push_back(n);
  std::optional<Rotation> rotation;
  if (ranked_by_kl && job.repair.kind != RepairChoice::kNone) {
    rotation = make_rotation(model, job.repair.rotation, job.calibration.seed);
    needs.magnitude_gaps = {s.layers};
  }
  const auto c = calibrate(model, std::move(text), job.calibration, needs, rotation ? &*rotation : nullptr, clock);
  clock.time("selection", [&] {
    if (s.layers > 0) {
      result.n = s.layers;
      result.rankings["cosine"] = rank_by_cosine(*c.similarity, L, s.layers, s.allow_edges);
      result.rankings["angular"] = rank_by_angular(*c.similarity, L, s.layers, s.allow_edges);
      if (ranked_by_kl) {
        HeldOutKl held_out(model, c.held_out_windows, job.calibration.batch_size);
        const auto identity = Rotation::create(model.hidden_size(), RotationKind::kIdentity, 0);
        result.rankings["patched-kl"] = rank_by_patched_kl(model, held_out, c.magnitude.get(),
                                                           rotation ? *rotation : identity, s.layers, s.allow_edges);
      }
      result.influence = block_influence(*c.similarity, L);
      result.bi_layers = lowest_influence_layers(result.influence, s.layers, s.allow_edges);
      if (!result.rankings.count(result.metric) && s.metric != Metric::kBlockInfluence) result.metric = "cosine";
      return;
    }
    for (int64_t n = 1; n <= L; ++n) {
      const auto range_ok = (s.allow_edges ? L : L - 1) - n >= (s.allow_edges ? 0 : 1);
      if (!range_ok) break;
      const auto by_cosine = rank_by_cosine(*c.similarity, L, n, s.allow_edges);
      const auto by_angular = rank_by_angular(*c.similarity, L, n, s.allow_edges);
      result.blocks_by_n[n] = s.metric == Metric::kAngular ? by_angular : by_cosine;
      result.best_by_n["cosine"][n] = by_cosine.front();
      result.best_by_n["angular"][n] = by_angular.front();
    }
  });
  const int64_t P = L + 1;
  result.cosine.assign(static_cast<size_t>(P), std::vector<std::optional<double>>(static_cast<size_t>(P)));
  for (int64_t i = 0; i < P; ++i)
    for (int64_t j = 0; j < P; ++j) {
      if (i == j) result.cosine[i][j] = 1.0;
      else if (c.similarity->tracks(std::min(i, j), std::max(i, j)))
        result.cosine[i][j] = c.similarity->mean_cosine(std::min(i, j), std::max(i, j));
    }
  result.calibration = c.summary;
  clock.add("total", total.seconds());
  result.timings = clock.timings();
  result.memory = memory_use(model);
  return result;
}

}  // namespace lp
