#include "pipeline/stages.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/least_squares_stats.h"
#include "linearpatch/calib/stream_stash.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/model/device.h"
#include "linearpatch/patch/linear_patch.h"
#include "linearpatch/patch/refit.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {
namespace {

// Whether sliding windows matter at this window length, for the report.
std::string attention_note(const LlamaConfig& config, int64_t seq_len) {
  const int64_t window = config.narrowest_window();
  if (window == 0) return "";
  const auto windowed = std::count_if(config.attention_windows.begin(), config.attention_windows.end(),
                                      [](int64_t w) { return w > 0; });
  const std::string layers = "sliding window of " + std::to_string(window) + " tokens on " +
                             std::to_string(windowed) + " of " + std::to_string(config.num_hidden_layers) + " layers";
  if (window >= seq_len)
    return layers + ": every window of " + std::to_string(seq_len) + " tokens fits, so attention is full";
  return layers + ", applied within windows of " + std::to_string(seq_len) + " tokens";
}

int64_t new_position(const std::vector<int64_t>& removed, int64_t layer) {
  return layer - std::count_if(removed.begin(), removed.end(), [&](int64_t r) { return r < layer; });
}

// The dense fit of every gap, in one pass that resumes from the nearest
// calibration checkpoint and feeds `stash` (may be null).
std::vector<Repair> fit_mlp_lstsq(const LlamaModel& dense, const std::vector<LayerRange>& gaps,
                                  const Calibrated& calibration, int64_t batch_size, StreamStash* stash) {
  std::vector<LeastSquaresStats::Fit> fits;
  for (const auto& gap : gaps) fits.push_back({gap, mlp_lstsq_source(gap)});
  LeastSquaresStats stats(fits);
  std::vector<ForwardObserver*> observers{&stats};
  if (stash) observers.push_back(stash);
  run_calibration(dense, calibration.fit_windows, batch_size, observers, "least-squares fit", stats.layers_needed(),
                  calibration.checkpoints.get(), stats.first_layer_read());
  std::vector<Repair> repairs;
  for (size_t i = 0; i < gaps.size(); ++i) repairs.push_back(mlp_lstsq_repair(gaps[i], stats.equations(i)));
  return repairs;
}

// The dense streams the sequential refits of gaps 1.. read (where the first
// gap forks off and each later gap's end), kept by the dense fit's pass
// within stash_positions; null when they do not fit, and the refits
// resume from the calibration checkpoints.
std::unique_ptr<StreamStash> refit_stash(const LlamaModel& dense, const std::vector<LayerRange>& gaps,
                                         const Calibrated& calibration) {
  if (gaps.size() < 2 || !calibration.held_out_windows.defined() || dense.streams_layers()) return nullptr;
  std::vector<int64_t> positions{std::max<int64_t>(gaps.front().start - 1, 0)};
  for (size_t g = 1; g < gaps.size(); ++g) positions.push_back(gaps[g].end);
  const int64_t allowed = stash_positions(dense.num_layers(), calibration.held_out_windows.size(0),
                                          calibration.fit_windows.size(0));
  if (static_cast<int64_t>(positions.size()) > allowed) return nullptr;
  return std::make_unique<StreamStash>(positions, calibration.checkpoints.get());
}

// Gap g's least squares refitted on the stream of the model with gaps
// 0..g-1 cut and repaired as `repairs` says (their final repairs: gaps are
// settled in model order).
Repair refit_gap(const LlamaModel& dense, const std::vector<Repair>& repairs, size_t g, const at::Tensor& windows,
                 int64_t batch_size, const StreamStash* dense_streams) {
  std::vector<int64_t> earlier;
  for (size_t i = 0; i < g; ++i)
    for (int64_t l = repairs[i].gap.start; l < repairs[i].gap.end; ++l) earlier.push_back(l);
  const std::vector<Repair> settled(repairs.begin(), repairs.begin() + static_cast<std::ptrdiff_t>(g));
  const auto& gap = repairs[g].gap;
  return mlp_lstsq_repair(gap, stream_fit_equations(dense, earlier, layer_patches(settled), {gap}, windows,
                                                    batch_size, dense_streams)
                                   .front());
}

// The first position of the model without `removed` that `repair` changes:
// the layer before the gap for a map on its MLP output, else the layer
// after the gap (whose input a stream patch maps).
int64_t first_changed_position(const std::vector<int64_t>& removed, const Repair& repair) {
  if (repair.kind != RepairKind::kNone && repair.on_mlp_output) return new_position(removed, repair.gap.start - 1);
  return new_position(removed, repair.gap.end);
}

// Held-out KL of models that differ only in the repair of gap g: the layers
// below the first one any of them changes run once, not once per candidate
// (the same numbers as whole forwards, at a fraction of the cost for a
// deep gap).
class GapTrials {
 public:
  GapTrials(const LlamaModel& dense, const std::vector<int64_t>& removed, std::vector<Repair>& repairs, size_t g,
            const std::vector<Repair>& candidates, HeldOutKl& held_out)
      : dense_(dense), removed_(removed), repairs_(repairs), g_(g), held_out_(held_out) {
    first_ = first_changed_position(removed, repairs[g]);
    for (const auto& c : candidates) first_ = std::min(first_, first_changed_position(removed, c));
    held_out_.cache_base(dense.without_layers(removed, layer_patches(repairs)), first_);
  }

