// linearpatch score / prune: rank blocks of layers, and remove the chosen
// layers with a repair over each gap, writing a new checkpoint. Flags become
// typed jobs here; everything else is the pipeline's.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/common.h"
#include "cli/usage.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/pipeline/prune_pipeline.h"

namespace lp::cli {
namespace {

struct SelectionArgs {
  ModelArgs model;
  RuntimeArgs runtime;
  std::vector<std::string> calib;
  int64_t calib_samples = 128;
  int64_t held_out_samples = 8;
  int64_t seq_len = 2048;
  uint64_t seed = 0;
  int64_t layers = 0;
  std::string unit = "layer";
  std::string metric = "cosine";
  std::string recipe = "paper";
  bool allow_edges = false;
  int64_t start = -1;
  std::string patch = "linearpatch";
  std::string rotation = "auto";
  bool json = false;
  std::string report;
};

struct DistillArgs {
  bool enabled = false;
  std::vector<std::string> data;
  int64_t samples = 5000;
  int64_t val_samples = 16;
  int64_t top_k = 100;
  int64_t epochs = 1;
  int64_t batch_size = 1;
  int64_t grad_accum = 0;
  double lr = 1e-4;
  double weight_decay = 1e-4;
  std::string cache_dir;
};

// How deep when no depth is given (PruneJob::budget).
struct BudgetArgs {
  double max_ppl_ratio = 0, max_kl = 0, min_retained = 0, target_kv = 0;
  std::string target_params;
  std::vector<CLI::Option*> given;
};

struct PruneArgs : SelectionArgs {
  std::string out;
  std::string emit = "exact";
  std::string fold = "auto";
  int64_t fold_samples = 32;
  bool force = false;
  bool no_fsync = false;
  std::string max_shard_size;
  std::vector<std::string> eval_tasks;
  int64_t task_limit = 0;
  DistillArgs distill;
  std::string refit = "sequential";
  std::string score_repair = "kept";
  std::string search = "greedy";
  int64_t search_budget = 0;
  BudgetArgs budget;
  std::string curve_svg;
  std::vector<std::string> curve_metrics;
};

struct ScoreArgs : SelectionArgs {
  std::string svg;
};

// Flags whose values name an enum: parsing accepts only those names (and
// help lists them); the job gets the enum.
template <typename Enum>
CLI::Validator enum_flag(const std::map<std::string, Enum>& values) {
  std::vector<std::string> names;
  for (const auto& [name, value] : values) names.push_back(name);
  return one_of(names);
}

// Recipes: named defaults for the options that make up a method, so a user
// can ask for the best known method without knowing its parts. An option
// given on the command line wins over its recipe's value. The one table of
// them: a new option joins a recipe with one entry here.
struct Recipe {
  std::string name;
  std::string summary;
  std::vector<std::pair<std::string, std::string>> defaults;  // option -> value
};

const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> table = {
      {"paper",
       "the LinearPatch paper: the most redundant block by cosine, one LinearPatch over the gap; the fastest",
       {{"--metric", "cosine"}, {"--patch", "linearpatch"}}},
      {"quality",
       "the lowest perplexity measured (docs/results.md: below paper on every fixture model/n pair but one, which "
       "gets paper's block and perplexity): greedy "
       "layer-by-layer removal by held-out KL, per gap the repair with the lowest held-out KL; 2.3-9x the time of "
       "paper on CPU",
       {{"--metric", "iterative"}, {"--patch", "auto"}, {"--score-repair", "kept"}, {"--refit", "sequential"}}},
  };
  return table;
}

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : recipes()) names.push_back(r.name);
  return names;
}

std::string recipe_help() {
  std::string text = "Named defaults for the method; options given explicitly override them:";
  for (const auto& r : recipes()) {
    text += "\n  " + r.name + ": ";
    for (const auto& [option, value] : r.defaults) text += option + " " + value + " ";
    text += "- " + r.summary;
  }
  return text;
}

// Sets each of the recipe's options the command line left unset; returns
// the options the command line set itself, for the report.
std::vector<std::string> apply_recipe(CLI::App& cmd, const std::string& name) {
  std::vector<std::string> overridden;
  for (const auto& r : recipes()) {
    if (r.name != name) continue;
    for (const auto& [option_name, value] : r.defaults) {
      auto* option = cmd.get_option(option_name);
      if (option->count() > 0) {
        overridden.push_back(option_name);
        continue;
      }
      option->add_result(value);
      option->run_callback();
    }
  }
  return overridden;
}

