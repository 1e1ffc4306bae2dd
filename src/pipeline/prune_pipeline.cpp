#include "linearpatch/pipeline/prune_pipeline.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <limits>
#include <numeric>
#include <sstream>

#include "linearpatch/calib/activation_stats.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/output_dir.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/core/version.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/device.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/patch/fold.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/patch/patch_aware.h"
#include "linearpatch/prune/checkpoint_writer.h"
#include "linearpatch/prune/prune_plan.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {
namespace {

using Json = nlohmann::ordered_json;

struct Calibration {
  at::Tensor windows;  // [N, T]
  int64_t corpus_tokens = 0;
  std::unique_ptr<SimilarityStats> similarity;
  std::unique_ptr<MagnitudeStats> magnitude;  // null without a patch
};

std::vector<int64_t> gap_range(int64_t first, int64_t last) {
  std::vector<int64_t> gaps(static_cast<size_t>(last - first + 1));
  std::iota(gaps.begin(), gaps.end(), first);
  return gaps;
}

Calibration calibrate(const LlamaModel& model, const Tokenizer& tokenizer, const CalibrationOptions& options,
                      std::vector<int64_t> similarity_gaps, std::vector<int64_t> magnitude_gaps,
                      const Rotation* rotation, Json& timings) {
  require_window_fits(options.seq_len, model.config(), "the model");
  Calibration c;
  Stopwatch tokenize_clock;
  const auto tokens = tokenize_corpus(tokenizer, options.files);
  c.corpus_tokens = static_cast<int64_t>(tokens.size());
  c.windows = random_windows(tokens, options.seq_len, options.samples, options.seed);
  timings["tokenize"] = tokenize_clock.seconds();
  spdlog::info("calibration: {} tokens of text, {} windows of {} tokens (seed {})", c.corpus_tokens,
               options.samples, options.seq_len, options.seed);

  const int64_t positions = model.num_layers() + 1;
  // Streaming runs keep every batch's recent unit vectors: host memory, float16.
  const StashOptions stash{model.streams_layers(), model.streams_layers() ? at::kHalf : at::kFloat};
  c.similarity = std::make_unique<SimilarityStats>(positions, std::move(similarity_gaps), stash);
  std::vector<ForwardObserver*> observers{c.similarity.get()};
  if (rotation && !magnitude_gaps.empty()) {
    c.magnitude = std::make_unique<MagnitudeStats>(positions, std::move(magnitude_gaps),
                                                   [rotation](const at::Tensor& x) { return rotation->apply(x); });
    observers.push_back(c.magnitude.get());
  }
  Stopwatch calibration_clock;
  run_calibration(model, c.windows, options.batch_size, observers, "calibration");
  timings["calibration"] = calibration_clock.seconds();
  return c;
}

Json blocks_json(const std::vector<Block>& blocks) {
  auto out = Json::array();
  for (const auto& b : blocks) out.push_back({{"start", b.start}, {"end", b.end}, {"score", b.score}});
  return out;
}

Json cosine_matrix_json(const SimilarityStats& stats) {
  const int64_t P = stats.num_positions();
  auto matrix = Json::array();
  for (int64_t i = 0; i < P; ++i) {
    auto row = Json::array();
    for (int64_t j = 0; j < P; ++j) {
      if (i == j) row.push_back(1.0);
      else if (stats.tracks(std::min(i, j), std::max(i, j))) row.push_back(stats.mean_cosine(std::min(i, j), std::max(i, j)));
      else row.push_back(nullptr);
    }
    matrix.push_back(row);
  }
  return matrix;
}

Rotation make_rotation(const LlamaModel& model, const PatchOptions& patch, uint64_t seed) {
  auto rotation = Rotation::create(model.hidden_size(), patch.rotation, seed);
  if (patch.rotation == RotationKind::kAuto && !rotation.is_hadamard())
    spdlog::warn("no Hadamard construction for hidden size {}; estimating scales in a {}", model.hidden_size(),
                 rotation.description());
  return rotation;
}

void require_dense(const LlamaModel& model, const std::filesystem::path& dir) {
  if (!model.config().patches.empty())
    throw UsageError(dir.string() + " is already a patched checkpoint; prune the original dense model instead");
}

int64_t checked_layers(const SelectionOptions& selection, int64_t num_layers) {
  candidate_starts(num_layers, selection.layers, selection.allow_edges);  // throws a clear UsageError
  return selection.layers;
}

Json calibration_json(const CalibrationOptions& options, int64_t corpus_tokens) {
  Json files = Json::array();
  for (const auto& f : options.files) files.push_back(f.string());
  return {{"files", files},       {"samples", options.samples},       {"seq_len", options.seq_len},
          {"seed", options.seed}, {"corpus_tokens", corpus_tokens}};
}

// Training windows from the first 90 % of the text, validation windows from
// the last 10 %, so the reported validation KL is on text not trained on.
std::pair<at::Tensor, at::Tensor> distillation_windows(const Tokenizer& tokenizer, const DistillJob& d,
                                                       const CalibrationOptions& calibration) {
  const auto tokens = tokenize_corpus(tokenizer, d.files.empty() ? calibration.files : d.files);
  const auto split = tokens.begin() + static_cast<std::ptrdiff_t>(tokens.size() * 9 / 10);
  const std::vector<int32_t> train(tokens.begin(), split), held_out(split, tokens.end());
  if (static_cast<int64_t>(held_out.size()) < calibration.seq_len)
    throw InputError("distillation text too short: its last 10 % (" + std::to_string(held_out.size()) +
                     " tokens) must hold one validation window of " + std::to_string(calibration.seq_len) + " tokens");
  return {random_windows(train, calibration.seq_len, d.samples, calibration.seed + 1),
          random_windows(held_out, calibration.seq_len, d.val_samples, calibration.seed + 2)};
}

Json distill_json(const DistillJob& d, const DistillResult& r, int64_t seq_len) {
  const auto& o = d.options;
  return {{"samples", d.samples},
          {"val_samples", d.val_samples},
          {"seq_len", seq_len},
          {"top_k", o.top_k},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"grad_accum", o.batch_size / o.micro_batch},
          {"lr", o.lr},
          {"min_lr", o.lr / o.min_lr_factor},
          {"weight_decay", o.weight_decay},
          {"seed", o.seed},
          {"steps", r.steps},
          {"val_kl_before", r.val_kl_before},
          {"val_kl_after", r.val_kl_after},
          {"first_step_kl", r.step_losses.empty() ? 0.0 : r.step_losses.front()},
          {"last_step_kl", r.step_losses.empty() ? 0.0 : r.step_losses.back()},
          {"teacher_targets_on_disk", r.targets_on_disk},
          {"prefix_cached", r.prefix_cached},
          {"tokens_per_second", r.seconds_total > 0 ? static_cast<double>(r.train_tokens * o.epochs) / r.seconds_total : 0.0},
          {"seconds", {{"total", r.seconds_total}, {"teacher", r.seconds_teacher}, {"frozen_prefix", r.seconds_prefix},
                       {"student_forward_backward", r.seconds_student}}}};
}