  // Gap g repaired by `candidate`, which stays in place.
  HeldOutKl::Scores with(const Repair& candidate) {
    repairs_[g_] = candidate;
    return held_out_.scores(dense_.without_layers(removed_, layer_patches(repairs_)), first_);
  }

 private:
  const LlamaModel& dense_;
  const std::vector<int64_t>& removed_;
  std::vector<Repair>& repairs_;
  size_t g_;
  HeldOutKl& held_out_;
  int64_t first_ = 0;
};

// The least-squares map the selection scored `gap` with, if it scored one.
const Repair* search_fit(const std::vector<Repair>& scored, const LayerRange& gap) {
  for (const auto& r : scored)
    if (r.gap.start == gap.start && r.gap.end == gap.end && r.kind == RepairKind::kMlpLstsq) return &r;
  return nullptr;
}

// Per gap, in order, the kind with the lowest held-out KL while the other
// gaps keep their current repair (LinearPatch until chosen). With `refit`,
// a gap after the first also tries its least squares refitted on the
// stream the earlier, chosen repairs give. A gap the selection scored with
// a least-squares map also tries that map: the layers were chosen for it,
// so the final repair is never one the selection would have judged worse.
void choose_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed, std::vector<Repair>& repairs,
                    const std::vector<Repair>& lstsq, const std::vector<Repair>& scored, HeldOutKl& held_out,
                    bool refit, const at::Tensor& fit_windows, int64_t batch_size, const StreamStash* dense_streams,
                    RepairOutcome& outcome) {
  for (size_t g = 0; g < repairs.size(); ++g) {
    std::vector<std::pair<std::string, Repair>> candidates{{"none", unrepaired(repairs[g].gap)},
                                                           {"linearpatch", repairs[g]},
                                                           {"mlp-lstsq", lstsq[g]}};
    if (refit && g > 0) candidates.emplace_back("mlp-lstsq-refit",
                                            refit_gap(dense, repairs, g, fit_windows, batch_size, dense_streams));
    if (const auto* searched = search_fit(scored, repairs[g].gap)) candidates.emplace_back("mlp-lstsq-search", *searched);
    std::vector<Repair> kinds;
    for (const auto& c : candidates) kinds.push_back(c.second);
    GapTrials trials(dense, removed, repairs, g, kinds, held_out);
    double best = std::numeric_limits<double>::infinity();
    std::string chosen_name;
    Repair chosen;
    HeldOutQuality chosen_quality;
    for (const auto& [name, candidate] : candidates) {
      const auto scores = trials.with(candidate);
      outcome.reports[g].candidates.emplace_back(name, scores.mean_kl);
      if (scores.mean_kl < best) {
        best = scores.mean_kl;
        chosen = candidate;
        chosen_name = name;
        chosen_quality = scores.quality;
      }
    }
    repairs[g] = chosen;
    // Every gap is settled once the last one is: its winner is the final model.
    if (g + 1 == repairs.size()) outcome.quality = chosen_quality;
    outcome.reports[g].search_fit_kept = chosen_name == "mlp-lstsq-search";
    if (refit && g > 0) {
      const auto& kls = outcome.reports[g].candidates;
      outcome.reports[g].refit = GapReport::Refit{kls[2].second, kls[3].second, chosen_name == "mlp-lstsq-refit"};
    }
    spdlog::info("repair of {}: {} (held-out KL {:.5f})", describe_range(chosen.gap), chosen_name, best);
  }
}