// An option whose effect depends on another one is refused, not ignored,
// when that other one is missing.
void refuse_without_effect(const CLI::App& cmd, const std::string& option, bool applies, const std::string& needs) {
  if (cmd.count(option) > 0 && !applies)
    throw UsageError(option + " has no effect " + needs + ": drop " + option + " or change the other option");
}

template <typename Enum>
Enum to_enum(const std::map<std::string, Enum>& values, const std::string& name) {
  return values.at(name);
}

const std::map<std::string, Metric> kMetricFlags{{"cosine", Metric::kCosine},
                                                 {"angular", Metric::kAngular},
                                                 {"bi", Metric::kBlockInfluence},
                                                 {"patched-kl", Metric::kPatchedKl},
                                                 {"iterative", Metric::kIterative}};
// What score can rank by (iterative: sublayer units only, in the order of
// removal; for layers it is a search, not a ranking).
const std::map<std::string, Metric> kScoreMetricFlags{{"cosine", Metric::kCosine},
                                                      {"angular", Metric::kAngular},
                                                      {"bi", Metric::kBlockInfluence},
                                                      {"patched-kl", Metric::kPatchedKl},
                                                      {"iterative", Metric::kIterative}};
const std::map<std::string, RepairChoice> kPatchFlags{{"none", RepairChoice::kNone},
                                                      {"linearpatch", RepairChoice::kLinearPatch},
                                                      {"mlp-lstsq", RepairChoice::kMlpLstsq},
                                                      {"auto", RepairChoice::kAuto}};
const std::map<std::string, RotationKind> kRotationFlags{{"auto", RotationKind::kAuto},
                                                         {"hadamard", RotationKind::kHadamard},
                                                         {"random", RotationKind::kRandom},
                                                         {"none", RotationKind::kIdentity}};
const std::map<std::string, RefitChoice> kRefitFlags{{"dense", RefitChoice::kDense},
                                                     {"sequential", RefitChoice::kSequential}};
const std::map<std::string, std::optional<RepairKind>> kScoreRepairFlags{{"kept", std::nullopt},
                                                                         {"none", RepairKind::kNone},
                                                                         {"linearpatch", RepairKind::kLinearPatch},
                                                                         {"mlp-lstsq", RepairKind::kMlpLstsq}};
const std::map<std::string, SearchKind> kSearchFlags{{"greedy", SearchKind::kGreedy}, {"swap", SearchKind::kSwap}};
const std::map<std::string, Unit> kUnitFlags{
    {"layer", Unit::kLayer}, {"attention", Unit::kAttention}, {"mlp", Unit::kMlp}, {"sublayer", Unit::kSublayer}};
const std::map<std::string, EmitMode> kEmitFlags{{"exact", EmitMode::kExact}, {"vanilla", EmitMode::kVanilla}};
const std::map<std::string, FoldChoice> kFoldFlags{
    {"auto", FoldChoice::kAuto}, {"scalar", FoldChoice::kScalar}, {"least-squares", FoldChoice::kLeastSquares}};

void add_distill_args(CLI::App& cmd, DistillArgs& d) {
  auto* enabled = cmd.add_flag("--distill", d.enabled,
                               "Train the repair matrices (only them) on the dense model's top-K next-token distribution");
  auto needs = [enabled](CLI::Option* option) { return option->needs(enabled); };
  needs(cmd.add_option("--distill-data", d.data, "Distillation text files (default: the calibration files)")
            ->check(existing_file()));
  needs(cmd.add_option("--distill-samples", d.samples, "Training windows of --seq-len tokens (paper: 5000 x 2048)")
            ->capture_default_str()
            ->check(at_least(1)));
  needs(cmd.add_option("--val-samples", d.val_samples, "Held-out windows for the validation KL (from the last 10 % of the text)")
            ->capture_default_str()
            ->check(at_least(1)));
  needs(cmd.add_option("--top-k", d.top_k, "Teacher tokens per position the KL is computed over (0: full vocabulary)")
            ->capture_default_str()
            ->check(at_least(0)));
  needs(cmd.add_option("--epochs", d.epochs, "Passes over the training windows")->capture_default_str()->check(at_least(1)));
  needs(cmd.add_option("--distill-batch-size", d.batch_size,
                       "Windows per optimizer step (1, as the authors' code: at the paper's learning rate it beats 8 "
                       "on every fixture, docs/results.md)")
            ->capture_default_str()
            ->check(at_least(1)));
  needs(cmd.add_option("--grad-accum", d.grad_accum,
                       "Forward/backward passes per step (0: as few as keep a pass within --batch-size's token count)")
            ->capture_default_str()
            ->check(at_least(0)));
  needs(cmd.add_option("--lr", d.lr, "AdamW learning rate (cosine decay to lr/20)")->capture_default_str()->check(positive_real()));
  needs(cmd.add_option("--weight-decay", d.weight_decay, "AdamW weight decay")->capture_default_str()->check(non_negative_real()));
  needs(cmd.add_option("--distill-cache-dir", d.cache_dir, "Where teacher targets spill to disk when they exceed memory (default: $TMPDIR)"));
}

