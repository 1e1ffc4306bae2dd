// Zero-shot multiple-choice tasks: JSON Lines rows in the formats of the HF
// datasets lm-evaluation-harness v0.4 reads, turned into its requests
// exactly as its task configs do (prompts, choices, gold index).
//
// Formats (the task name picks one):
//   hellaswag              activity_label, ctx_a, ctx_b, endings, label
//   piqa                   goal, sol1, sol2, label
//   arc_easy, arc_challenge  question, choices {text, label}, answerKey
//   winogrande             sentence (with "_"), option1, option2, answer "1"/"2"
//   boolq                  passage, question, label 0/1
//   mc                     context, choices, gold (generic)
// Labels may be integers or strings of digits. A row that does not fit its
// format is an InputError naming the file, line and field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lp {

struct TaskSpec {
  std::string name;
  std::filesystem::path file;
  int64_t limit = 0;  // only the first rows of the file (0: all), as lm-eval's --limit
};

// "hellaswag=path/rows.jsonl" -> {name, file}; InputError for text without
// "=" or an unknown name.
TaskSpec parse_task_spec(const std::string& text);
// The names parse_task_spec accepts, comma-separated.
std::string task_names();

// lm-eval's loglikelihood request: the log-probability of `continuation`
// given `context` is the score.
struct ChoiceRequest {
  std::string context, continuation;
};

struct TaskRow {
  int64_t index = 0;  // 0-based line number in the file
  std::vector<ChoiceRequest> requests;  // one per choice
  // Character (code point) lengths of lm-eval's choice strings, by which
  // acc_norm divides the scores.
  std::vector<int64_t> choice_chars;
  int64_t gold = 0;
};

struct Task {
  std::string name;
  std::filesystem::path file;
  bool has_acc_norm = true;  // lm-eval reports acc only for winogrande and boolq
  std::vector<TaskRow> rows;
};

Task load_task(const TaskSpec& spec);
// The same from in-memory JSON Lines; `source` names it in errors.
Task parse_task(const std::string& name, std::string_view content, const std::string& source);

}  // namespace lp