// mlp-lstsq everywhere: each gap after the first refitted in model order,
// the refit kept unless the held-out KL says the dense fit was better.
void refit_in_sequence(const LlamaModel& dense, const std::vector<int64_t>& removed, std::vector<Repair>& repairs,
                       HeldOutKl* held_out, const at::Tensor& fit_windows, int64_t batch_size,
                       const StreamStash* dense_streams, RepairOutcome& outcome) {
  for (size_t g = 1; g < repairs.size(); ++g) {
    const auto dense_fit = repairs[g];
    const auto refitted = refit_gap(dense, repairs, g, fit_windows, batch_size, dense_streams);
    if (!held_out) {
      repairs[g] = refitted;
      continue;
    }
    GapTrials trials(dense, removed, repairs, g, {refitted}, *held_out);
    GapReport::Refit r;
    const auto with_dense_fit = trials.with(dense_fit), with_refit = trials.with(refitted);
    r.kl_dense_fit = with_dense_fit.mean_kl;
    r.kl_refit = with_refit.mean_kl;
    r.kept = r.kl_refit <= r.kl_dense_fit;
    if (!r.kept) repairs[g] = dense_fit;
    if (g + 1 == repairs.size()) outcome.quality = (r.kept ? with_refit : with_dense_fit).quality;
    spdlog::info("repair of {}: sequential refit, held-out KL {:.5f} -> {:.5f}{}", describe_range(repairs[g].gap),
                 r.kl_dense_fit, r.kl_refit, r.kept ? "" : " (dense fit kept)");
    outcome.reports[g].refit = r;
  }
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

FoldQuality measure(const std::string& kind, const LlamaModel& model, const LlamaModel& dense,
                    const at::Tensor& windows, int64_t batch_size) {
  const auto comparison = compare_with_baseline(model, dense, windows, batch_size);
  return {kind, comparison.mean_kl, comparison.model.ppl};
}

DistillReport distill_report(const DistillJob& job, const DistillOptions& options, const DistillResult& r,
                             int64_t seq_len) {
  DistillReport d;
  d.samples = job.samples;
  d.val_samples = job.val_samples;
  d.seq_len = seq_len;
  d.top_k = options.top_k;
  d.epochs = options.epochs;
  d.batch_size = options.batch_size;
  d.grad_accum = options.batch_size / options.micro_batch;
  d.steps = r.steps;
  d.lr = options.lr;
  d.min_lr = options.lr / options.min_lr_factor;
  d.weight_decay = options.weight_decay;
  d.seed = options.seed;
  d.val_kl_before = r.val_kl_before;
  d.val_kl_after = r.val_kl_after;
  d.first_step_kl = r.step_losses.empty() ? 0.0 : r.step_losses.front();
  d.last_step_kl = r.step_losses.empty() ? 0.0 : r.step_losses.back();
  // Training throughput: the two validation passes cost the same whatever
  // the number of training windows, so they stay out of the rate.
  const double training_seconds = r.seconds_total - r.seconds_validation;
  d.tokens_per_second =
      training_seconds > 0 ? static_cast<double>(r.train_tokens * options.epochs) / training_seconds : 0;
  d.seconds_validation = r.seconds_validation;
  d.targets_on_disk = r.targets_on_disk;
  d.prefix_cached = r.prefix_cached;
  d.seconds_total = r.seconds_total;
  d.seconds_teacher = r.seconds_teacher;
  d.seconds_prefix = r.seconds_prefix;
  d.seconds_student = r.seconds_student;
  d.data_parallel_ranks = r.ranks;
  d.seconds_gradient_sum = r.seconds_gradient_sum;
  return d;
}

}  // namespace

