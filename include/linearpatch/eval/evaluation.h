// The job behind `linearpatch eval`: perplexity on text files and zero-shot
// accuracy on multiple-choice tasks, optionally against a baseline model
// scored on the same windows and rows (perplexity ratio, mean KL, retained
// performance), with the quality gates CI jobs set. Options in, a typed
// result out; JSON, the human summary and the per-row scores are views of
// the result.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "linearpatch/eval/multiple_choice.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/eval/tasks.h"

namespace lp {

class LlamaModel;
class Tokenizer;

struct EvalOptions {
  std::vector<std::filesystem::path> texts;  // perplexity, each file on its own
  int64_t seq_len = 2048;
  int64_t max_windows = 0;  // per file; 0: all
  std::vector<TaskSpec> tasks;
  // Tokens one forward pass carries: perplexity windows per pass are
  // tokens_per_pass / seq_len unless batch_size says otherwise; the
  // choices of task rows are batched up to this many padded tokens.
  int64_t tokens_per_pass = 4096;
  int64_t batch_size = 0;
  // Quality gates (0: off); both compare with the baseline.
  double max_ppl_ratio = 0;  // perplexity / baseline perplexity at most this
  double min_retained = 0;   // average retained performance at least this (a fraction)
};

// Throws UsageError for options that cannot work together, before anything
// is loaded or run.
void validate(const EvalOptions& options, bool has_baseline);

struct TextEval {
  std::filesystem::path text;
  PerplexityResult model;
  std::optional<BaselineComparison> vs_baseline;
};

struct PerplexityTotals {
  double ppl = 0;
  int64_t tokens = 0, windows = 0;
  double seconds = 0;
  std::optional<double> baseline_ppl, ppl_ratio, mean_kl;  // with a baseline
};

// Both models on the same task rows.
struct TaskComparison {
  std::vector<TaskResult> model, baseline;
  RetainedPerformance retained;
};

struct EvalResult {
  int64_t seq_len = 0;
  std::vector<TextEval> texts;
  std::optional<PerplexityTotals> perplexity;  // when texts were given
  std::vector<TaskResult> tasks;
  std::vector<TaskResult> baseline_tasks;       // with a baseline: the same tasks
  std::optional<RetainedPerformance> retained;  // with a baseline and tasks
};

// Loads the task files first, so bad rows fail before any model runs.
// Tokenizes with `tokenizer` for both models.
EvalResult evaluate(const LlamaModel& model, const LlamaModel* baseline, const Tokenizer& tokenizer,
                    const EvalOptions& options);

// Every task for both models on the same encoded rows, and the retained
// performance (what `prune` reports for the written model against the dense one).
TaskComparison compare_on_tasks(const LlamaModel& model, const LlamaModel& baseline, const Tokenizer& tokenizer,
                                const std::vector<Task>& tasks, int64_t tokens_per_pass);

// The baseline's side of compare_on_tasks done once: rows encoded and
// scored, so that many models (every depth a budget tries) pay only for
// their own scoring.
class TaskBaseline {
 public:
  TaskBaseline(const LlamaModel& baseline, const Tokenizer& tokenizer, const std::vector<Task>& tasks,
               int64_t tokens_per_pass);
  TaskComparison compare(const LlamaModel& model) const;

 private:
  std::vector<EncodedTask> encoded_;
  std::vector<TaskResult> baseline_;
  int64_t tokens_per_pass_;
};

using EvalJson = nlohmann::ordered_json;

EvalJson eval_json(const EvalResult& result);
// {"tasks": {NAME: {...model metrics, "baseline": {...}, "retained"}}, "retained_performance"}.
EvalJson task_comparison_json(const TaskComparison& comparison);
// Perplexity line(s) and a table of the tasks, for people.
std::string eval_summary(const EvalResult& result);
// One JSON line per task row: {"task", "row" (0-based line number), "lls"
// (one per choice), "gold", "greedy" (per choice)}, and "baseline_lls" with
// a baseline.
std::string scores_jsonl(const EvalResult& result);

enum class Gate { kMaxPplRatio, kMinRetained };
struct GateFailure {
  Gate gate;
  double value = 0, limit = 0;  // value NaN: undefined (the baseline scored 0 everywhere)
};
// The first gate of `options` that `result` fails, if any.
std::optional<GateFailure> failed_gate(const EvalResult& result, const EvalOptions& options);

}  // namespace lp