std::optional<DistillJob> distill_job(const DistillArgs& d, int64_t seq_len, const std::string& device) {
  if (!d.enabled) return std::nullopt;
  DistillJob job;
  job.files = to_paths(d.data);
  job.samples = d.samples;
  job.val_samples = d.val_samples;
  auto& o = job.options;
  o.top_k = d.top_k;
  o.epochs = d.epochs;
  o.batch_size = d.batch_size;
  int64_t accum = d.grad_accum;
  if (accum == 0) {
    const int64_t per_pass = std::max<int64_t>(1, tokens_per_pass(device) / seq_len);
    accum = (d.batch_size + per_pass - 1) / per_pass;
    while (d.batch_size % accum != 0) ++accum;
  }
  if (d.batch_size % accum != 0)
    throw UsageError("--distill-batch-size " + std::to_string(d.batch_size) + " is not a multiple of --grad-accum " +
                     std::to_string(accum));
  o.micro_batch = d.batch_size / accum;
  o.lr = d.lr;
  o.weight_decay = d.weight_decay;
  o.cache_dir = d.cache_dir;
  return job;
}

void add_budget_args(CLI::App& cmd, BudgetArgs& b) {
  const auto add = [&](CLI::Option* option) { b.given.push_back(option->group("Depth budget (instead of --layers, "
                                                                           "which then caps the depth)")); };
  add(cmd.add_option("--max-ppl-ratio", b.max_ppl_ratio,
                     "Remove as many layers as keep the held-out perplexity within this ratio of the dense model's")
          ->check(CLI::PositiveNumber));
  add(cmd.add_option("--max-kl", b.max_kl, "... as keep the held-out KL to the dense model (nats per token) at most this")
          ->check(CLI::PositiveNumber));
  add(cmd.add_option("--min-retained", b.min_retained,
                     "... as keep the retained zero-shot performance on the --task rows (a fraction, e.g. 0.9) "
                     "at least this")
          ->check(CLI::PositiveNumber));
  add(cmd.add_option("--target-params", b.target_params,
                     "At most this many parameters: a count (6.5B, 800M) or a fraction of the dense model's (0.8); "
                     "with --unit attention|mlp|sublayer, the fewest units that reach it"));
  add(cmd.add_option("--target-kv", b.target_kv,
                     "With --unit attention|sublayer: keep at most this fraction of the attention KV cache (0.75: "
                     "remove attention from a quarter of the layers), with the fewest units")
          ->check(CLI::Range(0.0, 1.0)));
}

// "6.5B", "800M", "12000", or a fraction below 1 ("0.8").
double parse_parameter_count(const std::string& text) {
  static const std::map<char, double> kScale{{'K', 1e3}, {'M', 1e6}, {'B', 1e9}, {'G', 1e9}, {'T', 1e12}};
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const auto rest = text.substr(used);
  const auto scale = rest.size() == 1 ? kScale.find(static_cast<char>(std::toupper(rest[0]))) : kScale.end();
  if (used == 0 || !(value > 0) || (!rest.empty() && scale == kScale.end()))
    throw UsageError("--target-params " + text + ": expected a count like 6.5B or 800M, or a fraction like 0.8");
  return rest.empty() ? value : value * scale->second;
}

