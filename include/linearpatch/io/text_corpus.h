// Text files for calibration, distillation and evaluation: plain UTF-8, or
// JSON Lines (name ending in .jsonl / .ndjson) where each non-blank line is a
// JSON string or an object with a string "text" field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace lp::io {

// The text of one file; JSON Lines records are joined with blank lines.
// Throws InputError naming the file and line on unreadable or bad input.
std::string read_corpus_file(const std::filesystem::path& path);

// The JSON Lines reader on its own, for in-memory input (tests, fuzzing).
std::string parse_json_lines(std::string_view content, const std::string& source);

// Records of other shapes (task rows): `visit` sees each non-blank line's
// value, its 1-based line number and "<source>:<line>" for error messages.
using JsonLineVisitor = std::function<void(const nlohmann::json& record, int64_t line_no, const std::string& where)>;
void for_each_json_line(std::string_view content, const std::string& source, const JsonLineVisitor& visit);
// Reads `path` (as size-capped as corpus files) and visits its records.
void read_json_lines(const std::filesystem::path& path, const JsonLineVisitor& visit);

}  // namespace lp::io
