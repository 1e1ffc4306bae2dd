#include "linearpatch/io/text_corpus.h"

#include "io/file_util.h"
#include "io/json_util.h"

namespace lp::io {
namespace {

// Records are flat objects (task rows nest a level or two); anything
// nested deeper is not input we read.
constexpr int kMaxRecordDepth = 16;
// Calibration text and task files are megabytes; a file beyond this is a
// mistake.
constexpr uint64_t kMaxCorpusBytes = uint64_t{4} << 30;

bool is_json_lines(const std::filesystem::path& path) {
  const auto ext = path.extension().string();
  return ext == ".jsonl" || ext == ".ndjson";
}

}  // namespace

void for_each_json_line(std::string_view content, const std::string& source, const JsonLineVisitor& visit) {
  size_t line_start = 0;
  for (int64_t line_no = 1; line_start < content.size(); ++line_no) {
    size_t line_end = content.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = content.size();
    const auto line = content.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const auto where = source + ":" + std::to_string(line_no);
    visit(parse_json_strict(line, where, kMaxRecordDepth), line_no, where);
  }
}

void read_json_lines(const std::filesystem::path& path, const JsonLineVisitor& visit) {
  for_each_json_line(read_text_file(path, kMaxCorpusBytes), path.string(), visit);
}

std::string parse_json_lines(std::string_view content, const std::string& source) {
  std::string joined;
  for_each_json_line(content, source, [&joined](const nlohmann::json& record, int64_t, const std::string& where) {
    const nlohmann::json* text = nullptr;
    if (record.is_string()) text = &record;
    else if (record.is_object() && record.contains("text") && record["text"].is_string()) text = &record["text"];
    if (!text) fail_input(where, "expected a JSON string or an object with a string \"text\" field");
    if (!joined.empty()) joined += "\n\n";
    joined += text->get_ref<const std::string&>();
  });
  return joined;
}

std::string read_corpus_file(const std::filesystem::path& path) {
  auto content = read_text_file(path, kMaxCorpusBytes);
  return is_json_lines(path) ? parse_json_lines(content, path.string()) : content;
}

}  // namespace lp::io