Rotation make_rotation(const LlamaModel& model, RotationKind kind, uint64_t seed) {
  auto rotation = Rotation::create(model.hidden_size(), kind, seed);
  if (kind == RotationKind::kAuto && !rotation.is_hadamard())
    spdlog::warn("no Hadamard construction for hidden size {}; estimating scales in a {}", model.hidden_size(),
                 rotation.description());
  return rotation;
}

CalibrationText prepare_calibration_text(const Tokenizer& tokenizer, const CalibrationOptions& options, bool held_out,
                                         PhaseClock& clock) {
  const auto tokens = clock.time("tokenize", [&] { return tokenize_corpus(tokenizer, options.files); });
  auto windows =
      split_windows(tokens, options.seq_len, options.samples, held_out ? options.held_out_samples : 0, options.seed);
  return {windows.fit, windows.held_out, static_cast<int64_t>(tokens.size()), tokenizer.prefix_description()};
}

int64_t stash_positions(int64_t num_layers, int64_t held_out_windows, int64_t fit_windows) {
  return (num_layers + 1) * held_out_windows / std::max<int64_t>(2 * fit_windows, 1);
}

Calibrated calibrate(const LlamaModel& model, CalibrationText text, const CalibrationOptions& options,
                     const SelectionNeeds& needs, const Rotation* rotation, PhaseClock& clock, bool checkpoints) {
  Calibrated c;
  c.fit_windows = text.fit_windows;
  c.held_out_windows = needs.held_out ? text.held_out_windows : at::Tensor();
  auto& s = c.summary;
  for (const auto& f : options.files) s.files.push_back(f.string());
  s.samples = options.samples;
  s.held_out_samples = c.held_out_windows.defined() ? options.held_out_samples : 0;
  s.seq_len = options.seq_len;
  s.seed = options.seed;
  s.corpus_tokens = text.corpus_tokens;
  s.text_prefix = text.prefix;
  s.attention_note = attention_note(model.config(), options.seq_len);
  spdlog::info("calibration: {} tokens of text starting with {}, {} windows of {} tokens (seed {}){}", s.corpus_tokens,
               s.text_prefix, s.samples, s.seq_len, s.seed,
               s.held_out_samples ? ", " + std::to_string(s.held_out_samples) + " held out" : "");
  if (!s.attention_note.empty()) spdlog::info("{}", s.attention_note);

  const int64_t positions = model.num_layers() + 1;
  // Streaming runs keep every batch's recent unit vectors: host memory, float16.
  const StashOptions stash{model.streams_layers(), model.streams_layers() ? at::kHalf : at::kFloat};
  c.similarity = std::make_unique<SimilarityStats>(positions, needs.similarity_gaps, stash);
  std::vector<ForwardObserver*> observers{c.similarity.get()};
  if (rotation && !needs.magnitude_gaps.empty()) {
    c.magnitude = std::make_unique<MagnitudeStats>(positions, needs.magnitude_gaps,
                                                   [rotation](const at::Tensor& x) { return rotation->apply(x); });
    observers.push_back(c.magnitude.get());
  }
  const int64_t held_out = c.held_out_windows.defined() ? c.held_out_windows.size(0) : 0;
  // A streamed model's memory is the budget the stream must not grow.
  const int64_t kept = checkpoints && !model.streams_layers()
                           ? stash_positions(model.num_layers(), held_out, c.fit_windows.size(0))
                           : 0;
  if (kept > 0) {
    c.checkpoints = std::make_unique<StreamStash>(StreamStash::evenly_spaced(model.num_layers(), kept));
    observers.push_back(c.checkpoints.get());
  }
  clock.time("calibration",
             [&] { run_calibration(model, c.fit_windows, options.batch_size, observers, "calibration"); });
  // The first pass also waits for layers still on their way to the GPU.
  if (model.upload_wait_seconds() > 0) clock.add("calibration_upload_wait", model.upload_wait_seconds());
  return c;
}

