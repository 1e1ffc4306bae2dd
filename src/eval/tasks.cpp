#include "linearpatch/eval/tasks.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>

#include "eval/python_text.h"
#include "io/file_util.h"
#include "io/json_util.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/text_corpus.h"

namespace lp {
namespace {

using Json = nlohmann::json;

// lm-eval's target_delimiter: what separates a context from each choice.
constexpr const char* kDelimiter = " ";

// Field access on one row; every failure names the file, line and field.
class Row {
 public:
  Row(const Json& record, const std::string& where) : record_(record), where_(where) {
    if (!record.is_object()) io::fail_input(where, "expected a JSON object, found " + io::json_excerpt(record));
  }

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    io::fail_input(where_, "field \"" + field + "\": " + what);
  }

  const Json& field(const Json& parent, const std::string& name, const std::string& path) const {
    if (!parent.contains(name)) fail(path, "missing");
    return parent[name];
  }

  const std::string& text(const std::string& name) const { return text_at(record_, name, name); }

  const std::string& text_at(const Json& parent, const std::string& name, const std::string& path) const {
    const auto& value = field(parent, name, path);
    if (!value.is_string()) fail(path, "expected a string, found " + io::json_excerpt(value));
    return value.get_ref<const std::string&>();
  }

  std::vector<std::string> texts(const std::string& name) const { return texts_at(record_, name, name); }

  std::vector<std::string> texts_at(const Json& parent, const std::string& name, const std::string& path) const {
    const auto& value = field(parent, name, path);
    if (!value.is_array()) fail(path, "expected an array of strings, found " + io::json_excerpt(value));
    std::vector<std::string> out;
    for (const auto& item : value) {
      if (!item.is_string()) fail(path, "expected an array of strings, found " + io::json_excerpt(item));
      out.push_back(item.get<std::string>());
    }
    if (out.size() < 2) fail(path, "expected at least 2 choices, found " + std::to_string(out.size()));
    return out;
  }