std::optional<DepthBudget> budget_of(const BudgetArgs& b) {
  if (std::none_of(b.given.begin(), b.given.end(), [](const CLI::Option* o) { return o->count() > 0; }))
    return std::nullopt;
  DepthBudget budget;
  const auto set = [](const CLI::Option* o, double v) { return o->count() ? std::optional<double>(v) : std::nullopt; };
  budget.max_ppl_ratio = set(b.given[0], b.max_ppl_ratio);
  budget.max_kl = set(b.given[1], b.max_kl);
  budget.min_retained = set(b.given[2], b.min_retained);
  if (b.given[3]->count()) budget.target_params = parse_parameter_count(b.target_params);
  budget.target_kv = set(b.given[4], b.target_kv);
  if (budget.min_retained > 1)
    throw UsageError("--min-retained is a fraction (0.9 for 90 %), got " + std::to_string(*budget.min_retained));
  return budget;
}

void add_selection_args(CLI::App& cmd, SelectionArgs& a, bool is_prune) {
  add_model_args(cmd, a.model);
  add_runtime_args(cmd, a.runtime);
  cmd.add_option("-n,--layers", a.layers,
                 is_prune ? "Number of decoder layers to remove (with a depth budget: the deepest to try)"
                          : "Number of decoder layers to remove (default: every block size)")
      ->check(at_least(1));
  cmd.add_option("--unit", a.unit,
                 std::string(is_prune ? "What --layers counts and removes" : "What is ranked and --layers counts") +
                     ": layer (whole decoder layers), attention or mlp (that branch of a layer; --metric iterative "
                     "or cosine), sublayer (either branch, by held-out KL per parameter removed; --metric iterative)")
      ->capture_default_str()
      ->check(enum_flag(kUnitFlags));
  cmd.add_option("--calib", a.calib,
                 "Calibration text files (plain, or .jsonl with a \"text\" field); default: the text shipped in data/text")
      ->check(existing_file());
  cmd.add_option("--calib-samples", a.calib_samples, "Calibration windows, drawn at random offsets")
      ->capture_default_str()
      ->check(at_least(1));
  cmd.add_option("--held-out-samples", a.held_out_samples,
                 "Windows from the last 10 % of the calibration text on which patched-kl, iterative, --patch auto "
                 "and --fold auto judge their candidates (the statistics then use the first 90 %)")
      ->capture_default_str()
      ->check(at_least(1));
  cmd.add_option("--seq-len", a.seq_len, "Tokens per calibration window")->capture_default_str()->check(between(2, 1 << 20));
  cmd.add_option("--seed", a.seed, "Seed of the window offsets (same seed, same output)")
      ->capture_default_str()
      ->check(at_least(0));
  if (is_prune) {
    cmd.add_option("--recipe", a.recipe, recipe_help())->capture_default_str()->check(one_of(recipe_names()));
    cmd.add_option("--metric", a.metric,
                   "Layer choice: cosine (mean per-token cosine of X^(l), X^(l+n)), angular (last-token angular "
                   "distance), bi (ShortGPT block influence, may be non-contiguous), patched-kl (held-out KL to the "
                   "dense model after repairing each candidate block), iterative (greedy, one layer at a time by "
                   "that KL, may be non-contiguous); default: the recipe's")
        ->check(enum_flag(kMetricFlags));
  } else {
    cmd.add_option("--metric", a.metric,
                   "Ranking printed first and marked in the SVG: cosine (mean per-token cosine of X^(l), X^(l+n); "
                   "of a sublayer's input and output with --unit attention|mlp), angular (last-token angular "
                   "distance), patched-kl (held-out KL to the dense model after repairing each candidate block; "
                   "needs --layers), bi (ShortGPT block influence per layer; needs --layers), iterative (--unit "
                   "attention|mlp|sublayer with --layers: the units greedy selection removes, in order)")
        ->capture_default_str()
        ->check(enum_flag(kScoreMetricFlags));
  }
  cmd.add_flag("--allow-edges", a.allow_edges, "Allow removing the first or the last layer");
  if (is_prune)
    cmd.add_option("--start", a.start, "Force the block [start, start + n) instead of choosing it (no --metric then)")
        ->check(at_least(0));
  cmd.add_option("--patch", a.patch,
                 std::string(is_prune ? "" : "How patched-kl repairs each candidate: ") +
                     "linearpatch (H diag(d) H^T on the stream), mlp-lstsq (least-squares map on the "
                     "MLP output before the gap, folded into its down_proj), auto (per gap, the kind with the lowest "
                     "held-out KL), none (plain removal)" +
                     (is_prune ? "; default: the recipe's (with --unit attention|mlp|sublayer: none; they take none, "
                                 "mlp-lstsq, or linearpatch with --emit exact)"
                               : ""))
      ->check(enum_flag(kPatchFlags));
  cmd.add_option("--rotation", a.rotation,
                 "Basis of the LinearPatch scales: auto (Hadamard, else random orthogonal), hadamard, random, none")
      ->capture_default_str()
      ->check(enum_flag(kRotationFlags));
  cmd.add_flag("--json", a.json, "Print the report as one JSON object on stdout instead of the summary");
  cmd.add_option("--report", a.report, "Also write the JSON report to this file");
}