struct FoldChoice {
  Fold fold;
  Json report;
};

Json quality_json(const BaselineComparison& c, double exact_ppl) {
  Json j{{"mean_kl_to_dense", c.mean_kl}, {"ppl", c.model.ppl}};
  if (exact_ppl > 0) j["ppl_ratio_to_exact_patch"] = c.model.ppl / exact_ppl;
  return j;
}

// Folds the patches both ways (or as asked), measures each folded model and
// the exact patch against the dense model on calibration windows, and keeps
// the fold closest to the dense model.
FoldChoice choose_fold(const LlamaModel& dense, const PrunePlan& plan, const std::map<int64_t, at::Tensor>& patches,
                       const at::Tensor& windows, const EmitOptions& emit, int64_t batch_size) {
  const auto fit_windows = windows.narrow(0, 0, std::min<int64_t>(emit.fold_samples, windows.size(0)));
  std::vector<Fold> folds;
  if (emit.fold != "least-squares") folds.push_back(fold_scalar(dense, plan, patches));
  if (emit.fold != "scalar") folds.push_back(fold_least_squares(dense, plan, patches, fit_windows, batch_size));
  const auto exact = compare_with_baseline(dense.with_layers(plan.kept, patches), dense, windows, batch_size);
  FoldChoice choice;
  choice.report["measured_on"] = std::to_string(windows.size(0)) + " calibration windows";
  choice.report["exact_patch"] = quality_json(exact, 0);
  double best = std::numeric_limits<double>::infinity();
  for (auto& fold : folds) {
    const auto cmp = compare_with_baseline(apply_fold(dense, plan, fold), dense, windows, batch_size);
    choice.report["folds"][fold.kind] = quality_json(cmp, exact.model.ppl);
    spdlog::info("vanilla export, {} fold: perplexity {:.4f} vs {:.4f} with the exact patch ({:+.2f} %)", fold.kind,
                 cmp.model.ppl, exact.model.ppl, 100 * (cmp.model.ppl / exact.model.ppl - 1));
    if (cmp.mean_kl < best) {
      best = cmp.mean_kl;
      choice.fold = std::move(fold);
    }
  }
  choice.report["chosen"] = choice.fold.kind;
  return choice;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void add_memory(Json& report, const LlamaModel& model) {
  report["peak_rss_mib"] = peak_rss_mib();
  if (const auto peak = peak_device_memory(model.device())) report["peak_gpu_mib"] = static_cast<double>(*peak) / (1 << 20);
  if (model.streams_layers()) report["streamed_layers"] = true;
}

struct Choice {
  PrunePlan plan;
  std::vector<Block> candidates;  // ranked, for the report
  std::vector<double> influence;  // bi only
};

Block forced_block(const SelectionOptions& s, int64_t num_layers) {
  const auto range = candidate_starts(num_layers, s.layers, s.allow_edges);
  if (*s.start < range.first_start || *s.start > range.last_start)
    throw UsageError("--start " + std::to_string(*s.start) + " is out of range: blocks of " + std::to_string(s.layers) +
                     " layers can start at " + std::to_string(range.first_start) + ".." +
                     std::to_string(range.last_start) + (s.allow_edges ? "" : " (--allow-edges widens this)"));
  return Block{*s.start, *s.start + s.layers, 0};
}

// `c` is null when nothing needs calibration (a forced block without patch).
Choice choose_layers(const LlamaModel& model, const Calibration* c, const SelectionOptions& s,
                     const Rotation* rotation, int64_t batch_size) {
  const int64_t L = model.num_layers(), n = s.layers;
  Choice choice;
  if (s.start) {
    choice.plan = make_prune_plan(L, forced_block(s, L));
    if (c) choice.candidates = rank_blocks(*c->similarity, Metric::kCosine, L, n, s.allow_edges);
    return choice;
  }
  if (s.metric == Metric::kBlockInfluence) {
    choice.influence = block_influence(*c->similarity, L);
    choice.plan = make_prune_plan(L, lowest_influence_layers(choice.influence, n, s.allow_edges));
    return choice;
  }
  if (s.metric == Metric::kPatchedKl) {
    const auto kl_windows = c->windows.narrow(0, 0, std::min<int64_t>(s.kl_samples, c->windows.size(0)));
    choice.candidates = rank_blocks_patched_kl(model, kl_windows, c->magnitude.get(), *rotation, n, s.allow_edges,
                                               batch_size);
  } else {
    choice.candidates = rank_blocks(*c->similarity, s.metric, L, n, s.allow_edges);
  }
  choice.plan = make_prune_plan(L, choice.candidates.front());
  return choice;
}

std::vector<int64_t> similarity_gaps_for(const SelectionOptions& s) {
  if (s.metric == Metric::kBlockInfluence && !s.start) return {1};
  return {s.layers};
}

std::vector<int64_t> magnitude_gaps_for(const SelectionOptions& s) {
  if (s.metric == Metric::kBlockInfluence && !s.start) return gap_range(1, s.layers);
  return {s.layers};
}

}  // namespace
Report run_score(const ScoreJob& job) {
  Stopwatch total;
  Json timings;
  Stopwatch load_clock;
  const auto model = LlamaModel::load(job.model_dir, job.model);
  const auto tokenizer = load_tokenizer(job.model_dir);
  timings["load"] = load_clock.seconds();
  const int64_t L = model.num_layers();
  const auto& s = job.selection;
  if (s.layers > 0) checked_layers(s, L);

  const bool want_kl = s.layers > 0 && (job.patched_kl || s.metric == Metric::kPatchedKl);
  std::optional<Rotation> rotation;
  if (want_kl && job.patch.enabled) rotation = make_rotation(model, job.patch, job.calibration.seed);
  auto similarity_gaps = s.layers > 0 ? std::vector<int64_t>{1, s.layers} : gap_range(1, L);
  auto magnitude_gaps = rotation ? std::vector<int64_t>{s.layers} : std::vector<int64_t>{};
  const auto c = calibrate(model, *tokenizer, job.calibration, similarity_gaps, magnitude_gaps,
                           rotation ? &*rotation : nullptr, timings);

  Report report;
  report["model"] = job.model_dir.string();
  report["layers"] = L;
  report["metric"] = metric_name(s.metric);
  Stopwatch selection_clock;
  if (s.layers > 0) {
    report["n"] = s.layers;
    Json rankings;
    rankings["cosine"] = blocks_json(rank_blocks(*c.similarity, Metric::kCosine, L, s.layers, s.allow_edges));
    rankings["angular"] = blocks_json(rank_blocks(*c.similarity, Metric::kAngular, L, s.layers, s.allow_edges));
    if (want_kl) {
      const auto kl_windows = c.windows.narrow(0, 0, std::min<int64_t>(s.kl_samples, c.windows.size(0)));
      const auto identity = Rotation::create(model.hidden_size(), RotationKind::kIdentity, 0);
      rankings["patched-kl"] = blocks_json(rank_blocks_patched_kl(model, kl_windows, c.magnitude.get(),
                                                                  rotation ? *rotation : identity, s.layers,
                                                                  s.allow_edges, job.calibration.batch_size));
    }
    const auto influence = block_influence(*c.similarity, L);
    report["block_influence"] = influence;
    report["bi_layers"] = lowest_influence_layers(influence, s.layers, s.allow_edges);
    const auto key = s.metric == Metric::kBlockInfluence ? "cosine" : metric_name(s.metric);
    if (!rankings.contains(key)) throw UsageError("metric " + metric_name(s.metric) + " needs the patched-kl ranking");
    report["blocks"] = rankings[key];
    report["rankings"] = rankings;
  } else {
    Json by_n;
    for (int64_t n = 1; n <= L; ++n) {
      try {
        candidate_starts(L, n, s.allow_edges);
      } catch (const UsageError&) {
        break;
      }
      by_n[std::to_string(n)] = blocks_json(rank_blocks(*c.similarity, s.metric == Metric::kAngular ? Metric::kAngular : Metric::kCosine, L, n, s.allow_edges));
    }
    report["blocks_by_n"] = by_n;
  }
  timings["selection"] = selection_clock.seconds();
  report["cosine_matrix"] = cosine_matrix_json(*c.similarity);
  report["calibration"] = calibration_json(job.calibration, c.corpus_tokens);
  timings["total"] = total.seconds();
  report["timings"] = timings;
  add_memory(report, model);
  return report;
}