RepairOutcome repair_gaps(const LlamaModel& dense, const std::vector<int64_t>& removed, RepairChoice kind,
                          RefitChoice refit, const Calibrated* calibration, const Rotation* rotation,
                          HeldOutKl* held_out, int64_t batch_size, const std::vector<Repair>& scored) {
  const auto gaps = layer_runs(removed);
  const bool wants_lstsq = kind == RepairChoice::kMlpLstsq || kind == RepairChoice::kAuto;
  const bool sequential = refit == RefitChoice::kSequential;
  const auto stash = wants_lstsq && sequential ? refit_stash(dense, gaps, *calibration) : nullptr;
  // Refits read the dense streams from the fit's pass, else from the checkpoints.
  const StreamStash* dense_streams = stash ? stash.get() : calibration ? calibration->checkpoints.get() : nullptr;
  const auto lstsq = wants_lstsq ? fit_mlp_lstsq(dense, gaps, *calibration, batch_size, stash.get())
                                 : std::vector<Repair>{};
  RepairOutcome outcome;
  for (size_t g = 0; g < gaps.size(); ++g) {
    if (kind == RepairChoice::kNone) outcome.repairs.push_back(unrepaired(gaps[g]));
    else if (kind == RepairChoice::kMlpLstsq) outcome.repairs.push_back(lstsq[g]);
    else outcome.repairs.push_back(linearpatch_repair(gaps[g], *calibration->magnitude, *rotation));
    GapReport report;
    report.range = gaps[g];
    report.new_position = new_position(removed, gaps[g].end);
    outcome.reports.push_back(std::move(report));
  }
  if (kind == RepairChoice::kAuto)
    choose_repairs(dense, removed, outcome.repairs, lstsq, scored, *held_out, sequential, calibration->fit_windows,
                   batch_size, dense_streams, outcome);
  if (kind == RepairChoice::kMlpLstsq && sequential)
    refit_in_sequence(dense, removed, outcome.repairs, held_out, calibration->fit_windows, batch_size, dense_streams,
                      outcome);
  for (size_t g = 0; g < gaps.size(); ++g) {
    const auto& repair = outcome.repairs[g];
    auto& report = outcome.reports[g];
    report.repair = repair_kind_name(repair.kind);
    report.description = repair.description();
    if (report.refit && report.refit->kept) report.description += ", fitted on the stream of the model with the earlier gaps cut";
    if (report.search_fit_kept) report.description += ", the map the layer search scored this gap with";
    if (repair.kind == RepairKind::kLinearPatch) {
      const auto d = summarize_scales(patch_scales(*calibration->magnitude, repair.gap.start, repair.gap.end));
      report.scales = std::array<double, 4>{d.mean, d.min, d.max, d.std};
    }
  }
  return outcome;
}

std::pair<at::Tensor, at::Tensor> distillation_windows(const Tokenizer& tokenizer, const DistillJob& job,
                                                       const CalibrationOptions& calibration) {
  const auto tokens = tokenize_corpus(tokenizer, job.files.empty() ? calibration.files : job.files);
  const auto windows = split_windows(tokens, calibration.seq_len, job.samples, job.val_samples, calibration.seed + 1);
  return {windows.fit, windows.held_out};
}

