// linearpatch eval: perplexity on text files and zero-shot accuracy on
// multiple-choice tasks of a (dense, pruned or patched) checkpoint,
// optionally against a baseline on the same windows and rows, as a CI gate.
// The work is lp::evaluate; this file maps flags to options and prints.
#include <cmath>
#include <iostream>

#include "cli/common.h"
#include "cli/usage.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/io/checkpoint.h"
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
  int64_t limit = 0;
  std::string baseline, scores;
  double max_ppl_ratio = 0, min_retained = 0;
  bool json = false;
};

EvalOptions eval_options(const EvalArgs& args) {
  EvalOptions o;
  o.texts = to_paths(args.texts);
  o.seq_len = args.seq_len;
  o.max_windows = args.max_windows;
  for (const auto& spec : args.tasks) {
    o.tasks.push_back(parse_task_spec(spec));
    o.tasks.back().limit = args.limit;
  }
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

// Options that act only with another one are refused without it.
void check_combinations(const CLI::App& cmd, const EvalArgs& a) {
  if (a.texts.empty() && a.tasks.empty())
    throw UsageError("eval needs --text or --task (or both): --text FILE for perplexity, --task NAME=FILE for accuracy");
  const auto refuse = [&](const char* option, bool applies, const std::string& needs) {
    if (cmd.count(option) > 0 && !applies)
      throw UsageError(std::string(option) + " has no effect " + needs + ": drop it or add what it needs");
  };
  refuse("--seq-len", !a.texts.empty(), "without --text (task rows are scored whole)");
  refuse("--max-windows", !a.texts.empty(), "without --text");
  refuse("--max-ppl-ratio", !a.texts.empty(), "without --text (it compares perplexity)");
  refuse("--limit", !a.tasks.empty(), "without --task");
  refuse("--scores", !a.tasks.empty(), "without --task (it holds per-row task scores)");
  refuse("--min-retained", !a.tasks.empty(), "without --task (it compares task accuracy)");
}

// A model and its baseline must read text the same way, or every comparison
// (ratio, KL, retained accuracy) is meaningless: refused before any weight
// is loaded, naming both.
void require_same_vocabulary(const std::filesystem::path& model, const std::filesystem::path& baseline) {
  const auto vocab = [](const std::filesystem::path& dir) {
    const auto checkpoint = open_checkpoint(dir);
    return parse_llama_config(checkpoint->config_text(), (dir / "config.json").string()).vocab_size;
  };
  const int64_t a = vocab(model), b = vocab(baseline);
  const auto ta = load_tokenizer(model), tb = load_tokenizer(baseline);
  static const std::string probe = "The quick brown fox, 12345 times: \"naïve\" café!\n\tend";
  const bool same_tokens = ta->encode(probe, true) == tb->encode(probe, true);
  if (a == b && same_tokens) return;
  throw UsageError("--baseline " + baseline.string() + " does not share the vocabulary of --model " + model.string() +
                   " (" + std::to_string(b) + " vs " + std::to_string(a) + " tokens; tokenizers " +
                   tb->description() + " vs " + ta->description() +
                   (same_tokens ? "" : ", encoding text differently") +
                   "): compare a pruned model with the dense model it came from");
}

Json gates_json(const EvalResult& result, const EvalOptions& options) {
  auto gates = Json::array();
  const auto add = [&](const char* name, double limit, std::optional<double> value, bool above_fails) {
    if (limit <= 0) return;
    const bool passed = value && (above_fails ? *value <= limit : *value >= limit);
    gates.push_back({{"gate", name},
                     {"limit", limit},
                     {"value", value ? Json(*value) : Json(nullptr)},
                     {"verdict", passed ? "pass" : "fail"}});
  };
  add("max_ppl_ratio", options.max_ppl_ratio, result.perplexity ? result.perplexity->ppl_ratio : std::nullopt, true);
  add("min_retained", options.min_retained, result.retained ? result.retained->average : std::nullopt, false);
  return gates;
}

void run(const EvalArgs& args) {
  auto options = eval_options(args);
  validate(options, !args.baseline.empty());  // before the models load: option errors come first
  const auto dir = resolve_model_dir(args.model.model);
  std::optional<std::filesystem::path> baseline_dir;
  if (!args.baseline.empty()) {
    baseline_dir = resolve_model_dir(args.baseline);
    require_same_vocabulary(dir, *baseline_dir);
  }
  const auto model = LlamaModel::load(dir, model_options(args.model));
  std::optional<LlamaModel> baseline;
  if (baseline_dir) baseline = LlamaModel::load(*baseline_dir, model_options(args.model));
  if (!options.texts.empty()) {
    require_window_fits(args.seq_len, model.config(), dir.string());
    if (baseline) require_window_fits(args.seq_len, baseline->config(), "the baseline");
  }
  const auto tokenizer = load_tokenizer(dir);
  options.batch_size = apply_runtime(args.runtime, args.seq_len, args.model.device);

  const auto result = evaluate(model, baseline ? &*baseline : nullptr, *tokenizer, options);
  if (!args.scores.empty()) write_text_file(args.scores, scores_jsonl(result));
  // The result on stdout: JSON with --json, else the summary (as every command).
  if (args.json) {
    Json out{{"model", dir.string()}};
    if (baseline_dir) out["baseline_model"] = baseline_dir->string();
    out.update(eval_json(result));
    if (options.max_ppl_ratio > 0 || options.min_retained > 0) out["gates"] = gates_json(result, options);
    print_json(out);
  } else {
    std::cout << eval_summary(result) << std::endl;
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
  cmd->add_option("--text", args->texts,
                  "Text files to measure perplexity on (plain, or .jsonl with a \"text\" field); each scored "
                  "separately")
      ->check(existing_file());
  cmd->add_option("--task", args->tasks,
                  "NAME=FILE: multiple-choice rows (JSON Lines) scored as lm-evaluation-harness v0.4 does; NAME is " +
                      task_names() + " (mc rows: {\"context\", \"choices\": [...], \"gold\": index})");
  cmd->add_option("--limit", args->limit, "Score only the first N rows of each task (0: all), as lm-eval's --limit")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_option("--seq-len", args->seq_len, "Tokens per perplexity window")->capture_default_str()->check(between(2, 1 << 20));
  cmd->add_option("--max-windows", args->max_windows, "At most this many windows per file (0: all)")
      ->capture_default_str()
      ->check(at_least(0));
  auto* baseline = cmd->add_option("--baseline", args->baseline,
                                   "Also score this model on the same windows and rows; report both, the perplexity "
                                   "ratio, the mean KL and the retained performance per task");
  cmd->add_option("--max-ppl-ratio", args->max_ppl_ratio, "Exit with status 4 when ppl / baseline ppl is above this")
      ->needs(baseline)
      ->check(positive_real());
  cmd->add_option("--min-retained", args->min_retained,
                  "Exit with status 4 when the retained performance averaged over the tasks (a fraction, e.g. 0.9) "
                  "is below this")
      ->needs(baseline)
      ->check(positive_real());
  cmd->add_option("--scores", args->scores,
                  "Write one JSON line per task row: task, row (0-based line), lls and greedy (one per choice), gold, "
                  "and baseline_lls with --baseline");
  cmd->add_flag("--json", args->json, "Print one JSON object on stdout instead of the summary");
  return {cmd, [args, cmd] {
            check_combinations(*cmd, *args);
            run(*args);
          }};
}

}  // namespace lp::cli
