// Multiple-choice scoring as lm-evaluation-harness v0.4 does it for causal
// LMs: each choice's score is the summed log-probability of its
// continuation tokens; acc takes the highest score, acc_norm the highest
// score per character of the choice.
//
// The choices of all rows are sorted by length and batched up to a token
// budget, right-padded: a causal model's logits at a position never depend
// on later positions, so padding changes nothing. Only the scored positions
// go through the language-model head, in chunks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "linearpatch/eval/tasks.h"

namespace lp {

class LlamaModel;
class Tokenizer;

// A request as the model sees it: it reads tokens[:-1], and the last
// `continuation` tokens are the ones scored.
struct EncodedRequest {
  std::vector<int32_t> tokens;
  int64_t continuation = 0;
};

// lm-eval's encoding: the context's trailing whitespace moves to the front
// of the continuation; the context and context + continuation are encoded
// without special tokens, and the continuation's tokens are the joint
// encoding past the context's token count. A context of no tokens becomes
// the prefix token (BOS, else EOS). Sequences longer than max_length + 1
// tokens lose tokens from the left, as lm-eval truncates.
EncodedRequest encode_request(const Tokenizer& tokenizer, const ChoiceRequest& request, int64_t max_length);

struct EncodedTask {
  Task task;
  std::vector<std::vector<EncodedRequest>> rows;  // [row][choice]
};

// Errors name the task file and line.
EncodedTask encode_task(const Tokenizer& tokenizer, Task task, int64_t max_length);

struct RowScores {
  int64_t index = 0;  // 0-based line number in the task file
  int64_t gold = 0;
  std::vector<double> lls;    // one per choice
  std::vector<bool> greedy;   // whether each continuation is the greedy one
};

struct TaskMetrics {
  int64_t rows = 0;
  double acc = 0, acc_stderr = 0;  // stderr: sample standard deviation / sqrt(rows)
  std::optional<double> acc_norm, acc_norm_stderr;
};

struct TaskResult {
  std::string name;
  std::filesystem::path file;
  TaskMetrics metrics;
  std::vector<RowScores> rows;  // in file order
  double seconds = 0;
  int64_t tokens = 0;         // positions the model read, without padding
  int64_t padded_tokens = 0;  // with padding: what the forward passes computed
};

// `tokens_per_pass` bounds the padded tokens of one batch (one row always fits).
TaskResult score_task(const LlamaModel& model, const EncodedTask& task, int64_t tokens_per_pass);

// lm-eval's acc and acc_norm (numpy argmax: the first maximum wins).
TaskMetrics task_metrics(const Task& task, const std::vector<RowScores>& scores);

// Retained performance (the LinearPatch paper's RP): per task the model's
// accuracy over the baseline's, acc_norm where the task defines it, else
// acc; the average is the mean of the per-task ratios.
struct TaskRetention {
  std::string task, metric;
  double model = 0, baseline = 0;
  std::optional<double> retained;  // none when the baseline scored 0
};

struct RetainedPerformance {
  std::vector<TaskRetention> tasks;
  std::optional<double> average;  // over the tasks where it is defined
};

// `model` and `baseline` hold the same tasks in the same order.
RetainedPerformance retained_performance(const std::vector<TaskResult>& model, const std::vector<TaskResult>& baseline);

}  // namespace lp