CalibrationOptions calibration_options(const SelectionArgs& a) {
  CalibrationOptions c;
  c.files = a.calib.empty() ? default_calibration_files() : to_paths(a.calib);
  c.samples = a.calib_samples;
  c.held_out_samples = a.held_out_samples;
  c.seq_len = a.seq_len;
  c.seed = a.seed;
  c.batch_size = apply_runtime(a.runtime, a.seq_len, a.model.device);
  return c;
}

SelectionOptions selection_options(const SelectionArgs& a) {
  SelectionOptions s;
  s.layers = a.layers;
  s.unit = to_enum(kUnitFlags, a.unit);
  s.metric = to_enum(kMetricFlags, a.metric);
  s.allow_edges = a.allow_edges;
  if (a.start >= 0) s.start = a.start;
  return s;
}

// The report as --report FILE and --json ask; otherwise the summary. Every
// command keeps this contract: its result on stdout (JSON with --json, else
// the summary), logs and errors on stderr.
void emit(const Report& report, const SelectionArgs& a, const std::string& human) {
  if (!a.report.empty()) write_text_file(a.report, report.dump(2) + "\n");
  if (a.json) print_json(report);
  else std::cout << human << std::endl;
}

// ./<last part of --model>-pruned-<n>, so `prune --model llama3-8b --layers 5`
// needs nothing else.
std::filesystem::path default_output(const std::string& model, const std::string& layers) {
  auto name = std::filesystem::path(model).lexically_normal().filename().string();
  if (name.empty() || name == "." || name == "..") name = "model";
  const auto out = std::filesystem::path(name + "-pruned-" + layers);
  spdlog::info("writing to ./{} (choose with --out)", out.string());
  return out;
}

// What score and prune jobs share, from the parsed arguments.
template <typename Job>
Job job_from(const SelectionArgs& a) {
  Job job;
  job.model_dir = resolve_model_dir(a.model.model);
  job.model = model_options(a.model);
  job.calibration = calibration_options(a);
  job.selection = selection_options(a);
  job.repair = {to_enum(kPatchFlags, a.patch), to_enum(kRotationFlags, a.rotation)};
  return job;
}

PruneJob prune_job(const PruneArgs& a, std::vector<std::string> overrides) {
  auto job = job_from<PruneJob>(a);
  job.recipe = a.recipe;
  job.recipe_overrides = std::move(overrides);
  job.distill = distill_job(a.distill, a.seq_len, a.model.device);
  job.budget = budget_of(a.budget);
  if (!job.budget && a.layers == 0)
    throw UsageError("prune needs --layers N, or a depth budget (--max-ppl-ratio, --max-kl, --min-retained, "
                     "--target-params, --target-kv) to choose N");
  if (job.budget && job.budget->min_retained && a.eval_tasks.empty())
    throw UsageError("--min-retained needs --task NAME=FILE rows to measure the retained performance on");
  for (const auto& metric : a.curve_metrics) job.compare_metrics.push_back(to_enum(kMetricFlags, metric));
  const auto depth = a.layers > 0 && !job.budget ? std::to_string(a.layers) : "auto";
  job.output_dir = a.out.empty() ? default_output(a.model.model, depth) : std::filesystem::path(a.out);
  job.overwrite = a.force;
  job.sync = !a.no_fsync;
  job.emit = {to_enum(kEmitFlags, a.emit), to_enum(kFoldFlags, a.fold), a.fold_samples};
  job.max_shard_bytes = a.max_shard_size.empty() ? 0 : parse_byte_size(a.max_shard_size);
  job.repair.refit = to_enum(kRefitFlags, a.refit);
  job.selection.score_repair = to_enum(kScoreRepairFlags, a.score_repair);
  job.selection.search = to_enum(kSearchFlags, a.search);
  job.selection.search_budget = a.search_budget;
  for (const auto& spec : a.eval_tasks) {
    job.eval_tasks.push_back(parse_task_spec(spec));
    job.eval_tasks.back().limit = a.task_limit;
  }
  return job;
}