Report run_prune(const PruneJob& job) {
  Stopwatch total;
  Json timings;
  AtomicOutputDir output(job.output_dir, job.overwrite, {job.model_dir});
  Stopwatch load_clock;
  const auto source = std::make_shared<const io::Checkpoint>(job.model_dir);
  const auto model = LlamaModel::load(source, job.model);
  require_dense(model, job.model_dir);
  const auto tokenizer = load_tokenizer(job.model_dir);
  timings["load"] = load_clock.seconds();
  const auto& s = job.selection;
  const int64_t L = model.num_layers(), n = checked_layers(s, L);
  if (job.distill && !job.patch.enabled) throw UsageError("--distill trains the patch: it needs --patch linearpatch");

  std::optional<Rotation> rotation;
  if (job.patch.enabled) rotation = make_rotation(model, job.patch, job.calibration.seed);
  // Plain removal of a forced block is pure surgery: nothing to measure.
  std::optional<Calibration> c;
  if (!(s.start && !rotation))
    c = calibrate(model, *tokenizer, job.calibration, similarity_gaps_for(s),
                  rotation ? magnitude_gaps_for(s) : std::vector<int64_t>{}, rotation ? &*rotation : nullptr, timings);
  Stopwatch selection_clock;
  const auto identity = Rotation::create(model.hidden_size(), RotationKind::kIdentity, 0);
  const auto choice = choose_layers(model, c ? &*c : nullptr, s, rotation ? &*rotation : &identity,
                                    job.calibration.batch_size);
  timings["selection"] = selection_clock.seconds();

  Stopwatch patch_clock;
  std::map<int64_t, at::Tensor> patches;
  Json gaps = Json::array();
  for (const auto& gap : choice.plan.gaps) {
    Json g{{"start", gap.start}, {"end", gap.end}, {"new_position", gap.new_position}, {"description", describe_gap(gap)}};
    if (rotation) {
      const auto d = patch_scales(*c->magnitude, gap.start, gap.end);
      patches[gap.new_position] = patch_matrix(*rotation, d);
      const auto summary = summarize_scales(d);
      g["scales"] = {{"mean", summary.mean}, {"min", summary.min}, {"max", summary.max}, {"std", summary.std}};
      g["patch_tensor"] = patch_tensor_name(gap.new_position);
    }
    gaps.push_back(g);
  }
  timings["patch"] = patch_clock.seconds();

  Json distill_report;
  if (job.distill) {
    Stopwatch distill_clock;
    const auto [train, val] = distillation_windows(*tokenizer, *job.distill, job.calibration);
    auto options = job.distill->options;
    options.seed = job.calibration.seed;
    const auto result = distill_patches(model, choice.plan, patches, train, val, options);
    patches = result.patches;
    distill_report = distill_json(*job.distill, result, job.calibration.seq_len);
    timings["distill"] = distill_clock.seconds();
  }

  Json provenance{{"tool", std::string("linearpatch ") + version()},
                  {"method", !rotation ? "layer removal without patch"
                                        : job.distill ? "LinearPatch (H diag(d) H^T), distilled"
                                                      : "LinearPatch (H diag(d) H^T)"},
                  {"metric", metric_name(s.metric)},
                  {"rotation", rotation ? rotation->description() : "none"},
                  {"calibration", {{"samples", job.calibration.samples}, {"seq_len", job.calibration.seq_len},
                                   {"seed", job.calibration.seed}}}};
  CheckpointEdits edits;
  edits.patches = patches;
  Json vanilla_report;
  if (job.emit.vanilla && !patches.empty()) {
    Stopwatch fold_clock;
    const auto kl_windows = c->windows.narrow(0, 0, std::min<int64_t>(s.kl_samples, c->windows.size(0)));
    auto folded = choose_fold(model, choice.plan, patches, kl_windows, job.emit, job.calibration.batch_size);
    edits.patches.clear();
    edits.replaced = std::move(folded.fold.replaced);
    edits.untie_embeddings = folded.fold.untie_embeddings;
    vanilla_report = std::move(folded.report);
    provenance["emit"] = "vanilla";
    provenance["fold"] = vanilla_report["chosen"];
    timings["fold"] = fold_clock.seconds();
  }
  if (!distill_report.is_null()) {
    provenance["distill"] = distill_report;
    provenance["distill"].erase("seconds");
  }
  Stopwatch write_clock;
  io::WriteOptions write_options;
  write_options.sync = job.sync;
  edits.provenance_json = provenance.dump();
  const auto written = write_pruned_checkpoint(*source, choice.plan, edits, job.max_shard_bytes, output.path(),
                                               write_options);
  output.commit(job.sync);
  timings["write"] = write_clock.seconds();

  int64_t before = 0;
  for (const auto& name : source->tensor_names()) before += static_cast<int64_t>(source->tensor(name).info->numel());
  Report report;
  report["model"] = job.model_dir.string();
  report["output"] = output.final_path().string();
  report["layers"] = L;
  report["n"] = n;
  report["metric"] = metric_name(s.metric);
  report["start"] = choice.plan.removed.front();
  report["end"] = choice.plan.removed.back() + 1;
  report["removed"] = choice.plan.removed;
  report["contiguous"] = choice.plan.gaps.size() == 1;
  report["gaps"] = gaps;
  report["patch"] = rotation ? "linearpatch" : "none";
  report["rotation"] = rotation ? rotation->description() : "none";
  if (!distill_report.is_null()) report["distill"] = distill_report;
  report["emit"] = job.emit.vanilla ? "vanilla" : "exact";
  if (!vanilla_report.is_null()) report["vanilla"] = vanilla_report;
  if (!choice.candidates.empty()) report["candidates"] = blocks_json(choice.candidates);
  if (!choice.influence.empty()) report["block_influence"] = choice.influence;
  report["parameters"] = {{"before", before}, {"after", written.parameters}, {"removed", before - written.parameters}};
  report["files"] = written.files;
  report["bytes"] = written.bytes;
  if (c) report["calibration"] = calibration_json(job.calibration, c->corpus_tokens);
  timings["total"] = total.seconds();
  report["timings"] = timings;
  add_memory(report, model);
  return report;
}

std::string summarize_prune_report(const Report& r) {
  std::ostringstream out;
  out << "removed " << r["removed"].size() << " of " << r["layers"] << " layers (" << r["metric"].get<std::string>()
      << "):";
  for (const auto& g : r["gaps"]) {
    out << "\n  " << g["description"].get<std::string>();
    if (g.contains("scales"))
      out << "; patch at the input of new layer " << g["new_position"] << ", d mean " << g["scales"]["mean"]
          << " [" << g["scales"]["min"] << ", " << g["scales"]["max"] << "]";
  }
  out << "\nparameters " << r["parameters"]["before"] << " -> " << r["parameters"]["after"];
  out << "\nwrote " << r["output"].get<std::string>() << " (" << r["files"].size() << " weight file(s), "
      << r["bytes"] << " bytes) in " << r["timings"]["total"] << " s";
  return out.str();
}

}  // namespace lp
