// linearpatch eval: perplexity on text files and zero-shot accuracy on
// multiple-choice tasks of a (dense, pruned or patched) checkpoint,
// optionally against a baseline on the same windows and rows, as a CI gate.
// The work is lp::evaluate; this file maps flags to options and prints.
#include <cmath>
#include <iostream>

#include "cli/common.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/eval/evaluation.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  RuntimeArgs runtime;
  std::vector<std::string> texts, tasks;
  int64_t seq_len = 2048;
  int64_t max_windows = 0;
  std::string baseline, scores;
  double max_ppl_ratio = 0, min_retained = 0;
  bool json = false;
};

EvalOptions eval_options(const EvalArgs& args) {
  EvalOptions o;
  o.texts = to_paths(args.texts);
  o.seq_len = args.seq_len;
  o.max_windows = args.max_windows;
  for (const auto& spec : args.tasks) o.tasks.push_back(parse_task_spec(spec));
  o.tokens_per_pass = tokens_per_pass(args.model.device);
  o.max_ppl_ratio = args.max_ppl_ratio;
  o.min_retained = args.min_retained;
  return o;
}

std::string gate_message(const GateFailure& f) {
  if (f.gate == Gate::kMaxPplRatio)
    return "perplexity ratio " + std::to_string(f.value) + " is above --max-ppl-ratio " + std::to_string(f.limit);
  if (std::isnan(f.value))
    return "retained performance is undefined (the baseline scored 0 on every task), --min-retained " +
           std::to_string(f.limit) + " cannot be met";
  return "retained performance " + std::to_string(f.value) + " is below --min-retained " + std::to_string(f.limit);
}

void run(const EvalArgs& args) {
  if (args.texts.empty() && args.tasks.empty()) throw UsageError("eval needs --text or --task (or both)");
  auto options = eval_options(args);
  validate(options, !args.baseline.empty());  // before the models load: option errors come first
  const auto dir = resolve_model_dir(args.model.model);
  const auto model = LlamaModel::load(dir, model_options(args.model));
  std::optional<LlamaModel> baseline;
  if (!args.baseline.empty()) baseline = LlamaModel::load(resolve_model_dir(args.baseline), model_options(args.model));
  if (!options.texts.empty()) {
    require_window_fits(args.seq_len, model.config(), dir.string());
    if (baseline) require_window_fits(args.seq_len, baseline->config(), "the baseline");
  }
  const auto tokenizer = load_tokenizer(dir);
  options.batch_size = apply_runtime(args.runtime, args.seq_len, args.model.device);

  const auto result = evaluate(model, baseline ? &*baseline : nullptr, *tokenizer, options);
  if (!args.scores.empty()) write_text_file(args.scores, scores_jsonl(result));
  std::cerr << eval_summary(result) << std::endl;
  if (args.json) {
    Json out{{"model", dir.string()}};
    out.update(eval_json(result));
    print_json(out);
  }
  if (const auto failure = failed_gate(result, options)) throw GateFailed(gate_message(*failure));
}

}  // namespace

Command register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval", "Perplexity on text files (windows of --seq-len tokens from the start) and zero-shot accuracy on tasks");
  add_model_args(*cmd, args->model);
  add_runtime_args(*cmd, args->runtime);
  cmd->add_option("--text", args->texts, "Text files (plain, or .jsonl with a \"text\" field); each scored separately")
      ->check(CLI::ExistingFile);
  cmd->add_option("--task", args->tasks,
                  "NAME=FILE: multiple-choice rows (JSON Lines) scored as lm-evaluation-harness v0.4 does; NAME is " +
                      task_names());
  cmd->add_option("--seq-len", args->seq_len, "Tokens per window")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-windows", args->max_windows, "At most this many windows per file (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  auto* baseline = cmd->add_option("--baseline", args->baseline,
                                   "Also score this model on the same windows and rows; report both, the perplexity "
                                   "ratio, the mean KL and the retained performance per task");
  cmd->add_option("--max-ppl-ratio", args->max_ppl_ratio, "Exit with status 4 when ppl / baseline ppl is above this")
      ->needs(baseline)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-retained", args->min_retained,
                  "Exit with status 4 when the retained performance averaged over the tasks (a fraction, e.g. 0.9) "
                  "is below this")
      ->needs(baseline)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--scores", args->scores,
                  "Write one JSON line per task row: task, row (0-based line), lls and greedy (one per choice), gold, "
                  "and baseline_lls with --baseline");
  cmd->add_flag("--json", args->json, "Print one JSON object on stdout (the summary still goes to stderr)");
  return {cmd, [args] { run(*args); }};
}

}  // namespace lp::cli
