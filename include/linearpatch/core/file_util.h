// Whole-file reads and checked writes for small text files (configs,
// reports). Large tensors go through io::write_safetensors instead.
#pragma once

#include <filesystem>
#include <string>

namespace lp {

// Throws InputError naming the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);
// Throws Error naming the file and the reason (e.g. disk full).
void write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace lp