// Options that only act together with another one, checked before any work.
void check_prune_combinations(const CLI::App& cmd, const PruneArgs& a) {
  if (cmd.count("--start") && cmd.count("--metric"))
    throw UsageError("--start forces the block, so --metric has no effect: drop one of them");
  refuse_without_effect(cmd, "--fold", a.emit == "vanilla", "without --emit vanilla");
  refuse_without_effect(cmd, "--fold-samples", a.emit == "vanilla", "without --emit vanilla");
  refuse_without_effect(cmd, "--rotation", a.patch != "none", "with --patch none");
  refuse_without_effect(cmd, "--limit", !a.eval_tasks.empty(), "without --task");
  const bool budget = budget_of(a.budget).has_value();
  for (const char* option : {"--curve", "--curve-metrics"}) {
    refuse_without_effect(cmd, option, budget, "without a depth budget (--max-ppl-ratio, --max-kl, --min-retained, "
                                               "--target-params)");
    refuse_without_effect(cmd, option, a.unit == "layer", "with --unit " + a.unit + " (a unit budget has no curve)");
  }
  for (const char* option : {"--max-ppl-ratio", "--max-kl", "--min-retained"})
    refuse_without_effect(cmd, option, a.unit == "layer",
                          "with --unit " + a.unit + " (units take --target-params or --target-kv)");
  refuse_without_effect(cmd, "--target-kv", a.unit == "attention" || a.unit == "sublayer",
                        "with --unit " + a.unit + " (it removes attention sublayers: --unit attention or sublayer)");
}

void check_score_combinations(const CLI::App& cmd, const ScoreArgs& a) {
  if (a.unit != "layer") {
    if (a.metric == "iterative" && a.layers == 0)
      throw UsageError("--metric iterative with --unit " + a.unit + " removes a number of units: add --layers N");
    for (const char* option : {"--patch", "--rotation"})
      refuse_without_effect(cmd, option, false, "with --unit " + a.unit + " (units are scored without repair)");
    refuse_without_effect(cmd, "--held-out-samples", a.metric == "iterative", "without --metric iterative");
    refuse_without_effect(cmd, "--svg", false, "with --unit " + a.unit + " (the heatmap is of layer blocks)");
    return;
  }
  if (a.metric == "iterative")
    throw UsageError("--metric iterative ranks sublayer units (--unit attention|mlp|sublayer); whole layers are "
                     "removed iteratively by prune --metric iterative");
  if (a.layers == 0 && (a.metric == "bi" || a.metric == "patched-kl"))
    throw UsageError("--metric " + a.metric + " ranks blocks of one size: add --layers N");
  const bool patched = a.layers > 0;  // patched-kl is ranked only for one block size
  for (const char* option : {"--patch", "--rotation", "--held-out-samples"})
    refuse_without_effect(cmd, option, patched, "without --layers (only patched-kl uses it)");
}

}  // namespace

Command register_score(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  auto* cmd = app.add_subcommand(
      "score", "Rank blocks of layers by cosine, angular distance and patched KL, and print the best ones; writes no model");
  add_selection_args(*cmd, *args, /*is_prune=*/false);
  cmd->add_option("--svg", args->svg, "Write the layer-similarity heatmap with the chosen blocks and every score here");
  return {cmd, [args, cmd] {
            check_score_combinations(*cmd, *args);
            const auto result = run_score(job_from<ScoreJob>(*args));
            if (!args->svg.empty()) write_text_file(args->svg, score_svg(result));
            emit(to_json(result), *args, summarize(result));
          }};
}