DistillReport distill_repairs(const LlamaModel& dense, const std::vector<int64_t>& removed,
                              std::vector<Repair>& repairs, const Tokenizer& tokenizer, const DistillJob& job,
                              const CalibrationOptions& calibration) {
  const auto [train, val] = distillation_windows(tokenizer, job, calibration);
  auto options = job.options;
  options.seed = calibration.seed;
  const auto r = distill_patches(dense, removed, layer_patches(repairs), train, val, options);
  for (auto& repair : repairs) {
    if (repair.kind == RepairKind::kNone) continue;
    repair.matrix = repair.on_mlp_output ? r.patches.mlp_output.at(repair.gap.start - 1)
                                         : r.patches.stream_input.at(repair.gap.end);
  }
  return distill_report(job, options, r, calibration.seq_len);
}

Emitted emit_repairs(const LlamaModel& dense, const PrunePlan& plan, const std::vector<Repair>& repairs,
                     const EmitOptions& emit, const Calibrated* calibration, int64_t batch_size) {
  Emitted out;
  auto exact = fold_mlp_repairs(dense, repairs);
  const bool has_stream_patch =
      std::any_of(repairs.begin(), repairs.end(), [](const Repair& r) { return r.on_stream(); });
  if (emit.mode == EmitMode::kExact || !has_stream_patch) {
    out.edits.replaced = std::move(exact.replaced);
    for (const auto& r : repairs)
      if (r.on_stream()) out.edits.patches[new_layer_index(plan, r.gap.end)] = r.matrix;
    return out;
  }
  const auto& held_out = calibration->held_out_windows;
  const auto fit = calibration->fit_windows.narrow(0, 0, std::min(emit.fold_samples, calibration->fit_windows.size(0)));
  FoldReport report;
  report.held_out_windows = held_out.size(0);
  report.exact = measure("exact patch", dense.without_layers(plan.removed, layer_patches(repairs)), dense, held_out,
                         batch_size);
  std::vector<FoldKind> kinds;
  if (emit.fold != FoldChoice::kLeastSquares) kinds.push_back(FoldKind::kScalar);
  if (emit.fold != FoldChoice::kScalar) kinds.push_back(FoldKind::kLeastSquares);
  std::optional<Fold> best;
  double best_kl = std::numeric_limits<double>::infinity();
  for (const auto kind : kinds) {
    auto fold = fold_stream_repairs(dense, plan.removed, repairs, kind, fit, batch_size, exact);
    const auto quality = measure(fold.kind, apply_fold(dense, plan.removed, fold), dense, held_out, batch_size);
    spdlog::info("vanilla export, {} fold: perplexity {:.4f} vs {:.4f} with the exact patch ({:+.2f} %)", fold.kind,
                 quality.ppl, report.exact.ppl, 100 * (quality.ppl / report.exact.ppl - 1));
    report.folds.push_back(quality);
    if (quality.mean_kl < best_kl) {
      best_kl = quality.mean_kl;
      best = std::move(fold);
    }
  }
  report.chosen = best->kind;
  out.edits.replaced = std::move(best->replaced);
  out.edits.untie_embeddings = best->untie_embeddings;
  out.fold = std::move(report);
  return out;
}

MemoryUse memory_use(const LlamaModel& model) {
  MemoryUse memory;
  memory.peak_rss_mib = peak_rss_mib();
  for (const auto& p : model.placement()) {
    DevicePlacement placed{p.device, {p.begin, p.end}, p.embeddings, p.head, std::nullopt};
    if (const auto peak = peak_device_memory(c10::Device(p.device))) {
      placed.peak_mib = static_cast<double>(*peak) / (1 << 20);
      memory.peak_gpu_mib = memory.peak_gpu_mib.value_or(0) + *placed.peak_mib;
    }
    memory.placement.push_back(std::move(placed));
  }
  memory.streamed_layers = model.streams_layers();
  return memory;
}

}  // namespace lp
