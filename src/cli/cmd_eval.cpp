// linearpatch eval: perplexity of a (dense, pruned or patched) checkpoint,
// optionally against a baseline on the same windows, as a CI gate.
#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>

#include "cli/common.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  RuntimeArgs runtime;
  std::vector<std::string> texts;
  int64_t seq_len = 2048;
  int64_t max_windows = 0;
  std::string baseline;
  double max_ppl_ratio = 0;
  bool json = false;
};

Json result_json(const PerplexityResult& r) {
  return {{"ppl", r.ppl}, {"mean_nll", r.mean_nll}, {"tokens", r.tokens}, {"windows", r.windows}, {"seconds", r.seconds}};
}

struct Totals {
  double nll = 0, base_nll = 0, kl = 0, seconds = 0;
  int64_t tokens = 0, windows = 0;
};

void run(const EvalArgs& args) {
  const auto dir = resolve_model_dir(args.model.model);
  const auto model = LlamaModel::load(dir, model_options(args.model));
  std::optional<LlamaModel> baseline;
  if (!args.baseline.empty()) baseline = LlamaModel::load(resolve_model_dir(args.baseline), model_options(args.model));
  require_window_fits(args.seq_len, model.config(), dir.string());
  if (baseline) require_window_fits(args.seq_len, baseline->config(), "the baseline");
  const auto tokenizer = load_tokenizer(dir);
  const int64_t batch = apply_runtime(args.runtime, args.seq_len, args.model.device);

  Json out;
  out["model"] = dir.string();
  out["seq_len"] = args.seq_len;
  out["texts"] = Json::array();
  Totals total;
  for (const auto& text : args.texts) {
    const auto windows = sequential_windows(tokenize_corpus(*tokenizer, {text}), args.seq_len, args.max_windows);
    Json entry{{"text", text}};
    PerplexityResult r;
    if (baseline) {
      const auto cmp = compare_with_baseline(model, *baseline, windows, batch);
      r = cmp.model;
      entry.update(result_json(r));
      entry["baseline"] = result_json(cmp.baseline);
      entry["ppl_ratio"] = cmp.ppl_ratio;
      entry["mean_kl"] = cmp.mean_kl;
      total.base_nll += cmp.baseline.mean_nll * static_cast<double>(cmp.baseline.tokens);
      total.kl += cmp.mean_kl * static_cast<double>(r.tokens);
    } else {
      r = perplexity(model, windows, batch);
      entry.update(result_json(r));
    }
    spdlog::info("{}: ppl {:.4f} over {} tokens", text, r.ppl, r.tokens);
    total.nll += r.mean_nll * static_cast<double>(r.tokens);
    total.tokens += r.tokens;
    total.windows += r.windows;
    total.seconds += r.seconds;
    out["texts"].push_back(entry);
  }
  out["ppl"] = std::exp(total.nll / static_cast<double>(total.tokens));
  out["tokens"] = total.tokens;
  out["windows"] = total.windows;
  out["seconds"] = total.seconds;
  out["tokens_per_second"] = total.seconds > 0 ? static_cast<double>(total.tokens) / total.seconds : 0.0;
  double ratio = 0;
  if (baseline) {
    out["baseline_ppl"] = std::exp(total.base_nll / static_cast<double>(total.tokens));
    ratio = out["ppl"].get<double>() / out["baseline_ppl"].get<double>();
    out["ppl_ratio"] = ratio;
    out["mean_kl"] = total.kl / static_cast<double>(total.tokens);
  }
  if (args.json) {
    print_json(out);
  } else {
    std::cout << "ppl " << out["ppl"].get<double>() << " over " << total.tokens << " tokens (" << total.windows
              << " windows of " << args.seq_len << ")";
    if (baseline)
      std::cout << "; baseline ppl " << out["baseline_ppl"].get<double>() << ", ratio " << ratio << ", mean KL "
                << out["mean_kl"].get<double>();
    std::cout << std::endl;
  }
  if (args.max_ppl_ratio > 0 && ratio > args.max_ppl_ratio)
    throw GateFailed("perplexity ratio " + std::to_string(ratio) + " is above --max-ppl-ratio " +
                     std::to_string(args.max_ppl_ratio));
}

}  // namespace

Command register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Perplexity on text files (windows of --seq-len tokens from the start)");
  add_model_args(*cmd, args->model);
  add_runtime_args(*cmd, args->runtime);
  cmd->add_option("--text", args->texts, "Text files (plain, or .jsonl with a \"text\" field); each scored separately")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--seq-len", args->seq_len, "Tokens per window")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-windows", args->max_windows, "At most this many windows per file (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  auto* baseline = cmd->add_option("--baseline", args->baseline,
                                   "Also score this model on the same windows; report both, their ratio and the mean KL");
  cmd->add_option("--max-ppl-ratio", args->max_ppl_ratio, "Exit with status 4 when ppl / baseline ppl is above this")
      ->needs(baseline)
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "Print one JSON object on stdout");
  return {cmd, [args] { run(*args); }};
}

}  // namespace lp::cli