Command register_prune(CLI::App& app) {
  auto args = std::make_shared<PruneArgs>();
  std::string about = "Remove redundant layers, repair each gap, write a checkpoint.\nStart from a recipe (--recipe):";
  for (const auto& r : recipes()) about += "\n  " + r.name + (r.name == "paper" ? " (default)" : "") + ": " + r.summary;
  auto* cmd = app.add_subcommand("prune", about);
  add_selection_args(*cmd, *args, /*is_prune=*/true);
  cmd->add_option("-o,--out", args->out,
                  "Output checkpoint directory (must not exist unless --force; default: ./<model>-pruned-<n>)");
  cmd->add_flag("--force", args->force, "Replace an existing output directory");
  cmd->add_option("--emit", args->emit,
                  "exact: stream patches as extra tensors (loads in linearpatch, and in transformers with "
                  "trust_remote_code); vanilla: the family's plain class with every repair folded into the weights")
      ->capture_default_str()
      ->check(enum_flag(kEmitFlags));
  cmd->add_option("--fold", args->fold,
                  "With --emit vanilla: auto (the fold with the lowest held-out KL), scalar, least-squares")
      ->capture_default_str()
      ->check(enum_flag(kFoldFlags));
  cmd->add_option("--fold-samples", args->fold_samples,
                  "With --emit vanilla: calibration windows the least-squares fold is fitted on")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--task", args->eval_tasks,
                  "NAME=FILE: score this multiple-choice task on the dense and the written model and report the "
                  "retained performance (as eval --task); NAME is " + task_names());
  add_hidden_alias(*cmd, "--eval-task", args->eval_tasks);
  cmd->add_option("--limit", args->task_limit, "Score only the first N rows of each --task (0: all), as eval --limit")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_flag("--no-fsync", args->no_fsync,
                "Skip fsync before the final rename: faster on slow disks; the output is still complete or absent "
                "if the process dies, but not guaranteed to survive a power loss");
  cmd->add_option("--max-shard-size", args->max_shard_size, "Largest weight file, e.g. 5GB (default: like the input)");
  cmd->add_option("--refit", args->refit,
                  "Least-squares repairs of several gaps: sequential (gap by gap in model order, each fitted on the "
                  "stream of the model with the earlier gaps cut and repaired; kept where the held-out KL does not "
                  "rise), dense (each on the dense model's stream)")
      ->capture_default_str()
      ->check(enum_flag(kRefitFlags));
  cmd->add_option("--score-repair", args->score_repair,
                  "With --metric iterative: the repair each candidate is scored with: kept (the kind --patch keeps; "
                  "mlp-lstsq for auto), linearpatch (cheaper: no least-squares pass per step), mlp-lstsq, none")
      ->capture_default_str()
      ->check(enum_flag(kScoreRepairFlags));
  cmd->add_option("--search", args->search,
                  "With --metric iterative: greedy (one layer at a time), swap (then swap removed layers for kept "
                  "ones, nearest first, while the held-out KL drops)")
      ->capture_default_str()
      ->check(enum_flag(kSearchFlags));
  cmd->add_option("--search-budget", args->search_budget,
                  "Most layer sets the swap search tries (default: n times the eligible layers)")
      ->check(CLI::PositiveNumber);
  add_distill_args(*cmd, args->distill);
  add_budget_args(*cmd, args->budget);
  cmd->add_option("--curve", args->curve_svg,
                  "With a depth budget: write the pruning curve (quality against parameters removed, the chosen depth "
                  "and the budget marked) as an SVG chart here")
      ->group("Depth budget (instead of --layers, which then caps the depth)");
  cmd->add_option("--curve-metrics", args->curve_metrics,
                  "With a depth budget: also measure these metrics' curves (every depth up to the deepest the search "
                  "visited, same repair) for the report and the --curve chart, e.g. cosine,iterative")
      ->delimiter(',')
      ->check(enum_flag(kMetricFlags))
      ->group("Depth budget (instead of --layers, which then caps the depth)");
  return {cmd, [args, cmd] {
            check_prune_combinations(*cmd, *args);
            const bool repair_asked = cmd->count("--patch") > 0;
            auto overrides = apply_recipe(*cmd, args->recipe);
            // Sublayer units are removed without repair: the recipe's repair gives way unless asked for.
            if (args->unit != "layer" && !repair_asked) args->patch = "none";
            const auto result = run_prune(prune_job(*args, std::move(overrides)));
            if (!args->curve_svg.empty()) write_text_file(args->curve_svg, curve_svg(curve_plot(result)));
            emit(to_json(result), *args, summarize(result));
          }};
}

}  // namespace lp::cli
