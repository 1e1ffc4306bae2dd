// Text files for calibration, distillation and evaluation: plain UTF-8, or
// JSON Lines (name ending in .jsonl / .ndjson) where each non-blank line is a
// JSON string or an object with a string "text" field.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lp::io {

// The text of one file; JSON Lines records are joined with blank lines.
// Throws InputError naming the file and line on unreadable or bad input.
std::string read_corpus_file(const std::filesystem::path& path);

// The JSON Lines reader on its own, for in-memory input (tests, fuzzing).
std::string parse_json_lines(std::string_view content, const std::string& source);

}  // namespace lp::io