  // Labels are integers in some datasets and strings of digits in others.
  int64_t index(const std::string& name) const {
    const auto& value = field(record_, name, name);
    if (value.is_number_integer()) return value.get<int64_t>();
    if (value.is_string()) {
      const auto& s = value.get_ref<const std::string&>();
      if (!s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::stoll(s);
    }
    fail(name, "expected an integer or a string of digits, found " + io::json_excerpt(value));
  }

  const Json& record() const { return record_; }

 private:
  const Json& record_;
  const std::string& where_;
};

// Choices in the continuation, one context: every task but winogrande.
TaskRow continuation_row(const std::string& context, const std::vector<std::string>& choices, int64_t gold,
                         const Row& row, const std::string& gold_field) {
  if (gold < 0 || gold >= static_cast<int64_t>(choices.size()))
    row.fail(gold_field, std::to_string(gold) + " is out of range for " + std::to_string(choices.size()) + " choices");
  TaskRow out;
  out.gold = gold;
  for (const auto& choice : choices) {
    out.requests.push_back({context, kDelimiter + choice});
    out.choice_chars.push_back(pystr::length(choice));
  }
  return out;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(text.substr(pos));
  return out;
}

// re.sub(r"\[.*?\]", "", text): from each "[", the shortest run to a "]" on
// the same line ("." does not match a newline).
std::string remove_bracketed(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '[') {
      const size_t end = text.find_first_of("]\n", i + 1);
      if (end != std::string_view::npos && text[end] == ']') {
        i = end;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// lm-eval's hellaswag preprocess (WikiHow markup out, spaces single).
std::string hellaswag_preprocess(std::string_view text) {
  return replace_all(remove_bracketed(replace_all(pystr::strip(text), " [title]", ". ")), "  ", " ");
}

TaskRow hellaswag_row(const Row& row) {
  const auto query = hellaswag_preprocess(row.text("activity_label") + ": " + row.text("ctx_a") + " " +
                                          pystr::capitalize(row.text("ctx_b")));
  auto endings = row.texts("endings");
  for (auto& ending : endings) ending = hellaswag_preprocess(ending);
  return continuation_row(query, endings, row.index("label"), row, "label");
}

TaskRow piqa_row(const Row& row) {
  return continuation_row("Question: " + row.text("goal") + "\nAnswer:", {row.text("sol1"), row.text("sol2")},
                          row.index("label"), row, "label");
}

TaskRow arc_row(const Row& row) {
  const auto& choices = row.field(row.record(), "choices", "choices");
  if (!choices.is_object()) row.fail("choices", "expected an object with \"text\" and \"label\" arrays");
  const auto texts = row.texts_at(choices, "text", "choices.text");
  const auto labels = row.texts_at(choices, "label", "choices.label");
  if (labels.size() != texts.size())
    row.fail("choices.label", std::to_string(labels.size()) + " labels for " + std::to_string(texts.size()) + " choices");
  const auto& key = row.text("answerKey");
  const auto hit = std::find(labels.begin(), labels.end(), key);
  if (hit == labels.end()) row.fail("answerKey", "\"" + key + "\" is not one of choices.label");
  return continuation_row("Question: " + row.text("question") + "\nAnswer:", texts, hit - labels.begin(), row,
                          "answerKey");
}

TaskRow boolq_row(const Row& row) {
  return continuation_row(row.text("passage") + "\nQuestion: " + row.text("question") + "?\nAnswer:", {"no", "yes"},
                          row.index("label"), row, "label");
}

TaskRow generic_row(const Row& row) {
  return continuation_row(row.text("context"), row.texts("choices"), row.index("gold"), row, "gold");
}

// Partial scoring: the options complete two contexts, and what follows the
// blank is the one continuation scored after each.
TaskRow winogrande_row(const Row& row) {
  const auto& sentence = row.text("sentence");
  const size_t blank = sentence.find('_');
  if (blank == std::string::npos) row.fail("sentence", "has no \"_\" to fill in");
  const int64_t answer = row.index("answer");
  if (answer != 1 && answer != 2) row.fail("answer", "expected \"1\" or \"2\", found " + std::to_string(answer));
  const std::string continuation = kDelimiter + std::string(pystr::strip(std::string_view(sentence).substr(blank + 1)));
  TaskRow out;
  out.gold = answer - 1;
  for (const char* option : {"option1", "option2"}) {
    const auto context = sentence.substr(0, blank) + row.text(option);
    out.requests.push_back({context, continuation});
    out.choice_chars.push_back(pystr::length(context));
  }
  return out;
}

struct Format {
  std::function<TaskRow(const Row&)> row;
  bool has_acc_norm;
};

const std::map<std::string, Format>& formats() {
  static const std::map<std::string, Format> table = {
      {"hellaswag", {hellaswag_row, true}},  {"piqa", {piqa_row, true}},
      {"arc_easy", {arc_row, true}},         {"arc_challenge", {arc_row, true}},
      {"winogrande", {winogrande_row, false}}, {"boolq", {boolq_row, false}},
      {"mc", {generic_row, true}},
  };
  return table;
}

const Format& format_of(const std::string& name, const std::string& where) {
  const auto it = formats().find(name);
  if (it == formats().end()) io::fail_input(where, "unknown task '" + name + "' (known: " + task_names() + ")");
  return it->second;
}

// `each_record` feeds the file's records to the visitor it is given.
Task read_task(const std::string& name, const std::filesystem::path& file,
               const std::function<void(const io::JsonLineVisitor&)>& each_record) {
  const std::string source = file.string();
  const auto& format = format_of(name, source);
  Task task;
  task.name = name;
  task.file = file;
  task.has_acc_norm = format.has_acc_norm;
  each_record([&](const Json& record, int64_t line_no, const std::string& where) {
    auto row = format.row(Row(record, where));
    row.index = line_no - 1;
    task.rows.push_back(std::move(row));
  });
  if (task.rows.empty()) io::fail_input(file.string(), "no rows");
  return task;
}

}  // namespace

std::string task_names() {
  std::string names;
  for (const auto& [name, format] : formats()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

TaskSpec parse_task_spec(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw InputError("task '" + text + "': expected NAME=FILE with NAME one of " + task_names());
  TaskSpec spec{text.substr(0, eq), text.substr(eq + 1)};
  format_of(spec.name, "task '" + text + "'");
  return spec;
}

Task parse_task(const std::string& name, std::string_view content, const std::string& source) {
  return read_task(name, source, [&](const io::JsonLineVisitor& visit) { io::for_each_json_line(content, source, visit); });
}

Task load_task(const TaskSpec& spec) {
  auto task =
      read_task(spec.name, spec.file, [&](const io::JsonLineVisitor& visit) { io::read_json_lines(spec.file, visit); });
  // Every row is checked; only the first `limit` are scored.
  if (spec.limit > 0 && static_cast<int64_t>(task.rows.size()) > spec.limit) task.rows.resize(spec.limit);
  return task;
}

}  // namespace lp
