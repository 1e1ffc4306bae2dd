// Checked writes of small text files (configs, reports); tensors go through
// io::write_safetensors, reads of user files through the io readers.
#pragma once

#include <filesystem>
#include <string>

namespace lp {

// Throws Error naming the file and the reason (e.g. disk full).
void write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace lp
